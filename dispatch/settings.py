"""One settings object, built in entry points from flags, environment (DISPATCH_*) and defaults."""
from pathlib import Path

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
    max_workers_per_function: int = 4
    log_level: str = "info"

    bus: str = "memory"
    """`memory` (one process) or an AMQP URL such as amqp://guest:guest@127.0.0.1:5672/."""
    store: str = "sqlite"
    """`sqlite` (under data_dir) or a PostgreSQL URL such as postgresql://127.0.0.1/dispatch."""
    namespace: str = "dispatch"
    """Prefix of every exchange and queue, and the PostgreSQL schema: installations sharing a
    broker or a database stay apart."""
    role: str = "all"
    """`all`, `gateway` (HTTP only) or `handlers` (consumers only)."""
    handlers: str = "all"
    """Comma-separated handler groups this process runs: images,functions,runs,apis,secrets."""

    @property
    def database_path(self) -> Path:
        return self.data_dir / "dispatch.db"
