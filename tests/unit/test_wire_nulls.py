"""`null` from Dispatch's Go client (nil slices and maps) reads as the field's empty default."""
import pytest
from pydantic import ValidationError

from dispatch.schemas import resources as r


@pytest.mark.parametrize(("model", "body", "read"), [
    (r.BaseImage, {"dockerUrl": "u", "groups": None, "language": "python3", "name": "b", "reason": None, "tags": None},
     {"tags": [], "groups": None, "reason": None}),
    (r.Image, {"baseImageName": "b", "groups": None, "name": "i", "reason": None, "runtimeDependencies": {},
               "systemDependencies": {"packages": None}, "tags": None},
     {"tags": [], "systemDependencies": {"packages": []}, "runtimeDependencies": {"manifest": ""}}),
    (r.Function, {"source": "x", "image": "i", "handler": None, "name": "f", "reason": None,
                  "schema": {"in": None, "out": None}, "secrets": None, "services": None, "tags": None,
                  "timeout": None},
     {"handler": "", "secrets": [], "services": [], "tags": [], "timeout": None, "schema": {"in": None, "out": None}}),
    (r.Secret, {"name": "s", "secrets": None, "tags": None}, {"secrets": {}, "tags": []}),
    (r.API, {"enabled": True, "function": "f", "hosts": None, "kind": "API", "methods": None, "name": "a",
             "protocols": None, "tags": None, "uris": None},
     {"hosts": [], "methods": ["GET"], "protocols": ["http", "https"], "uris": ["/"]}),
    (r.Subscription, {"eventType": "t", "function": "f", "name": "s", "secrets": None, "tags": [{}]},
     {"secrets": [], "tags": [{"key": "", "value": ""}]}),
    (r.DriverType, {"config": None, "image": "i", "expose": None, "name": "t", "tags": None},
     {"config": [], "expose": False}),
    (r.Driver, {"config": None, "name": "d", "reason": None, "secrets": None, "expose": False, "tags": None,
                "type": "t"}, {"config": [], "secrets": []}),
    (r.Run, {"blocking": None, "input": None, "reason": None, "secrets": [], "services": None, "tags": None},
     {"blocking": False, "input": None, "services": [], "tags": []}),
])
def test_null_fields_read_as_their_empty_defaults(model, body, read):
    wire = model.model_validate(body).wire()
    assert {key: wire[key] for key in read} == read


def test_null_for_a_required_field_is_still_refused():
    with pytest.raises(ValidationError, match="image"):
        r.Function.model_validate({"name": "f", "image": None})
