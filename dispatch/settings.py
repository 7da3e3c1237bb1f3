"""One settings object, built in entry points from flags, environment (DISPATCH_*) and defaults."""
import re
from pathlib import Path

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispatch import yamlfiles
from dispatch.schemas.jsontext import MAX_BYTES, MAX_DEPTH
from dispatch.schemas.jsonvalues import RECORD_DEPTH
from dispatch.schemas.source import DEFAULT_CAPS as SOURCE_CAPS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    api_port: int = 8081
    health_port: int = Field(default=0, ge=0, le=65535)
    """Where this process serves /metrics, /healthz and /readyz without authentication, for
    Prometheus and Kubernetes probes (0: nowhere). A `--role handlers` process serves nothing
    else over HTTP: give it one wherever it is probed or scraped."""
    max_projection_lag: int = Field(default=1000, ge=0)
    """Events a read model may be behind the log's head before /readyz answers 503."""
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".dispatch")
    default_organization: str = "dispatch"
    blocking_wait_seconds: float = 300.0
    resync_seconds: float = 20.0
    max_payload_bytes: int = 10 * 1024 * 1024
    max_log_bytes: int = 1024 * 1024
    """What one run may print, stdout and stderr each; the rest is cut, saying so."""
    max_output_bytes: int = 6 * 1024 * 1024
    """A run's output, JSON-encoded: more is a FunctionError naming the limit."""
    default_timeout_seconds: float = 300.0
    """A function's timeout when it sets none."""
    max_timeout_seconds: float = 3600.0
    """The most a function's timeout may be, and what its timeout 0 means."""
    default_memory_mb: int = 256
    """Memory per worker of a function that sets none (limits.memoryMB)."""
    max_memory_mb: int = 8192
    default_processes: int = 64
    """Processes and threads per worker of a function that sets none (limits.processes)."""
    max_processes: int = 4096
    max_cpu_seconds: int = 3600
    """The most CPU time a run may be allowed (limits.cpuSeconds); unset, a run may use its timeout's worth."""
    max_workers_per_function: int = 4
    """Default maxReplicas of a function."""
    idle_seconds: float = 300.0
    """Default idle time after which a function's workers above minReplicas stop."""
    max_queued_runs: int = 1000
    """Runs of one function waiting for a worker before new ones are refused (503)."""
    run_retention: float | None = Field(default=None, ge=0)
    """Seconds (or a duration: 30d, 12h, 90m) a finished run stays in the read models after it was
    last modified; older ones are dropped periodically, and by a rebuild. The event log keeps
    every run. Unset or 0: runs stay."""
    runtime: str = "local"
    """Where functions run: `local` (processes on this host), `docker` or `kubernetes`."""
    sandbox: str = "auto"
    """The local runtime's sandbox per function (bubblewrap): `auto` (when bwrap works here, else
    without it, warning loudly), `on` (a function that cannot have one goes to ERROR) or `off`."""
    docker_url: str | None = None
    """The Docker engine's address (default: DOCKER_HOST, else the local socket)."""
    maven_settings: Path | None = None
    """A Maven settings.xml (`mvn -s`) for the local runtime's Java images: the repositories or
    mirror their pom.xml dependencies come from. Default: Maven's own (~/.m2/settings.xml)."""
    driver_address: str | None = None
    """How gateways reach this host, where the containers of exposed custom driver types it runs
    listen. Default: 127.0.0.1 with the memory bus (one process), else this host's address."""
    kubernetes_namespace: str = "default"
    kubeconfig: Path | None = None
    """Kubeconfig file; default: in-cluster configuration, else ~/.kube/config."""
    kubernetes_service_url: str | None = None
    """Where a function's Service answers, with {service}, {namespace} and {port}; default: cluster DNS,
    http://{service}.{namespace}.svc.cluster.local:{port}/. From outside the cluster, through `kubectl proxy`:
    http://127.0.0.1:8001/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/"""
    log_level: str = "info"
    tls_cert: Path | None = None
    """PEM certificate (chain) of the user-API port's HTTPS listener; with tls_key, turns it on."""
    tls_key: Path | None = None
    api_https_port: int = 8443
    """Where the user-API port also answers over HTTPS when tls_cert and tls_key are set."""
    api_gateway: str = "builtin"
    """Where APIs are registered: `builtin` (the user-API port alone) or `kong` (also Kong, in front of it)."""
    kong_admin_url: str | None = None
    """Kong's Admin API, e.g. http://127.0.0.1:8001."""
    kong_upstream_url: str | None = None
    """Where Kong sends API requests: this installation's user-API port as Kong reaches it. Default:
    http://<host>:<api_port>."""
    kong_sync_seconds: float = 30.0
    """How often Kong's objects are compared with the APIs and repaired."""

    bus: str = "memory"
    """`memory` (one process) or an AMQP URL such as amqp://guest:guest@127.0.0.1:5672/."""
    store: str = "sqlite"
    """`sqlite` (under data_dir) or a PostgreSQL URL such as postgresql://127.0.0.1/dispatch."""
    namespace: str = "dispatch"
    """Prefix of every exchange and queue, and the PostgreSQL schema: installations sharing a
    broker or a database stay apart."""
    secret_key: str | None = None
    """The Fernet key sealing secret values; processes sharing a store must share it. Default: a
    key file created under data_dir."""
    secret_key_file: Path | None = None
    role: str = "all"
    """`all`, `gateway` (HTTP only) or `handlers` (consumers only)."""
    handlers: str = "all"
    """Comma-separated handler groups this process runs: images,functions,runs,apis,secrets,events,drivers,iam."""
    skip_auth: bool = False
    """Serve the management API without authentication (loopback addresses only)."""
    public_names: list[str] = Field(default_factory=list)
    """Host names this server answers to besides addresses and `localhost` (DNS-rebinding guard)."""
    oidc_issuer: str | None = None
    """An OpenID Connect issuer whose ID tokens identify users (its discovery document and JWKS)."""
    oidc_client_id: str | None = None
    """This installation's client id at the issuer: the audience its ID tokens must carry."""
    bootstrap_public_key: Path | None = None
    """PEM public key of a deploy-time bootstrap identity (`dispatch manage bootstrap`): it may
    create the first organization, service account and policy, and nothing once one exists."""
    cli_config: Path | None = None
    """The CLI config the first start writes its admin context into (default: $DISPATCH_CONFIG,
    else ~/.dispatch/config.json)."""
    max_json_depth: int = Field(default=MAX_DEPTH, ge=1, le=RECORD_DEPTH)
    """How deep a JSON body may nest (objects and arrays), and a run's output: deeper is a 400
    naming the path (for an output, a FunctionError)."""
    max_json_bytes: int = MAX_BYTES
    """The longest JSON text read as a body or an event's data: longer is a 413."""
    max_source_bytes: int = SOURCE_CAPS.max_bytes
    """What a function's source archive may unpack to, all its entries together: more is a 413,
    found while it is read, so an archive bomb stops there."""
    max_source_files: int = SOURCE_CAPS.max_files
    """Entries a function's source archive may hold: more is a 413."""
    max_source_path: int = SOURCE_CAPS.max_path
    """The longest entry name of a function's source archive, in characters: longer is a 400."""
    function_tmp_mb: int = 64
    """The size of /tmp in each function container (docker) or pod (kubernetes): in memory, counted
    in the function's memory, and its only writable place besides its unpacked source on Kubernetes."""
    kubernetes_network_policy: bool = True
    """Write a NetworkPolicy for the installation's function pods (needs the networkpolicies verbs)."""
    kubernetes_dispatch_namespace: str | None = None
    """Where Dispatch's own pods run, if not in kubernetes_namespace: functions reach no pod of it,
    and its callers' pods are looked for there."""
    kubernetes_caller_labels: list[dict[str, str]] | None = None
    """Labels of the pods that call functions, one mapping per kind of pod. Default: a Helm chart's
    app.kubernetes.io/name=dispatch with app.kubernetes.io/component gateway, and handlers."""
    kubernetes_protected_labels: list[dict[str, str]] | None = None
    """Labels of the pods functions may not reach. Default: app.kubernetes.io/name=dispatch with
    app.kubernetes.io/component gateway, handlers, rabbitmq and postgresql."""
    kubernetes_private_cidrs: list[str] | None = None
    """What functions may not reach by address (their egress is the rest: the internet). Default:
    the private, shared and link-local IPv4 and IPv6 ranges."""
    kubernetes_dns_labels: dict[str, str] | None = None
    """Labels of the cluster's DNS pods, which functions may query. Default: k8s-app=kube-dns."""
    kubernetes_registry: str | None = None
    """Where the Kubernetes runtime pushes the images it builds (those with packages), as a
    registry and path prefix, e.g. registry.example.com/dispatch; the cluster's nodes pull from it.
    Unset: an image with packages goes to ERROR."""
    kubernetes_registry_secret: str | None = None
    """A kubernetes.io/dockerconfigjson Secret in the build namespace: the builder pushes with it."""
    kubernetes_registry_insecure: bool = False
    """The registry speaks plain HTTP (a registry inside the cluster, a test registry)."""
    kubernetes_build_namespace: str | None = None
    """Where image build Jobs run; default kubernetes_namespace. The builder runs as root: the
    namespace's Pod Security level must allow `baseline`."""
    kubernetes_builder_image: str | None = None
    """The builder (a Kaniko executor); default gcr.io/kaniko-project/executor:v1.23.2."""
    kubernetes_build_timeout: float = Field(default=1200.0, gt=0)
    """Seconds an image build may take in the cluster."""
    kubernetes_build_memory_mb: int = Field(default=2048, gt=0)
    """The memory limit of an image build's pod."""

    @field_validator("run_retention", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return seconds_of(value) if isinstance(value, str) else value

    @property
    def database_path(self) -> Path:
        return self.data_dir / "dispatch.db"


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def seconds_of(text: str) -> float | None:
    """Seconds from `3600`, `90s`, `10m`, `12h`, `30d` or `2w`; None for an empty text."""
    if not text.strip():
        return None
    found = DURATION.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a duration: give seconds, or a number with s, m, h, d or w (30d)")
    return float(found[1]) * UNITS[found[2] or "s"]


def load_settings(config_file: Path | None = None, **flags: object) -> Settings:
    """Settings from, in order of precedence: flags given, DISPATCH_* environment variables, the
    YAML config file (keys as in Settings: bus, store, role, port…), defaults."""
    from_file: dict = {}
    if config_file is not None:
        try:
            from_file = yamlfiles.load(yamlfiles.read(config_file)) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark else ""
            raise ValueError(f"{config_file}{where}: {getattr(error, 'problem', None) or error}") from None
        if not isinstance(from_file, dict):
            raise ValueError(f"{config_file} must be a mapping of settings, e.g. 'bus: amqp://…'")
    from_env = Settings()
    env_values = {name: getattr(from_env, name) for name in from_env.model_fields_set}
    given = {name: value for name, value in flags.items() if value is not None}
    return Settings(**{**from_file, **env_values, **given})
