"""CloudEvents as Dispatch accepts them: CloudEvents 1.0 in its JSON format (binary mode is turned
into that format by `from_binary`) and Dispatch's older CloudEvents 0.1 form (camelCase keys).

An event keeps the version it was emitted in: a function sees `context.event` as its producer
sent it, without the data, which is the run's input."""
import base64
import binascii
import datetime as dt
import re
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import jsontext
from .resources import EVENT_TYPE_PATTERN

EVENT_TYPE_MAX = 128
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_JSON_MEDIA = re.compile(r"^(application|text)/([\w.\-]+\+)?json(\s*;.*)?$", re.IGNORECASE)


class InvalidEvent(ValueError):
    """Why an event is refused, in words its producer can act on."""


class EventTooLarge(InvalidEvent):
    """An event's JSON data is longer than its bound."""


def _timestamp(value: str | None) -> str | None:
    if value is not None:
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            value = ""
        if not _RFC3339.match(value):
            raise ValueError("should be an RFC 3339 date-time, e.g. 2018-04-05T17:31:00Z")
    return value


def _uri(value: str | None) -> str | None:
    if value is not None:
        parts = urllib.parse.urlsplit(value)
        if not parts.scheme or any(c.isspace() for c in value):
            raise ValueError("should be an absolute URI")
    return value


class LegacyEvent(BaseModel):
    """CloudEvents 0.1, as Dispatch v1 emitted it. Kebab-case keys of early drafts are not aliases."""

    model_config = ConfigDict(extra="ignore")

    event_type: str = Field(alias="eventType", pattern=EVENT_TYPE_PATTERN, max_length=EVENT_TYPE_MAX)
    cloud_events_version: Literal["0.1"] = Field(alias="cloudEventsVersion")
    source: str = Field(min_length=1)
    event_id: str = Field(alias="eventID", min_length=1)
    event_type_version: str | None = Field(default=None, alias="eventTypeVersion", min_length=1)
    event_time: str | None = Field(default=None, alias="eventTime")
    schema_url: str | None = Field(default=None, alias="schemaURL")
    content_type: str | None = Field(default=None, alias="contentType", min_length=1)
    extensions: dict[str, Any] | None = Field(default=None, min_length=1)
    data: Any = None

    _time = field_validator("event_time")(_timestamp)
    _schema = field_validator("schema_url")(_uri)

    @property
    def type(self) -> str:
        return self.event_type

    @property
    def id(self) -> str:
        return self.event_id

    @property
    def payload(self) -> Any:
        return self.data

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True) | {"data": self.data}

    def context(self) -> dict[str, Any]:
        """The event without its data, as a function sees it (`data` is null)."""
        return {**self.wire(), "data": None}


class CloudEvent(BaseModel):
    """CloudEvents 1.0 in its JSON format; extension attributes are the other top-level members."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(pattern=EVENT_TYPE_PATTERN, max_length=EVENT_TYPE_MAX)
    datacontenttype: str | None = Field(default=None, min_length=1)
    dataschema: str | None = None
    subject: str | None = Field(default=None, min_length=1)
    time: str | None = None
    data: Any = None
    data_base64: str | None = None

    _time = field_validator("time")(_timestamp)
    _schema = field_validator("dataschema")(_uri)

    @field_validator("data_base64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("should be base64") from None
        return value

    @model_validator(mode="after")
    def _extensions(self) -> "CloudEvent":
        if self.data is not None and self.data_base64 is not None:
            raise ValueError("data and data_base64 are mutually exclusive")
        for name, value in (self.model_extra or {}).items():
            if not _EXTENSION_NAME.match(name):
                raise ValueError(f"extension attribute {name!r}: names are 1 to 20 lower-case letters or digits")
            if not isinstance(value, (str, int, bool)) and value is not None:
                raise ValueError(f"extension attribute {name!r}: values are strings, integers or booleans")
        return self

    @property
    def payload(self) -> Any:
        """The run's input: the data, or its base64 text when it is binary."""
        return self.data if self.data_base64 is None else self.data_base64

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True) | ({} if self.data is None else {"data": self.data})

    def context(self) -> dict[str, Any]:
        """The event without its data, as a function sees it."""
        return {k: v for k, v in self.wire().items() if k not in ("data", "data_base64")}


Event = LegacyEvent | CloudEvent


def parse_event(body: Any) -> Event:
    """A valid event of either version, or InvalidEvent saying every rule it breaks."""
    if not isinstance(body, dict):
        raise InvalidEvent(f"an event is a JSON object, not {type(body).__name__}")
    modern = "specversion" in body or ("cloudEventsVersion" not in body and "eventType" not in body)
    model = CloudEvent if modern else LegacyEvent
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise InvalidEvent(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    """Every violation, in the words Dispatch clients know (`eventType in body is required`)."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        where = f"{field} in body" if field else "event"
        if item["type"] == "missing":
            parts.append(f"{where} is required")
        elif item["type"] == "string_pattern_mismatch":
            parts.append(f"{where} should match '{item['ctx']['pattern']}'")
        elif item["type"] in ("string_too_short", "too_short"):
            parts.append(f"{where} should not be empty")
        elif item["type"] == "literal_error":
            parts.append(f"{where} should be {item['ctx']['expected']}")
        else:
            parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def is_json(content_type: str | None) -> bool:
    """JSON data, by the JSON format's rule: no content type means JSON."""
    return content_type is None or bool(_JSON_MEDIA.match(content_type.strip()))


def from_binary(attributes: dict[str, Any], content_type: str | None, body: bytes,
                max_depth: int = jsontext.MAX_DEPTH, max_bytes: int = jsontext.MAX_BYTES) -> dict[str, Any]:
    """The JSON-format event a binary-mode message carries: attributes from the transport's
    headers (prefix removed), `datacontenttype` from its content type, data from its body (JSON
    parsed strictly within `max_depth` and `max_bytes`, text as a string, anything else as
    data_base64)."""
    event = {name: _attribute(name, value) for name, value in attributes.items()}
    if content_type:
        event["datacontenttype"] = content_type
    content_type = event.get("datacontenttype")
    if content_type is not None and not isinstance(content_type, str):
        raise InvalidEvent("datacontenttype should be a string")
    if not body:
        return event
    if is_json(content_type):
        try:
            event["data"] = jsontext.decode(body, max_depth, max_bytes)
        except jsontext.TooLarge as error:
            raise EventTooLarge(f"data {error}") from None
        except jsontext.NotJSON as error:
            raise InvalidEvent(f"data {error}, although its content type is {content_type or 'unset'}") from None
        except jsontext.BadJSON as error:
            raise InvalidEvent(f"data {error}") from None
    elif (content_type or "").lower().startswith("text/"):
        try:
            event["data"] = body.decode()
        except UnicodeDecodeError:
            event["data_base64"] = base64.b64encode(body).decode()
    else:
        event["data_base64"] = base64.b64encode(body).decode()
    return event


def from_body(attributes: dict[str, Any], content_type: str | None, body: bytes,
              max_depth: int = jsontext.MAX_DEPTH, max_bytes: int = jsontext.MAX_BYTES) -> dict[str, Any]:
    """The event whose data is a message in no CloudEvents form (a webhook request, a queue's
    message): as `from_binary`, except that a body without a content type is JSON when it
    parses (or is JSON beyond the bounds, which from_binary refuses), else text, else base64."""
    if content_type or not body:
        return from_binary(attributes, content_type, body, max_depth, max_bytes)
    try:
        jsontext.decode(body, max_depth, max_bytes)
        guessed = "application/json"
    except jsontext.BadJSON as error:
        if not isinstance(error, (jsontext.NotJSON, jsontext.NotText)):
            return from_binary(attributes, "application/json", body, max_depth, max_bytes)
        try:
            body.decode()
            guessed = "text/plain"
        except UnicodeDecodeError:
            guessed = "application/octet-stream"
    return from_binary(attributes, guessed, body, max_depth, max_bytes)


def _attribute(name: str, value: Any) -> Any:
    """A header value as the JSON format writes it: text, with timestamps in RFC 3339."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode(errors="replace")
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return stamp.isoformat().replace("+00:00", "Z")
    if name == "time" and isinstance(value, (int, float)) and not isinstance(value, bool):
        # AMQP's native timestamp: milliseconds since the epoch
        return _attribute(name, dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc))
    return value
