"""bubblewrap for the sandbox tests: installed as root on Debian when missing (apt-get install
bubblewrap), else the tests that need it skip with the reason."""
import shutil

from tests import debian
from tests.debian import Unavailable

PACKAGE = "bubblewrap"


def ensure() -> None:
    """bwrap on PATH, making sandboxes here; raise Unavailable with why not."""
    if shutil.which("bwrap") is None:
        debian.install(PACKAGE)
        if shutil.which("bwrap") is None:
            raise Unavailable(f"bwrap is still missing after installing {PACKAGE}")
    from dispatch.drivers.local.bubblewrap import Bubblewrap

    problem = Bubblewrap("on").problem
    if problem:
        raise Unavailable(problem)


def required() -> None:
    """Skip the calling test, with the reason, where the sandbox cannot be had."""
    import pytest

    try:
        ensure()
    except Unavailable as missing:
        pytest.skip(f"sandbox: {missing}")
