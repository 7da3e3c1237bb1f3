"""Every call the Go CLI makes without Kubernetes: the one success status its generated client
accepts (pkg/*/gen/client/*/*_responses.go; any other 2xx lands in the `Default` case and the CLI
panics with `interface conversion`), and the model it decodes the answer into (go_models.py)."""
import json
import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    """A regular expression of the path."""
    success: Callable[[bytes], int]
    """The success status, from the request body."""
    model: str | None
    """Model token of the success body; None: no body (204)."""

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path) is not None


def status(code: int) -> Callable[[bytes], int]:
    return lambda body: code


def run_status(body: bytes) -> int:
    """RunFunctionOK (200) and RunFunctionAccepted (202) are both success cases: the contract
    answers a blocking run 200 and any other 202."""
    return 200 if json.loads(body or b"{}").get("blocking") else 202


def crud(base: str, model: str, created: int = 201, updated: int = 200, deleted: int = 200) -> list[Operation]:
    one = base + "/[^/]+"
    return [Operation("GET", base, status(200), f"[{model}]"), Operation("POST", base, status(created), f"{model}!"),
            Operation("GET", one, status(200), f"{model}!"), Operation("PUT", one, status(updated), f"{model}!"),
            Operation("DELETE", one, status(deleted), None if deleted == 204 else f"{model}!")]


OPERATIONS = [
    Operation("GET", "/v1/version", status(200), "Version!"),
    *crud("/v1/baseimage", "BaseImage"),
    *crud("/v1/image", "Image"),
    *crud("/v1/function", "Function"),
    *crud("/v1/secret", "Secret", updated=201, deleted=204),
    *crud("/v1/api", "API", created=200),
    *crud("/v1/event/subscriptions", "Subscription"),
    *crud("/v1/event/drivertypes", "EventDriverType"),
    *crud("/v1/event/drivers", "EventDriver"),
    # `apply -f` skips Application documents, so the CLI never PUTs an application.
    *[o for o in crud("/v1/application", "Application", created=200) if o.method != "PUT"],
    Operation("POST", "/v1/runs", run_status, "Run!"),
    Operation("GET", "/v1/runs", status(200), "[Run]"),
    Operation("GET", "/v1/runs/[^/]+", status(200), "Run!"),
    Operation("POST", "/v1/event/?", status(200), "Emission!"),
    *crud("/v1/iam/organization", "Organization"),
    *crud("/v1/iam/policy", "Policy"),
    *crud("/v1/iam/serviceaccount", "ServiceAccount"),
    Operation("GET", "/home", status(200), "Message!"),
]


def operation_of(method: str, path: str) -> Operation:
    for operation in OPERATIONS:
        if operation.matches(method, path):
            return operation
    raise LookupError(f"the Go CLI made a call no Go client operation describes: {method} {path}")
