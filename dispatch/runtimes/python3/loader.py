"""Find, import and check a Python function: `module.func`, or the only `*.py` file's `handle`."""
import importlib
import inspect
import traceback
from pathlib import Path
from typing import Any, Callable

Function = Callable[[dict, Any], Any]
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class HandlerError(Exception):
    """The function cannot be served; `error` is the §3.6-shaped description sent back to the platform."""

    def __init__(self, detail: str, stacktrace: list[str] | None = None):
        super().__init__(detail)
        self.error: dict[str, Any] = {
            "type": "FunctionError",
            "message": f"Invalid function file or handler: {detail}",
            "stacktrace": stacktrace or [],
        }


def load(source_dir: Path, handler: str) -> Function:
    """Import the handler's module from `source_dir` (already on sys.path) and return the checked function."""
    module_name, function_name = _split(handler) if handler else _default(source_dir)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        lines = traceback.format_exception(exc)
        raise HandlerError(f"cannot import {module_name}: {_describe(exc)}", _split_lines(lines)) from exc
    function = getattr(module, function_name, None)
    if function is None:
        raise HandlerError(f"module {module_name} has no attribute {function_name}")
    if not callable(function):
        raise HandlerError(f"{module_name}.{function_name} is not a function")
    _check_signature(f"{module_name}.{function_name}", function)
    return function


def _split(handler: str) -> tuple[str, str]:
    module_name, _, function_name = handler.strip().rpartition(".")
    if not module_name or not function_name:
        raise HandlerError(f"handler '{handler}' must be written module.function, e.g. hello.handle")
    return module_name, function_name


def _default(source_dir: Path) -> tuple[str, str]:
    files = sorted(path.name for path in source_dir.glob("*.py"))
    if len(files) != 1:
        found = ", ".join(files) or "none"
        raise HandlerError(f"Exactly 1 source file needed when HANDLER is empty (found {found})")
    return files[0][: -len(".py")], "handle"


def _check_signature(name: str, function: Function) -> None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError) as exc:
        raise HandlerError(f"cannot read the parameters of {name}: {exc}") from exc
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    required_keywords = [
        p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty
    ]
    if len(positional) != 2 or required_keywords:
        raise HandlerError(
            f"{name} must take exactly two positional parameters (context, payload); "
            f"it takes ({', '.join(p.name for p in parameters)})"
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _split_lines(chunks: list[str]) -> list[str]:
    return "".join(chunks).splitlines()
