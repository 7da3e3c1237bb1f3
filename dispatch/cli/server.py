"""`dispatch server`: run the embedded server in this process, optionally seeding it from a YAML file."""
import asyncio
from pathlib import Path
from typing import Annotated, Coroutine, Literal, Optional, get_args

import pydantic
import typer

from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.cli.manifest import Document, load
from dispatch.iam.admin import Admin
from dispatch.iam.contexts import config_path, context_name, write_server_context
from dispatch.settings import Settings, load_settings

_ANY_ADDRESS = {"", "0.0.0.0", "::"}

# The choices of the settings that take one, listed by --help; a value from DISPATCH_* or the
# config file is checked against the same lists before anything starts.
Runtime = Literal["local", "docker", "kubernetes"]
Role = Literal["all", "gateway", "handlers"]
ApiGateway = Literal["builtin", "kong"]
Sandbox = Literal["auto", "on", "off"]
CHOICES = {"runtime": Runtime, "role": Role, "api_gateway": ApiGateway, "sandbox": Sandbox}


def server(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on.", show_default="127.0.0.1")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port of the management API.", show_default="8080")] = None,
    api_port: Annotated[
        Optional[int], typer.Option(help="Port of the gateway serving user-defined APIs.", show_default="8081")
    ] = None,
    health_port: Annotated[Optional[int], typer.Option(
        help="Port serving /metrics, /healthz and /readyz without authentication, for Prometheus and Kubernetes "
             "probes (any role; a --role handlers process serves no other HTTP).", show_default="none")] = None,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Where the event log and function data live.", show_default="~/.dispatch")
    ] = None,
    seed: Annotated[
        Optional[Path], typer.Option(help="YAML file of resources to create once the server is up.")
    ] = None,
    organization: Annotated[
        Optional[str], typer.Option(help="Organization of requests that name none.", show_default="dispatch")
    ] = None,
    role: Annotated[Optional[Role], typer.Option(
        help="all: HTTP and handlers in one process. gateway: only the HTTP ports (any number of "
             "these). handlers: only the consumers (any number; pick groups with --handlers).",
        show_default="all")] = None,
    handlers: Annotated[Optional[str], typer.Option(
        help="Handler groups this process runs, comma-separated:"
             " images,functions,runs,apis,secrets,events,drivers,iam.",
        show_default="all")] = None,
    bus: Annotated[Optional[str], typer.Option(
        help="memory (one process) or an AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/.",
        show_default="memory")] = None,
    store: Annotated[Optional[str], typer.Option(
        help="sqlite (under --data-dir) or a PostgreSQL URL, e.g. postgresql://127.0.0.1/dispatch.",
        show_default="sqlite")] = None,
    namespace: Annotated[Optional[str], typer.Option(
        help="Prefix of exchanges and queues, and the PostgreSQL schema.", show_default="dispatch")] = None,
    runtime: Annotated[Optional[Runtime], typer.Option(
        help="Where functions run: local processes, Docker containers or Kubernetes pods.",
        show_default="local")] = None,
    tls_cert: Annotated[Optional[Path], typer.Option(
        help="PEM certificate: with --tls-key, user APIs are also served over HTTPS on --api-https-port.")] = None,
    tls_key: Annotated[Optional[Path], typer.Option(help="PEM private key of --tls-cert.")] = None,
    api_https_port: Annotated[Optional[int], typer.Option(help="HTTPS port of user APIs.", show_default="8443")] = None,
    api_gateway: Annotated[Optional[ApiGateway], typer.Option(
        help="builtin, or kong: APIs are also registered in Kong, which proxies to the user-API port.",
        show_default="builtin")] = None,
    kong_admin_url: Annotated[Optional[str], typer.Option(help="Kong's Admin API, e.g. http://127.0.0.1:8001.")] = None,
    kong_upstream_url: Annotated[Optional[str], typer.Option(
        help="The user-API port as Kong reaches it.", show_default="http://<host>:<api-port>")] = None,
    sandbox: Annotated[Optional[Sandbox], typer.Option(
        help="The local runtime's sandbox per function (bubblewrap): auto (when bwrap works here, else without "
             "it, with a warning), on (a function that cannot have one goes to ERROR) or off.",
        show_default="auto")] = None,
    maven_settings: Annotated[Optional[Path], typer.Option(
        help="Maven settings.xml (mvn -s) for the pom.xml of Java images: the repositories or mirror their "
             "dependencies come from.", show_default="Maven's own")] = None,
    run_retention: Annotated[Optional[str], typer.Option(
        help="Drop finished runs from the read models this long after they were last modified: 30d, 12h, 90m "
             "or seconds. The event log keeps them.", show_default="keep every run")] = None,
    skip_auth: Annotated[bool, typer.Option(
        "--skip-auth", help="Serve the management API without authentication: anyone who reaches it may do "
                            "anything. Loopback addresses only.")] = False,
    public_name: Annotated[Optional[list[str]], typer.Option(
        "--public-name", help="A host name clients reach this server by (repeatable); other names are refused, "
                              "against DNS rebinding. Addresses and localhost always work.")] = None,
    oidc_issuer: Annotated[Optional[str], typer.Option(
        help="OpenID Connect issuer whose ID tokens log users in"
             " (its discovery document and keys are fetched).")] = None,
    oidc_client_id: Annotated[Optional[str], typer.Option(
        help="This installation's client id at --oidc-issuer (the audience of its ID tokens).")] = None,
    bootstrap_public_key: Annotated[Optional[Path], typer.Option(
        help="PEM public key of a bootstrap identity that may create the first organization, account and "
             "policy (dispatch manage bootstrap), until one exists.")] = None,
    config_file: Annotated[Optional[Path], typer.Option(
        "--config-file", help="YAML file of settings (keys as the long options, with _), below "
                              "flags and DISPATCH_* environment variables.")] = None,
) -> None:
    """Start a Dispatch server until Ctrl-C.

    With the defaults it is the whole platform in one process (embedded mode: in-memory bus,
    SQLite, local function processes). With --bus and --store it joins a distributed
    installation: run any number of --role gateway and --role handlers processes against the
    same RabbitMQ and PostgreSQL.
    """
    # Imported here: the server pulls in its whole stack, which other commands do not need.
    from dispatch import server as embedded

    given = {"host": host, "port": port, "api_port": api_port, "health_port": health_port, "data_dir": data_dir,
             "default_organization": organization, "role": role, "handlers": handlers, "bus": bus,
             "store": store, "namespace": namespace, "runtime": runtime,
             "tls_cert": tls_cert, "tls_key": tls_key, "api_https_port": api_https_port, "api_gateway": api_gateway,
             "kong_admin_url": kong_admin_url, "kong_upstream_url": kong_upstream_url,
             "skip_auth": skip_auth or None, "public_names": public_name, "oidc_issuer": oidc_issuer,
             "oidc_client_id": oidc_client_id, "bootstrap_public_key": bootstrap_public_key,
             "maven_settings": maven_settings, "sandbox": sandbox, "run_retention": run_retention}
    try:
        settings = checked(load_settings(config_file, **given))
    except pydantic.ValidationError as error:
        raise DispatchClientError(f"invalid server settings: {_one_line(error)}") from None
    except (OSError, ValueError) as error:
        raise DispatchClientError(f"invalid server settings: {error}") from None
    # The seed file is read (sources packed) before the server starts, so a broken one fails fast.
    documents = load(seed.name, seed.resolve().parent, "create") if seed is not None else []

    async def on_ready(admin: Admin | None) -> None:
        if settings.role == "handlers":
            typer.echo(f"Dispatch handlers are running ({settings.handlers}); stop them with Ctrl-C.")
            return
        if admin is not None:
            typer.echo(f"Identity: {admin_context(settings, admin)}.")
        if documents:
            if admin is None and not settings.skip_auth:
                typer.echo("Not seeding: this process holds no administrator's key (it bootstraps an empty "
                           "installation only).", err=True)
            else:
                token = admin.token() if admin is not None else None
                await asyncio.to_thread(seed_documents, local_client(settings, token), documents)
        typer.echo(next_steps(settings))

    try:
        _run(embedded.serve(settings, on_ready=on_ready))
    except KeyboardInterrupt:
        pass


def checked(settings: Settings) -> Settings:
    """The settings, once each setting that takes a choice holds one of them."""
    for field, choices in CHOICES.items():
        value = getattr(settings, field)
        if value not in get_args(choices):
            option = field.replace("_", "-")
            raise ValueError(f"unknown {option} {value!r} (from --{option}, DISPATCH_{field.upper()} or the config "
                             f"file): choose one of {', '.join(get_args(choices))}")
    return settings


def _one_line(error: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in found['loc'])}: {found['msg']}" for found in error.errors())


def _run(main: Coroutine) -> None:
    """On uvloop where it is installed (Linux, macOS): the same code, cheaper I/O on the hot path
    (about 12 % less CPU per run in the gateway and the handlers)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _local_host(settings: Settings) -> str:
    return "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host


def local_client(settings: Settings, token: str | None = None) -> DispatchClient:
    host = _local_host(settings)
    host = f"[{host}]" if ":" in host else host
    return DispatchClient(f"http://{host}:{settings.port}", settings.default_organization, token=token)


def admin_context(settings: Settings, admin: Admin) -> str:
    """Write the administrator's CLI context (never over one of the user's); say where it went."""
    host = _local_host(settings)
    context = {"host": host, "port": settings.port, "scheme": "http", "organization": admin.organization,
               "cookie": "", "insecure": False, "serviceaccount": admin.issuer,
               "jwtprivatekey": str(admin.key_file.resolve())}
    return write_server_context(config_path(settings.cli_config), context_name(host, settings.port), context,
                                writer=str(settings.data_dir.resolve()))


def seed_documents(client: DispatchClient, documents: list[Document]) -> None:
    """Create each document, one line each; existing ones are kept so that restarts are harmless."""
    for document in documents:
        kind, name = document.kind.name, document.name
        try:
            client.post(document.kind.path, document.body)
        except DispatchClientError as error:
            if error.code == 409:
                typer.echo(f"{kind} {name} already exists")
            else:
                typer.echo(f"Could not create {kind} {name}: {error}", err=True)
            continue
        typer.echo(f"Created {kind}: {name}")


def next_steps(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host
    org = settings.default_organization
    lines = [
        f"Dispatch is running: management API on http://{host}:{settings.port}, "
        f"user APIs on http://{host}:{settings.api_port}/{org}/ (data in {settings.data_dir}).",
        "",
        "What to try next, in another terminal:",
        "  export PATH=$PWD/.venv/bin:$PATH",
    ]
    if host != "127.0.0.1" or settings.port != 8080:
        lines.append(f"  export DISPATCH_HOST={host} DISPATCH_PORT={settings.port}")
    lines += [
        "  dispatch get functions",
        """  dispatch exec hello-py --input '{"name": "Jon", "place": "Winterfell"}' --wait""",
        "  dispatch create api post-hello hello-py --method POST --path /hello",
        f"  curl -X POST {host}:{settings.api_port}/{org}/hello -H 'Content-Type: application/json' "
        """-d '{"name":"Jon","place":"Winterfell"}'""",
        "",
        "Stop the server with Ctrl-C.",
    ]
    return "\n".join(lines)
