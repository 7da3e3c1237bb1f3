"""API paths: exact paths, or templates whose `{name}` segments match any one path segment.

`/users/{id}` matches `/users/42` (params `{"id": "42"}`) but neither `/users` nor `/users/42/x`.
A placeholder is a whole segment, so a template translates one to one into a Kong 3.x regex
path (`~/users/(?<id>[^/]+)$`) and the built-in router and Kong answer the same requests."""
import re
from dataclasses import dataclass
from urllib.parse import unquote

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY = "{}"


class BadPath(ValueError):
    """The path cannot be an API path; the message says why."""


@dataclass(frozen=True)
class PathTemplate:
    uri: str
    segments: tuple[str, ...]
    """Literal segments, and `{}` where a placeholder stands."""
    names: tuple[str, ...]
    """Placeholder names, in order."""

    @classmethod
    def parse(cls, uri: str) -> "PathTemplate":
        if not uri.startswith("/"):
            raise BadPath(f"path {uri!r} must start with /")
        segments, names = [], []
        for segment in uri.split("/")[1:]:
            whole = PLACEHOLDER.fullmatch(segment)
            if whole:
                if whole.group(1) in names:
                    raise BadPath(f"path {uri!r} names the parameter {{{whole.group(1)}}} twice")
                names.append(whole.group(1))
                segments.append(_ANY)
            elif "{" in segment or "}" in segment:
                raise BadPath(f"path {uri!r}: a parameter is a whole segment named with letters, digits "
                              f"and _, such as /users/{{id}}")
            else:
                segments.append(segment)
        return cls(uri, tuple(segments), tuple(names))

    @classmethod
    def of_stored(cls, uri: str) -> "PathTemplate":
        """A stored path: one saved before templates existed (`/a{b}` was a plain path then)
        stays the exact path it was."""
        try:
            return cls.parse(uri)
        except BadPath:
            return cls(uri, tuple(uri.split("/")[1:]), ())

    @property
    def literal(self) -> bool:
        return not self.names

    @property
    def shape(self) -> str:
        """Templates of the same shape answer exactly the same paths, whatever their names."""
        return "/" + "/".join(self.segments)

    @property
    def specificity(self) -> tuple[int, ...]:
        """Sorts templates so that, of two matching one path, the one with a literal segment
        further left wins: `/users/me` before `/users/{id}`, `/a/{x}/c` before `/a/{x}/{y}`."""
        return tuple(0 if segment == _ANY else 1 for segment in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The parameters when `parts` (the request path split on /) fits this template."""
        if len(parts) != len(self.segments):
            return None
        params, names = {}, iter(self.names)
        for wanted, part in zip(self.segments, parts, strict=True):
            if wanted == _ANY:
                if not part:
                    return None
                params[next(names)] = unquote(part)
            elif wanted != part:
                return None
        return params

    def kong_path(self) -> str:
        """A Kong 3.x regex path answering the same requests (Kong's plain paths are prefixes)."""
        names = iter(self.names)
        body = "/".join(f"(?<{next(names)}>[^/]+)" if s == _ANY else re.escape(s) for s in self.segments)
        return f"~/{body}$"
