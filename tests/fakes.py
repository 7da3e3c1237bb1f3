"""A FunctionRuntime that runs Python handlers inside the test process: enough to drive the
handlers through bootstrap() without starting worker processes. It follows the runtime port's
rules (BuildFailed on bad input, errors in Invocation.error, NotDeployed for unknown ids)."""
import importlib.util
import inspect
import tempfile
import traceback
from pathlib import Path
from typing import Any

from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec, Invocation, NotDeployed
from dispatch.schemas.source import extract


class InProcessRuntime:
    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.images: set[str] = set()
        self.deploys = 0
        self._dir = Path(tempfile.mkdtemp(prefix="dispatch-fake-"))

    async def check_base_image(self, language: str, docker_url: str) -> None:
        if language != "python3":
            raise BuildFailed(f"language {language} is not supported by the local runtime (supported: python3)")

    async def build_image(self, spec: ImageSpec, progress=None) -> str:
        for requirement in spec.manifest.split():
            if progress is not None:
                progress(f"Collecting {requirement}")
        if spec.system_packages:
            raise BuildFailed("system packages are not supported by the local runtime")
        if "no-such-package" in spec.manifest:
            raise BuildFailed("ERROR: No matching distribution found for no-such-package")
        self.images.add(spec.id)
        return f"fake://{spec.id}"

    async def remove_image(self, location: str) -> None:
        self.images.discard(location.removeprefix("fake://"))

    async def deploy(self, spec: DeploymentSpec) -> None:
        folder = self._dir / spec.faas_id
        files = extract(spec.source, folder)
        module_name, _, func = (spec.handler or f"{Path(files[0]).stem}.handle").rpartition(".")
        try:
            loaded = importlib.util.spec_from_file_location(f"fn_{spec.faas_id.replace('-', '')}",
                                                            folder / f"{module_name}.py")
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
            handler = getattr(module, func)
            assert len(inspect.signature(handler).parameters) == 2
        except Exception as error:
            raise BuildFailed(f"Invalid function file or handler: {error!r}") from None
        self.handlers[spec.faas_id] = handler
        self.deploys += 1

    async def undeploy(self, faas_id: str) -> None:
        self.handlers.pop(faas_id, None)

    async def reconcile(self, keep) -> None:
        for faas_id in set(self.handlers) - set(keep):
            self.handlers.pop(faas_id)

    async def invoke(self, faas_id: str, context: dict, payload: Any, timeout_ms: int) -> Invocation:
        if faas_id not in self.handlers:
            raise NotDeployed(faas_id)
        try:
            return Invocation(output=self.handlers[faas_id](context, payload))
        except Exception as error:  # noqa: BLE001 - any failure is the function's
            kind = "InputError" if isinstance(error, (ValueError, TypeError)) else "FunctionError"
            return Invocation(error={"type": kind, "message": str(error),
                                     "stacktrace": traceback.format_exception(error)})

    async def close(self) -> None:
        self.handlers.clear()
