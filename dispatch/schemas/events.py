"""Facts recorded in the event log. Each resource event names its kind by its class-name prefix."""
from typing import Any, ClassVar

from pydantic import Field

from . import identity
from .envelope import Event
from .jsonvalues import recordable
from .resources import KINDS, Status

_ALL_KINDS = [*KINDS, *identity.KINDS]


def _kind_of(class_name: str) -> str:
    matches = [kind for kind in _ALL_KINDS if class_name.startswith(kind)]
    return max(matches, key=len) if matches else ""


def stream_name(kind: str, organization: str, name: str) -> str:
    return f"{kind}:{organization}:{name}"


class ResourceEvent(Event):
    organization: str
    name: str

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = _kind_of(cls.__name__) or cls.kind

    @property
    def stream(self) -> str:
        return stream_name(self.kind, self.organization, self.name)


class ResourceCreated(ResourceEvent):
    resource: dict[str, Any]


class ResourceUpdated(ResourceEvent):
    resource: dict[str, Any]


class ResourceChanged(ResourceEvent):
    """The resource moved to `status`; `changes` are wire fields set along with it."""

    status: Status
    reason: list[str] | None = None
    changes: dict[str, Any] = Field(default_factory=dict)
    modified_time: int = 0


class ResourceDeletionRequested(ResourceEvent):
    modified_time: int = 0


class ResourceDeleted(ResourceEvent):
    pass


class BaseImageCreated(ResourceCreated): pass
class BaseImageUpdated(ResourceUpdated): pass
class BaseImageChecked(ResourceChanged): pass
class BaseImageCheckFailed(ResourceChanged): pass
class BaseImageDeletionRequested(ResourceDeletionRequested): pass
class BaseImageDeleted(ResourceDeleted): pass

class ImageCreated(ResourceCreated): pass
class ImageUpdated(ResourceUpdated): pass
class ImageBuildStarted(ResourceChanged): pass
class ImageBuilt(ResourceChanged): pass
class ImageBuildFailed(ResourceChanged): pass
class ImageDeletionRequested(ResourceDeletionRequested): pass
class ImageDeleted(ResourceDeleted): pass


class FunctionCreated(ResourceCreated):
    source_digest: str


class FunctionUpdated(ResourceUpdated):
    source_digest: str


class FunctionDeployStarted(ResourceChanged): pass
class FunctionDeployed(ResourceChanged): pass
class FunctionDeployFailed(ResourceChanged): pass
class FunctionDeletionRequested(ResourceDeletionRequested): pass
class FunctionDeleted(ResourceDeleted): pass

class SecretCreated(ResourceCreated): pass
class SecretUpdated(ResourceUpdated): pass
class SecretDeleted(ResourceDeleted): pass

class APICreated(ResourceCreated): pass
class APIUpdated(ResourceUpdated): pass
class APIRouted(ResourceChanged): pass
class APIRoutingFailed(ResourceChanged): pass
class APIDeletionRequested(ResourceDeletionRequested): pass
class APIDeleted(ResourceDeleted): pass


class SubscriptionCreated(ResourceCreated): pass
class SubscriptionUpdated(ResourceUpdated): pass
class SubscriptionActivated(ResourceChanged): pass
class SubscriptionDeletionRequested(ResourceDeletionRequested): pass
class SubscriptionDeleted(ResourceDeleted): pass


class DriverTypeCreated(ResourceCreated): pass
class DriverTypeUpdated(ResourceUpdated): pass
class DriverTypeDeleted(ResourceDeleted): pass

class DriverCreated(ResourceCreated): pass
class DriverUpdated(ResourceUpdated): pass
class DriverStarted(ResourceChanged):
    """The driver runs as configured (READY), in the process leading it."""
class DriverFailed(ResourceChanged):
    """The driver cannot run as configured (ERROR, with the reason); it is retried unless its
    configuration can never work."""
class DriverDeletionRequested(ResourceDeletionRequested): pass
class DriverDeleted(ResourceDeleted): pass


class ApplicationCreated(ResourceCreated): pass
class ApplicationUpdated(ResourceUpdated): pass
class ApplicationDeleted(ResourceDeleted): pass

class OrganizationCreated(ResourceCreated): pass
class OrganizationUpdated(ResourceUpdated): pass
class OrganizationDeleted(ResourceDeleted): pass

class PolicyCreated(ResourceCreated): pass
class PolicyUpdated(ResourceUpdated): pass
class PolicyDeleted(ResourceDeleted): pass

class ServiceAccountCreated(ResourceCreated): pass
class ServiceAccountUpdated(ResourceUpdated): pass
class ServiceAccountDeleted(ResourceDeleted): pass


class AccessDenied(Event):
    """A request the gateway refused (403): who, in which organization, what. Recorded for the
    audit trail, in a stream of its own."""

    relayed = False  # only the audit view reads it

    organization: str
    action: str
    resource: str
    name: str = ""
    reason: str = ""
    request_id: str = ""

    @property
    def stream(self) -> str:
        # One stream per recording command: a redelivered command finds its stream written.
        return f"Denied:{self.organization}:{self.causation_id or self.message_id}"


class SecretRead(Event):
    """A secret's values were shown (a single GET of it): who, in which organization, which
    secret. Recorded for the audit trail; the values are not in it."""

    relayed = False  # only the audit view reads it

    organization: str
    name: str
    request_id: str = ""

    @property
    def stream(self) -> str:
        # One stream per recording command: a redelivered command finds its stream written.
        return f"SecretRead:{self.organization}:{self.causation_id or self.message_id}"


class RunEvent(Event):
    """A run's record. Made, it can always be written: its run is made recordable then
    (jsonvalues.recordable: a run that cannot be encoded would never be recorded, and would run
    again on every delivery and restart). Read back from the log, it is taken as written."""

    # Runs are read from the read models and no reaction consumes their events; relaying them
    # would double the broker's work on the hot path.
    relayed = False

    organization: str
    run: dict[str, Any]

    def __init__(self, **data: Any):
        if "run" in data:
            data["run"] = recordable(data["run"])
        super().__init__(**data)

    @property
    def stream(self) -> str:
        return f"Run:{self.organization}:{self.run['name']}"


class RunAccepted(RunEvent):
    """An asynchronous run was accepted and waits for a worker."""


class RunFinished(RunEvent):
    """A run reached READY or ERROR; `run` is the complete record."""


def evolve(state: dict[str, Any] | None, event: ResourceEvent) -> dict[str, Any] | None:
    """Apply one event to a resource's wire state; None means the resource does not exist."""
    if isinstance(event, (ResourceCreated, ResourceUpdated)):
        return dict(event.resource)
    if state is None:
        return None
    if isinstance(event, ResourceChanged):
        return {**state, **event.changes, "status": event.status.value, "reason": event.reason,
                "modifiedTime": event.modified_time or state.get("modifiedTime", 0)}
    if isinstance(event, ResourceDeletionRequested):
        return {**state, "status": Status.DELETING.value, "modifiedTime": event.modified_time}
    if isinstance(event, ResourceDeleted):
        return None
    return state
