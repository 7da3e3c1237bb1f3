"""Executes one run through the contract's chain: input schema, secrets, the call, output schema."""
import asyncio
import datetime as dt
import time
from typing import Any, Callable

from jsonschema import validators
from jsonschema.exceptions import SchemaError

from dispatch.drivers.ports import FunctionRuntime, Invocation, NotDeployed
from dispatch.errors import Rejected
from dispatch.schemas.jsonvalues import problem as output_problem
from dispatch.schemas.resources import Status, instant
from dispatch.store.ports import Views
from dispatch.store.sealing import SecretBox
from dispatch.telemetry import logs

from .deployments import Deployments
from .limits import limits_of
from .ready import ReadyFunctions


def check_schemas(schema: dict | None) -> None:
    """Refuse a function whose input or output schema is not a valid JSON Schema."""
    for direction in ("in", "out"):
        document = (schema or {}).get(direction)
        if document:
            try:
                validators.validator_for(document).check_schema(document)
            except SchemaError as error:
                raise Rejected(f"schema.{direction} is not a valid JSON Schema: {error.message}") from None


class Secrets:
    def __init__(self, views: Views, box: SecretBox):
        self.views = views
        self.box = box

    async def resolve(self, organization: str, names: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for name in names:
            secret = await self.views.get_resource(organization, "Secret", name)
            if secret is None:
                raise LookupError(f"error when retrieving secrets from secret store: secret {name} not found")
            values.update(self.box.open(secret.get("secrets") or {}))
        return values

    async def values(self, organization: str, name: str) -> dict[str, str]:
        """One secret's opened values; none when it is gone or sealed with another key, so what
        it granted is no longer granted."""
        secret = await self.views.get_resource(organization, "Secret", name)
        try:
            return self.box.open((secret or {}).get("secrets") or {})
        except ValueError:
            return {}


def _error(kind: str, message: str) -> Invocation:
    return Invocation(error={"type": kind, "message": message, "stacktrace": []})


Tokens = Callable[[str, str, float], str]
"""Signs a token for (organization, service account, lifetime in seconds)."""
TOKEN_MARGIN_SECONDS = 60


class Executor:
    def __init__(self, ready: ReadyFunctions, runtime: FunctionRuntime, secrets: Secrets, deployments: Deployments,
                 tokens: Tokens | None = None):
        self.ready = ready
        self.runtime = runtime
        self.secrets = secrets
        self.deployments = deployments
        self.tokens = tokens
        self._validators: dict[tuple[str, str], Any] = {}

    async def ready_function(self, organization: str, name: str) -> dict:
        return await self.ready.get(organization, name)

    def _validate(self, function: dict, direction: str, value: Any) -> str | None:
        document = (function.get("schema") or {}).get(direction)
        if not document:
            return None
        key = (function["faasId"], direction)
        if key not in self._validators:
            self._validators[key] = validators.validator_for(document)(document)
        error = next(iter(self._validators[key].iter_errors(value)), None)
        return None if error is None else error.message

    async def invoke(self, organization: str, function: dict, run: dict) -> Invocation:
        problem = self._validate(function, "in", run.get("input"))
        if problem:
            return _error("InputError", f"Input invalid against schema: {problem}")
        try:
            secrets = await self.secrets.resolve(organization, function.get("secrets", []) + run.get("secrets", []))
        except LookupError as missing:
            return _error("InputError", str(missing))
        context: dict[str, Any] = {"secrets": secrets, "serviceBindings": {}}
        for key in ("event", "httpContext"):
            if run.get(key) is not None:
                context[key] = run[key]
        timeout = limits_of(function, self.deployments.settings).timeout_ms
        if timeout:
            deadline = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=timeout)
            context["deadline"] = deadline.isoformat().replace("+00:00", "Z")
        if function.get("serviceAccount"):
            problem = await self._identity(organization, function["serviceAccount"], timeout, context)
            if problem:
                return _error("InputError", problem)
        try:
            result = await self.runtime.invoke(function["faasId"], context, run.get("input"), timeout)
        except NotDeployed:
            await self.deployments.ensure(organization, function)
            result = await self.runtime.invoke(function["faasId"], context, run.get("input"), timeout)
        if result.error is None:
            problem = self._unrecordable(result.output)
            if problem is None and (invalid := self._validate(function, "out", result.output)):
                problem = f"Output invalid against schema: {invalid}"
            if problem:
                result.error = {"type": "FunctionError", "message": problem, "stacktrace": []}
        return result

    def _unrecordable(self, output: Any) -> str | None:
        """Why an output cannot be the run's record (a string that is not Unicode, NaN, a value of
        no JSON type, nesting past max_json_depth): the run is then the function's error,
        recorded once, rather than a record no store can write."""
        found = output_problem(output, self.deployments.settings.max_json_depth)
        return None if found is None else f"the function's output cannot be recorded as JSON: at {found}"

    async def _identity(self, organization: str, account: str, timeout_ms: int, context: dict) -> str | None:
        """Hand the run a token of the function's service account, lasting as long as the run may."""
        if await self.secrets.views.get_resource(organization, "ServiceAccount", account) is None:
            return f"the function's service account {account} does not exist"
        if self.tokens is not None:
            lifetime = (timeout_ms / 1000 if timeout_ms else 300) + TOKEN_MARGIN_SECONDS
            context["token"] = self.tokens(organization, account, lifetime)
        return None

    async def run(self, organization: str, function: dict, run: dict) -> dict:
        """Execute and return the finished run record."""
        started = time.time_ns() // 1_000_000
        try:
            with logs.bound(run_id=run["name"]):
                result = await self.invoke(organization, function, run)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the platform failed, not the function: still a recorded run
            result = _error("SystemError", f"{type(error).__name__}: {error}")
        finished_ms = time.time_ns() // 1_000_000
        finished = finished_ms // 1000
        record = {**run, "output": result.output, "status": Status.READY.value, "reason": None,
                  "logs": {"stdout": result.stdout, "stderr": result.stderr}, "error": result.error,
                  "finishedTime": finished, "modifiedTime": finished, "startedAt": instant(started),
                  "finishedAt": instant(finished_ms), "durationMs": finished_ms - started}
        if result.error is not None:
            record["status"] = Status.ERROR.value
            record["output"] = None
            record["reason"] = [f"error running function: {run['functionName']}: {result.error.get('message', '')}"]
        return record
