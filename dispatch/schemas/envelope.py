"""The message envelope every command, event and reply carries, and the registry that decodes them.

Wire type names are the class names: a message is never typed twice by hand.
"""
import random
import time
from typing import Any, Callable, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

_registry: dict[str, type["Message"]] = {}
_upcasters: dict[tuple[str, int], Callable[[dict], dict]] = {}


_random = random.SystemRandom().getrandbits(64)
_ids = random.Random(_random ^ time.time_ns())


_VERSION_4 = 0x4 << 76 | 0b10 << 62
_VERSION_BITS = 0xF << 76 | 0b11 << 62


def new_id() -> str:
    """A random (version 4) UUID. Seeded once from the OS: ids must be unique, not secret, and
    the hot path makes several per run, where one getrandom() call each is measurable."""
    return _text(_ids.getrandbits(128) & ~_VERSION_BITS | _VERSION_4)


def new_ordered_id() -> str:
    """A version 7 UUID: 48 bits of Unix milliseconds, then 74 random bits. Names made one after
    the other sort one after the other, so the records of runs started together land on the same
    index pages of the log and the read models instead of one random page each."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0b10 << 62
    random_bits = _ids.getrandbits(74)
    value |= (random_bits >> 62) << 64 | random_bits & ((1 << 62) - 1)
    return _text(value)


def _text(value: int) -> str:
    """What str(uuid.UUID(int=value)) gives, in half the time (a UUID object is not needed)."""
    digits = "%032x" % value
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(default_factory=new_id)
    correlation_id: str | None = None
    causation_id: str | None = None
    time: float = Field(default_factory=time.time)
    traceparent: str | None = None
    """The W3C trace context of the span this message was created in, when tracing is on."""
    subject: str | None = None
    """Who asked: `<org>/<account>`, a user's e-mail, or `system`; carried from a command to the
    events and commands it causes, so the log says who did what (the audit trail)."""

    version: ClassVar[int] = 1

    @property
    def repeated(self) -> bool:
        """True when this delivery may repeat one whose handler already acted (a retry, a broker's
        redelivery after a crash). Not on the wire: the bus that delivers it says so. A handler
        whose effects reach outside the log checks the log before acting again."""
        return bool(self.__pydantic_private__ and self.__pydantic_private__.get("repeated"))

    def mark_repeated(self) -> "Message":
        # Kept in pydantic's slot for private values without declaring a PrivateAttr: a declared
        # one costs every message built (thousands a second) an initialisation step.
        object.__setattr__(self, "__pydantic_private__", {**(self.__pydantic_private__ or {}), "repeated": True})
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _registry[cls.__name__] = cls

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def caused_by(self, cause: "Message") -> Self:
        """Chain this message to the one that caused it: same correlation and subject, cause as causation."""
        self.correlation_id = cause.correlation_id or cause.message_id
        self.causation_id = cause.message_id
        if self.subject is None:
            self.subject = cause.subject
        return self

    def envelope(self) -> dict[str, Any]:
        return {"type": self.type_name(), "version": self.version, "data": self.model_dump(mode="json")}


class Command(Message):
    """An intent with exactly one handler."""

    logged_by_handler: ClassVar[bool] = False
    """True when the handler logs a line of its own for each one: the bus then logs it only when
    it fails, instead of a second line per command."""


class Event(Message):
    """A fact that happened, with any number of subscribers."""

    relayed: ClassVar[bool] = True
    """False for facts that only the read models need: the relay leaves them in the log."""


def unrelayed_types() -> list[str]:
    """The wire names of the events the relay leaves in the log."""
    return sorted(name for name, cls in _registry.items() if issubclass(cls, Event) and not cls.relayed)


class UnknownMessage(Exception):
    pass


def upcaster(type_name: str, from_version: int):
    """Register a function turning `type_name` data of `from_version` into `from_version + 1`."""

    def register(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
        _upcasters[(type_name, from_version)] = fn
        return fn

    return register


def decode(type_name: str, version: int, data: dict[str, Any]) -> Message:
    cls = _registry.get(type_name)
    if cls is None:
        raise UnknownMessage(f"unknown message type {type_name!r}")
    while version < cls.version:
        data = _upcasters[(type_name, version)](data)
        version += 1
    return cls.model_validate(data)


def decode_envelope(envelope: dict[str, Any]) -> Message:
    return decode(envelope["type"], envelope.get("version", 1), envelope["data"])
