"""Resource kinds and multi-document YAML files (`create|update|apply|delete -f`).

A file is read as a real YAML document stream and checked whole before anything is sent, so a
syntax error or a missing source file in document 5 does not leave documents 1-4 half applied.
Documents are then sent in file order, one at a time, stopping at the first error. A file is read
within bounds (dispatch/yamlfiles.py: its size, its aliases' expansion), so a YAML bomb is an
error naming the document and the line, not the end of the CLI's memory.
"""
import base64
import contextlib
import difflib
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

import typer
import yaml

from dispatch import yamlfiles
from dispatch.cli.client import DispatchClientError
from dispatch.cli.output import render, warn
from dispatch.schemas.source import pack

ALL_VERBS = frozenset({"create", "update", "apply", "delete"})


@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    label: str
    key: str  # the array holding this kind in `-o json` output of `-f` commands
    aliases: tuple[str, ...] = ()
    verbs: frozenset[str] = ALL_VERBS
    has_status: bool = True

    def path_of(self, name: str) -> str:
        return f"{self.path}/{urllib.parse.quote(name, safe='')}"


KINDS = {
    kind.name: kind
    for kind in (
        Kind("BaseImage", "/v1/baseimage", "base image", "baseImages",
             ("base-image", "base-images", "baseimage", "baseimages")),
        Kind("Image", "/v1/image", "image", "images", ("image", "images")),
        Kind("Function", "/v1/function", "function", "functions", ("function", "functions")),
        Kind("Secret", "/v1/secret", "secret", "secrets", ("secret", "secrets"), has_status=False),
        Kind("API", "/v1/api", "api", "api", ("api", "apis")),
        Kind("Subscription", "/v1/event/subscriptions", "subscription", "subscriptions",
             ("subscription", "subscriptions")),
        Kind(
            "DriverType", "/v1/event/drivertypes", "event driver type", "driverTypes",
            ("eventdrivertype", "eventdrivertypes", "event-driver-type", "event-driver-types",
             "eventdriver-type", "eventdriver-types"),
        ),
        Kind("Driver", "/v1/event/drivers", "event driver", "drivers",
             ("eventdriver", "eventdrivers", "event-driver", "event-drivers")),
        Kind("Application", "/v1/application", "application", "applications",
             ("application", "applications", "app", "apps")),
        Kind("Policy", "/v1/iam/policy", "policy", "policies"),
        Kind("ServiceAccount", "/v1/iam/serviceaccount", "service account", "serviceaccounts"),
        Kind("Organization", "/v1/iam/organization", "organization", "organizations",
             verbs=frozenset({"create", "update", "apply"})),
        Kind("ServiceInstance", "/v1/serviceinstance", "service instance", "serviceInstances",
             ("serviceinstance", "serviceinstances"), verbs=frozenset({"create", "delete"})),
    )
}
NOT_SUPPORTED = {"ServiceClass", "ServicePlan", "ServiceBinding"}


class ManifestError(DispatchClientError):
    """A YAML file that cannot be sent as it is."""


@dataclass
class Document:
    number: int
    kind: Kind
    body: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.body["name"]

    def __str__(self) -> str:
        return f"document {self.number} ({self.kind.name} {self.name})"


def encode_source(path: Path) -> str:
    """A function's source as sent in `source`: base64 of a gzip-compressed tar."""
    return base64.b64encode(pack(path)).decode("ascii")


def load(file: str, work_dir: Path, verb: str, tags: list[dict] | None = None) -> list[Document]:
    """Every document of `file` that `verb` applies to, with sources and manifests inlined."""
    location = file if _is_url(file) else str(work_dir / _expanded(file))
    base = location.rsplit("/", 1)[0] + "/" if _is_url(location) else work_dir
    documents = []
    try:
        text = yamlfiles.text_of(_read(location, limit=yamlfiles.MAX_BYTES))
    except yamlfiles.Refused as refused:
        raise ManifestError(f"{file}: {refused.problem}") from None
    for number, raw in _stream(text, file):
        document = _document(number, raw, verb)
        if document is None:
            continue
        if tags:
            document.body["tags"] = [*(document.body.get("tags") or []), *tags]
        if verb != "delete":
            _inline_files(document, base)
        documents.append(document)
    return documents


def process(documents: list[Document], send: Callable[[Document], Any], done: str, output: str | None) -> None:
    """Send each document in order, printing `<done> <Kind>: <name>` (or, with -o, all results)."""
    results: dict[str, list] = {kind.key: [] for kind in KINDS.values()}
    for document in documents:
        answer = send(document)
        results[document.kind.key].append(answer if answer is not None else document.body)
        if output is None:
            typer.echo(f"{done} {document.kind.name}: {document.name}")
            if isinstance(answer, dict) and answer.get("token"):  # a webhook driver's, shown this once
                typer.echo(f"Token of {document.kind.name} {document.name} (shown only now): {answer['token']}")
    if output is not None:
        render(results, output)


def _stream(text: str, file: str) -> Iterator[tuple[int, Any]]:
    documents = yamlfiles.load_all(text)
    number = 0
    while True:
        number += 1
        try:
            raw = next(documents)
        except StopIteration:
            return
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
            where = f", line {mark.line + 1}" if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ManifestError(f"{file}: invalid YAML in document {number}{where}: {problem}") from None
        if raw is not None:
            yield number, raw


def _document(number: int, raw: Any, verb: str) -> Document | None:
    if not isinstance(raw, dict):
        raise ManifestError(f"document {number}: expected a mapping with a kind, got {type(raw).__name__}")
    kind_name = raw.get("kind")
    if not kind_name:
        warn(f"skipping document {number}: it has no kind")
        return None
    if not isinstance(kind_name, str):
        raise ManifestError(f"document {number}: kind is a name such as Function, not {type(kind_name).__name__}")
    kind = KINDS.get(kind_name)
    if kind is None and kind_name not in NOT_SUPPORTED:
        raise ManifestError(f"document {number}: unknown kind {kind_name!r}{_suggestion(kind_name)}; "
                            f"the kinds are {', '.join(sorted(KINDS))}")
    if kind is None or verb not in kind.verbs:
        warn(f"skipping {kind_name} document {number}: not supported yet")
        return None
    if not raw.get("name"):
        raise ManifestError(f"document {number} ({kind_name}): missing name")
    return Document(number, kind, dict(raw))


def _suggestion(kind_name: str) -> str:
    """A misspelt kind is refused, naming the kind it most looks like."""
    spelled = {name.lower(): name for name in KINDS}
    close = difflib.get_close_matches(kind_name.lower(), spelled, n=1, cutoff=0.6)
    return f" (did you mean {spelled[close[0]]}?)" if close else ""


def _inline_files(document: Document, base: str | Path) -> None:
    body = document.body
    if document.kind.name == "Function":
        source_path = body.pop("sourcePath", None)
        if source_path is not None and not isinstance(source_path, str):
            raise ManifestError(f"{document}: sourcePath is a file or folder name, not {type(source_path).__name__}")
        if source_path and not body.get("source"):
            with _local(base, source_path, document) as path:
                if path.is_dir() and not body.get("handler"):
                    raise ManifestError(f"{document}: handler is required, source path {source_path} is a directory")
                body["source"] = encode_source(path)
    if document.kind.name == "Image":
        dependencies = body.get("runtimeDependencies") or {}
        if not isinstance(dependencies, dict):
            raise ManifestError(f"{document}: runtimeDependencies is a mapping, e.g. {{manifest: '@requirements.txt'}}")
        manifest = dependencies.get("manifest")
        if isinstance(manifest, str) and manifest.startswith("@"):
            with _local(base, manifest[1:], document) as path:
                body["runtimeDependencies"] = {**dependencies, "manifest": path.read_text(errors="replace")}


@contextlib.contextmanager
def _local(base: str | Path, name: str, document: Document) -> Iterator[Path]:
    """A file named by a document, relative to the base: a local path, or downloaded from a URL."""
    if isinstance(base, str):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / (PurePosixPath(urllib.parse.urlsplit(name).path).name or "source")
            path.write_bytes(_read(urllib.parse.urljoin(base, name), document))
            yield path
        return
    path = base / _expanded(name)
    if not path.exists():
        raise ManifestError(f"{document}: file {name} not found (looked for {path})")
    yield path


def _expanded(name: str) -> Path:
    """`~/x` and `~user/x` as a shell reads them; `~nobody/x`, of no known user, as it is written."""
    try:
        return Path(name).expanduser()
    except RuntimeError:
        return Path(name)


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _read(location: str, document: Document | None = None, limit: int = -1) -> bytes:
    """The file's bytes; with `limit`, one more at most, which tells it is longer."""
    where = f"{document}: " if document else ""
    more = limit + 1 if limit >= 0 else -1
    try:
        if _is_url(location):
            with urllib.request.urlopen(location, timeout=30) as response:
                return response.read(more)
        with open(location, "rb") as file:
            return file.read(more)
    except FileNotFoundError:
        raise ManifestError(f"{where}file {location} not found") from None
    except OSError as error:
        raise ManifestError(f"{where}cannot read {location}: {error}") from None
