"""Messages on the wire: decoded by type name, old versions upcast, unknown types refused."""
import time
import uuid
from typing import ClassVar

import pytest

from dispatch.schemas.envelope import Event, UnknownMessage, decode, decode_envelope, new_id, new_ordered_id, upcaster


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


def test_message_ids_are_distinct_random_uuids():
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 and str(uuid.UUID(i)) == i
               for i in ids)


def test_run_names_are_time_ordered_uuids_that_sort_in_the_order_they_were_made():
    names = []
    for _ in range(5):
        names += [new_ordered_id() for _ in range(200)]
        time.sleep(0.002)
    assert all(uuid.UUID(n).version == 7 and str(uuid.UUID(n)) == n for n in names)
    assert len(set(names)) == len(names)
    milliseconds = [n[:13] for n in names]  # the first 48 bits; the rest is random
    assert milliseconds == sorted(milliseconds) and len(set(milliseconds)) >= 5
    made_at = uuid.UUID(names[0]).int >> 80
    assert abs(made_at - time.time() * 1000) < 60_000
