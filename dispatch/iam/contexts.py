"""The CLI's config file (contract §6.2), as both `dispatch` and a server's first start write it:
`{"current": …, "contexts": {name: {host, port, scheme, organization, serviceaccount,
jwtprivatekey, …}}}`, indented by 4, readable by its owner only (a context names a private key)."""
import json
import os
from pathlib import Path

WRITTEN_BY = "writtenBy"
"""Marks a context a server wrote: a later first start may replace it; the user's it never touches."""


def config_path(configured: Path | None = None) -> Path:
    """--config, else $DISPATCH_CONFIG, else ~/.dispatch/config.json."""
    return (configured or Path(os.environ.get("DISPATCH_CONFIG") or "~/.dispatch/config.json")).expanduser()


def load_config(path: Path) -> dict:
    """The config file as a dict; a missing or empty file is an empty config."""
    text = path.expanduser().read_text() if path.expanduser().exists() else ""
    config = json.loads(text) if text.strip() else {}
    config.setdefault("current", "")
    config.setdefault("contexts", {})
    return config


def save_config(path: Path, config: dict) -> None:
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(config, indent=4) + "\n")


def context_name(host: str, port: int) -> str:
    """Named after the host as Dispatch's CLI names them, with the port when it is not 8080."""
    name = host.lower().replace(".", "-").replace(":", "-").strip("[]")
    return name if port == 8080 else f"{name}-{port}"


def write_server_context(path: Path, name: str, context: dict, writer: str) -> str:
    """Add (or refresh) a context a server wrote, never one of the user's; make it current when
    nothing else is. Returns what happened, for the server to print."""
    config = load_config(path)
    existing = config["contexts"].get(name)
    if existing is not None and existing.get(WRITTEN_BY) is None:
        return (f"left your context {name} in {path} as it is: to use the new administrator run "
                f"`dispatch login --service-account {context['serviceaccount']} "
                f"--jwt-private-key {context['jwtprivatekey']}`")
    config["contexts"][name] = {**context, WRITTEN_BY: writer}
    switched = config["current"] in ("", name) or config["current"] not in config["contexts"]
    if switched:
        config["current"] = name
    save_config(path, config)
    where = "the current context" if switched else f"context {name} (switch with `dispatch context set {name}`)"
    return f"the administrator's identity is {where} of {path}"
