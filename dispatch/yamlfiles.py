"""YAML files people give the CLI and the server (`create -f`, `server --seed`, `--config-file`),
read within bounds.

PyYAML builds an alias as the very object its anchor built, so a file of a few hundred bytes can
describe a document of billions of nodes (the "billion laughs") that becomes real the moment it
is walked or sent as JSON: the CLI ran out of memory on one. Here a file is at most MAX_BYTES, and
a document whose aliases would add more than MAX_ALIAS_NODES nodes once expanded, or that holds
itself through an alias, is refused before anything is built from it, naming the line of the
alias that went past the bound. Nesting deeper than the parser's recursion is refused too, and
so is a value its tag cannot read (`!!int x`, `!!bool x`), on which PyYAML's constructors raise
errors of no YAML type. Everything read has a JSON form: a date stays the text written, and a
`!!binary` or `!!set` value is refused."""
from pathlib import Path
from typing import Any, Iterator

import yaml

MAX_BYTES = 10 * 1024 * 1024
MAX_ALIAS_NODES = 10_000


class Refused(yaml.MarkedYAMLError):
    """A document past a bound; `problem` says which, `problem_mark` where."""

    def __init__(self, problem: str, mark: yaml.Mark | None = None):
        super().__init__(problem=problem, problem_mark=mark)


def read(path: Path | str, max_bytes: int = MAX_BYTES) -> str:
    """A YAML file's text; Refused past `max_bytes` (without reading further)."""
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    return text_of(data, max_bytes)


def text_of(data: bytes, max_bytes: int = MAX_BYTES) -> str:
    if len(data) > max_bytes:
        raise Refused(f"the file is larger than {max_bytes // 2**20} MiB")
    return data.decode(errors="replace")


def load_all(text: str) -> Iterator[Any]:
    """The documents of a YAML stream, as yaml.safe_load_all, each checked before it is built."""
    loader = _Bounded(text)
    try:
        while loader.check_data():
            yield _next(loader)
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """The one document of a YAML text (None when empty), as yaml.safe_load."""
    loader = _Bounded(text)
    try:
        return _built(loader.get_single_data, loader)
    finally:
        loader.dispose()


def _next(loader: "_Bounded") -> Any:
    return _built(loader.get_data, loader)


def _built(build, loader: "_Bounded") -> Any:
    try:
        return build()
    except RecursionError:
        raise Refused("it is nested too deeply", loader.get_mark()) from None


class _Bounded(yaml.SafeLoader):
    def __init__(self, stream: str):
        super().__init__(stream)
        self._aliases: list[tuple[yaml.Node, yaml.Mark]] = []

    def compose_node(self, parent: Any, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self.anchors:
                self._aliases.append((self.anchors[event.anchor], event.start_mark))
        return super().compose_node(parent, index)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, LookupError, AttributeError, TypeError):
            if not isinstance(node, yaml.ScalarNode):
                raise
            # PyYAML's scalar constructors fail so on a value their tag cannot read (`!!int ''`,
            # `!!bool x`, `!!float x`)
            tag = node.tag.rsplit(":", 1)[-1]
            raise Refused(f"{node.value[:60]!r} is not a valid {tag}", node.start_mark) from None

    def compose_document(self) -> yaml.Node | None:
        self._aliases = []
        try:
            node = super().compose_document()
        except RecursionError:
            raise Refused("it is nested too deeply", self.get_mark()) from None
        if self._aliases and node is not None:  # a document with aliases has nodes
            _check_expansion(node, self._aliases)
        return node


def _timestamp_as_written(loader: _Bounded, node: yaml.ScalarNode) -> str:
    # JSON has no dates: `since: 2001-01-01` goes to the server as the text written, as Dispatch's
    # own CLI (Go's yaml.v2 into interface{}) sends it, even where it names no day (`2001-13-01`).
    return node.value


def _without_json_form(loader: _Bounded, node: yaml.Node) -> Any:
    raise Refused(f"a {node.tag.rsplit(':', 1)[-1]} value has no JSON form: write it as a string or a list",
                  node.start_mark)


_Bounded.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_written)
_Bounded.add_constructor("tag:yaml.org,2002:binary", _without_json_form)
_Bounded.add_constructor("tag:yaml.org,2002:set", _without_json_form)


def _check_expansion(root: yaml.Node, aliases: list[tuple[yaml.Node, yaml.Mark]]) -> None:
    sizes = _expanded_sizes(root, aliases)
    added = sizes[id(root)] - len(sizes)
    if added <= MAX_ALIAS_NODES:
        return
    total = 0
    for target, mark in aliases:  # noqa: B007 (read after the loop: the alias whose expansion went past the bound)
        total += sizes[id(target)]
        if total > MAX_ALIAS_NODES:
            break
    raise Refused(f"its aliases expand to more than {MAX_ALIAS_NODES} nodes (a YAML bomb?)", mark)


def _expanded_sizes(root: yaml.Node, aliases: list[tuple[yaml.Node, yaml.Mark]]) -> dict[int, int]:
    """Nodes each node stands for once every alias is expanded, by id; Refused when one holds itself."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if id(node) in open_nodes:
            mark = next((m for target, m in aliases if target is node), node.start_mark)
            raise Refused("an alias refers to a node that holds it, which would never end", mark)
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes and id(child) not in sizes:
                mark = next((m for target, m in aliases if target is child), child.start_mark)
                raise Refused("an alias refers to a node that holds it, which would never end", mark)
            stack.append((child, False))
    return sizes


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
