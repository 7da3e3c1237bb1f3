"""`dispatch create`: base images, images, functions, secrets, APIs, subscriptions, event driver
types and event drivers, one by one or from a YAML file."""
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.cli.config import Application, CliState, File, Wait, WorkDir, application_tags, state_of
from dispatch.cli.inputs import STDIN
from dispatch.cli.manifest import KINDS, Kind, encode_source, load, process
from dispatch.cli.names import random_name
from dispatch.cli.output import render, spinner

app = typer.Typer(no_args_is_help=False)

# The languages of Dispatch's base images; which of them a server runs depends on its runtime
# (a base image of one it cannot run goes to ERROR, saying so).
Language = Literal["python3", "nodejs", "java", "powershell"]

# A function's scale and limits, shared by `create function` and `update function`.
MinReplicas = Annotated[Optional[int], typer.Option(min=0, help="Workers kept warm even when idle (0: scale to zero).")]
MaxReplicas = Annotated[Optional[int], typer.Option(min=1, help="Most workers at once; runs queue beyond.")]
Concurrency = Annotated[Optional[int], typer.Option(
    min=1, help="Runs in flight at once per worker, container or pod (default 1).")]
IdleSeconds = Annotated[Optional[int], typer.Option(
    min=0, help="Idle time after which workers above --min-replicas stop.")]
MemoryMB = Annotated[Optional[int], typer.Option("--memory-mb", min=16, help="Memory limit of a worker, in MB.")]
CpuSeconds = Annotated[Optional[int], typer.Option(min=1, help="CPU time a run may use, in seconds.")]
Cpus = Annotated[Optional[float], typer.Option(min=0, help="Share of CPU cores a worker may use (containers).")]


def scale_and_limits(min_replicas: int | None, max_replicas: int | None, concurrency: int | None,
                     idle_seconds: int | None, memory_mb: int | None, cpu_seconds: int | None,
                     cpus: float | None) -> dict[str, dict[str, Any]]:
    """The `scale` and `limits` fields given on the command line, leaving out those not given."""
    scale = {"minReplicas": min_replicas, "maxReplicas": max_replicas, "concurrency": concurrency,
             "idleSeconds": idle_seconds}
    limits = {"memoryMB": memory_mb, "cpuSeconds": cpu_seconds, "cpus": cpus}
    return {field: {key: value for key, value in values.items() if value is not None}
            for field, values in (("scale", scale), ("limits", limits))}


@app.callback(invoke_without_command=True)
def create(
    ctx: typer.Context,
    file: File = None,
    work_dir: WorkDir = Path("."),
    wait: Wait = False,
    application: Application = None,
) -> None:
    """Create resources from a YAML file (-f), or one resource with a command below."""
    if ctx.invoked_subcommand is not None:
        return
    if file is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(1)
    state = state_of(ctx)
    client = state.client()
    documents = load(file, work_dir, "create", application_tags(application))
    process(documents, lambda d: client.post(d.kind.path, d.body), "Created", state.output)
    if wait:
        for document in documents:
            if document.kind.has_status:
                wait_until_ready(state, document.kind, document.name, quiet=state.output is not None)


@app.command("base-image")
def base_image(
    ctx: typer.Context,
    name: str,
    docker_url: str,
    language: Annotated[Language, typer.Option(help="Runtime language of the image.")],
    application: Application = None,
    wait: Wait = False,
) -> None:
    """Register an existing container image carrying a language runtime."""
    body = {"name": name, "dockerUrl": docker_url, "language": language, "tags": application_tags(application)}
    _create(ctx, KINDS["BaseImage"], body, wait)


@app.command()
def image(
    ctx: typer.Context,
    name: str,
    base_image: str,
    runtime_deps: Annotated[Optional[Path], typer.Option(
        help="Manifest of runtime packages (e.g. requirements.txt).")] = None,
    system_deps: Annotated[Optional[Path], typer.Option(help='JSON file: {"packages": [{"name", "version"}]}.')] = None,
    application: Application = None,
    wait: Wait = False,
) -> None:
    """Build an image: a base image plus runtime and system dependencies."""
    body: dict[str, Any] = {"name": name, "baseImageName": base_image, "tags": application_tags(application)}
    if runtime_deps is not None:
        body["runtimeDependencies"] = {"manifest": _read(runtime_deps, "--runtime-deps")}
    if system_deps is not None:
        body["systemDependencies"] = _read_json(system_deps, "--system-deps")
    _create(ctx, KINDS["Image"], body, wait)


SourcePath = Annotated[Path, typer.Argument(help="Source file, or a directory (then --handler is required).")]
ImageName = Annotated[str, typer.Option(help="Image to run the function on.")]
Handler = Annotated[str, typer.Option(help="Entry point, e.g. hello.handle (python3) or ./hello.js (nodejs).")]
SchemaIn = Annotated[Optional[Path], typer.Option(help="JSON Schema file for the input.")]
SchemaOut = Annotated[Optional[Path], typer.Option(help="JSON Schema file for the output.")]
Secrets = Annotated[Optional[list[str]], typer.Option("--secret", help="Secret injected on every run (repeatable).")]
Services = Annotated[Optional[list[str]], typer.Option(
    "--service", help="Service instance bound on every run (repeatable).")]
Timeout = Annotated[Optional[int], typer.Option(help="Timeout of a run in milliseconds; 0 means none.")]


@app.command()
def function(
    ctx: typer.Context,
    name: str,
    path: SourcePath,
    image: ImageName,
    handler: Handler = "",
    schema_in: SchemaIn = None,
    schema_out: SchemaOut = None,
    secret: Secrets = None,
    service: Services = None,
    timeout: Timeout = None,
    min_replicas: MinReplicas = None,
    max_replicas: MaxReplicas = None,
    concurrency: Concurrency = None,
    idle_seconds: IdleSeconds = None,
    memory_mb: MemoryMB = None,
    cpu_seconds: CpuSeconds = None,
    cpus: Cpus = None,
    service_account: Annotated[Optional[str], typer.Option(
        "--service-account", help="A service account whose rights the function's runs get (each run's context "
                                  "carries a short-lived token for it); taking one needs create on iam.")] = None,
    application: Application = None,
    wait: Wait = False,
) -> None:
    """Create a function from a source file or directory."""
    body = function_body(name, path, image, handler, schema_in, schema_out, secret, service, timeout, application)
    body.update(scale_and_limits(min_replicas, max_replicas, concurrency, idle_seconds, memory_mb, cpu_seconds, cpus))
    if service_account:
        body["serviceAccount"] = service_account
    _create(ctx, KINDS["Function"], body, wait)


def function_body(name: str, path: Path, image: str, handler: str, schema_in: Path | None, schema_out: Path | None,
                  secret: list[str] | None, service: list[str] | None, timeout: int | None,
                  application: str | None) -> dict[str, Any]:
    """A function's body from the options `create function` and `update function` share."""
    if not path.exists():
        raise DispatchClientError(f"source path {path} does not exist")
    if path.is_dir() and not handler:
        raise DispatchClientError(f"handler is required, source path {path} is a directory")
    schema = {}
    if schema_in is not None:
        schema["in"] = _read_json(schema_in, "--schema-in")
    if schema_out is not None:
        schema["out"] = _read_json(schema_out, "--schema-out")
    body: dict[str, Any] = {
        "name": name,
        "image": image,
        "handler": handler,
        "source": encode_source(path),
        "schema": schema,
        "secrets": secret or [],
        "services": service or [],
        "tags": application_tags(application),
    }
    if timeout is not None:
        body["timeout"] = timeout
    return body


@app.command()
def secret(
    ctx: typer.Context,
    name: str,
    json_file: Annotated[Path, typer.Argument(help="JSON file of key -> value; - reads it from standard input.")],
    application: Application = None,
) -> None:
    """Create a secret from a JSON file holding a flat key -> value object."""
    values = _read_json(json_file, "secret file")
    if not isinstance(values, dict):
        raise DispatchClientError(f"secret file {json_file} must hold a JSON object of key -> value")
    _create(ctx, KINDS["Secret"], {"name": name, "secrets": values, "tags": application_tags(application)}, False)


SEED_IMAGES = Path(__file__).with_name("seed-images.yaml")


@app.command("seed-images")
def seed_images(
    ctx: typer.Context,
    output_file: Annotated[Optional[Path], typer.Option(
        "-O", "--output-file", help="Write the seed YAML to this file instead of creating anything.")] = None,
    wait: Wait = False,
) -> None:
    """Create Dispatch's seed base images and images: nodejs, python3 (with requests), powershell
    and java. Which of them become READY depends on the runtimes this server has."""
    if output_file is not None:
        output_file.write_text(SEED_IMAGES.read_text())
        typer.echo(f"Wrote the seed images to {output_file}")
        return
    create(ctx, file=str(SEED_IMAGES), work_dir=Path("."), wait=wait, application=None)


app.command("seed", hidden=True)(seed_images)


@app.command("application")
def application_(ctx: typer.Context, name: str) -> None:
    """Create an application: a name its members carry as the tag Application=NAME (-a NAME)."""
    _create(ctx, KINDS["Application"], {"name": name, "tags": []}, False)


app.command("app", hidden=True)(application_)


@app.command()
def api(
    ctx: typer.Context,
    name: str,
    function: str,
    domain: Annotated[Optional[list[str]], typer.Option(
        "-d", "--domain", help="Host name matched (repeatable).")] = None,
    path: Annotated[Optional[list[str]], typer.Option(
        "-p", "--path", help="Path matched (repeatable; default /).")] = None,
    method: Annotated[Optional[list[str]], typer.Option(
        "-m", "--method", help="HTTP method (repeatable; default GET).")] = None,
    https_only: Annotated[bool, typer.Option("--https-only", help="Only accept HTTPS requests.")] = False,
    disable: Annotated[bool, typer.Option("--disable", help="Store the API without routing it.")] = False,
    cors: Annotated[bool, typer.Option("--cors", help="Answer CORS pre-flight requests.")] = False,
    auth: Annotated[str, typer.Option("--auth", help="Authentication: public, basic or bearer.")] = "public",
    auth_secret: Annotated[Optional[str], typer.Option(
        "--auth-secret",
        help="Secret of the accepted credentials: user -> password (basic), name -> token (bearer).")] = None,
    tls: Annotated[Optional[str], typer.Option(
        "--tls", help="Secret holding tls.crt and tls.key (PEM) served for the --domain hosts.")] = None,
    application: Application = None,
    wait: Wait = False,
) -> None:
    """Expose a function as an HTTP endpoint of the API gateway."""
    body = {
        "name": name,
        "function": function,
        "hosts": domain or [],
        "uris": path or ["/"],
        "methods": [m.upper() for m in method or ["GET"]],
        "protocols": ["https"] if https_only else ["http", "https"],
        "enabled": not disable,
        "cors": cors,
        "authentication": auth,
        "tags": application_tags(application),
    }
    body.update({key: value for key, value in (("authSecret", auth_secret), ("tls", tls)) if value})
    _create(ctx, KINDS["API"], body, wait)


@app.command()
def subscription(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(help="Function to run for every event of the type.")],
    event_type: Annotated[str, typer.Option("--event-type", help="Type of the events, e.g. user.created.")],
    name: Annotated[Optional[str], typer.Option(help="Name of the subscription (default: a random one).")] = None,
    secret: Annotated[Optional[list[str]], typer.Option(
        help="Secret added to every run it starts (repeatable).")] = None,
    application: Application = None,
    wait: Wait = False,
) -> None:
    """Run FUNCTION for every event of a type, with the event's data as input."""
    kind = KINDS["Subscription"]
    name = name or random_name()
    body = {"name": name, "eventType": event_type, "function": function, "secrets": secret or [],
            "tags": application_tags(application)}
    state = state_of(ctx)
    client = state.client()
    _function_exists(client, function)
    created = client.post(kind.path, body)
    if state.output is None:
        typer.echo(f"created subscription: {name}")
    if wait:
        created = wait_until_ready(state, kind, name, quiet=state.output is not None)
    if state.output is not None:
        render(created, state.output)


def _function_exists(client: DispatchClient, function: str) -> None:
    """Refuse a subscription to a function that does not exist, with the server's own 404.

    The API accepts one, as Dispatch's did, so that a file may create a subscription before its
    function; a name typed here that names no function is a typo that would drop every event.
    Only a 404 refuses: a caller who may not read functions still may subscribe."""
    try:
        client.get(KINDS["Function"].path_of(function))
    except DispatchClientError as error:
        if error.code == 404:
            raise


ConfigSet = Annotated[Optional[list[str]], typer.Option(
    "-s", "--set", help="Config entry key=value, or key alone (repeatable).")]


def config_entries(values: list[str] | None) -> list[dict]:
    return [{"key": key, "value": value} for key, _, value in (item.partition("=") for item in values or [])]


def event_driver_type(
    ctx: typer.Context,
    name: str,
    image: Annotated[str, typer.Argument(help="Container image run for each driver of the type.")],
    expose: Annotated[bool, typer.Option("--expose", help="Give the type's drivers a push URL.")] = False,
    set_: ConfigSet = None,
    application: Application = None,
) -> None:
    """Create an event driver type: a container image run for each driver (built in: cron, webhook, amqp)."""
    body = {"name": name, "image": image, "expose": expose, "config": config_entries(set_),
            "tags": application_tags(application)}
    _create(ctx, KINDS["DriverType"], body, False)


def event_driver(
    ctx: typer.Context,
    driver_type: Annotated[str, typer.Argument(metavar="TYPE", help="cron, webhook, amqp, or a created type.")],
    name: Annotated[Optional[str], typer.Option(help="Name of the driver (default: a random one).")] = None,
    set_: ConfigSet = None,
    secret: Annotated[Optional[list[str]], typer.Option(help="Secret given to the driver (repeatable).")] = None,
    application: Application = None,
    wait: Wait = False,
) -> None:
    """Create an event driver of TYPE, e.g. `create eventdriver cron -s schedule='*/5 * * * *' -s eventType=tick`."""
    kind = KINDS["Driver"]
    name = name or random_name()
    body = {"name": name, "type": driver_type, "config": config_entries(set_), "secrets": secret or [],
            "tags": application_tags(application)}
    state = state_of(ctx)
    created = state.client().post(kind.path, body)
    if state.output is None:
        typer.echo(f"Created {kind.label}: {name}")
        if created.get("token"):
            typer.echo(f"Token (shown only now; send it as Authorization: Bearer): {created['token']}")
        if created.get("url"):
            typer.echo(f"URL: {created['url']}")
    if wait:
        shown = wait_until_ready(state, kind, name, quiet=state.output is not None)
        created = {**shown, **({"token": created["token"]} if created.get("token") else {})}
    if state.output is not None:
        render(created, state.output)


for _kind, _command in (("DriverType", event_driver_type), ("Driver", event_driver)):
    for _number, _alias in enumerate(KINDS[_kind].aliases):
        app.command(_alias, hidden=_number > 0)(_command)


def wait_until_ready(state: CliState, kind: Kind, name: str, quiet: bool = False) -> dict:
    """Poll until the resource is READY; ERROR exits 1 with its reason."""
    with spinner(f"Waiting for {kind.label} {name}") as show:
        resource = state.client().wait_for(kind.path_of(name), lambda s: show(f"Waiting for {kind.label} {name}: {s}"))
    if resource.get("status") == "ERROR":
        reason = "; ".join(resource.get("reason") or []) or "no reason given"
        raise DispatchClientError(f"{kind.label} {name} failed: {reason}")
    if not quiet:
        typer.echo(f"{kind.label.capitalize()} {name} is READY")
    return resource


def _create(ctx: typer.Context, kind: Kind, body: dict, wait: bool) -> None:
    state = state_of(ctx)
    created = state.client().post(kind.path, body)
    if state.output is None:
        typer.echo(f"Created {kind.label}: {body['name']}")
    if wait:
        created = wait_until_ready(state, kind, body["name"], quiet=state.output is not None)
    if state.output is not None:
        render(created, state.output)


def _read(path: Path, what: str) -> str:
    if str(path) == STDIN:
        return sys.stdin.read()
    try:
        return path.expanduser().read_text()
    except OSError as error:
        raise DispatchClientError(f"cannot read {what} {path}: {error.strerror}") from None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(_read(path, what))
    except ValueError as error:
        where = "(standard input)" if str(path) == STDIN else str(path)
        raise DispatchClientError(f"{what} {where} is not valid JSON: {error}") from None
