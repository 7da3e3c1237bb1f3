"""JSON given on the command line (`exec --input`, `emit --data`, a secret's file): inline, `-` for
standard input, or `@FILE` for a file's content. Neither `-` nor `@…` is valid JSON, so no JSON
text typed inline is ever read another way."""
import json
import sys
from pathlib import Path
from typing import Any

from dispatch.cli.client import DispatchClientError

STDIN = "-"


def text_of(value: str, option: str) -> tuple[str, str]:
    """The text `value` stands for, and where it came from (for error messages)."""
    if value == STDIN:
        return sys.stdin.read(), f"{option} (standard input)"
    if value.startswith("@"):
        name = value[1:]
        try:
            return Path(name).expanduser().read_text(), f"{option} (file {name})"
        except OSError as error:
            raise DispatchClientError(f"cannot read {option} file {name}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise DispatchClientError(f"invalid {option} (file {name}): it is not text, it must be JSON") from None
    return value, option


def json_of(value: str, option: str) -> Any:
    """The JSON value given as `value`: inline, `-` or `@FILE`; one clear line when it is not JSON."""
    text, origin = text_of(value, option)
    try:
        return json.loads(text)
    except ValueError as error:
        raise DispatchClientError(f"invalid {origin}, it must be JSON: {error}") from None
