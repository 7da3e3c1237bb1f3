"""What the RabbitMQ bus puts on the wire: envelopes as JSON bodies, the headers that carry
attempts and dead-letter reasons, replies, and domain errors that cross processes."""
import json
import traceback
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel

from dispatch.errors import DispatchError, Unavailable
from dispatch.schemas.envelope import Message, decode_envelope
from dispatch.schemas.wirejson import dumps

from .ports import DeadLetter

ATTEMPT = "x-dispatch-attempt"
# A headers exchange ignores x- headers when matching: this one must not start with x-.
DELAY = "dispatch-retry-delay"
ERROR = "x-dispatch-error"
CONSUMER = "x-dispatch-consumer"
ATTEMPTS = "x-dispatch-attempts"
QUEUE = "x-dispatch-queue"
REPLAYED = "x-dispatch-replayed"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
TRACEPARENT = "traceparent"  # W3C trace context, as the AMQP binding of trace context names it


def outgoing(message: Message, reply_to: str | None = None, body: bytes | None = None) -> aio_pika.Message:
    """`body`: the envelope as JSON, when it is encoded already."""
    body = dumps(message.envelope()) if body is None else body
    headers: dict[str, Any] = {ATTEMPT: 1}
    if message.traceparent:  # also in the envelope; here for tools that read AMQP headers only
        headers[TRACEPARENT] = message.traceparent
    return aio_pika.Message(body, message_id=message.message_id, type=message.type_name(),
                            content_type="application/json", reply_to=reply_to,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers=headers)


def decoded(incoming: AbstractIncomingMessage) -> Message:
    """The message a delivery carries (a batch member's envelope is read already); any failure
    here makes it a poison message."""
    envelope = getattr(incoming, "envelope", None)
    message = decode_envelope(envelope if envelope is not None else json.loads(incoming.body))
    if message.traceparent is None and isinstance(traced := header(incoming, TRACEPARENT), str):
        message.traceparent = traced  # a message a producer outside Dispatch put on the bus
    return message


def copy_of(incoming: AbstractIncomingMessage, headers: dict[str, Any], keep_reply_to: bool = True) -> aio_pika.Message:
    """The same body and identity with new headers: earlier x-death history is dropped on purpose,
    the attempt count lives in our own header."""
    return aio_pika.Message(incoming.body, message_id=incoming.message_id, type=incoming.type,
                            content_type=incoming.content_type, headers=headers,
                            reply_to=incoming.reply_to if keep_reply_to else None,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


def header(incoming: AbstractIncomingMessage, name: str, default: Any = None) -> Any:
    value = (incoming.headers or {}).get(name, default)
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def attempt_of(incoming: AbstractIncomingMessage) -> int:
    try:
        return max(1, int(header(incoming, ATTEMPT, 1)))
    except (TypeError, ValueError):
        return 1


def describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def reply(correlation_id: str, body: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(dumps(body, default=_jsonable), correlation_id=correlation_id,
                            content_type="application/json")


def success(result: Any) -> dict[str, Any]:
    """A reply body; raises TypeError when the handler's result cannot cross the wire."""
    dumps(result, default=_jsonable)
    return {"result": result}


def failure(error: DispatchError) -> dict[str, Any]:
    return {"error": {"status": error.status, "type": type(error).__name__, "message": error.message}}


def unwrap(body: dict[str, Any]) -> Any:
    """The handler's result, or its domain error raised again as the same class."""
    if "error" in body:
        raise error_of(body["error"])
    return body.get("result")


def error_of(error: dict[str, Any]) -> DispatchError:
    """Known classes by name (whichever modules this process loaded); else a DispatchError that
    keeps the status, so the gateway still answers with the right code."""
    name, status, text = error.get("type"), error.get("status", 500), error.get("message", "")
    cls = next((c for c in _subclasses(DispatchError) if c.__name__ == name), DispatchError)
    try:
        built = cls(text)
    except TypeError:
        built = DispatchError(text)
    if type(built) is DispatchError:
        built.status = status
    return built


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    direct: list[type] = cls.__subclasses__()
    for sub in direct:
        found += [sub, *_subclasses(sub)]
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def gave_up(type_name: str, attempts: int, error: BaseException) -> Unavailable:
    return Unavailable(f"{type_name} failed after {attempts} attempts: {error}")


def dead_letter(incoming: AbstractIncomingMessage) -> DeadLetter:
    try:
        envelope = json.loads(incoming.body)
        if not isinstance(envelope, dict):
            raise ValueError("not an object")
    except ValueError:
        envelope = {"raw": incoming.body.decode(errors="replace")}
    try:
        attempts = int(header(incoming, ATTEMPTS, 0))
    except (TypeError, ValueError):
        attempts = 0
    return DeadLetter(
        message_id=incoming.message_id or "", type=incoming.type or str(envelope.get("type", "?")),
        consumer=str(header(incoming, CONSUMER, "-")), error=str(header(incoming, ERROR, _death(incoming))),
        attempts=attempts, envelope=envelope)


def _death(incoming: AbstractIncomingMessage) -> str:
    """Letters the broker dead-lettered itself (a delivery limit, say) carry only x-death."""
    deaths = header(incoming, "x-death") or [{}]
    reason = deaths[0].get("reason", "unknown") if isinstance(deaths[0], dict) else "unknown"
    return f"dead-lettered by the broker: {reason.decode() if isinstance(reason, bytes) else reason}"
