"""The graph file model: what a YAML graph says, before anything is evaluated.

``load_graph(path)`` reads a ``format: 1`` file into a :class:`GraphSpec` (blocks,
connections, variables, train stages, evaluate, presets, gui layout). Structural
problems are collected as :class:`Problem` lines instead of raised, so ``semflow
validate`` can report all of them at once. ``GraphSpec.to_dict()`` / ``save()`` write
the file back; loading what was saved gives the same graph.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GraphError
from .expr import is_expression
from .yamlio import LineDict, dump_yaml, load_yaml, loads_yaml, plain

FORMAT_VERSION = 1
TOP_KEYS = ("format", "name", "description", "variables", "blocks", "connections", "train",
            "evaluate", "presets", "ports", "gui")
BLOCK_KEYS = ("type", "params", "enabled", "bypass", "doc")
GRAPH_TYPE_PREFIX = "graph:"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENDPOINT = re.compile(r"^\s*([A-Za-z_][\w/]*)\.([A-Za-z_]\w*)\s*$")


@dataclass
class Problem:
    """One validation finding, rendered ``file:line: message``."""
    file: str
    line: int
    message: str
    block: str | None = None

    def __str__(self):
        loc = f"{self.file}:{self.line}" if self.line else self.file
        return f"{loc}: {self.message}"


@dataclass
class BlockSpec:
    name: str
    type: str
    params: dict = field(default_factory=dict)
    enabled: bool | str = True      # or an expression over variables, e.g. $use_pilots
    bypass: bool | str = False
    doc: str = ""
    line: int = 0
    param_lines: dict = field(default_factory=dict)

    @property
    def is_graph(self) -> bool:
        return self.type.startswith(GRAPH_TYPE_PREFIX)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"type": self.type}
        if self.params:
            d["params"] = plain(self.params)
        if self.enabled is not True:
            d["enabled"] = self.enabled
        if self.bypass is not False:
            d["bypass"] = self.bypass
        if self.doc:
            d["doc"] = self.doc
        return d


@dataclass
class Connection:
    src: str
    src_port: str
    dst: str
    dst_port: str
    line: int = 0

    def __str__(self):
        return f"{self.src}.{self.src_port} -> {self.dst}.{self.dst_port}"


def parse_endpoint(text: str):
    m = _ENDPOINT.match(text)
    return (m.group(1), m.group(2)) if m else None


def parse_connection(text: str, line: int = 0) -> Connection | None:
    if not isinstance(text, str) or "->" not in text:
        return None
    left, _, right = text.partition("->")
    a, b = parse_endpoint(left), parse_endpoint(right)
    if a is None or b is None:
        return None
    return Connection(a[0], a[1], b[0], b[1], line)


@dataclass
class GraphSpec:
    """A graph as written in its file (expressions unevaluated)."""
    path: str = "<memory>"
    name: str = "untitled"
    description: str = ""
    format: int = FORMAT_VERSION
    variables: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)          # name -> BlockSpec (file order)
    connections: list = field(default_factory=list)    # [Connection]
    train: list = field(default_factory=list)          # raw stage dicts
    evaluate: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)          # hierarchical: {"inputs": {..}, "outputs": {..}}
    gui: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)       # structural problems met while parsing
    raw: Any = None                                     # the LineDict as loaded (for line look-ups)

    # ---- line look-ups -------------------------------------------------------------
    def line_of(self, *keys) -> int:
        """Line of a nested key path in the loaded file, e.g. ("train", 0, "loss")."""
        node, line = self.raw, 0
        for k in keys:
            if isinstance(node, dict) and k in node:
                line = node.line_of(k) if isinstance(node, LineDict) else line
                node = node[k]
            elif isinstance(node, list) and isinstance(k, int) and k < len(node):
                line = node.line_of(k) if hasattr(node, "line_of") else line
                node = node[k]
            else:
                break
        return line

    def problem(self, line: int, message: str, block: str | None = None) -> Problem:
        return Problem(self.path, line, message, block)

    # ---- editing (used by the GUI and scripts) ---------------------------------------
    def add_block(self, name: str, type_id: str, params: dict | None = None) -> BlockSpec:
        if not _NAME.match(name):
            raise GraphError(f"block name {name!r} must be an identifier")
        if name in self.blocks:
            raise GraphError(f"block '{name}' already exists")
        spec = BlockSpec(name, type_id, dict(params or {}))
        self.blocks[name] = spec
        return spec

    def remove_block(self, name: str) -> None:
        self.blocks.pop(name)
        self.connections = [c for c in self.connections if name not in (c.src, c.dst)]
        self.gui.get("positions", {}).pop(name, None)

    def connect(self, src: str, src_port: str, dst: str, dst_port: str) -> Connection:
        c = Connection(src, src_port, dst, dst_port)
        self.connections.append(c)
        return c

    def disconnect(self, src: str, src_port: str, dst: str, dst_port: str) -> None:
        self.connections = [c for c in self.connections
                            if (c.src, c.src_port, c.dst, c.dst_port) != (src, src_port, dst, dst_port)]

    # ---- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        d: dict[str, Any] = {"format": self.format, "name": self.name}
        if self.description:
            d["description"] = self.description
        if self.variables:
            d["variables"] = plain(self.variables)
        if self.ports:
            d["ports"] = plain(self.ports)
        d["blocks"] = {n: b.to_dict() for n, b in self.blocks.items()}
        d["connections"] = [str(c) for c in self.connections]
        if self.train:
            d["train"] = plain(self.train)
        if self.evaluate:
            d["evaluate"] = plain(self.evaluate)
        if self.presets:
            d["presets"] = plain(self.presets)
        if self.gui:
            d["gui"] = plain(self.gui)
        return d

    def dumps(self) -> str:
        return dump_yaml(self.to_dict())

    def save(self, path: str | Path | None = None) -> Path:
        """Write the graph as YAML atomically (temp file + rename)."""
        path = Path(path or self.path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.dumps(), encoding="utf-8")
        tmp.replace(path)
        self.path = str(path)
        return path

    def semantic(self) -> dict:
        """Everything except file path and layout: two equal graphs compare equal here."""
        d = self.to_dict()
        d.pop("gui", None)
        return d


def load_graph(path: str | Path) -> GraphSpec:
    """Read a graph file. Raises GraphError only if the file cannot be a graph at all."""
    return graph_from_data(load_yaml(path), str(path))


def loads_graph(text: str, path: str = "<string>") -> GraphSpec:
    return graph_from_data(loads_yaml(text, path), path)


def _migrate(data, path):
    """Old format versions migrate here; unknown (future) versions are refused."""
    fmt = data.get("format", None)
    if fmt is None:
        raise GraphError(f"{path}:1: missing 'format:' (this engine reads format {FORMAT_VERSION})")
    if fmt != FORMAT_VERSION:
        raise GraphError(f"{path}:{data.line_of('format')}: graph format {fmt!r} is not supported "
                         f"(this engine reads format {FORMAT_VERSION})")
    return data


def _flag(value, default: bool):
    if isinstance(value, bool) or is_expression(value):
        return value
    return default


def graph_from_data(data, path: str = "<memory>") -> GraphSpec:
    if data is None:
        raise GraphError(f"{path}: empty file, expected a graph")
    if not isinstance(data, dict):
        raise GraphError(f"{path}:1: a graph file must be a mapping with 'blocks:' and 'connections:'")
    if not isinstance(data, LineDict):   # built in code: give it line-dict behaviour
        data = loads_yaml(dump_yaml(data), path)
    data = _migrate(data, path)
    g = GraphSpec(path=path, raw=data)
    P = g.problems

    for key in data:
        if key not in TOP_KEYS:
            P.append(g.problem(data.line_of(key), f"unknown top-level key '{key}' (known: {', '.join(TOP_KEYS)})"))
    g.name = str(data.get("name") or Path(path).stem)
    g.description = str(data.get("description") or "")

    def section(key, kind, default):
        val = data.get(key, default)
        if val is None:
            return default
        if not isinstance(val, kind):
            P.append(g.problem(data.line_of(key), f"'{key}' must be a {kind.__name__}"))
            return default
        return val

    g.variables = section("variables", dict, LineDict())
    for v in g.variables:
        if not isinstance(v, str) or not _NAME.match(v):
            P.append(g.problem(g.variables.line_of(v), f"variable name {v!r} must be an identifier"))

    blocks = section("blocks", dict, LineDict())
    for name, entry in blocks.items():
        line = blocks.line_of(name)
        if not isinstance(name, str) or not _NAME.match(name):
            P.append(g.problem(line, f"block name {name!r} must be an identifier (letters, digits, _)"))
            continue
        if isinstance(entry, str):          # shorthand  name: type.id
            entry = LineDict(type=entry)
            entry.line = line
        if not isinstance(entry, dict) or "type" not in entry:
            P.append(g.problem(line, f"block '{name}' needs a 'type:'", name))
            continue
        for k in entry:
            if k not in BLOCK_KEYS:
                P.append(g.problem(entry.line_of(k), f"block '{name}': unknown key '{k}' "
                                                     f"(known: {', '.join(BLOCK_KEYS)})", name))
        params = entry.get("params") or LineDict()
        if not isinstance(params, dict):
            P.append(g.problem(entry.line_of("params"), f"block '{name}': 'params' must be a mapping", name))
            params = LineDict()
        for flag in ("enabled", "bypass"):
            if flag in entry and not isinstance(entry[flag], bool) and not is_expression(entry[flag]):
                P.append(g.problem(entry.line_of(flag), f"block '{name}': '{flag}' must be true, false or an "
                                                        f"expression such as $use_x", name))
        g.blocks[name] = BlockSpec(
            name=name, type=str(entry["type"]), params=dict(params),
            enabled=_flag(entry.get("enabled", True), True), bypass=_flag(entry.get("bypass", False), False),
            doc=str(entry.get("doc") or ""), line=line,
            param_lines={k: params.line_of(k) for k in params} if isinstance(params, LineDict) else {})

    conns = section("connections", list, [])
    for i, text in enumerate(conns):
        line = conns.line_of(i) if hasattr(conns, "line_of") else 0
        c = parse_connection(text, line)
        if c is None:
            P.append(g.problem(line, f"connection {text!r} must look like 'src.port -> dst.port'"))
            continue
        g.connections.append(c)

    g.train = section("train", list, [])
    for i, stage in enumerate(g.train):
        if not isinstance(stage, dict):
            P.append(g.problem(g.line_of("train", i), "each train stage must be a mapping"))
    g.train = [s for s in g.train if isinstance(s, dict)]
    g.evaluate = section("evaluate", dict, LineDict())
    g.presets = section("presets", dict, LineDict())
    for pname, pval in g.presets.items():
        if not isinstance(pval, dict):
            P.append(g.problem(g.presets.line_of(pname), f"preset '{pname}' must be a mapping of overrides"))
    g.ports = section("ports", dict, LineDict())
    g.gui = section("gui", dict, LineDict())
    return g
