"""Dispatch v1 resources in their wire format (camelCase JSON, Unix-second times)."""
import datetime as dt
import types
from enum import Enum
from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

NAME_PATTERN = r"^[\w\d][\w\d\-]*$"
PATH_NAME_PATTERN = r"^[\w\d\-]+$"
EVENT_TYPE_PATTERN = r"^[\w\d\-\.]+$"
DRIVER_NAME_PATTERN = r"^[a-z0-9][a-z0-9\-]*$"


class Status(str, Enum):
    INITIALIZED = "INITIALIZED"
    CREATING = "CREATING"
    READY = "READY"
    UPDATING = "UPDATING"
    ERROR = "ERROR"
    DELETING = "DELETING"
    DELETED = "DELETED"


class Wire(BaseModel):
    """A wire model. `null` for a field that has a default and does not itself take `null` means
    that default: Dispatch's Go client sends `null` for every list or object the user left empty
    (Go's nil slices and maps), and that must read as "empty", not as a type error."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
    _null_means_default: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys: set[str] = set()
        for name, field in cls.model_fields.items():
            if not field.is_required() and not _takes_none(field.annotation):
                keys.update(key for key in (name, field.alias) if key)
        cls._null_means_default = frozenset(keys)

    @model_validator(mode="before")
    @classmethod
    def _drop_defaulted_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and None in data.values():
            return {k: v for k, v in data.items() if v is not None or k not in cls._null_means_default}
        return data

    def wire(self, **exclude: bool) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude={k for k, v in exclude.items() if v})


def _takes_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_takes_none(arg) for arg in get_args(annotation))
    return False


class Tag(Wire):
    key: str = ""  # Go's client sends `{}` for a tag written without a key (`- label: x` in YAML)
    value: str = ""


class Resource(Wire):
    id: str | None = None
    name: str = Field(pattern=NAME_PATTERN)
    kind: str = ""
    status: Status | None = None
    reason: list[str] | None = None
    tags: list[Tag] = Field(default_factory=list)
    created_time: int = 0
    modified_time: int = 0

    def model_post_init(self, __context: Any) -> None:
        self.kind = type(self).__name__


class BaseImage(Resource):
    docker_url: str
    language: str
    groups: list[str] | None = None
    spec: Any = None


class RuntimeDependencies(Wire):
    manifest: str = ""


class SystemPackage(Wire):
    name: str = ""
    version: str = ""


class SystemDependencies(Wire):
    packages: list[SystemPackage] = Field(default_factory=list)


class Image(Resource):
    base_image_name: str
    language: str = ""
    docker_url: str = ""
    runtime_dependencies: RuntimeDependencies = Field(default_factory=RuntimeDependencies)
    system_dependencies: SystemDependencies = Field(default_factory=SystemDependencies)
    groups: list[str] | None = None
    spec: Any = None


class FunctionSchema(Wire):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    in_: dict[str, Any] | None = Field(default=None, alias="in")
    out: dict[str, Any] | None = None


class FunctionScale(Wire):
    """How a function's workers scale; unset fields take the server's defaults."""

    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    """Runs in flight per worker at once."""
    idle_seconds: int | None = Field(default=None, ge=0)
    """Idle time after which workers above minReplicas stop (scale to zero when minReplicas is 0)."""


class FunctionLimits(Wire):
    """What the OS (or the container engine) enforces on each worker of a function."""

    memory_mb: int | None = Field(default=None, ge=16, alias="memoryMB")
    cpu_seconds: int | None = Field(default=None, ge=1)
    """CPU time one run may use before what runs it is killed (local and Docker runtimes)."""
    cpus: float | None = Field(default=None, gt=0)
    """Share of CPU cores (containers)."""
    processes: int | None = Field(default=None, ge=1)
    """Processes and threads one worker may have at once."""
    network: bool | None = None
    """Whether the function reaches networks; unset: it does. False: a loopback of its own only."""


class Function(Resource):
    image: str
    handler: str = ""
    source: str | None = None
    source_url: str | None = Field(default=None, alias="sourceURL")
    schema_: FunctionSchema = Field(default_factory=FunctionSchema, alias="schema")
    secrets: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    timeout: int | None = Field(default=None, ge=0)
    """Milliseconds. Unset: the server's default (300 s); 0: the server's maximum (contract §2.3)."""
    scale: FunctionScale = Field(default_factory=FunctionScale)
    limits: FunctionLimits = Field(default_factory=FunctionLimits)
    function_image_url: str = Field(default="", alias="functionImageURL")
    faas_id: str = ""
    service_account: str = Field(default="", pattern=r"^[\w\d\-\.]*$")
    """A service account of the function's organization whose rights its runs get: each run's
    context carries a short-lived `token` for it. Empty: the function holds no credential."""

    def public(self) -> dict[str, Any]:
        """The function as clients see it: the source is write-only."""
        return self.wire(source=True, source_url=True)


class Logs(Wire):
    stdout: list[str] = Field(default_factory=list)
    stderr: list[str] = Field(default_factory=list)


class RunError(Wire):
    type: str
    message: str
    stacktrace: list[str] = Field(default_factory=list)


class Run(Wire):
    name: str = ""
    kind: str = "Run"
    function_name: str = ""
    function_id: str = ""
    faas_id: str = ""
    blocking: bool = False
    input: Any = None
    output: Any = None
    secrets: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    event: dict[str, Any] | None = None
    http_context: dict[str, Any] | None = None
    logs: Logs = Field(default_factory=Logs)
    error: RunError | None = None
    status: Status = Status.INITIALIZED
    reason: list[str] | None = None
    tags: list[Tag] = Field(default_factory=list)
    executed_time: int = 0
    finished_time: int = 0
    modified_time: int = 0
    started_at: str | None = None
    """When the function started running: RFC 3339, UTC, milliseconds (read-only). `executedTime`
    is when the run was accepted, which for a queued run is earlier."""
    finished_at: str | None = None
    """When the run reached READY or ERROR: RFC 3339, UTC, milliseconds (read-only)."""
    duration_ms: int | None = None
    """finishedAt - startedAt in milliseconds (read-only); null for a run that never started."""


def instant(ms: int) -> str:
    """Unix milliseconds as RFC 3339 in UTC with milliseconds: 2024-05-01T09:30:00.123Z."""
    stamp = dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc) + dt.timedelta(milliseconds=ms % 1000)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Secret(Resource):
    secrets: dict[str, str] = Field(default_factory=dict)


class API(Resource):
    function: str
    methods: list[str] = Field(default_factory=lambda: ["GET"])
    uris: list[str] = Field(default_factory=lambda: ["/"])
    hosts: list[str] = Field(default_factory=list)
    protocols: list[str] = Field(default_factory=lambda: ["http", "https"])
    cors: bool = False
    enabled: bool = False
    """Routed only when true, as in Dispatch, whose clients leave the key out to disable an API
    (`dispatch create api --disable`); the CLIs send true otherwise."""
    authentication: str = "public"
    auth_secret: str = ""
    """Secret of the accepted credentials when authentication is basic (user -> password) or
    bearer (name -> token)."""
    tls: str = ""


class Subscription(Resource):
    """Runs `function` for every event of `eventType` emitted in its organization."""

    event_type: str = Field(pattern=EVENT_TYPE_PATTERN, max_length=128)
    function: str = Field(pattern=PATH_NAME_PATTERN)
    secrets: list[str] = Field(default_factory=list)
    """Added to the secrets of the runs it starts, after the function's own."""


class ConfigEntry(Wire):
    key: str = Field(min_length=1)
    value: str = ""


class DriverType(Resource):
    """A kind of event driver: a container image run per driver (§2.7). The built-in types
    (cron, webhook, amqp) exist in every organization without being created."""

    name: str = Field(pattern=NAME_PATTERN, max_length=32)
    image: str = Field(min_length=1)
    expose: bool = False
    """Drivers of this type get a push URL."""
    config: list[ConfigEntry] = Field(default_factory=list)
    """Given to every driver of the type, before the driver's own config."""
    builtin: bool = False
    created_time: int = Field(default=0, alias="created-time")
    modified_time: int = Field(default=0, alias="modified-time")


class Driver(Resource):
    """A running source of events for its organization (§2.8): config entries become the
    driver's settings (`--key=value` arguments of a container), its secrets its environment."""

    name: str = Field(pattern=DRIVER_NAME_PATTERN)
    type: str = Field(min_length=1, max_length=32)
    config: list[ConfigEntry] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    expose: bool = False
    """Copied from the type."""
    url: str = ""
    """The push URL, when the type is exposed."""
    created_time: int = Field(default=0, alias="created-time")
    modified_time: int = Field(default=0, alias="modified-time")


class Application(Resource):
    """A name for a group of resources (deprecated in Dispatch, kept for its clients): membership is
    the tag `Application=<name>` on the members; deleting it leaves them alone."""


KINDS: dict[str, type[Resource]] = {cls.__name__: cls for cls in (BaseImage, Image, Function, Secret, API, Subscription,
                                                                  DriverType, Driver, Application)}
