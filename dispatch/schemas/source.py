"""Function source archives: gzip-compressed tars, read as a stream and never allowed out of their folder.

Dispatch clients send archives whose end-of-archive blocks may be missing and whose single file may be
named `.//hello.py`; both are accepted. Entries that would land outside the target folder (absolute
names, `..`, links pointing outside, also through other links of the same archive), device or pipe
entries and names longer than `Caps.max_path` are refused with `Rejected`.

An archive is bounded as it is read (`Caps`): more than `max_bytes` once decompressed, or more than
`max_files` entries, is refused with `TooLarge` as soon as a header says so, before its data is
decompressed, and the decompressed stream itself stops at `max_bytes`: a gzip bomb costs the
reader no more than the cap, and nothing past it is written.
"""
import gzip
import io
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from dispatch.errors import Rejected, TooLarge
from dispatch.schemas import funcignore

_MAX_LINK_DEPTH = 40
_MAX_NAME_BYTES = 255
"""A file name's longest part: what file systems take (NAME_MAX)."""


@dataclass(frozen=True)
class Caps:
    max_bytes: int = 100 * 1024 * 1024
    """The archive's size once decompressed (its entries, their headers and padding)."""
    max_files: int = 10_000
    """Entries, folders and links included."""
    max_path: int = 1024
    """Characters of an entry's name."""

    @classmethod
    def of(cls, settings: Any) -> "Caps":
        return cls(settings.max_source_bytes, settings.max_source_files, settings.max_source_path)


DEFAULT_CAPS = Caps()


def pack(path: Path) -> bytes:
    """A gzip tar of a file (stored under its basename) or of a directory's contents (at the root),
    without what the directory's .funcignore names (see funcignore.py)."""
    path = Path(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if path.is_dir():
            kept = funcignore.filter_for(path)
            for child in sorted(path.iterdir()):
                tar.add(child, arcname=child.name, filter=kept)
        else:
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def validate(data: bytes, caps: Caps = DEFAULT_CAPS) -> list[str]:
    """The archive's file names, after the same checks as `extract`; nothing is written."""
    return _walk(data, dest=None, caps=caps)


def extract(data: bytes, dest: Path, caps: Caps = DEFAULT_CAPS) -> list[str]:
    """Unpack into `dest` (created if needed) and return the relative names of the files written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return _walk(data, dest=dest, caps=caps)


def _walk(data: bytes, dest: Path | None, caps: Caps) -> list[str]:
    links: dict[str, str] = {}
    names: list[str] = []
    stream = _Terminated(gzip.GzipFile(fileobj=io.BytesIO(data)), caps.max_bytes)
    last = None
    entries = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                last = member
                entries += 1
                _bounded(member, entries, caps)
                name = _check(member, links)
                if name is None:
                    continue
                if dest is not None:
                    _write(tar, member, name, dest)
                if not member.isdir():
                    names.append(name)
    except (tarfile.ReadError, tarfile.CompressionError, tarfile.StreamError, EOFError, zlib.error,
            gzip.BadGzipFile) as exc:
        raise Rejected(f"invalid source archive: not a readable gzip-compressed tar ({exc})") from exc
    if last is not None and last.offset_data + last.size > stream.length:
        _refuse(f"it ends inside entry '{last.name}'")  # cut short, not merely left unterminated
    if not names:
        raise Rejected("invalid source archive: it holds no files")
    return names


class _Terminated(io.RawIOBase):
    """The decompressed tar, read as a stream, completed at its end as a closed tar writer would
    have: the last member's data padded to a 512-byte block and the two end-of-archive blocks
    added. Go's tar.Writer, which Dispatch's CLI never closes, leaves both out; on a complete
    archive tarfile stops at the first end block and never reads what is added."""

    def __init__(self, stream: io.BufferedIOBase, limit: int):
        self._stream = stream
        self._limit = limit
        self._read = 0
        self._tail: bytes | None = None

    @property
    def length(self) -> int:
        """The archive's own bytes, without what completes it (once read to its end)."""
        return self._read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._tail is None:
            count = self._stream.readinto(buffer)
            if count:
                self._read += count
                if self._read > self._limit:
                    _too_large(f"it unpacks to more than {_size(self._limit)} (max_source_bytes)")
                return count
            self._tail = bytes(-self._read % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)
        count = min(len(buffer), len(self._tail))
        buffer[:count] = self._tail[:count]
        self._tail = self._tail[count:]
        return count


def _bounded(member: tarfile.TarInfo, entries: int, caps: Caps) -> None:
    """Refuse, from its header alone, an entry past the caps."""
    if entries > caps.max_files:
        _too_large(f"it holds more than {caps.max_files} entries (max_source_files)")
    if member.offset_data + member.size > caps.max_bytes:
        _too_large(f"it unpacks to more than {_size(caps.max_bytes)} (max_source_bytes): entry "
                   f"'{member.name[:200]}' of {_size(member.size)} ends past that")
    for name in (member.name, member.linkname):
        if len(name) > caps.max_path:
            _refuse(f"entry name '{name[:64]}…' is longer than {caps.max_path} characters (max_source_path)")
        if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in name.split("/")):
            _refuse(f"entry '{name[:200]}' has a name part longer than {_MAX_NAME_BYTES} bytes")


def _size(count: int) -> str:
    return f"{count // 2**20} MiB" if count >= 2**20 and count % 2**20 == 0 else f"{count} bytes"


def _check(member: tarfile.TarInfo, links: dict[str, str]) -> str | None:
    """The member's name inside the folder, None for entries naming the root; raise Rejected when unsafe."""
    raw = member.name
    if raw.startswith("/"):
        _refuse(f"entry '{raw}' has an absolute path")
    parts = _parts(raw)
    parent = _resolve(parts[:-1], links)
    if parent is None or (parts and parts[-1] == ".." and _resolve(parts, links) is None):
        _refuse(f"entry '{raw}' escapes the source folder")
    if not parts or parts[-1] == "..":
        return None
    if member.ischr() or member.isblk() or member.isfifo():
        _refuse(f"entry '{raw}' is a device or pipe, not a file")
    name = "/".join(parent + parts[-1:])
    if member.issym() or member.islnk():
        _check_link(member, parent, links)
    if member.issym():
        links[name] = member.linkname
    else:
        links.pop(name, None)
    return name


def _check_link(member: tarfile.TarInfo, parent: list[str], links: dict[str, str]) -> None:
    target = member.linkname
    # A symlink's target is relative to its folder; a hard link's names another entry of the archive.
    start = parent if member.issym() else []
    if target.startswith("/") or _resolve(start + target.split("/"), links) is None:
        _refuse(f"link '{member.name}' -> '{target}' points outside the source folder")
    if member.islnk():
        member.linkname = "/".join(_parts(target))


def _parts(name: str) -> list[str]:
    """Path components without the empty and `.` ones, so `.//hello.py` is `hello.py`."""
    return [part for part in name.split("/") if part not in ("", ".")]


def _resolve(parts: list[str], links: dict[str, str], depth: int = 0) -> list[str] | None:
    """Resolve a path inside the archive, following its symlinks; None when it leaves the root."""
    resolved: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is not None:
            if depth >= _MAX_LINK_DEPTH or target.startswith("/"):
                return None
            followed = _resolve(resolved[:-1] + target.split("/"), links, depth + 1)
            if followed is None:
                return None
            resolved = followed
    return resolved


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, dest: Path) -> None:
    member.name = name
    try:
        # The data filter re-checks every path against the real file system as a second line of defence.
        tar.extract(member, path=dest, set_attrs=not member.issym(), filter="data")
    except tarfile.FilterError as exc:
        _refuse(f"entry '{name}' is not allowed: {exc}")
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        # an entry that an earlier one of the same archive stands in the way of: a file named as a
        # folder written before it, or a file inside what an earlier entry wrote as a file
        _refuse(f"entry '{name}' cannot be unpacked over an earlier entry: {exc.strerror}")
    except KeyError:  # tarfile's lookup of a hard link's target among the entries before it
        _refuse(f"link '{name}' -> '{member.linkname}' names no earlier entry of the archive")


def _refuse(reason: str) -> NoReturn:
    raise Rejected(f"invalid source archive: {reason}")


def _too_large(reason: str) -> None:
    raise TooLarge(f"source archive is too large: {reason}")
