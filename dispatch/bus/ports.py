"""The MessageBus port: commands to exactly one handler, events to every subscriber group,
request/reply correlated by message id. Delivery is at-least-once; consumers are idempotent by
message id, and a delivery that may repeat an earlier one (a retry, a redelivery after a crash)
reaches its handler marked `repeated`; a message that keeps failing goes to the dead letters and
never stops a consumer."""
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from dispatch.schemas.envelope import Command, Event, Message

Handler = Callable[[Message], Awaitable[Any]]


@dataclass(frozen=True)
class AnswerFirst:
    """A handler's reply sent before the rest of its work. The message is settled only once
    `then` has completed, so a crash in between delivers it again (the handler must recognise
    the redelivery); a failure of `then` is retried like a failing handler."""

    reply: Any
    then: Awaitable[Any]


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    type: str
    consumer: str
    error: str
    attempts: int
    envelope: dict


class MessageBus(Protocol):
    durable: bool
    """True when a command whose send() returned survives a crash of any process (RabbitMQ's
    confirmed publish to a durable queue); False for the in-memory bus."""

    def handle(self, command_type: type[Command], handler: Handler) -> None:
        """Register the one handler of a command type; its return value is the reply."""

    def subscribe(self, event_type: type[Event], group: str, handler: Handler, per_process: bool = False) -> None:
        """Every group gets each event once; consumers within a group compete. A `per_process`
        group is this process's alone: each process subscribing gets its own copy (e.g. to keep
        an in-memory route table current in every gateway)."""

    def ingest(self, command: Callable[[str, dict[str, Any]], Command]) -> None:
        """Take CloudEvents from producers outside Dispatch, published on the bus's own ingress
        (on RabbitMQ, the `<namespace>.cloudevents` exchange): each valid event is sent on as
        `command(organization, event)`, the event in its CloudEvents JSON form; an invalid one
        goes to the dead letters with the reason. The embedded bus has no outside producers."""

    async def send(self, command: Command) -> None: ...

    async def request(self, command: Command, timeout: float) -> Any:
        """Send a command and wait for its handler's reply; a DispatchError raised by the
        handler is raised here, a handler that keeps failing raises Unavailable."""

    async def publish(self, event: Event) -> None: ...

    async def dead_letters(self) -> list[DeadLetter]: ...

    async def replay(self, message_id: str) -> bool:
        """Send a dead-lettered message again to its consumer; False when no such letter."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def reachable(self) -> bool:
        """Whether messages can go out now (on RabbitMQ: whether the connection is up), for /readyz."""
