"""The editor model: a GraphSpec plus undo history, live validation and file handling.

No widgets here. Every edit is a command on ``self.undo`` (a QUndoStack), validation
(``compile_graph``) runs after each one, and views follow the ``changed`` signal::

    m = EditorModel()
    m.add_block("channel.awgn", "ch", pos=(200, 0))
    ok, reason = m.connect("enc", "z", "ch", "x")     # refused with the reason on a mismatch
    m.set_param("ch", "snr_db", "$snr_db")
    m.undo.undo()
    m.save("g.yaml")
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
from pathlib import Path

import yaml
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from flowgraph import registry
from flowgraph.block import Port
from flowgraph.compile import CompiledGraph, compile_graph
from flowgraph.errors import GraphError, RegistryError, SemflowError
from flowgraph.graph import (GRAPH_TYPE_PREFIX, Connection, GraphSpec, load_graph, loads_graph, parse_connection,
                            parse_endpoint)
from flowgraph.shapes import fmt
from flowgraph.yamlio import dump_yaml, plain

from . import commands as C
from .layout import auto_layout, block_size
from .roundtrip import render

NEW_GRAPH = "format: 1\nname: untitled\nvariables: {}\nblocks: {}\nconnections: []\n"
_SENTINEL_LINE = 987654321      # marks the trial connection in connect() checks
CLIPBOARD_KEY = "semflow-clipboard"


class EditorModel(QObject):
    #: what changed: "structure", "positions", "variables", "block:<name>", "file" (another graph),
    #: "saved" (same graph, re-read after a save), "errors"
    changed = Signal(str)
    validated = Signal()
    dirtyChanged = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.undo = QUndoStack(self)
        self.undo.cleanChanged.connect(self._on_clean)
        self.spec: GraphSpec = loads_graph(NEW_GRAPH, "untitled.yaml")
        self.path: Path | None = None
        # the file as read: saving edits this text (comments and layout kept), see roundtrip.py
        self._text: str | None = None
        self._base: dict | None = None
        self.recovered = False            # loaded from an autosave: dirty until saved
        self.compiled: CompiledGraph | None = None
        self.problems: list = []
        self.runtime_errors: dict[str, str] = {}   # block -> message (from the last run)
        self._port_cache: dict[str, tuple] = {}
        self.revalidate()

    # ---- state -------------------------------------------------------------------------
    def _on_clean(self, _clean: bool):
        try:
            self.dirtyChanged.emit(self.dirty)
        except RuntimeError:        # the stack emits while it is being destroyed
            pass

    @property
    def dirty(self) -> bool:
        return self.recovered or not self.undo.isClean()

    def positions(self) -> dict:
        """Layout, stored in the graph file under ``gui: positions:``."""
        if not isinstance(self.spec.gui, dict):
            self.spec.gui = {}
        pos = self.spec.gui.get("positions")
        if not isinstance(pos, dict):
            pos = self.spec.gui["positions"] = {}
        return pos

    def _edited(self, what: str) -> None:
        """Called by every command after it applied or reverted."""
        if what != "positions":
            self.revalidate()
        self.changed.emit(what)

    def revalidate(self) -> None:
        try:
            self.compiled = compile_graph(self.spec)
            self.problems = list(self.compiled.problems)
        except SemflowError as exc:       # compile raises only for whole-graph failures
            self.compiled = None
            self.problems = [self.spec.problem(0, str(exc))]
        exposed = self.exposed_inputs()
        if exposed:                       # a part edited on its own: its exposed inputs are fed
            self.problems = [p for p in self.problems  # by the graph that includes it
                             if not any(p.message.startswith(f"block '{b}' (") and
                                        p.message.endswith(f"required input '{port}' is not connected")
                                        for b, port in exposed)]
        self.validated.emit()

    def exposed_inputs(self) -> set:
        """(block, port) pairs that this graph's ``ports: inputs:`` expose."""
        out = set()
        for ref in ((self.spec.ports or {}).get("inputs") or {}).values():
            for r in (ref if isinstance(ref, list) else [ref]):
                ep = parse_endpoint(str(r))
                if ep:
                    out.add(ep)
        return out

    # ---- problems ------------------------------------------------------------------------
    def block_problems(self, name: str) -> list[str]:
        """The ``semflow validate`` lines that concern one block (inner blocks of a graph block too)."""
        return [str(p) for p in self.problems if p.block and p.block.split("/", 1)[0] == name]

    def graph_problems(self) -> list[str]:
        return [str(p) for p in self.problems if not p.block or p.block.split("/", 1)[0] not in self.spec.blocks]

    def set_runtime_error(self, block: str | None, message: str) -> None:
        """Put a run error on its block: the one named, else the blocks whose name or type
        the message quotes (``channel.awgn: ...``), else the graph (the log has it)."""
        names = [block.split("/", 1)[0]] if block else self.blocks_named_in(message)
        for n in names:
            self.runtime_errors[n] = message
        if names:
            self.changed.emit("errors")

    def blocks_named_in(self, message: str) -> list[str]:
        quoted = set(re.findall(r"'([A-Za-z_][\w/]*)'", message))
        named = [n for n in self.spec.blocks if n in {q.split("/", 1)[0] for q in quoted}]
        if named:
            return named
        types = {b.type for b in self.spec.blocks.values() if re.search(rf"(?<![\w.]){re.escape(b.type)}(?![\w])",
                                                                          message)}
        return [n for n, b in self.spec.blocks.items() if b.type in types]

    def clear_runtime_errors(self) -> None:
        if self.runtime_errors:
            self.runtime_errors.clear()
            self.changed.emit("errors")

    # ---- ports ---------------------------------------------------------------------------
    def block_class(self, name: str):
        b = self.spec.blocks.get(name)
        if b is None or b.is_graph:
            return None
        try:
            return registry.get(b.type)
        except RegistryError:
            return None

    def block_ports(self, name: str) -> tuple[dict, dict]:
        """(inputs, outputs) as {port: flowgraph.Port}; graph blocks map their exposed ports."""
        b = self.spec.blocks.get(name)
        if b is None:
            return {}, {}
        if not self.type_known(b.type):
            return self._ports_from_wires(name)
        if b.type not in self._port_cache:
            self._port_cache[b.type] = self._ports_of_type(b.type)
        return self._port_cache[b.type]

    def type_known(self, type_id: str) -> bool:
        if type_id.startswith(GRAPH_TYPE_PREFIX):
            return self.graph_file(type_id) is not None
        return registry.has(type_id)

    def _ports_from_wires(self, name: str) -> tuple[dict, dict]:
        """A block of an unknown type keeps the ports its wires name, so they stay in view."""
        ins = {c.dst_port: Port("any", doc="unknown block type") for c in self.spec.connections if c.dst == name}
        outs = {c.src_port: Port("any", doc="unknown block type") for c in self.spec.connections if c.src == name}
        return ins, outs

    def type_suggestions(self, type_id: str, n: int = 3) -> list[str]:
        """Registered types close to an unknown one (same last part first, then by spelling)."""
        known = list(registry.all_types())
        tail = type_id.split(".")[-1]
        same = [t for t in known if t.split(".")[-1] == tail]
        close = difflib.get_close_matches(type_id, known, n=n, cutoff=0.5)
        close += [t for t in known if t.split(".")[-1] in difflib.get_close_matches(tail, [k.split(".")[-1]
                                                                                          for k in known], n=n)]
        return list(dict.fromkeys(same + close))[:n]

    def block_size(self, name: str) -> tuple[float, float]:
        ins, outs = self.block_ports(name)
        return block_size(name, self.spec.blocks[name].type, ins, outs)

    def port_index(self, block: str, port: str, output: bool) -> int:
        ports = list(self.block_ports(block)[1 if output else 0])
        return ports.index(port) if port in ports else 0

    def layout(self, positions: dict | None = None) -> dict:
        sizes = {n: self.block_size(n) for n in self.spec.blocks}
        return auto_layout(self.spec, positions, sizes, self.port_index)

    def _ports_of_type(self, type_id: str) -> tuple[dict, dict]:
        if not type_id.startswith(GRAPH_TYPE_PREFIX):
            try:
                cls = registry.get(type_id)
            except RegistryError:
                return {}, {}
            return dict(cls.inputs), dict(cls.outputs)
        path = self.graph_file(type_id)
        if path is None:
            return {}, {}
        try:
            sub = load_graph(path)
        except GraphError:
            return {}, {}
        sides = []
        for direction, attr in (("inputs", "inputs"), ("outputs", "outputs")):
            ports = {}
            for port, ref in (sub.ports.get(direction) or {}).items():
                ep = parse_endpoint(str(ref[0] if isinstance(ref, list) else ref))
                inner = sub.blocks.get(ep[0]) if ep else None
                try:
                    cls = registry.get(inner.type) if inner and not inner.is_graph else None
                except RegistryError:
                    cls = None
                p = getattr(cls, attr, {}).get(ep[1]) if cls else None
                if p is not None:
                    ports[port] = p
            sides.append(ports)
        return sides[0], sides[1]

    def graph_file(self, type_id: str) -> Path | None:
        """The file of a ``graph:`` block type, resolved as the engine does: relative to the
        including file first, then to the working directory."""
        rel = type_id[len(GRAPH_TYPE_PREFIX):]
        return next((p for p in (Path(self.spec.path).parent / rel, Path(rel)) if p.is_file()), None)

    def _graph_type_for(self, path, folder: Path) -> str:
        rel = os.path.relpath(Path(path).resolve(), folder.resolve())
        return GRAPH_TYPE_PREFIX + Path(rel).as_posix()

    def _rebase_graph_types(self, folder: Path) -> None:
        """Sub-graph paths are saved relative to the including file (so the saved graph
        works from any working directory and wherever the folder is moved)."""
        for b in self.spec.blocks.values():
            f = self.graph_file(b.type) if b.is_graph else None
            if f is not None:
                b.type = self._graph_type_for(f, folder)
        self._port_cache.clear()

    def port_tooltip(self, block: str, port: str, output: bool) -> str:
        """Kind and shape of a port, dims resolved to numbers where the graph fixes them."""
        ins, outs = self.block_ports(block)
        p = (outs if output else ins).get(port)
        if p is None:
            return f"{block}.{port}"
        shape = p.shape_str()
        if self.compiled is not None and block in self.compiled.blocks:
            resolved = self.compiled.resolved_dims(block, port, output)
            if resolved is not None:
                shape = fmt(resolved)
                if resolved != p.shape:
                    shape += f"   declared {p.shape_str()}"
        lines = [f"{block}.{port}: {p.kind} {shape}" + (f"  [{p.tag}]" if p.tag else "")
                 + ("  (optional)" if p.optional else "")]
        if p.doc:
            lines.append(p.doc)
        return "\n".join(lines)

    def tap_names(self) -> dict[str, str]:
        """Every tap a run of this graph can publish: name -> kind ("complex", "real", ..., "tap", "rows")."""
        out = {"train.step": "rows", "eval.point": "rows", "train.loss": "real"}
        for name in self.spec.blocks:
            b = self.spec.blocks[name]
            if not b.enabled:
                continue
            _, outs = self.block_ports(name)
            for port, p in outs.items():
                out[f"{name}.{port}"] = p.kind
            cls = self.block_class(name)
            for tap in (getattr(cls, "taps", None) or {}):
                out[f"{name}.{tap}"] = "tap"
        return out

    # ---- editing ------------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        base = re.sub(r"\W", "_", base) or "block"
        if base[0].isdigit():
            base = "b_" + base
        if base not in self.spec.blocks:
            return base
        i = 2
        while f"{base}_{i}" in self.spec.blocks:
            i += 1
        return f"{base}_{i}"

    def add_block(self, type_id: str, name: str | None = None, pos=None, params: dict | None = None) -> str:
        if not type_id.startswith(GRAPH_TYPE_PREFIX):
            registry.get(type_id)                                 # RegistryError names close matches
            base = type_id.split(".", 1)[1]
        else:
            base = Path(type_id[len(GRAPH_TYPE_PREFIX):]).stem
            f = self.graph_file(type_id)
            if f is not None:             # a path relative to this graph's folder, as saved
                type_id = self._graph_type_for(f, Path(self.spec.path).parent)
        name = name or self.unique_name(base)
        if name in self.spec.blocks:
            raise GraphError(f"block '{name}' already exists")
        if pos is None:
            pos = self.free_position()
        self.undo.push(C.AddBlock(self, name, type_id, params or {}, pos))
        return name

    def free_position(self) -> tuple[float, float]:
        """Right of the rightmost block: where a block added without a position goes."""
        xs = [p[0] for n, p in self.positions().items() if n in self.spec.blocks]
        return (max(xs) + 220.0, 0.0) if xs else (0.0, 0.0)

    def relayout(self) -> None:
        """Auto-layout every block (one undoable move)."""
        self.move_blocks(self.layout({}))

    def delete_blocks(self, names) -> None:
        names = [n for n in names if n in self.spec.blocks]
        if not names:
            return
        self.undo.beginMacro("delete " + ", ".join(names))
        for n in names:
            self.undo.push(C.DeleteBlock(self, n))
        self.undo.endMacro()

    def move_blocks(self, new_positions: dict) -> None:
        pos = self.positions()
        moved = {n: p for n, p in new_positions.items()
                 if n in self.spec.blocks and [float(v) for v in pos.get(n, ())] != [float(v) for v in p]}
        if moved:
            self.undo.push(C.MoveBlocks(self, moved))

    def check_connection(self, src: str, src_port: str, dst: str, dst_port: str) -> str | None:
        """Why ``src.src_port -> dst.dst_port`` cannot be made, or None if it can.

        Compiles a copy of the graph with the connection added (replacing whatever feeds
        that input) and reports the problems that land on the trial connection: dtype
        kind or symbolic shape that cannot unify, unknown ports, cycles.
        """
        for b in (src, dst):
            if b not in self.spec.blocks:
                return f"no block '{b}'"
        if src == dst:
            return "a block cannot feed itself"
        key = (src, src_port, dst, dst_port)
        if any(C._conn_key(c) == key for c in self.spec.connections):
            return f"{src}.{src_port} -> {dst}.{dst_port} is already connected"
        src_outs, dst_ins = self.block_ports(src)[1], self.block_ports(dst)[0]
        if src_port not in src_outs:
            return f"block '{src}' has no output '{src_port}' (outputs: {', '.join(src_outs) or 'none'})"
        if dst_port not in dst_ins:
            return f"block '{dst}' has no input '{dst_port}' (inputs: {', '.join(dst_ins) or 'none'})"
        kept = [c for c in self.spec.connections if (c.dst, c.dst_port) != (dst, dst_port)]
        before = {p.message for p in compile_graph(self._trial(kept)).problems}
        after = compile_graph(self._trial(kept + [Connection(*key, line=_SENTINEL_LINE)])).problems
        for p in after:
            if p.line == _SENTINEL_LINE or (p.message not in before and
                                            (p.message.startswith("cycle") or " expects " in p.message)):
                return p.message
        return None

    def _trial(self, connections) -> GraphSpec:
        trial = copy.copy(self.spec)
        trial.connections = list(connections)
        return trial

    def connect(self, src: str, src_port: str, dst: str, dst_port: str) -> tuple[bool, str | None]:
        """Connect, replacing an existing feed of that input. Returns (ok, reason refused)."""
        reason = self.check_connection(src, src_port, dst, dst_port)
        if reason:
            return False, reason
        old = [C._conn_key(c) for c in self.spec.connections if (c.dst, c.dst_port) == (dst, dst_port)]
        self.undo.beginMacro(f"connect {src}.{src_port} -> {dst}.{dst_port}")
        for key in old:
            self.undo.push(C.Disconnect(self, key))
        self.undo.push(C.Connect(self, (src, src_port, dst, dst_port)))
        self.undo.endMacro()
        return True, None

    def disconnect(self, src: str, src_port: str, dst: str, dst_port: str) -> None:
        key = (src, src_port, dst, dst_port)
        if any(C._conn_key(c) == key for c in self.spec.connections):
            self.undo.push(C.Disconnect(self, key))

    def set_param(self, block: str, key: str, value) -> None:
        """Set a param (a literal or an expression such as ``"$snr_db"``); C.UNSET restores the default."""
        if self.spec.blocks[block].params.get(key, C.UNSET) != value:
            self.undo.push(C.SetParam(self, block, key, value))

    def reset_param(self, block: str, key: str) -> None:
        if key in self.spec.blocks[block].params:
            self.undo.push(C.SetParam(self, block, key, C.UNSET))

    def set_state(self, block: str, enabled: bool | None = None, bypass: bool | None = None) -> None:
        b = self.spec.blocks[block]
        for field, value in (("enabled", enabled), ("bypass", bypass)):
            if value is not None and getattr(b, field) != bool(value):
                self.undo.push(C.SetState(self, block, field, value))

    def set_type(self, block: str, type_id: str) -> None:
        registry.get(type_id)
        if self.spec.blocks[block].type != type_id:
            self.undo.push(C.SetType(self, block, type_id))

    def set_variable(self, name: str, value) -> None:
        if not re.match(r"^[A-Za-z_]\w*$", name or ""):
            raise GraphError(f"variable name {name!r} must be an identifier")
        if self.spec.variables.get(name, C.UNSET) != value or name not in self.spec.variables:
            self.undo.push(C.SetVariable(self, name, value))

    def remove_variable(self, name: str) -> None:
        if name in self.spec.variables:
            self.undo.push(C.SetVariable(self, name, C.UNSET))

    def set_section(self, key: str, value, text: str | None = None) -> None:
        """Replace ``train`` / ``evaluate`` / ``presets`` (or ``gui.<key>``) in one undo step."""
        current = self.spec.gui.get(key[4:], C.UNSET) if key.startswith("gui.") else getattr(self.spec, key)
        if current != value:
            self.undo.push(C.SetSection(self, key, value, text))

    # ---- hierarchical blocks ---------------------------------------------------------------
    def make_subgraph(self, names, path, block_name: str | None = None) -> str:
        """Move blocks into a new graph file with ``ports:`` inferred from the cut wires and
        put a graph block in their place (one undo step; the file is written at once).

        Every wire into the selection becomes an input port (one source feeding several
        inner inputs: one port), every wire out of it an output port; the variables the
        blocks use become the sub-graph's variables, passed in as params of the graph block.
        """
        names = [n for n in self.spec.blocks if n in set(names)]
        if not names:
            raise GraphError("make sub-graph: select some blocks first")
        inside = set(names)
        path = Path(path)
        cut_in, cut_out = {}, {}                  # outer endpoint -> port name
        ins, outs = {}, {}                        # port name -> inner endpoint(s)
        for c in self.spec.connections:
            if c.dst in inside and c.src not in inside:
                key = (c.src, c.src_port)
                if key not in cut_in:
                    port = _fresh(c.dst_port, ins)
                    cut_in[key] = port
                    ins[port] = []
                ins[cut_in[key]].append(f"{c.dst}.{c.dst_port}")
            elif c.src in inside and c.dst not in inside:
                key = (c.src, c.src_port)
                if key not in cut_out:
                    port = _fresh(c.src_port, outs)
                    cut_out[key] = port
                    outs[port] = f"{c.src}.{c.src_port}"
        used = _variables_used([self.spec.blocks[n].params for n in names], self.spec.variables)
        pos = self.positions()
        x0 = min((pos[n][0] for n in names if n in pos), default=0)
        y0 = min((pos[n][1] for n in names if n in pos), default=0)
        sub = {"format": 1, "name": path.stem,
               "description": f"made from {', '.join(names)} of {self.spec.name}",
               "variables": {v: plain(self.spec.variables[v]) for v in used},
               "blocks": {n: self.spec.blocks[n].to_dict() for n in names},
               "connections": [str(c) for c in self.spec.connections if c.src in inside and c.dst in inside],
               "ports": {"inputs": {p: (refs[0] if len(refs) == 1 else refs) for p, refs in ins.items()},
                         "outputs": outs},
               "gui": {"positions": {n: [pos[n][0] - x0, pos[n][1] - y0] for n in names if n in pos}}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(sub), encoding="utf-8")
        name = block_name or self.unique_name(path.stem)
        outer = [c for c in self.spec.connections if (c.src in inside) != (c.dst in inside)]
        train = copy.deepcopy(plain(self.spec.train))
        for st in train:                          # a trained block inside: train the graph block
            if isinstance(st.get("trainable"), list):
                st["trainable"] = list(dict.fromkeys(name if t in inside else t for t in st["trainable"]))
            if isinstance(st.get("loss"), str):   # losses name inner ports by their flattened path
                st["loss"] = re.sub(r"(" + "|".join(map(re.escape, names)) + r")\.(\w+)",
                                    lambda mt: f"{name}/{mt.group(1)}.{mt.group(2)}", st["loss"])
        self.undo.beginMacro(f"make graph block {name} from {', '.join(names)}")
        self.delete_blocks(names)
        self.add_block(GRAPH_TYPE_PREFIX + str(path), name, pos=(x0, y0), params={v: f"${v}" for v in used})
        for c in outer:
            if c.dst in inside:
                self.undo.push(C.Connect(self, (c.src, c.src_port, name, cut_in[(c.src, c.src_port)])))
            else:
                self.undo.push(C.Connect(self, (name, cut_out[(c.src, c.src_port)], c.dst, c.dst_port)))
        self.set_section("train", train)
        self.undo.endMacro()
        return name

    # ---- copy and paste -------------------------------------------------------------------
    def copy_blocks(self, names) -> str:
        """YAML text of the blocks, the connections among them and their positions."""
        names = [n for n in self.spec.blocks if n in set(names)]
        pos = self.positions()
        data = {CLIPBOARD_KEY: 1,
                "blocks": {n: self.spec.blocks[n].to_dict() for n in names},
                "connections": [str(c) for c in self.spec.connections if c.src in names and c.dst in names],
                "positions": {n: list(pos[n]) for n in names if n in pos}}
        return yaml.safe_dump(data, sort_keys=False)

    def paste(self, text: str, offset=(40.0, 40.0)) -> list[str]:
        """Add copied blocks (renamed where taken) with their internal connections; one undo step."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return []
        if not isinstance(data, dict) or CLIPBOARD_KEY not in data:
            return []
        taken = set(self.spec.blocks)
        rename = {}
        for n in data.get("blocks") or {}:
            new, stem, i = n, re.sub(r"_\d+$", "", n), 2
            while new in taken:
                new = f"{stem}_{i}"
                i += 1
            taken.add(new)
            rename[n] = new
        self.undo.beginMacro("paste " + ", ".join(rename.values()))
        for old, new in rename.items():
            b = data["blocks"][old]
            p = (data.get("positions") or {}).get(old, (0, 0))
            self.undo.push(C.AddBlock(self, new, b["type"], b.get("params") or {},
                                      (p[0] + offset[0], p[1] + offset[1]),
                                      b.get("enabled", True), b.get("bypass", False), b.get("doc", "")))
        for text_c in data.get("connections") or []:
            c = Connection(*_split_conn(text_c))
            self.undo.push(C.Connect(self, (rename[c.src], c.src_port, rename[c.dst], c.dst_port)))
        self.undo.endMacro()
        return list(rename.values())

    # ---- files ----------------------------------------------------------------------------
    def new_graph(self) -> None:
        self._load(loads_graph(NEW_GRAPH, "untitled.yaml"), None)

    def recover_untitled(self) -> None:
        """Load the autosave of an untitled graph (left by a crash) as unsaved changes."""
        text = autosave_path(None).read_text(encoding="utf-8")
        self._load(loads_graph(text, "untitled.yaml"), None, recovered=True)

    def open(self, path, recover: bool = False) -> None:
        """Open a graph file; ``recover`` reads its autosave instead (the file name stays)."""
        path = Path(path)
        if recover:
            spec = loads_graph(autosave_path(path).read_text(encoding="utf-8"), str(path))
        else:
            spec = load_graph(path)
        self._load(spec, path, recovered=recover)

    def _remember_file(self, path: Path | None) -> None:
        """Keep the file's text and its graph: the base that a save edits."""
        self._text = self._base = None
        if path is not None and path.is_file():
            try:
                self._text = path.read_text(encoding="utf-8")
                self._base = loads_graph(self._text, str(path)).to_dict()
            except (OSError, GraphError):
                self._text = self._base = None

    def _load(self, spec: GraphSpec, path: Path | None, recovered: bool = False) -> None:
        self.spec, self.path, self.recovered = spec, path, recovered
        self._remember_file(path)
        self._port_cache.clear()
        self.runtime_errors.clear()
        missing = self.layout({n: p for n, p in self.positions().items() if n in spec.blocks})
        self.positions().update(missing)             # layout is not an edit: the file stays clean
        self.undo.clear()
        self.undo.setClean()
        self.revalidate()
        self.changed.emit("file")
        self.dirtyChanged.emit(self.dirty)

    def save(self, path=None) -> Path:
        """Write the YAML (atomically) as an edit of the file's text: comments, order and
        layout of untouched lines stay (``gui/roundtrip.py``). Reload it so problem lines
        match ``semflow validate``."""
        path = Path(path or self.path or "")
        if not str(path) or path.is_dir():
            raise GraphError("save: no file name given")
        if path.suffix not in (".yaml", ".yml"):
            path = path.with_suffix(".yaml")
        if self.spec.name in ("untitled", "") and path.stem:
            self.spec.name = path.stem
        self._rebase_graph_types(path.parent)
        text = render(self._text, self._base, self.spec.to_dict(), str(path))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        old = self.path
        self.spec = load_graph(path)
        self.path, self.recovered = path, False
        self._remember_file(path)
        discard_autosave(old)
        discard_autosave(path)
        self.undo.setClean()
        self.revalidate()
        self.changed.emit("saved")
        self.dirtyChanged.emit(self.dirty)
        return path

    def discard_changes(self) -> None:
        """The user chose not to keep the edits: forget their recovery file too."""
        discard_autosave(self.path)

    def autosave(self) -> Path | None:
        """Write the recovery file (in the per-user state folder) if there are unsaved changes."""
        if not self.dirty:
            return None
        target = autosave_path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(self.spec.dumps(), encoding="utf-8")
        os.replace(tmp, target)
        return target

    @property
    def title(self) -> str:
        return (self.path.name if self.path else "untitled") + (" *" if self.dirty else "")


def _fresh(name: str, taken) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    return out


def _variables_used(values, variables: dict) -> list[str]:
    """Variables the values refer to (``$name``), with those their definitions need, in file order."""
    found: set[str] = set()
    todo = [values]
    while todo:
        for v in re.findall(r"\$([A-Za-z_]\w*)", str(plain(todo.pop()))):
            if v in variables and v not in found:
                found.add(v)
                todo.append(variables[v])
    return [v for v in variables if v in found]


def _split_conn(text: str) -> tuple:
    c = parse_connection(text)
    return c.src, c.src_port, c.dst, c.dst_port


def state_dir() -> Path:
    """Per-user state folder: ``$SEMFLOW_STATE_DIR``, else ``$XDG_STATE_HOME/semflow``
    (``~/.local/state/semflow``). Autosaves live here, never next to the graphs."""
    if os.environ.get("SEMFLOW_STATE_DIR"):
        return Path(os.environ["SEMFLOW_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "semflow"


def autosave_path(path) -> Path:
    """The recovery file of a graph file (``None``: the untitled graph), keyed by its absolute path."""
    folder = state_dir() / "autosave"
    if path is None:
        return folder / "untitled.yaml.autosave"
    path = Path(path).absolute()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    return folder / f"{path.stem}-{digest}.yaml.autosave"


def recovery_for(path) -> Path | None:
    """The autosave of ``path`` if it is newer than the file (a crash left unsaved edits)."""
    a = autosave_path(path)
    if not a.is_file():
        return None
    p = Path(path) if path is not None else None
    if p is not None and p.is_file() and p.stat().st_mtime >= a.stat().st_mtime:
        return None
    return a


def discard_autosave(path) -> None:
    try:
        autosave_path(path).unlink()
    except FileNotFoundError:
        pass
