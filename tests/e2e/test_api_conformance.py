"""The management API answers as its OpenAPI document says: schemathesis sends generated requests,
valid and invalid, to every operation of `/v1/openapi.json` on a real embedded server, then
follows the document's links (create, then read, change and delete what was created), and checks
that no answer is a 5xx and that every answer's status code, content type and body are documented.

The server is seeded with one resource of each common kind, all named `hello`; generated paths,
queries and organization headers name them half of the time, so answers about existing resources
are checked too, not only 404s. Generation is deterministic (fixed seed, no example database):
CI sends the same requests on every run."""
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from dispatch.gateway.openapi import openapi_document
from dispatch.gateway.system import version_info

from .conftest import PYTHON_IMAGE, Server

pytestmark = pytest.mark.e2e

ADMITTED: set[str] = set()  # the administrator's `Authorization`, once the server made it
SEEDED = "hello"
ORGANIZATION = "dispatch"  # the server's default, where the administrator and the seeded resources are
ADMINISTRATOR = {"/v1/iam/serviceaccount/{name}": "admin", "/v1/iam/policy/{name}": "admin",
                 "/v1/iam/organization/{name}": ORGANIZATION}  # what the server's first start made
WEBHOOK_TOKEN = "conformance-webhook-token"
HELLO = 'def handle(context, payload):\n    return {"hello": payload}\n'
SEED = PYTHON_IMAGE + f"""---
kind: Secret
name: {SEEDED}
secrets: {{token: {WEBHOOK_TOKEN}}}
---
kind: Function
name: {SEEDED}
image: py
sourcePath: hello.py
---
kind: API
name: {SEEDED}
function: {SEEDED}
methods: [POST]
uris: [/hello]
enabled: true
---
kind: Subscription
name: {SEEDED}
eventType: user.created
function: {SEEDED}
---
kind: Driver
name: {SEEDED}
type: webhook
secrets: [{SEEDED}]
"""
GENERATION = {
    "seed": 16,
    "generation": {"max-examples": 25, "deterministic": True, "database": "none"},
    "dictionaries": {"seeded": {"values": [SEEDED]}, "organization": {"values": [ORGANIZATION]}},
    "parameters": {"header.X-Dispatch-Org": {"dictionary": "organization", "probability": 0.5},
                   "path.organization": {"dictionary": "organization", "probability": 0.5},
                   "path.name": {"dictionary": "seeded", "probability": 0.5},
                   "path.driver": {"dictionary": "seeded", "probability": 0.5},
                   "query.functionName": {"dictionary": "seeded", "probability": 0.5}},
}
# The document the server serves (a test below checks it is this one): the operations are known
# when tests are collected, before any server runs.
DOCUMENT = openapi_document(version_info()["version"])


def spares_the_administrator(context, case) -> bool:
    """Generated requests delete and replace whatever earlier answers named, the administrator's
    account, policy and organization too; after that every answer would be a documented 401, 403
    or 404 and the tests would pass on nothing. Those three requests are not sent; the identity
    API is exercised on every other name."""
    return not (case.method in ("PUT", "DELETE") and case.path in ADMINISTRATOR
                and (case.path_parameters or {}).get("name") == ADMINISTRATOR[case.path])


@schemathesis.check
def administrator_admitted(ctx, response, case) -> None:
    """Nothing sent with the administrator's token was refused for want of an identity or a right:
    the identity it stands for outlived every generated request."""
    if response.request.headers.get("Authorization") in ADMITTED and response.status_code in (401, 403):
        raise AssertionError(f"the administrator was refused: {response.text}")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          unsupported_method, administrator_admitted]


def conformance_schema(**config):
    loaded = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict({**GENERATION, **config}))
    loaded.hook("filter_case")(spares_the_administrator)
    return loaded


schema = conformance_schema(phases={"examples": {"enabled": True}, "coverage": {"enabled": True},
                                    "fuzzing": {"enabled": True}, "stateful": {"enabled": False}})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("conformance")
    (work / "hello.py").write_text(HELLO)
    (work / "seed.yaml").write_text(SEED)
    running = Server(work / "data", seed=work / "seed.yaml").start()
    try:
        running.wait_status(f"/v1/function/{SEEDED}")
        ADMITTED.add(credentials(running, "/v1")["Authorization"])
        yield running
    finally:
        running.stop()


def credentials(server: Server, path: str) -> dict[str, str]:
    """The administrator's token; a webhook's push URL takes its driver's own."""
    token = WEBHOOK_TOKEN if path.startswith("/driver/") else server.token()
    return {"Authorization": f"Bearer {token}"}


def test_the_server_serves_the_document_under_test(server):
    assert server.http("GET", "/v1/openapi.json").json() == DOCUMENT


@schema.parametrize()
def test_every_operation_answers_as_its_openapi_document_says(case, server):
    case.call_and_validate(base_url=f"http://127.0.0.1:{server.port}", headers=credentials(server, case.path),
                           checks=CHECKS)


def test_created_resources_read_changed_and_deleted_through_the_documents_links_answer_as_documented(server):
    linked = conformance_schema(**{
        "base-url": f"http://127.0.0.1:{server.port}", "headers": credentials(server, "/v1"), "workers": 1,
        "operations": [{"include-path": "/driver/{organization}/{driver}",
                        "headers": credentials(server, "/driver/")}],
        "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "fuzzing": {"enabled": False},
                   "stateful": {"enabled": True, "max-steps": 8}},
        "checks": {"enabled": False, **{check.__name__: {"enabled": True} for check in CHECKS}},
    })
    failures, scenarios = [], 0
    for event in from_schema(linked).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            failures += [(event.recorder.cases[case_id].value.operation.label, check.failure_info.failure.title)
                         for case_id, checks in event.recorder.checks.items()
                         for check in checks if check.status == Status.FAILURE]
        elif isinstance(event, events.NonFatalError):
            failures.append((event.label, repr(event.value)))
        elif isinstance(event, events.FatalError):
            failures.append(("schemathesis", repr(event.exception)))
    assert scenarios > 0 and not failures, sorted(set(failures))
