"""Safe YAML loading that remembers line numbers, and YAML dumping that keeps order.

``load_yaml`` uses a subclass of ``yaml.SafeLoader`` (so only plain data is built)
whose mappings are :class:`LineDict` and lists :class:`LineList`: both remember the
1-based line of each key/item, so validation can say ``graphs/x.yaml:14: ...``.
The loader also enforces the file budgets of :mod:`flowgraph.limits` (size, nesting,
aliases, expanded size, integer size), so a hostile file fails in one line, fast.
"""
from __future__ import annotations

import stat
from pathlib import Path

import yaml

from . import limits
from .errors import GraphError, brief


class LineDict(dict):
    """A dict that remembers its own line and each key's line."""
    line: int = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines: dict = {}

    def line_of(self, key, default: int | None = None) -> int:
        return self.lines.get(key, self.line if default is None else default)


class LineList(list):
    """A list that remembers its own line and each item's line."""
    line: int = 0

    def __init__(self, *a):
        super().__init__(*a)
        self.lines: list[int] = []

    def line_of(self, i: int) -> int:
        return self.lines[i] if i < len(self.lines) else self.line


class _LineLoader(yaml.SafeLoader):
    """SafeLoader with budgets: nesting depth, alias uses, expanded size, integer size.

    PyYAML builds an aliased node once and shares it, so a "billion laughs" file loads
    quickly but expands exponentially in whatever walks the result later; a list nested
    50,000 deep is quadratic in the scanner and recursive in the composer. Both are
    refused while the file is read, at the line where the budget ran out.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}      # id(node) -> values in it, aliases expanded
        self._total = 0                       # values in the file so far, aliases expanded
        self._open_anchors: set[str] = set()  # anchors of collections still being composed

    # -- scanner: flow brackets and indentation are where nesting starts ------------------
    def fetch_flow_collection_start(self, TokenClass):
        if self.flow_level >= limits.MAX_YAML_DEPTH:
            raise _too_deep(self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column):
        if len(self.indents) >= limits.MAX_YAML_DEPTH:
            raise _too_deep(self.get_mark())
        return super().add_indent(column)

    # -- composer: depth, aliases and the size they expand to -----------------------------
    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > limits.MAX_YAML_ALIASES:
                raise _refuse(f"more than {limits.MAX_YAML_ALIASES} aliases (*name) in one file",
                              event.start_mark)
            if event.anchor in self._open_anchors:
                raise _refuse(f"alias *{event.anchor} refers to a value that contains it", event.start_mark)
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event.start_mark)
            return node
        self._depth += 1
        if self._depth > limits.MAX_YAML_DEPTH:
            raise _too_deep(event.start_mark)
        self._count(1, event.start_mark)
        anchor = event.anchor if isinstance(event, yaml.CollectionStartEvent) else None
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes.get(id(n), 1) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
        self._sizes[id(node)] = size
        return node

    def _count(self, n: int, mark) -> None:
        """Values in the file so far, aliases expanded: refused as soon as over budget."""
        self._total += n
        if self._total > limits.MAX_YAML_VALUES:
            raise _refuse(f"the file expands to more than {limits.MAX_YAML_VALUES} values "
                          "(aliases count at every use)", mark)

    # -- constructor: integers that fit, no exotic types ----------------------------------
    def construct_object(self, node, deep=False):
        """A value a tag cannot make (`!!int notanint`, `!!bool maybe`) is a located YAML error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            tag = str(node.tag).replace(_TAG, "!!")
            value = node.value if isinstance(node, yaml.ScalarNode) else type(node.value).__name__
            raise _refuse(f"{tag} cannot be made from {brief(value, 40)} ({type(exc).__name__})",
                          node.start_mark) from None

    def construct_yaml_int(self, node):
        if not isinstance(node, yaml.ScalarNode):
            return super().construct_yaml_int(node)    # refuses it: "expected a scalar node"
        text = str(node.value)
        if len(text) > 30:
            raise _refuse(f"integer literal of {len(text)} characters is too large "
                          f"(limit +-2**{limits.MAX_INT.bit_length() - 1})", node.start_mark)
        value = super().construct_yaml_int(node)
        if abs(value) >= limits.MAX_INT:
            raise _refuse(f"integer {value} is too large (limit +-2**{limits.MAX_INT.bit_length() - 1})",
                          node.start_mark)
        return value

    def construct_yaml_timestamp(self, node):
        return self.construct_scalar(node)   # dates stay text (a description may hold one)

    def _refuse_tag(self, node):
        raise _refuse(f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed in graph "
                      "files (plain values, lists and mappings only)", node.start_mark)


_TAG = "tag:yaml.org,2002:"


def _refuse(problem: str, mark) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


def _too_deep(mark) -> yaml.MarkedYAMLError:
    return _refuse(f"nested deeper than {limits.MAX_YAML_DEPTH} levels", mark)


def _construct_mapping(loader, node):
    if not isinstance(node, yaml.MappingNode):    # e.g. `!!map [1, 2]`
        raise _refuse(f"tag {node.tag.replace(_TAG, '!!')} needs a mapping", node.start_mark)
    loader.flatten_mapping(node)
    d = LineDict()
    d.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise _refuse(f"a mapping key must be a plain value, not {type(key).__name__}",
                          key_node.start_mark) from None
        if key in d:
            raise _refuse(f"duplicate key {brief(key)}", key_node.start_mark)
        d[key] = loader.construct_object(value_node, deep=True)
        d.lines[key] = key_node.start_mark.line + 1
    return d


def _construct_sequence(loader, node):
    if not isinstance(node, yaml.SequenceNode):   # e.g. `!!seq {a: 1}`
        raise _refuse(f"tag {node.tag.replace(_TAG, '!!')} needs a list", node.start_mark)
    lst = LineList(loader.construct_object(n, deep=True) for n in node.value)
    lst.line = node.start_mark.line + 1
    lst.lines = [n.start_mark.line + 1 for n in node.value]
    return lst


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor(_TAG + "int", _LineLoader.construct_yaml_int)
_LineLoader.add_constructor(_TAG + "timestamp", _LineLoader.construct_yaml_timestamp)
for _tag in ("binary", "set", "omap", "pairs"):
    _LineLoader.add_constructor(_TAG + _tag, _LineLoader._refuse_tag)


def load_yaml(path: str | Path):
    """Load a YAML file safely with line information; one-line GraphError on failure.

    Files over ``limits.MAX_FILE_BYTES`` and anything that is not a regular file
    (a FIFO, /dev/zero) are refused before reading.
    """
    shown = brief_path(path)
    if len(str(path)) > limits.MAX_PATH_CHARS:
        raise GraphError(f"{shown}: path is {len(str(path))} characters long (limit {limits.MAX_PATH_CHARS})")
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise GraphError(f"{shown}: is a directory, expected a graph YAML file")
        if not stat.S_ISREG(st.st_mode):
            raise GraphError(f"{shown}: not a regular file, expected a graph YAML file")
        if st.st_size > limits.MAX_FILE_BYTES:
            raise GraphError(f"{shown}: file is {st.st_size} bytes, larger than a graph file may be "
                             f"({limits.MAX_FILE_BYTES} bytes)")
        with open(path, "rb") as f:
            data = f.read(limits.MAX_FILE_BYTES + 1)
        if len(data) > limits.MAX_FILE_BYTES:   # grew since stat()
            raise GraphError(f"{shown}: file is larger than a graph file may be ({limits.MAX_FILE_BYTES} bytes)")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise GraphError(f"{shown}: no such file") from None
    except UnicodeDecodeError as exc:
        raise GraphError(f"{shown}: not UTF-8 text (byte {exc.start}): expected a graph YAML file") from None
    except (OSError, ValueError) as exc:   # ValueError: a NUL byte in the path
        raise GraphError(f"{shown}: cannot read: {_os_reason(exc)}") from None
    return loads_yaml(text, str(path))


def loads_yaml(text: str, name: str = "<string>"):
    if len(text) > limits.MAX_FILE_BYTES:
        raise GraphError(f"{name}: text is {len(text)} characters, larger than a graph file may be "
                         f"({limits.MAX_FILE_BYTES})")
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader subclasses SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GraphError(f"{where}: invalid YAML: {' '.join(str(problem).split())}") from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:  # defence in depth
        raise GraphError(f"{name}: invalid YAML: {type(exc).__name__}: {brief(str(exc))}") from None


def brief_path(path) -> str:
    """A path for messages: long ones cut to a prefix with their length."""
    text = str(path)
    return text if len(text) <= 200 else f"{text[:80]}... ({len(text)} characters)"


def _os_reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())[:100]


def plain(obj):
    """Convert LineDict/LineList (and tuples) to plain dict/list recursively."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


class _Dumper(yaml.SafeDumper):
    pass


def _repr_flow_list(dumper, data):
    # short scalar lists read best inline: [0, 5, 10]
    flow = len(data) <= 12 and all(not isinstance(v, (dict, list, str)) or
                                   (isinstance(v, str) and len(v) <= 24 and " " not in v) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _repr_flow_list)


def dump_yaml(data) -> str:
    return yaml.dump(plain(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)
