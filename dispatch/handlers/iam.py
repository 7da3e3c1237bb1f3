"""Organizations, policies and service accounts: READY at once, like Dispatch's. Who may create
what (a global policy, an organization) is the gateway's decision; these handlers keep the log
consistent: names unique, an organization emptied before it goes."""
from functools import partial

from dispatch.bus.ports import MessageBus
from dispatch.errors import Conflict
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import KINDS, Status
from dispatch.store.ports import ConcurrencyConflict, EventLog, Views

from .lifecycle import LABELS, Loaded, create, delete, update


async def create_organization(cmd: c.CreateOrganization, events: EventLog) -> dict:
    """Consumes CreateOrganization; emits OrganizationCreated (READY). Stored under its own name."""
    return await create(cmd, events, e.OrganizationCreated, Status.READY)


async def update_organization(cmd: c.UpdateOrganization, events: EventLog) -> dict:
    """Consumes UpdateOrganization; emits OrganizationUpdated (its tags)."""
    return await update(cmd, events, e.OrganizationUpdated, Status.READY)


async def delete_organization(cmd: c.DeleteOrganization, events: EventLog, views: Views) -> dict:
    """Consumes DeleteOrganization; emits OrganizationDeleted. Refused while it holds anything:
    what it held would be left running, out of every tenant's reach."""
    async def empty(loaded: Loaded) -> None:
        held = []
        for kind in (*KINDS, "Policy", "ServiceAccount"):
            count = len(await views.list_resources(cmd.name, kind))
            if count:
                held.append(f"{count} {LABELS[kind]}{'s' if count > 1 else ''}")
        if held:
            raise Conflict(f"organization {cmd.name} still holds {', '.join(held)}: delete them first")
    return await delete(cmd, events, e.OrganizationDeleted, empty)


async def create_policy(cmd: c.CreatePolicy, events: EventLog) -> dict:
    """Consumes CreatePolicy; emits PolicyCreated (READY)."""
    return await create(cmd, events, e.PolicyCreated, Status.READY)


async def update_policy(cmd: c.UpdatePolicy, events: EventLog) -> dict:
    """Consumes UpdatePolicy; emits PolicyUpdated (READY)."""
    return await update(cmd, events, e.PolicyUpdated, Status.READY)


async def delete_policy(cmd: c.DeletePolicy, events: EventLog) -> dict:
    """Consumes DeletePolicy; emits PolicyDeleted."""
    return await delete(cmd, events, e.PolicyDeleted)


async def create_service_account(cmd: c.CreateServiceAccount, events: EventLog) -> dict:
    """Consumes CreateServiceAccount; emits ServiceAccountCreated (READY)."""
    return await create(cmd, events, e.ServiceAccountCreated, Status.READY)


async def update_service_account(cmd: c.UpdateServiceAccount, events: EventLog) -> dict:
    """Consumes UpdateServiceAccount; emits ServiceAccountUpdated (a new key, say)."""
    return await update(cmd, events, e.ServiceAccountUpdated, Status.READY)


async def delete_service_account(cmd: c.DeleteServiceAccount, events: EventLog) -> dict:
    """Consumes DeleteServiceAccount; emits ServiceAccountDeleted: its tokens stop working."""
    return await delete(cmd, events, e.ServiceAccountDeleted)


async def record_denial(cmd: c.RecordDenial, events: EventLog) -> None:
    """Consumes RecordDenial; emits AccessDenied, once per command."""
    denied = e.AccessDenied(organization=cmd.organization, action=cmd.action, resource=cmd.resource,
                            name=cmd.name, reason=cmd.reason, request_id=cmd.correlation_id or "").caused_by(cmd)
    try:
        await events.append(denied.stream, 0, [denied])
    except ConcurrencyConflict:
        pass  # a redelivery of a command already recorded


async def record_secret_read(cmd: c.RecordSecretRead, events: EventLog) -> None:
    """Consumes RecordSecretRead; emits SecretRead, once per command."""
    read = e.SecretRead(organization=cmd.organization, name=cmd.name,
                        request_id=cmd.correlation_id or "").caused_by(cmd)
    try:
        await events.append(read.stream, 0, [read])
    except ConcurrencyConflict:
        pass  # a redelivery of a command already recorded: its stream is the command's own


def register(bus: MessageBus, events: EventLog, views: Views) -> None:
    bus.handle(c.CreateOrganization, partial(create_organization, events=events))
    bus.handle(c.UpdateOrganization, partial(update_organization, events=events))
    bus.handle(c.DeleteOrganization, partial(delete_organization, events=events, views=views))
    bus.handle(c.CreatePolicy, partial(create_policy, events=events))
    bus.handle(c.UpdatePolicy, partial(update_policy, events=events))
    bus.handle(c.DeletePolicy, partial(delete_policy, events=events))
    bus.handle(c.CreateServiceAccount, partial(create_service_account, events=events))
    bus.handle(c.UpdateServiceAccount, partial(update_service_account, events=events))
    bus.handle(c.DeleteServiceAccount, partial(delete_service_account, events=events))
    bus.handle(c.RecordDenial, partial(record_denial, events=events))
    bus.handle(c.RecordSecretRead, partial(record_secret_read, events=events))
