"""Dispatch: deploy and manage serverless functions."""
from importlib import metadata

DISTRIBUTION = "dispatch-serverless"
"""The name Dispatch is installed under (`dispatch` on PyPI is another project's); the command is `dispatch`."""


def release() -> str:
    """This installation's version, or 0.0.0 when it runs from a tree that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0.0.0"
