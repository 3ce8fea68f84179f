"""Safe YAML loading that remembers line numbers, and YAML dumping that keeps order.

``load_yaml`` uses a subclass of ``yaml.SafeLoader`` (so only plain data is built)
whose mappings are :class:`LineDict` and lists :class:`LineList`: both remember the
1-based line of each key/item, so validation can say ``graphs/x.yaml:14: ...``.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import GraphError


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
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    d = LineDict()
    d.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark) from None
        if key in d:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        d[key] = loader.construct_object(value_node, deep=True)
        d.lines[key] = key_node.start_mark.line + 1
    return d


def _construct_sequence(loader, node):
    lst = LineList(loader.construct_object(n, deep=True) for n in node.value)
    lst.line = node.start_mark.line + 1
    lst.lines = [n.start_mark.line + 1 for n in node.value]
    return lst


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str | Path):
    """Load a YAML file safely with line information; one-line GraphError on failure."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GraphError(f"{path}: is a directory, expected a graph YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphError(f"{path}: cannot read: {exc}") from None
    return loads_yaml(text, str(path))


def loads_yaml(text: str, name: str = "<string>"):
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader subclasses SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GraphError(f"{where}: invalid YAML: {problem}") from None


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
