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

from . import limits, schema
from .errors import GraphError, brief
from .yamlio import LineDict, LineList, dump_yaml, load_yaml, loads_yaml, plain

FORMAT_VERSION = 1
TOP_KEYS = tuple(schema.GRAPH.fields)       # the sections; flowgraph/schema.py owns their structure
BLOCK_KEYS = tuple(schema.BLOCK.fields)
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
    structural: bool = False     # found by the schema: later findings on its line are dropped

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
    broken_blocks: set = field(default_factory=set)    # blocks left out for a structural problem
    connections_broken: bool = False                   # some connection could not be read (reported)

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


def project_roots(top_graph: str | Path) -> list[Path]:
    """Folders sub-graphs may come from without ``--allow-outside-paths``: the top graph's
    folder, its project (the nearest folder above holding pyproject.toml or .git), and the
    working directory."""
    top = Path(top_graph).resolve().parent
    roots = [top]
    for d in (top, *top.parents):
        if (d / "pyproject.toml").is_file() or (d / ".git").exists():
            roots.append(d)
            break
    roots.append(Path.cwd().resolve())
    return roots


def resolve_subgraph(rel: str, including: str | Path, roots: list[Path] | None) -> Path:
    """The file a ``graph:REL`` block names, or a one-line GraphError saying why not.

    REL is relative to the including file (then, for paths the editor wrote, to the
    working directory). ``roots`` are the folders it must lie in (symlinks resolved);
    None allows any path (``--allow-outside-paths``)."""
    if len(rel) > limits.MAX_PATH_CHARS:
        raise GraphError(f"graph path is {len(rel)} characters long (limit {limits.MAX_PATH_CHARS})")
    if "\0" in rel or not rel.strip():
        raise GraphError(f"graph path {brief(rel)} is not a file name")
    if Path(rel).is_absolute() and roots is not None:
        raise GraphError(f"graph path '{rel}' is absolute: write it relative to the including file, "
                         f"or pass --allow-outside-paths")
    for candidate in (Path(including).parent / rel, Path(rel)):
        try:
            if not candidate.is_file():
                continue
            real = candidate.resolve()
        except (OSError, ValueError) as exc:   # a name too long for the file system, a loop of links
            raise GraphError(f"graph path {brief(rel)}: {getattr(exc, 'strerror', None) or exc}") from None
        if roots is not None and not any(real.is_relative_to(r) for r in roots):
            raise GraphError(f"graph path '{rel}' leads outside the graph's folder and project ({real}): "
                             f"pass --allow-outside-paths to allow it")
        return candidate
    raise GraphError(f"graph file {brief(rel)} not found (relative to {Path(including).parent or '.'})")


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
        raise GraphError(f"{path}:{data.line_of('format')}: graph format {brief(fmt)} is not supported "
                         f"(this engine reads format {FORMAT_VERSION})")
    return data


def graph_from_data(data, path: str = "<memory>") -> GraphSpec:
    """Build a GraphSpec from loaded YAML: structure first (:mod:`flowgraph.schema`),
    then the parts that need reading (connections). Problems are collected, not raised."""
    if data is None:
        raise GraphError(f"{path}: empty file, expected a graph")
    if not isinstance(data, dict):
        raise GraphError(f"{path}:1: a graph file must be a mapping with 'blocks:' and 'connections:', "
                         f"got {schema.got(data)}")
    if not isinstance(data, LineDict):   # built in code: give it line-dict behaviour
        data = loads_yaml(dump_yaml(data), path)
    data = _migrate(data, path)
    g = GraphSpec(path=path, raw=data)
    P = g.problems
    clean, findings = schema.check_graph(data)
    P.extend(Problem(path, f.line, f.message, structural=True) for f in findings)

    g.name = str(clean.get("name") or Path(path).stem)
    g.description = str(clean.get("description") or "")
    g.variables = clean.get("variables", LineDict())

    raw_blocks = data.get("blocks") if isinstance(data.get("blocks"), dict) else {}
    blocks = clean.get("blocks", LineDict())
    # a block whose entry failed the schema stays as a placeholder without a type, so the
    # connections and stages that name it are not reported a second time
    g.broken_blocks = {n for n in raw_blocks if isinstance(n, str) and _NAME.match(n) and n not in blocks}
    for name in raw_blocks:
        if name in g.broken_blocks:
            g.blocks[name] = BlockSpec(name=name, type="", line=raw_blocks.line_of(name))
    for name, entry in blocks.items():
        line = blocks.line_of(name)
        if isinstance(entry, str):          # shorthand  name: type.id
            entry = LineDict(type=entry)
            entry.line = line
        params = entry.get("params", LineDict())
        g.blocks[name] = BlockSpec(
            name=name, type=entry["type"], params=dict(params),
            enabled=entry.get("enabled", True), bypass=entry.get("bypass", False),
            doc=str(entry.get("doc") or ""), line=line,
            param_lines={k: params.line_of(k) for k in params})

    conns = clean.get("connections", LineList())
    raw_conns = data.get("connections")
    g.connections_broken = raw_conns is not None and (not isinstance(raw_conns, list) or len(raw_conns) != len(conns))
    for i, text in enumerate(conns):
        line = conns.line_of(i)
        c = parse_connection(text, line)
        if c is None:
            P.append(g.problem(line, f"connection {brief(text)} must look like 'src.port -> dst.port'"))
            g.connections_broken = True
            continue
        g.connections.append(c)

    g.train = list(clean.get("train", []))
    g.evaluate = clean.get("evaluate", LineDict())
    g.presets = clean.get("presets", LineDict())
    g.ports = clean.get("ports", LineDict())
    g.gui = clean.get("gui", LineDict())
    return g
