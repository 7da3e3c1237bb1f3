"""What handlers need from the outside world to build images and run functions."""
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Protocol

Progress = Callable[[str], Awaitable[None] | None]


class BuildFailed(Exception):
    """A base image check, image build or function deploy failed; `reason` is shown to the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotDeployed(Exception):
    """The runtime has no deployment with this id (never deployed, or lost on restart)."""


@dataclass(frozen=True)
class ImageSpec:
    id: str
    name: str
    language: str
    base_url: str
    manifest: str = ""
    system_packages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DeploymentSpec:
    faas_id: str
    name: str
    organization: str
    language: str
    image_location: str
    source: bytes
    handler: str = ""
    timeout_ms: int = 0
    min_replicas: int | None = None
    """None: the runtime's default (see Settings)."""
    max_replicas: int | None = None
    concurrency: int | None = None
    idle_seconds: int | None = None
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    """CPU time one run may use; past it the runtime kills what runs it (see cpu_message)."""
    cpus: float | None = None
    processes: int | None = None
    """Processes and threads one worker may have at once."""
    max_output_bytes: int | None = None
    """A run's JSON-encoded output; more is a FunctionError naming the limit (see output_message)."""
    network: bool = True
    """Whether the function's processes reach networks (False: loopback of their own only)."""
    secrets: tuple[str, ...] = ()
    """Names of the secrets the function reads; their values reach it per run in context.secrets."""
    labels: tuple[tuple[str, str], ...] = ()


def unsupported_language(name: str, runtime: str, supported) -> BuildFailed:
    """Why a base image of a language no function server here speaks goes to ERROR."""
    listed = ", ".join(supported)
    if name == "powershell":
        # Dispatch's seed images include one; nothing this project installs runs PowerShell
        return BuildFailed(f"PowerShell is not available on this host: the {runtime} runtime has no PowerShell "
                           f"function server (supported: {listed})")
    return BuildFailed(f"language {name} is not supported by the {runtime} runtime (supported: {listed})")


def capacity_message(function: str, queued: int) -> str:
    """The error of a run refused because its function's queue is full, the same on every runtime."""
    return f"function {function} is at capacity: {queued} runs queued"


def output_message(max_output_bytes: int) -> str:
    """The error of a run whose output is over the limit, the same on every runtime."""
    return f"Function output exceeded its limit of {max_output_bytes} bytes"


def processes_message(processes: int) -> str:
    """The error of a run that could not start a process or thread past its limit."""
    return f"{PROCESS_LIMIT} {processes} (processes and threads)"


PROCESS_LIMIT = "Function exceeded its process limit of"


def memory_message(memory_mb: int) -> str:
    """The error of a run that went over its memory limit, the same on every runtime."""
    return f"Function exceeded its memory limit of {memory_mb} MB"


def cpu_message(cpu_seconds: int) -> str:
    """The error of a run killed for its CPU time, the same on every runtime."""
    return f"Function exceeded its CPU time limit of {cpu_seconds} s"


@dataclass
class Invocation:
    output: Any = None
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    error: dict | None = None

    @classmethod
    def from_envelope(cls, envelope: Any) -> "Invocation | None":
        """A function server's answer (contract §3.2: `{"context": {"logs", "error"}, "payload"}`),
        given as JSON text or already parsed; None when it is not one."""
        try:
            if isinstance(envelope, (bytes, str)):
                envelope = json.loads(envelope)
            context = envelope["context"]
            logs = context.get("logs") or {}
            return cls(output=envelope.get("payload"), stdout=list(logs.get("stdout") or []),
                       stderr=list(logs.get("stderr") or []), error=context.get("error"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    @classmethod
    def failure(cls, kind: str, message: str, stdout: list[str] | None = None,
                stderr: list[str] | None = None) -> "Invocation":
        """A run that failed outside the function's own code."""
        return cls(stdout=stdout or [], stderr=stderr or [], error={"type": kind, "message": message, "stacktrace": []})


class FunctionRuntime(Protocol):
    async def check_base_image(self, language: str, docker_url: str) -> None:
        """Raise BuildFailed when the base image's runtime does not answer."""

    async def build_image(self, spec: ImageSpec, progress: Progress | None = None) -> str:
        """Build an image and return its location (the image's dockerUrl); raise BuildFailed."""

    async def remove_image(self, location: str) -> None: ...

    async def deploy(self, spec: DeploymentSpec) -> str:
        """Unpack, check the handler, start warm workers, return once they answer with where the
        function runs (its functionImageURL); raise BuildFailed."""

    async def undeploy(self, faas_id: str) -> None: ...

    async def reconcile(self, keep: Iterable[str]) -> object:
        """After a start: remove what this installation left behind (a crash, an undeploy cut short)
        for functions other than the `keep` faas ids. The platform ignores what it returns (a
        runtime may report what it removed)."""

    async def invoke(self, faas_id: str, context: dict, payload: Any, timeout_ms: int) -> Invocation:
        """Run once; function failures come back in Invocation.error, never as exceptions."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Route:
    organization: str
    api: str
    function: str
    methods: tuple[str, ...]
    uris: tuple[str, ...]
    hosts: tuple[str, ...]
    protocols: tuple[str, ...]
    cors: bool
    authentication: str = "public"
    """`public`, `basic` or `bearer`: enforced by the user-API port, whichever gateway fronts it."""
    auth_secret: str = ""
    """The secret holding the accepted credentials (basic: user -> password; bearer: name -> token)."""
    tls: str = ""
    """The secret holding the hosts' certificate (`tls.crt`) and key (`tls.key`), PEM."""
    age: str = ""
    """Sorts older APIs first (their time-ordered id): of two APIs of one organization answering
    the same request, the older one answers."""


class RoutingFailed(Exception):
    """The gateway could not take a route; the message is shown as the API's reason."""


class APIGateway(Protocol):
    """Where user APIs are served: the built-in router, or an external gateway such as Kong."""

    async def register(self, route: Route) -> None: ...

    async def unregister(self, organization: str, api: str) -> None: ...

    async def sync(self, routes: list[Route]) -> None:
        """Serve exactly these routes: add the missing, repair the changed, drop the others."""

    async def close(self) -> None: ...
