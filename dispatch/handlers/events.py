"""Events: the one way an event enters Dispatch, and its fan-out to the subscribed functions.

Every event - `POST /v1/event`, `dispatch emit`, a CloudEvent published on the bus's ingress, an
event driver - goes through `publish_event` and becomes an EmitEvent command. Its handler starts
one asynchronous run per subscription of the event's organization and type: the event's data is
the input, the event without its data is `context.event`, the subscription's secrets follow the
function's.

Delivery is at-least-once: an EmitEvent is settled only once the command of every run is
confirmed, so a crash delivers it again. Each run is named after (subscription, event source,
event id) and the runs handler accepts a run name once (`ExecuteFunction.once`), so an event
delivered twice, or emitted twice, runs each subscribed function once, whichever process
handles it."""
import asyncio
import uuid
from functools import partial
from typing import Any

from dispatch.bus.ports import MessageBus
from dispatch.errors import Rejected
from dispatch.schemas import commands as c
from dispatch.schemas.cloudevents import Event, InvalidEvent, parse_event
from dispatch.schemas.resources import Run, Status
from dispatch.store.ports import Views
from dispatch.telemetry import tracing

ACCEPTANCE_SECONDS = 90.0
"""On the in-memory bus: how long an emit may wait for its runs to be accepted (a run whose
function is still deploying waits for it, up to a minute)."""
RUN_NAMES = uuid.UUID("5b0c3a52-8a4f-4d0e-9a53-2f3c7d1e6a10")
"""The namespace of event-triggered run names (uuid5)."""
# A subscription gets every event emitted once its creation was answered, before the events
# group marked it READY too; it stops with its deletion.
LIVE = (Status.CREATING.value, Status.READY.value, Status.UPDATING.value)


async def publish_event(bus: MessageBus, organization: str, event: dict[str, Any] | Event,
                        correlation_id: str | None = None, subject: str | None = None) -> Event:
    """Emit a CloudEvent (1.0 JSON form or 0.1) in an organization: InvalidEvent when it is not
    valid; returns once nothing can lose it, with the event as accepted: on RabbitMQ once the bus
    holds it (confirmed); on the in-memory bus, whose commands die with the process, once its
    runs are recorded as accepted (they are run after a restart)."""
    accepted = event if isinstance(event, Event) else parse_event(event)
    command = emit_command(organization, accepted.wire(), correlation_id)
    command.subject = subject
    if bus.durable:
        await bus.send(command)
    else:
        await bus.request(command, ACCEPTANCE_SECONDS)
    return accepted


def emit_command(organization: str, event: dict[str, Any], correlation_id: str | None = None) -> c.EmitEvent:
    """With tracing on, the event's runs continue its producer's trace (its `traceparent`
    extension), else the current span's, which the event then carries to the functions it runs."""
    return c.EmitEvent(organization=organization, event=event, correlation_id=correlation_id,
                       traceparent=tracing.event_traceparent(event))


def run_name(subscription: dict[str, Any], event: Event) -> str:
    """The same for every delivery of one event to one subscription: the key that runs it once."""
    return str(uuid.uuid5(RUN_NAMES, f"{subscription['id']}\n{event.source}\n{event.id}"))


def run_for(subscription: dict[str, Any], event: Event) -> dict[str, Any]:
    run = Run(name=run_name(subscription, event), function_name=subscription["function"], blocking=False,
              input=event.payload, event=event.context(), secrets=list(subscription.get("secrets") or []))
    return run.wire()


async def emit_event(cmd: c.EmitEvent, bus: MessageBus, views: Views) -> dict[str, int]:
    """Consumes EmitEvent; sends ExecuteFunction (once, asynchronous) per live subscription of
    the event's type in its organization. An event nobody subscribes to is dropped."""
    try:
        event = parse_event(cmd.event)
    except InvalidEvent as invalid:
        raise Rejected(f"Error validating event: {invalid}") from None
    subscriptions = [s for s in await views.list_resources(cmd.organization, "Subscription")
                     if s.get("eventType") == event.type and s.get("status") in LIVE]
    commands = [c.ExecuteFunction(organization=cmd.organization, run=run_for(s, event), once=True).caused_by(cmd)
                for s in subscriptions]
    if bus.durable:
        await asyncio.gather(*(bus.send(command) for command in commands))
    else:  # answered once each run is recorded as accepted
        await asyncio.gather(*(bus.request(command, ACCEPTANCE_SECONDS) for command in commands))
    return {"runs": len(subscriptions)}


def register(bus: MessageBus, views: Views) -> None:
    bus.handle(c.EmitEvent, partial(emit_event, bus=bus, views=views))
    bus.ingest(emit_command)
