"""Intents sent on the bus; each has exactly one handler."""
from typing import Any

from pydantic import Field

from .envelope import Command
from .events import _kind_of
from .jsonvalues import recordable


class ResourceCommand(Command):
    organization: str
    name: str

    @property
    def kind(self) -> str:
        name = type(self).__name__
        for verb in ("Create", "Update", "Delete", "Check", "Build", "Deploy", "Remove", "Route", "Activate"):
            if name.startswith(verb):
                return _kind_of(name[len(verb):])
        return ""


class CreateResource(ResourceCommand):
    resource: dict[str, Any]


class UpdateResource(ResourceCommand):
    resource: dict[str, Any]


class DeleteResource(ResourceCommand):
    pass


class CreateBaseImage(CreateResource): pass
class UpdateBaseImage(UpdateResource): pass
class DeleteBaseImage(DeleteResource): pass
class CheckBaseImage(ResourceCommand): pass
class RemoveBaseImage(ResourceCommand): pass

class CreateImage(CreateResource): pass
class UpdateImage(UpdateResource): pass
class DeleteImage(DeleteResource): pass
class BuildImage(ResourceCommand): pass
class RemoveImage(ResourceCommand): pass


class CreateFunction(CreateResource):
    source: str = Field(description="base64 of the gzip tar of the function's source")


class UpdateFunction(UpdateResource):
    source: str


class DeleteFunction(DeleteResource): pass


class DeployFunction(ResourceCommand):
    faas_id: str


class RemoveFunction(ResourceCommand): pass

class CreateSecret(CreateResource): pass
class UpdateSecret(UpdateResource): pass
class DeleteSecret(DeleteResource): pass

class CreateApplication(CreateResource): pass
class UpdateApplication(UpdateResource): pass
class DeleteApplication(DeleteResource): pass

class CreateOrganization(CreateResource): pass
class UpdateOrganization(UpdateResource): pass
class DeleteOrganization(DeleteResource): pass

class CreatePolicy(CreateResource): pass
class UpdatePolicy(UpdateResource): pass
class DeletePolicy(DeleteResource): pass

class CreateServiceAccount(CreateResource): pass
class UpdateServiceAccount(UpdateResource): pass
class DeleteServiceAccount(DeleteResource): pass


class RecordDenial(Command):
    """Record a refused request in the log (AccessDenied), for the audit trail."""

    organization: str
    action: str
    resource: str
    name: str = ""
    reason: str = ""


class RecordSecretRead(Command):
    """Record that a secret's values were shown (SecretRead), for the audit trail."""

    organization: str
    name: str


class CreateAPI(CreateResource): pass
class UpdateAPI(UpdateResource): pass
class DeleteAPI(DeleteResource): pass
class RouteAPI(ResourceCommand): pass
class RemoveAPI(ResourceCommand): pass


class CreateSubscription(CreateResource): pass
class UpdateSubscription(UpdateResource): pass
class DeleteSubscription(DeleteResource): pass
class ActivateSubscription(ResourceCommand): pass
class RemoveSubscription(ResourceCommand): pass


class CreateDriverType(CreateResource): pass
class UpdateDriverType(UpdateResource): pass
class DeleteDriverType(DeleteResource): pass

class CreateDriver(CreateResource): pass
class UpdateDriver(UpdateResource): pass
class DeleteDriver(DeleteResource): pass


class EmitEvent(Command):
    """Run the functions subscribed to a CloudEvent's type in an organization. Every event enters
    Dispatch this way (HTTP, the CLI, the bus's CloudEvents ingress, event drivers); `event` is
    the validated event in its JSON form (see schemas.cloudevents)."""

    organization: str
    event: dict[str, Any]


class ExecuteFunction(Command):
    """Run a function. Blocking: answered with the finished run. Asynchronous with
    `record_acceptance`: answered once the run is recorded as accepted; the same handler then runs
    it. Without it the sender already answered the client, because the bus keeps the command
    across crashes: the handler runs it and records it once, like a blocking run."""

    logged_by_handler = True  # the runs handler logs one line per run

    organization: str
    run: dict[str, Any]
    record_acceptance: bool = True
    once: bool = False
    """The run's name is an idempotency key (an event-triggered run is named after its
    subscription and event): a command for a run that another command already accepted is
    answered with that run instead of running it again."""

    def __init__(self, **data: Any):
        # as RunEvent: a run that cannot be encoded (a request header that is not UTF-8, say)
        # could not cross a broker, nor be recorded
        if "run" in data:
            data["run"] = recordable(data["run"])
        super().__init__(**data)
