"""Messages on the wire: decoded by type name, old versions upcast, unknown types refused."""
from typing import ClassVar

import pytest

from dispatch.schemas.envelope import Event, UnknownMessage, decode, decode_envelope, upcaster


class PlaceRenamed(Event):
    """Version 2 split `place` into `city` and `country`."""

    city: str
    country: str

    version: ClassVar[int] = 2


@upcaster("PlaceRenamed", 1)
def _split_place(data: dict) -> dict:
    city, _, country = data.pop("place").partition(", ")
    return {**data, "city": city, "country": country}


def test_an_event_recorded_in_an_old_version_is_upcast_when_read():
    old = {"message_id": "m-1", "place": "Winterfell, the North"}
    event = decode("PlaceRenamed", 1, old)
    assert (event.city, event.country, event.message_id) == ("Winterfell", "the North", "m-1")


def test_the_envelope_round_trips_a_message_with_its_identity():
    event = PlaceRenamed(city="Braavos", country="Essos", correlation_id="c-9")
    again = decode_envelope(event.envelope())
    assert again == event and again.envelope()["version"] == 2


def test_an_unknown_type_is_refused_by_name():
    with pytest.raises(UnknownMessage, match="'NoSuchThing'"):
        decode("NoSuchThing", 1, {})
