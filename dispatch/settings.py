"""One settings object, built in entry points from flags, environment (DISPATCH_*) and defaults."""
from pathlib import Path

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    api_port: int = 8081
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
    runtime: str = "local"
    """Where functions run: `local` (processes on this host), `docker` or `kubernetes`."""
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

    @property
    def database_path(self) -> Path:
        return self.data_dir / "dispatch.db"


def load_settings(config_file: Path | None = None, **flags: object) -> Settings:
    """Settings from, in order of precedence: flags given, DISPATCH_* environment variables, the
    YAML config file (keys as in Settings: bus, store, role, port…), defaults."""
    from_file: dict = {}
    if config_file is not None:
        from_file = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(from_file, dict):
            raise ValueError(f"{config_file} must be a mapping of settings, e.g. 'bus: amqp://…'")
    from_env = Settings()
    env_values = {name: getattr(from_env, name) for name in from_env.model_fields_set}
    given = {name: value for name, value in flags.items() if value is not None}
    return Settings(**{**from_file, **env_values, **given})
