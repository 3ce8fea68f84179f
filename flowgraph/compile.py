"""Compile a GraphSpec: evaluate variables, flatten graph blocks, rewire bypasses, validate.

``compile_graph(spec, preset=..., overrides=...)`` returns a :class:`CompiledGraph`
whose ``problems`` list holds *every* finding as a one-line ``file:line: message``.
The scheduler only builds graphs without problems; ``semflow validate`` prints them
(:func:`validate_graph`: the graph and each of its presets). The file's structure was
checked while loading (:mod:`flowgraph.schema`); here are the wiring checks, and the
value checks of :mod:`flowgraph.checks` (sweeps, stage variables, optimizer and
schedule settings, the loss on resolved shapes) are run in order.

Variables live in :class:`Scope` objects (one per graph file; a graph used as a block
gets a child scope whose variables are overridden by that block's params). Params
whose value is an expression are remembered, so runtime params can be re-evaluated
when a variable changes between frames (per-batch redraws, sweeps, GUI sliders).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from . import expr as E
from . import registry, schema
from .block import ParamValues, Source
from .checks import check_runtime_values, check_stage_settings, draws_reason, dynamic_closure, loss_reason, uses
from .errors import ExpressionError, GraphError, RegistryError, brief, did_you_mean
from .graph import (GRAPH_TYPE_PREFIX, Connection, GraphSpec, Problem, load_graph, parse_endpoint,
                    project_roots, resolve_subgraph)
from .limits import DEFAULT as DEFAULT_LIMITS, MAX_BLOCKS, MAX_GRAPH_DEPTH, Limits
from .losses import compile_loss, output_shapes
from .shapes import ELLIPSIS, DimUnifier, fmt
from .yamlio import brief_path

STAGE_KEYS = ("stage", "enabled", "trainable", "copy_weights", "init", "loss", "optimizer", "schedule", "steps",
              "batch", "accumulate", "ema", "grad_clip", "validate", "discriminator", "log_every",
              "checkpoint_every", "variables")
DISCRIMINATOR_KEYS = ("trainable", "loss", "optimizer", "schedule", "steps", "grad_clip")
VALIDATE_KEYS = ("every", "metric", "split", "keep", "mode", "at", "images", "batch", "restore_best")
INIT_KEYS = ("checkpoint", "blocks")
OPTIMIZERS = schema.OPTIMIZERS
SCHEDULES = schema.SCHEDULES


class Scope:
    """The variables of one graph file; a child scope's overrides are parent expressions."""

    def __init__(self, spec: GraphSpec, parent: "Scope | None" = None, parent_overrides=None,
                 problems: list | None = None, override_at=None):
        self.spec, self.parent = spec, parent
        self.parent_overrides = dict(parent_overrides or {})   # {var: raw value in parent scope}
        self.override_at = override_at      # the BlockSpec and file of the including graph block
        self.values: dict[str, Any] = {}
        self.failed: set = set()            # variables whose value could not be computed (reported)
        self.order: list[str] = []
        self._plan(problems if problems is not None else [])

    def _plan(self, problems):
        """Order variables by dependency; report unknown names and cycles once."""
        g = nx.DiGraph()
        raw = self.spec.variables
        for name, val in raw.items():
            g.add_node(name)
            if E.is_expression(val):
                try:
                    for dep in E.names_used(str(val)):
                        if dep in raw:
                            g.add_edge(dep, name)
                except ExpressionError as exc:
                    problems.append(self.spec.problem(raw.line_of(name), f"variable '{name}': {exc}"))
        try:
            self.order = list(nx.topological_sort(g))
        except nx.NetworkXUnfeasible:
            cyc = nx.find_cycle(g)
            names = " -> ".join([a for a, _ in cyc] + [cyc[0][0]])
            problems.append(self.spec.problem(raw.line_of(cyc[0][0]), f"variables form a cycle: {names}"))
            self.order = list(raw)

    def compute(self, overrides: dict | None = None, problems: list | None = None) -> dict:
        """Evaluate all variables into ``values``. ``overrides`` (root scope) replace raw values."""
        self.failed = set()
        self.values = self.evaluate(overrides, problems, failed=self.failed)
        return self.values

    def evaluate(self, overrides: dict | None = None, problems: list | None = None,
                 parent_values: dict | None = None, failed: set | None = None) -> dict:
        """The variables' values under ``overrides``, without changing ``values`` (validation
        tries sweep points and stage settings this way). A child scope reads its parent's
        ``parent_values`` (default: the parent's current values)."""
        raw = dict(self.spec.variables)
        vals: dict[str, Any] = {}
        if self.parent is not None:
            pv = self.parent.values if parent_values is None else parent_values
            for k, v in self.parent_overrides.items():
                try:
                    raw[k] = _eval_value(v, pv)
                except ExpressionError as exc:
                    if problems is None:
                        raise
                    block, file = self.override_at or (None, self.spec.path)
                    line = block.param_lines.get(k, block.line) if block is not None else 0
                    where = f"block '{block.name}': " if block is not None else ""
                    problems.append(Problem(file, line, f"{where}param '{k}': {exc}", block and block.name))
                    raw[k] = None
                    if failed is not None:
                        failed.add(k)
        for k, v in (overrides or {}).items():
            raw[k] = v
        for name in self.order + [k for k in raw if k not in self.order]:
            val = raw[name]
            try:
                vals[name] = _eval_value(val, vals)
            except ExpressionError as exc:
                line = _line_of(self.spec.variables, name)
                if problems is None:
                    raise ExpressionError(f"{self.spec.path}:{line}: variable '{name}': {exc}") from None
                problems.append(self.spec.problem(line, f"variable '{name}': {exc}"))
                vals[name] = None
                if failed is not None:
                    failed.add(name)
        return vals


def _line_of(mapping, key) -> int:
    """A key's line where the mapping came from a file (0 for mappings built in code)."""
    return mapping.line_of(key, 0) if hasattr(mapping, "line_of") and key in mapping else 0


def _eval_value(val, variables: dict):
    """Evaluate expression strings (also inside lists and dicts); literals pass through."""
    return E.resolve_value(val, variables)


def fixed(value):
    """A representative fixed value: distributions give their mean (for building blocks)."""
    return value.mean() if isinstance(value, E.Distribution) else value


@dataclass
class ResolvedBlock:
    name: str                       # flattened: "codec/enc" for blocks inside graph blocks
    cls: type
    params: ParamValues
    scope: Scope
    runtime_exprs: dict             # param -> raw expression (re-evaluated on variable changes)
    file: str
    line: int
    type_id: str = ""


@dataclass
class CompiledGraph:
    spec: GraphSpec
    root: Scope | None = None
    scopes: list = field(default_factory=list)
    blocks: dict = field(default_factory=dict)        # name -> ResolvedBlock (runnable, not bypassed)
    edges: list = field(default_factory=list)         # [(src, sport, dst, dport)]
    order: list = field(default_factory=list)         # topological block order
    dims: DimUnifier = field(default_factory=DimUnifier)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)        # not errors: e.g. deprecated block ids
    overrides: dict = field(default_factory=dict)
    preset: str | None = None
    dynamic_vars: set = field(default_factory=set)
    port_aliases: dict = field(default_factory=dict)  # "codec.image" -> ("codec/dec", "image")
    graph_outputs: dict = field(default_factory=dict)  # graph block -> its exposed outputs
    subgraphs: dict = field(default_factory=dict)      # resolved path -> GraphSpec of every graph block
    stages_enabled: list = field(default_factory=list)   # per train stage: its `enabled:` value

    @property
    def ok(self) -> bool:
        return not self.problems

    def resolve_port(self, block: str, port: str) -> tuple:
        """A port as losses and metrics may name it (``codec.image`` of a graph block)
        -> the inner block's port that produces it (``codec/dec``, ``image``)."""
        return self.port_aliases.get(f"{block}.{port}", (block, port))

    def port_shapes(self):
        """``port_shape`` for :func:`flowgraph.losses.compile_loss`: the declared shape of
        any output a loss may name, graph-block outputs through their inner blocks."""
        declared = output_shapes({n: rb.cls for n, rb in self.blocks.items()})
        return lambda block, port: declared(*self.resolve_port(block, port))

    def resolve_loss(self, loss):
        """A compiled loss whose port references name inner blocks (in place; returned)."""
        loss.ports = [self.resolve_port(b, p) for b, p in loss.ports]
        return loss

    def resolved_dims(self, block: str, port: str, output: bool) -> tuple | None:
        """A port's shape with symbols replaced by sizes where the graph fixes them."""
        rb = self.blocks.get(block)
        if rb is None:
            return None
        decl = (rb.cls.outputs if output else rb.cls.inputs)[port].shape
        if decl is None:
            return None
        return tuple(d if isinstance(d, int) or d == ELLIPSIS else (self.dims.size((block, d)) or d) for d in decl)


@dataclass
class _Node:
    """A block during compilation (may be a graph block before flattening)."""
    name: str
    spec: Any
    cls: type | None = None
    params: ParamValues | None = None
    ok: bool = False
    enabled: bool = True
    bypass: bool = False
    scope: Scope | None = None
    runtime_exprs: dict = field(default_factory=dict)
    exposed_in: dict = field(default_factory=dict)    # graph block: port -> [(inner, port)]
    exposed_out: dict = field(default_factory=dict)   # graph block: port -> (inner, port)
    file: str = ""


class _Compiler:
    def __init__(self, root_spec: GraphSpec, overrides: dict, dynamic: set, lim: Limits = DEFAULT_LIMITS):
        self.root_spec = root_spec
        self.limits = lim
        self.roots = project_roots(root_spec.path)
        self.loaded: dict[str, GraphSpec] = {}   # resolved path -> sub-graph read once
        self.paths: dict[tuple, tuple] = {}      # (including file, graph:path) -> (path, resolved)
        self.port_aliases: dict[str, tuple] = {} # "graph_block.port" -> (inner block, port)
        self.graph_outputs: dict[str, list] = {} # graph block -> its exposed outputs
        self.n_blocks = 0                       # blocks added so far, all levels
        self.over_budget = False
        self.overrides = overrides
        self.dynamic = set(dynamic)            # root variables redrawn or swept
        self.problems: list[Problem] = []
        self.notes: list[Problem] = []
        self.nodes: dict[str, _Node] = {}      # flattened name -> node (plain blocks only)
        self.conns: list[tuple] = []           # (src, sport, dst, dport, spec, line)
        self.scopes: list[Scope] = []
        self.dims = DimUnifier()
        self.flags: dict = {}                  # evaluated enabled/bypass expressions
        self.attempted: set = set()            # inputs whose connection failed a check (no cascade)

    # ---- graphs and scopes -------------------------------------------------------------
    def add_graph(self, spec: GraphSpec, prefix: str, parent: Scope | None, parent_overrides: dict,
                  stack: tuple, at: tuple | None = None) -> tuple[dict, dict]:
        """Add a graph's blocks (flattened under ``prefix``); return its exposed ports.
        ``at``: (BlockSpec, file) of the graph block that includes this graph."""
        self.problems.extend(spec.problems)
        scope = Scope(spec, parent, parent_overrides, self.problems, at)
        scope.compute(self.overrides if parent is None else None, self.problems)
        self.scopes.append(scope)
        local: dict[str, _Node] = {}
        for name, b in spec.blocks.items():
            self.n_blocks += 1
            if self.n_blocks > MAX_BLOCKS:
                if not self.over_budget:
                    self.over_budget = True
                    self.problems.append(spec.problem(b.line, f"the graph expands to more than {MAX_BLOCKS} "
                                                              f"blocks (graph blocks included in graph blocks)"))
                break
            full = prefix + name
            node = _Node(full, b, enabled=self.flag(b, "enabled", spec, scope),
                         bypass=self.flag(b, "bypass", spec, scope), scope=scope, file=spec.path)
            local[name] = node
            if b.is_graph:
                self.add_graph_block(node, spec, scope, stack)
            else:
                self.add_block(node, spec, scope)
                if node.enabled:
                    self.nodes[full] = node
        for c in spec.connections:
            self.add_connection(c, spec, local, prefix)
        # exposed ports (when this graph is used as a block)
        exposed_in, exposed_out = {}, {}
        for direction, target in (("inputs", exposed_in), ("outputs", exposed_out)):
            for port, ref in (spec.ports.get(direction) or {}).items():
                refs = ref if isinstance(ref, list) else [ref]
                eps = []
                for r in refs:
                    ep = parse_endpoint(str(r))
                    if ep is None or ep[0] not in local:
                        self.problems.append(spec.problem(spec.line_of("ports", direction, port),
                                                          f"exposed port '{port}' refers to unknown {r!r}"))
                        continue
                    eps.append((prefix + ep[0], ep[1]))
                if eps:
                    target[port] = eps if direction == "inputs" else eps[0]
        return exposed_in, exposed_out

    def flag(self, b, key: str, spec: GraphSpec, scope: Scope) -> bool:
        """enabled/bypass: a bool, or an expression over variables (ablations as presets)."""
        raw = getattr(b, key)
        default = key == "enabled"
        if isinstance(raw, bool):
            return raw
        try:
            val = _eval_value(raw, scope.values)
        except ExpressionError as exc:
            self.problems.append(spec.problem(b.line, f"block '{b.name}': {key}: {exc}", b.name))
            return default
        if not isinstance(val, bool):
            self.problems.append(spec.problem(b.line, f"block '{b.name}': {key} must evaluate to true or false, "
                                                      f"got {val!r}", b.name))
            return default
        if self.dynamic and _uses(raw, self.dynamic):
            self.problems.append(spec.problem(b.line, f"block '{b.name}': {key} uses '{_uses(raw, self.dynamic)}', "
                                                      f"which changes per batch or sweep point", b.name))
        self.flags[(spec.path, b.name, key)] = val
        return val

    def add_graph_block(self, node: _Node, spec: GraphSpec, scope: Scope, stack: tuple):
        b = node.spec
        rel = b.type[len(GRAPH_TYPE_PREFIX):]
        if self.over_budget:
            return
        if len(stack) > MAX_GRAPH_DEPTH:
            self.problems.append(spec.problem(b.line, f"block '{b.name}': graph blocks nested deeper than "
                                                      f"{MAX_GRAPH_DEPTH} levels", b.name))
            return
        try:
            where = (spec.path, rel)
            if where not in self.paths:
                path = resolve_subgraph(rel, spec.path, None if self.limits.allow_outside_paths else self.roots)
                self.paths[where] = (path, str(path.resolve()))
            path, key = self.paths[where]
        except GraphError as exc:
            self.problems.append(spec.problem(b.line, f"block '{b.name}': {exc}", b.name))
            return
        if key in stack:
            self.problems.append(spec.problem(b.line, f"block '{b.name}': graph '{brief_path(rel)}' includes itself",
                                              b.name))
            return
        if node.bypass:
            self.problems.append(spec.problem(b.line, f"block '{b.name}': a graph block cannot be bypassed", b.name))
        try:
            if key not in self.loaded:     # a graph included many times is read once
                self.loaded[key] = load_graph(path)
            sub = self.loaded[key]
        except GraphError as exc:
            self.problems.append(spec.problem(b.line, f"block '{b.name}': {exc}", b.name))
            return
        for k in b.params:
            if k not in sub.variables:
                self.problems.append(spec.problem(b.param_lines.get(k, b.line),
                                                  f"block '{b.name}': graph '{rel}' has no variable '{k}' "
                                                  f"(has: {', '.join(sub.variables) or 'none'})", b.name))
        if not node.enabled:
            return
        params = {k: v for k, v in b.params.items() if k in sub.variables}
        node.exposed_in, node.exposed_out = self.add_graph(sub, node.name + "/", scope, params, stack + (key,),
                                                           (b, spec.path))
        node.ok = True
        self.nodes[node.name] = node   # placeholder; connections are mapped through it

    def add_block(self, node: _Node, spec: GraphSpec, scope: Scope):
        b = node.spec
        if b.name in spec.broken_blocks:
            return        # its entry has a structural problem, reported by the schema
        try:
            cls = registry.get(b.type)
        except RegistryError as exc:
            self.problems.append(spec.problem(b.line, f"block '{b.name}': {exc}", b.name))
            return
        current = registry.renamed(b.type)
        if current:
            self.notes.append(spec.problem(b.line, f"note: block '{b.name}': type '{b.type}' is deprecated, "
                                                   f"use '{current}' (the old id works until format 2)", b.name))
        node.cls = cls
        if not node.enabled:
            return
        values, ok = ParamValues(), True
        for k, raw in b.params.items():
            line = b.param_lines.get(k, b.line)
            pspec = cls.params.get(k)
            if pspec is None:
                known = ", ".join(cls.params) or "none"
                self.problems.append(spec.problem(line, f"block '{b.name}' ({b.type}): unknown param '{k}' "
                                                        f"(params: {known})", b.name))
                ok = False
                continue
            if scope.failed and _uses(raw, scope.failed):
                ok = False          # follows a variable whose own problem is reported
                continue
            try:
                val = _eval_value(raw, scope.values)
            except ExpressionError as exc:
                self.problems.append(spec.problem(line, f"block '{b.name}': param '{k}': {exc}", b.name))
                ok = False
                continue
            if isinstance(val, E.Distribution):
                if not pspec.runtime:
                    self.problems.append(spec.problem(line, f"block '{b.name}': param '{k}' is fixed at build time "
                                                            f"and cannot take a distribution ({val!r})", b.name))
                    ok = False
                    continue
                reason = draws_reason(val, pspec)
                if reason:
                    self.problems.append(spec.problem(line, f"block '{b.name}' ({b.type}): param '{k}' {reason}",
                                                      b.name))
                    ok = False
                    continue
            if E.is_expression(raw) and pspec.runtime:
                node.runtime_exprs[k] = raw
            val = fixed(val)
            reason = pspec.check(val)
            if reason:
                self.problems.append(spec.problem(line, f"block '{b.name}' ({b.type}): param '{k}' {reason}", b.name))
                ok = False
                continue
            values[k] = pspec.coerce(val)
        for k, pspec in cls.params.items():
            if k not in values and k not in b.params:
                if pspec.required:
                    self.problems.append(spec.problem(b.line, f"block '{b.name}' ({b.type}): missing required "
                                                              f"param '{k}'", b.name))
                    ok = False
                else:
                    values[k] = pspec.default
        node.params, node.ok = values, ok
        if ok:
            try:
                for sym, size in cls.bind_dims(values).items():
                    self.dims.bind((node.name, sym), int(size), f"{b.name}.{sym}")
            except Exception as exc:  # a block's bind_dims failing is that block's problem
                self.problems.append(spec.problem(b.line, f"block '{b.name}': cannot derive port sizes: {exc}", b.name))

    def add_connection(self, c: Connection, spec: GraphSpec, local: dict, prefix: str):
        for end, port in ((c.src, c.src_port), (c.dst, c.dst_port)):
            if end not in local:
                close = [n for n in local if n.lower() == end.lower()]
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problems.append(spec.problem(c.line, f"connection '{c}': unknown block '{end}'{hint}"))
                return
        if not local[c.src].enabled or not local[c.dst].enabled:
            return    # GNU Radio semantics: a disabled block takes its connections with it
        self.conns.append((prefix + c.src, c.src_port, prefix + c.dst, c.dst_port, spec, c.line))

    # ---- after all files are read ------------------------------------------------------
    def _graph_node(self, name):
        n = self.nodes.get(name)
        return n if n is not None and (n.exposed_in or n.exposed_out or (n.spec.is_graph and n.ok)) else None

    def inner_output(self, name: str, port: str):
        """The plain block output a (possibly nested) graph block's output stands for:
        ``(name, port)`` unchanged for plain blocks, None if the graph does not expose it."""
        for _ in range(MAX_GRAPH_DEPTH + 2):
            g = self._graph_node(name)
            if g is None:
                return name, port
            if port not in g.exposed_out:
                return None
            name, port = g.exposed_out[port]
        return None

    def inner_inputs(self, name: str, port: str) -> list | None:
        """The plain block inputs a (possibly nested) graph block's input feeds."""
        g = self._graph_node(name)
        if g is None:
            return [(name, port)]
        if port not in g.exposed_in:
            return None
        out = []
        for t, tp in g.exposed_in[port]:
            out += self.inner_inputs(t, tp) or []
        return out

    def map_endpoints(self):
        """Route connections through graph blocks' exposed ports to the inner blocks
        (through every level of nesting); keep the outputs as aliases for losses."""
        out = []
        for src, sp, dst, dp, spec, line in self.conns:
            s, d = self.nodes.get(src), self.nodes.get(dst)
            if s is None or d is None:
                self.attempted.add((dst, dp))   # a block that failed to load; already reported
                continue
            inner, targets = self.inner_output(src, sp), self.inner_inputs(dst, dp)
            for found, block, port, side, exposed in ((inner, src, sp, "output", "exposed_out"),
                                                       (targets, dst, dp, "input", "exposed_in")):
                if found is None:
                    ports = getattr(self._graph_node(block), exposed)
                    self.problems.append(spec.problem(line, f"connection '{src}.{sp} -> {dst}.{dp}': graph block "
                                                            f"'{block}' exposes no {side} '{port}' "
                                                            f"({side}s: {', '.join(ports) or 'none'})"))
            if inner is None or targets is None:
                continue
            for t, tp in targets:
                out.append((*inner, t, tp, spec, line))
        for name in [n for n, nd in self.nodes.items() if nd.spec.is_graph]:
            for port in self.nodes[name].exposed_out:
                target = self.inner_output(name, port)
                if target is not None:
                    self.port_aliases[f"{name}.{port}"] = target
            self.graph_outputs[name] = sorted(self.nodes[name].exposed_out)
        for name in list(self.graph_outputs):
            del self.nodes[name]
        self.conns = out

    def check_ports(self):
        """Unknown ports, kind mismatches, inputs fed twice."""
        good, fed = [], {}
        for src, sp, dst, dp, spec, line in self.conns:
            s, d = self.nodes.get(src), self.nodes.get(dst)
            if s is None or d is None or s.cls is None or d.cls is None:
                self.attempted.add((dst, dp))   # fed by a block already reported: no cascade
                continue
            bad = False
            if sp not in s.cls.outputs:
                self.problems.append(spec.problem(line, f"block '{src}' ({s.cls.type_id}) has no output port '{sp}' "
                                                        f"(outputs: {', '.join(s.cls.outputs) or 'none'})", src))
                bad = True
            if dp not in d.cls.inputs:
                self.problems.append(spec.problem(line, f"block '{dst}' ({d.cls.type_id}) has no input port '{dp}' "
                                                        f"(inputs: {', '.join(d.cls.inputs) or 'none'})", dst))
                bad = True
            if bad:
                continue
            if (dst, dp) in fed:
                other = fed[(dst, dp)]
                self.problems.append(spec.problem(line, f"input {dst}.{dp} is connected twice: from {other} and "
                                                        f"from {src}.{sp}", dst))
                continue
            fed[(dst, dp)] = f"{src}.{sp}"
            ks, kd = s.cls.outputs[sp].kind, d.cls.inputs[dp].kind
            self.attempted.add((dst, dp))
            if "any" not in (ks, kd) and ks != kd:
                self.problems.append(spec.problem(line, f"kind mismatch: {src}.{sp} is {ks} but {dst}.{dp} "
                                                        f"expects {kd}", dst))
                continue
            good.append((src, sp, dst, dp, spec, line))
        self.conns = good

    def rewire_bypass(self):
        """A bypassed block becomes a wire: each output is fed by its matching input."""
        for name, node in list(self.nodes.items()):
            if not node.bypass or node.cls is None:
                continue
            cls = node.cls
            ins, outs = list(cls.inputs), list(cls.outputs)
            mapping = {o: o for o in outs if o in cls.inputs}
            if not mapping and len(ins) >= 1 and len(outs) == 1:
                mapping = {outs[0]: ins[0]}
            missing = [o for o in outs if o not in mapping]
            used_outs = {sp for s, sp, *_ in self.conns if s == name}
            if any(o in used_outs for o in missing):
                self.problems.append(Problem(node.file, node.spec.line,
                                     f"block '{name}' cannot be bypassed: no input matches output(s) "
                                     f"{', '.join(o for o in missing if o in used_outs)}", name))
                continue
            feeders = {dp: (s, sp) for s, sp, d, dp, *_ in self.conns if d == name}
            new = []
            for s, sp, d, dp, spec, line in self.conns:
                if d == name:
                    continue
                if s == name:
                    src_in = mapping.get(sp)
                    if src_in not in feeders:
                        self.problems.append(Problem(spec.path, line, f"bypassed block '{name}': its input "
                                                                      f"'{src_in}' is not connected", name))
                        continue
                    s, sp = feeders[src_in]
                new.append((s, sp, d, dp, spec, line))
            self.conns = new
            del self.nodes[name]

    def check_required(self):
        fed = {(d, dp) for _, _, d, dp, *_ in self.conns} | self.attempted
        for name, node in self.nodes.items():
            if node.cls is None or (node.scope is not None and node.scope.spec.connections_broken):
                continue      # its file's connections could not all be read: that is reported instead
            for port, pspec in node.cls.inputs.items():
                if not pspec.optional and (name, port) not in fed:
                    self.problems.append(Problem(node.file, node.spec.line,
                                                 f"block '{name}' ({node.cls.type_id}): required input '{port}' "
                                                 f"is not connected", name))

    def check_cycles(self) -> list:
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        lines = {}
        for s, _, d, _, spec, line in self.conns:
            g.add_edge(s, d)
            lines[(s, d)] = (spec, line)
        try:
            return list(nx.topological_sort(g))
        except nx.NetworkXUnfeasible:
            cyc = nx.find_cycle(g)
            spec, line = lines[cyc[-1]]
            names = " -> ".join([a for a, _ in cyc] + [cyc[0][0]])
            self.problems.append(Problem(spec.path, line, f"cycle: {names} (graphs must be acyclic)"))
            return []

    def unify_shapes(self):
        for s, sp, d, dp, spec, line in self.conns:
            S = self.nodes[s].cls.outputs[sp].shape
            D = self.nodes[d].cls.inputs[dp].shape
            if S is None or D is None:
                continue
            msg = self._unify_pair(s, sp, S, d, dp, D)
            if msg:
                self.problems.append(Problem(spec.path, line, msg, d))

    def _unify_pair(self, s, sp, S, d, dp, D) -> str | None:
        head = f"{s}.{sp} {fmt(S)} -> {d}.{dp} expects {fmt(D)}"
        pairs = []
        i = 0
        while i < len(S) and i < len(D) and ELLIPSIS not in (S[i], D[i]):
            pairs.append((S[i], D[i]))
            i += 1
        j = 1
        while j <= len(S) - i and j <= len(D) - i and ELLIPSIS not in (S[-j], D[-j]):
            pairs.append((S[-j], D[-j]))
            j += 1
        if ELLIPSIS not in S and ELLIPSIS not in D and len(S) != len(D):
            return f"{head}: rank {len(S)} vs {len(D)}"
        for a, b in pairs:
            if isinstance(a, int) and isinstance(b, int):
                if a != b:
                    return f"{head}: {a} but {b}"
            elif isinstance(a, int):
                c = self.dims.bind((d, b), a)
                if c:
                    return f"{head}: {a} but {b}={c[0]}"
            elif isinstance(b, int):
                c = self.dims.bind((s, a), b)
                if c:
                    return f"{head}: {a}={c[0]} but {b}"
            else:
                c = self.dims.union((s, a), (d, b))
                if c:
                    return f"{head}: {a}={c[0]} but {b}={c[1]}"
        return None


def compile_graph(spec: GraphSpec, preset: str | None = None, overrides: dict | None = None,
                  dynamic: set | None = None, limits: Limits | None = None) -> CompiledGraph:
    """Evaluate, flatten and validate ``spec``. Raises GraphError only for an unknown preset.

    ``limits`` (default :data:`flowgraph.limits.DEFAULT`) holds the run limits and
    whether sub-graphs may come from outside the project (``allow_outside_paths``)."""
    limits = limits or DEFAULT_LIMITS
    ov: dict = {}
    if preset is not None:
        if preset not in spec.presets:
            avail = ", ".join(spec.presets) or "none"
            raise GraphError(f"{spec.path}: unknown preset '{preset}' (presets: {avail})")
        ov.update(spec.presets[preset] or {})
    ov.update(overrides or {})

    dyn = set(dynamic or ()) | stage_dynamic_vars(spec) | sweep_vars(spec)
    comp = _Compiler(spec, ov, dyn, limits)
    comp.add_graph(spec, "", None, {}, (str(Path(spec.path).resolve()),))
    for k in (overrides or {}):
        if k not in spec.variables:
            comp.problems.append(Problem(spec.path, 0, f"--set {k}: unknown variable '{k}'"
                                                       + (did_you_mean(k, spec.variables) or
                                                          f" (variables: {', '.join(spec.variables) or 'none'})")))
    for pname, pval in spec.presets.items():
        for k in (pval or {}):
            if k not in spec.variables:
                comp.problems.append(spec.problem(spec.line_of("presets", pname, k),
                                                  f"preset '{pname}': unknown variable '{k}' "
                                                  f"(presets override variables: {', '.join(spec.variables) or 'none'})"))
    comp.map_endpoints()
    comp.check_ports()
    comp.rewire_bypass()
    comp.check_required()
    order = comp.check_cycles()
    comp.unify_shapes()

    cg = CompiledGraph(spec=spec, root=comp.scopes[0] if comp.scopes else None, scopes=comp.scopes,
                       dims=comp.dims, overrides=ov, preset=preset, dynamic_vars=dyn,
                       port_aliases=comp.port_aliases, graph_outputs=comp.graph_outputs, subgraphs=comp.loaded)
    for name in order:
        n = comp.nodes[name]
        if n.cls is None or not n.ok:
            continue
        cg.blocks[name] = ResolvedBlock(name, n.cls, n.params, n.scope, n.runtime_exprs, n.file,
                                        n.spec.line, n.cls.type_id)
    cg.order = [n for n in order if n in cg.blocks]
    cg.edges = [(s, sp, d, dp) for s, sp, d, dp, *_ in comp.conns]
    comp.problems.extend(_check_dynamic(comp, dyn))
    enabled = {n: comp.flags.get((spec.path, n, "enabled"), b.enabled) for n, b in spec.blocks.items()}
    bypassed = {n for n, b in spec.blocks.items() if comp.flags.get((spec.path, n, "bypass"), b.bypass) is True}
    comp.problems.extend(_check_train(spec, comp.nodes, cg, enabled, bypassed))
    comp.problems.extend(_check_evaluate(spec, comp.nodes, cg, limits))
    comp.problems.extend(_check_sweep_values(comp, spec))
    comp.problems.extend(_check_stage_values(comp, spec, cg))
    if not comp.problems:    # shapes are only meaningful in a graph that is otherwise sound
        comp.problems.extend(_check_losses(spec, cg))
    cg.problems = _dedupe(comp.problems)
    cg.notes = _dedupe(comp.notes)
    return cg


def validate_graph(spec: GraphSpec, preset: str | None = None, overrides: dict | None = None,
                   limits: Limits | None = None, with_graph: bool = False):
    """Every problem of ``spec`` as ``semflow validate`` reports it.

    With ``preset=None`` the graph is checked as written and then under each of its
    presets (each a set of overrides): a problem that only a preset causes is reported
    as ``file:line: preset 'quick': ...``. A given ``preset`` checks that one only.
    ``with_graph``: return ``(problems, the CompiledGraph as written or with preset)``."""
    cg = compile_graph(spec, preset=preset, overrides=overrides, limits=limits)
    problems = list(cg.problems)
    seen = {str(p) for p in problems}
    for name in (spec.presets if preset is None else ()):
        for p in compile_graph(spec, preset=name, overrides=overrides, limits=limits).problems:
            if str(p) in seen:
                continue
            seen.add(str(p))
            prefix = f"preset '{name}': "
            problems.append(p if p.message.startswith(prefix) else
                            Problem(p.file, p.line, prefix + p.message, p.block, p.structural))
    return (problems, cg) if with_graph else problems


def _dedupe(problems):
    """Each message once; a line with a structural (schema) problem reports only that."""
    structural = {(p.file, p.line) for p in problems if getattr(p, "structural", False)}
    seen, out = set(), []
    for p in problems:
        if str(p) in seen or (not getattr(p, "structural", False) and (p.file, p.line) in structural):
            continue
        seen.add(str(p))
        out.append(p)
    return out


def stage_dynamic_vars(spec: GraphSpec) -> set:
    out = set()
    for st in spec.train:
        out |= {k for k in st if k not in STAGE_KEYS}
        out |= set((st.get("variables") or {}))
    for name, val in spec.variables.items():
        if isinstance(val, str) and E.is_expression(val) and _is_distribution_text(val):
            out.add(name)
    return out


def _is_distribution_text(val: str) -> bool:
    return val.strip().lstrip("=").split("(")[0].strip() in E.DISTRIBUTIONS


def sweep_vars(spec: GraphSpec) -> set:
    sw = (spec.evaluate or {}).get("sweep") or {}
    return set(sw) if isinstance(sw, dict) else set()


def _check_dynamic(comp: _Compiler, dyn: set) -> list:
    """A param fixed at build time must not depend on a variable that changes per frame."""
    problems = []
    dyn_by_scope = dynamic_closure(comp.scopes, dyn)
    for name, node in comp.nodes.items():
        if node.cls is None or node.scope is None:
            continue
        d = dyn_by_scope.get(id(node.scope), set())
        for k, raw in node.spec.params.items():
            pspec = node.cls.params.get(k)
            if pspec is None or pspec.runtime:
                continue
            used = _uses(raw, d)
            if used:
                problems.append(Problem(node.file, node.spec.param_lines.get(k, node.spec.line),
                                        f"block '{name}': param '{k}' is fixed at build time but uses "
                                        f"'{used}', which changes per batch or per sweep point", name))
    return problems


_uses = uses


def _check_train(spec: GraphSpec, nodes: dict, cg: CompiledGraph, enabled: dict, bypassed: set) -> list:
    """Train stages: every key, its type and range, the blocks and ports it names.

    What needs the built blocks (parameter patterns, sub-module paths, checkpoint shapes)
    is checked when a run starts (``flowgraph.training.TrainingMixin.check_stages``)."""
    problems = []
    values = cg.root.values if cg.root else {}
    dynamic = cg.dynamic_vars
    cg.stages_enabled = []
    for i, st in enumerate(spec.train):
        label = _stage_label(st, i)

        def P(key, msg, _i=i, _label=label):
            keys = key if isinstance(key, tuple) else (key,)
            problems.append(spec.problem(spec.line_of("train", _i, *keys), f"train stage '{_label}': {msg}"))

        for k in st:
            if k not in STAGE_KEYS and k not in spec.variables:
                P(k, f"unknown key {brief(k)}: not a stage setting ({', '.join(STAGE_KEYS)}) nor a variable")
        on = _stage_flag(st, values, dynamic, P)
        cg.stages_enabled.append(on)
        if not on:
            continue          # a disabled stage may name blocks an ablation removed
        for k in (st.get("variables") or {}):
            if k not in spec.variables:
                P("variables", f"unknown variable '{k}'")
        overrides = {k: v for k, v in st.items() if k not in STAGE_KEYS}
        overrides.update(st.get("variables") or {})
        for k, v in overrides.items():
            try:
                _eval_value(v, values)
            except ExpressionError as exc:
                P(k, f"variable '{k}': {exc}")
        ref = lambda sel, key, what: _train_block_ref(spec, nodes, enabled, bypassed, sel, what,  # noqa: E731
                                                      lambda m, _k=key: P(_k, m))
        trainable = _train_selectors(st.get("trainable"), "trainable", P, ref)
        copies = st.get("copy_weights") or {}
        if not isinstance(copies, dict):
            P("copy_weights", "'copy_weights' maps a destination block to its source block, e.g. {proxy: enc}")
            copies = {}
        for dst, src in copies.items():
            ok = [ref(str(b), ("copy_weights", dst), "copy_weights: block") for b in (dst, src)]
            whole = ":" not in str(dst) and ":" not in str(src)
            if all(ok) and whole and dst in spec.blocks and src in spec.blocks \
                    and spec.blocks[dst].type != spec.blocks[src].type:
                P(("copy_weights", dst), f"copy_weights: '{dst}' ({spec.blocks[dst].type}) and '{src}' "
                                         f"({spec.blocks[src].type}) are different block types")
        _train_loss(st.get("loss"), "loss", nodes, spec, enabled, P, cg)
        # optimizer and schedule: every key the type reads, every value torch would refuse
        for line, msg in check_stage_settings(st, values, lambda sec, key, _i=i: _stage_line(spec, _i, sec, key)):
            problems.append(spec.problem(line, f"train stage '{label}': {msg}"))
        opt = st.get("optimizer") or {"type": "adam"}
        if isinstance(opt, dict) and opt.get("type", "adam") in OPTIMIZERS:
            _train_lr_by_block(opt, trainable, values, P, ref)
        _train_number(st, "steps", values, P, int, lo=0, default=0)
        _train_number(st, "accumulate", values, P, int, lo=1)
        if _train_number(st, "batch", values, P, int, lo=1) is not None and not any(
                n.cls is not None and issubclass(n.cls, Source) and "batch" in n.cls.params for n in nodes.values()):
            P("batch", "'batch' sets the training batch of the graph's source, but no source block has a "
                       "'batch' param")
        _train_number(st, "ema", values, P, float, lo=0.0, hi=1.0, open_range=True)
        if "init" in st:
            _train_init(st["init"], spec, values, P, ref)
        if "validate" in st:
            _train_validate(st["validate"], spec, nodes, values, P)
        if "discriminator" in st:
            _train_discriminator(st["discriminator"], trainable, spec, nodes, enabled, values, P, ref, cg)
    return problems


def _stage_flag(st: dict, values: dict, dynamic: set, P) -> bool:
    """``enabled:``: a bool or an expression over variables (an ablation as a preset)."""
    raw = st.get("enabled", True)
    if isinstance(raw, bool):
        return raw
    if not E.is_expression(raw):
        P("enabled", f"'enabled' must be true, false or an expression such as $use_npn, got {raw!r}")
        return True
    try:
        val = _eval_value(raw, values)
    except ExpressionError as exc:
        P("enabled", f"enabled: {exc}")
        return True
    if not isinstance(val, bool):
        P("enabled", f"enabled must evaluate to true or false, got {val!r}")
        return True
    used = _uses(raw, dynamic)
    if used:
        P("enabled", f"enabled uses '{used}', which changes per batch, per stage or per sweep point")
    return val


def _train_block_ref(spec, nodes, enabled, bypassed, sel: str, what: str, report) -> bool:
    """A ``block``, ``outer/inner`` or ``block:pattern`` names a block that runs in this graph."""
    from .selectors import blocks_named, split
    block, inner = split(sel)
    if ":" in sel and not inner:
        report(f"{what} '{sel}': empty parameter pattern after ':'")
        return False
    if block and blocks_named(block, nodes):
        return True
    top = block.split("/", 1)[0]
    if top in spec.blocks and not enabled.get(top, True):
        report(f"{what} '{block}' is disabled")
    elif top in spec.blocks and top in bypassed:
        report(f"{what} '{block}' is bypassed, so it has nothing to train or copy")
    elif top in spec.blocks and "/" in block:
        report(f"{what} '{block}' does not exist inside graph block '{top}' (or is disabled/bypassed there)")
    else:
        close = [n for n in spec.blocks if n.lower() == block.lower()]
        report(f"{what} '{block}' does not exist" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return False


def _train_selectors(raw, key, P, ref) -> list:
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) and t.strip() for t in raw):
        P(key, f"'{key}' must be a non-empty list of block names or block:parameter-patterns")
        return []
    return [t for t in raw if ref(t, key, f"{key} block")]


def _train_loss(loss, key, nodes, spec, enabled, P, cg: CompiledGraph):
    if not isinstance(loss, str) or not loss.strip():
        P(key, "needs a 'loss:' expression, e.g. mse(dec.image, src.image)")
        return
    try:
        classes = {n: node.cls for n, node in nodes.items() if node.cls is not None}
        declared = output_shapes(classes)
        refs = compile_loss(loss, port_shape=lambda b, p: declared(*cg.resolve_port(b, p))).ports
    except ExpressionError as exc:
        P(key, f"loss: {exc}")
        return
    for b, port in _resolve_refs(refs, cg, lambda m: P(key, m)):
        node = nodes.get(b)
        if b not in spec.blocks and b not in nodes:
            P(key, f"loss refers to unknown block '{b}'")
        elif node is None or node.cls is None:
            if b in enabled and not enabled[b]:
                P(key, f"loss refers to disabled block '{b}'")
        elif port not in node.cls.outputs:
            P(key, f"loss refers to unknown output '{b}.{port}' (outputs: {', '.join(node.cls.outputs)})")


def _train_number(d: dict, key, values, P, kind, lo=None, hi=None, open_range=False, default=None, path=()):
    """Check an optional int/float key (literal or expression); return its value or None."""
    if key not in d:
        return default
    where = path + (key,)
    name = ".".join(map(str, where))
    try:
        val = _eval_value(d[key], values)
    except ExpressionError as exc:
        P(where, f"{name}: {exc}")
        return None
    ok = isinstance(val, (int, float)) and not isinstance(val, bool) and (kind is float or isinstance(val, int))
    if ok and lo is not None:
        ok = val > lo if open_range else val >= lo
    if ok and hi is not None:
        ok = val < hi if open_range else val <= hi
    if not ok:
        rng = (f" in ({lo}, {hi})" if open_range else f" in [{lo}, {hi}]") if hi is not None else \
              (f" > {lo}" if open_range else f" >= {lo}") if lo is not None else ""
        P(where, f"'{name}' must be {'an integer' if kind is int else 'a number'}{rng}, got {brief(val)}")
        return None
    return val


def _train_lr_by_block(opt: dict, trainable: list, values, P, ref):
    lr_by = opt.get("lr_by_block")
    if lr_by is None:
        return
    if not isinstance(lr_by, dict) or not lr_by:
        P(("optimizer", "lr_by_block"), "optimizer.lr_by_block maps blocks (or block:patterns) to learning "
                                        "rates, e.g. {lamp: 1.0e-2}")
        return
    from .selectors import split
    tops = {split(t)[0] for t in trainable}
    for sel, lr in lr_by.items():
        where = ("optimizer", "lr_by_block", sel)
        if not ref(str(sel), where, "optimizer.lr_by_block: block"):
            continue
        block = split(str(sel))[0]
        if not any(block == t or block.startswith(t + "/") or t.startswith(block + "/") for t in tops):
            P(where, f"optimizer.lr_by_block: '{sel}' is not among this stage's trainable blocks "
                     f"({', '.join(sorted(tops)) or 'none'})")
        try:
            val = float(_eval_value(lr, values))
        except (ExpressionError, TypeError, ValueError):
            val = None
        if val is None or not val >= 0:
            P(where, f"optimizer.lr_by_block.{sel} must be a learning rate >= 0, got {lr!r}")


def resolve_checkpoint_path(path: str, spec: GraphSpec) -> Path | None:
    """``init.checkpoint``: absolute, else beside the graph file, else from the working directory."""
    p = Path(path)
    if p.is_absolute():
        return p if p.is_file() else None
    for cand in (Path(spec.path).parent / p, p):
        if cand.is_file():
            return cand
    return None


def _train_init(init, spec, values, P, ref):
    if not isinstance(init, dict):
        P("init", "init must be a mapping {checkpoint: PATH, blocks: {this_block: checkpoint_block}}")
        return
    for k in init:
        if k not in INIT_KEYS:
            P(("init", k), f"init: unknown key '{k}' (known: {', '.join(INIT_KEYS)})")
    try:
        path = _eval_value(init.get("checkpoint", ""), values)
    except ExpressionError as exc:
        P(("init", "checkpoint"), f"init.checkpoint: {exc}")
        return
    if not isinstance(path, str):
        P(("init", "checkpoint"), f"init.checkpoint must be a file path ('' for none), got {path!r}")
        return
    blocks = init.get("blocks")
    if isinstance(blocks, list) and all(isinstance(b, str) for b in blocks):
        blocks = {b: b for b in blocks}
    if not isinstance(blocks, dict) or not blocks:
        P(("init", "blocks"), "init.blocks maps this graph's blocks to the checkpoint's, e.g. {enc: enc, dec: dec} "
                              "(or a list of names that are the same in both)")
        blocks = {}
    for dst, src in blocks.items():
        ref(str(dst), ("init", "blocks"), "init: block")
        if not isinstance(src, str) or not src.strip():
            P(("init", "blocks"), f"init.blocks.{dst} must name a block of the checkpoint, got {src!r}")
    if path and resolve_checkpoint_path(path, spec) is None:
        P(("init", "checkpoint"), f"init: checkpoint '{path}' not found (a relative path is looked up beside "
                                  f"{spec.path}, then in the working directory)")


def _train_validate(v, spec, nodes, values, P):
    from .block import Sink
    if not isinstance(v, dict):
        P("validate", "validate must be a mapping, e.g. {every: 500, metric: psnr}")
        return
    try:
        v = {**v, **{k: _eval_value(v[k], values) for k in ("metric", "split", "keep", "mode", "restore_best")
                     if k in v}}
    except ExpressionError as exc:
        P("validate", f"validate: {exc}")
        return
    for k in v:
        if k not in VALIDATE_KEYS:
            P(("validate", k), f"validate: unknown key '{k}' (known: {', '.join(VALIDATE_KEYS)})")
    if "every" not in v:
        P("validate", "validate needs 'every: N' (training steps between validations)")
    _train_number(v, "every", values, P, int, lo=1, path=("validate",))
    _train_number(v, "images", values, P, int, lo=1, path=("validate",))
    _train_number(v, "batch", values, P, int, lo=1, path=("validate",))
    m = v.get("metric")
    node = nodes.get(m) if isinstance(m, str) else None
    if not isinstance(m, str) or not m:
        P("validate", "validate needs 'metric: SINK' (a sink block, e.g. psnr)")
    elif node is None or node.cls is None:
        P(("validate", "metric"), f"validate.metric: unknown block '{m}'")
    elif not issubclass(node.cls, Sink):
        P(("validate", "metric"), f"validate.metric: block '{m}' ({node.cls.type_id}) is not a sink")
    for key, choices in (("split", ("val", "test")), ("keep", ("best", "none")), ("mode", ("max", "min"))):
        if key in v and v[key] not in choices:
            P(("validate", key), f"validate.{key} must be one of {', '.join(choices)}, got {v[key]!r}")
    if "restore_best" in v and not isinstance(v["restore_best"], bool):
        P(("validate", "restore_best"), "validate.restore_best must be true or false")
    if v.get("restore_best") and v.get("keep", "best") != "best":
        P(("validate", "restore_best"), "validate.restore_best needs keep: best")
    at = v.get("at", {})
    if not isinstance(at, dict):
        P(("validate", "at"), "validate.at maps variables to the values to validate at, e.g. {snr_db: 10}")
    else:
        for k in at:
            if k not in spec.variables:
                P(("validate", "at", k), f"validate.at: unknown variable '{k}'")


def _train_discriminator(d, generator, spec, nodes, enabled, values, P, ref, cg):
    if not isinstance(d, dict):
        P("discriminator", "discriminator must be a mapping {trainable: [...], loss: ..., optimizer: ..., steps: N}")
        return
    key = lambda k: ("discriminator", k)  # noqa: E731
    sub = lambda k, msg: P(key(k), f"discriminator: {msg}")  # noqa: E731
    for k in d:
        if k not in DISCRIMINATOR_KEYS:
            sub(k, f"unknown key '{k}' (known: {', '.join(DISCRIMINATOR_KEYS)})")
    dref = lambda sel, where, what: ref(sel, ("discriminator",) + (where if isinstance(where, tuple)  # noqa: E731
                                                                   else (where,)), f"discriminator: {what}")
    trainable = _train_selectors(d.get("trainable"), "trainable", lambda k, m: sub(k, m), dref)
    from .selectors import split
    shared = {split(t)[0] for t in trainable} & {split(t)[0] for t in generator}
    if shared:
        sub("trainable", f"blocks {sorted(shared)} are trained by both the generator and the discriminator")
    _train_loss(d.get("loss"), key("loss"), nodes, spec, enabled, lambda k, m: P(k, f"discriminator: {m}"), cg)
    where = lambda sec, k: ("discriminator", sec) + ((k,) if k is not None else ())  # noqa: E731
    for keys, msg in check_stage_settings(d, values, where):       # (keys instead of a line: P finds it)
        P(keys, f"discriminator.{msg}")
    opt = d.get("optimizer") or {"type": "adam"}
    if isinstance(opt, dict) and opt.get("type", "adam") in OPTIMIZERS:
        _train_lr_by_block(opt, trainable, values, lambda k, m: P(("discriminator",) + k, f"discriminator: {m}"), dref)
    _train_number(d, "steps", values, P, int, lo=1, path=("discriminator",))
    _train_number(d, "grad_clip", values, P, float, lo=0.0, path=("discriminator",))


def _stage_label(st: dict, i: int) -> str:
    label = str(st.get("stage", f"#{i + 1}"))
    return label if len(label) <= 40 else label[:40] + "..."


def _stage_line(spec: GraphSpec, i: int, section: str, key) -> int:
    return spec.line_of("train", i, section, key) if key is not None else spec.line_of("train", i, section)


def _resolve_refs(refs, cg: CompiledGraph, report) -> list:
    """Port references of a loss with graph-block outputs replaced by the inner blocks'
    (``codec.image`` -> ``codec/dec.image``); a port a graph block does not expose is reported."""
    out = []
    for b, port in refs:
        if b in cg.graph_outputs and f"{b}.{port}" not in cg.port_aliases:
            report(f"loss refers to '{b}.{port}', but graph block '{b}' exposes no output '{port}' "
                   f"(outputs: {', '.join(cg.graph_outputs[b]) or 'none'})")
            continue
        out.append(cg.resolve_port(b, port))
    return out


def _check_evaluate(spec: GraphSpec, nodes: dict, cg: CompiledGraph, limits: Limits) -> list:
    """evaluate: sweep variables and size, metric blocks, Monte-Carlo settings (keys and
    their types: the schema)."""
    problems = []
    ev = spec.evaluate or {}
    problems += _check_monte_carlo(spec, nodes, ev, cg.root.values if cg.root else {})
    cbr = ev.get("cbr", True)
    if not (cbr is True or cbr is False or (isinstance(cbr, list) and all(isinstance(c, str) for c in cbr))):
        problems.append(spec.problem(spec.line_of("evaluate", "cbr"),
                                     "evaluate.cbr must be true, false or a list of input ports such as [ch.x]"))
    sweep = ev.get("sweep") or {}
    if not isinstance(sweep, dict):
        problems.append(spec.problem(spec.line_of("evaluate", "sweep"), "evaluate.sweep must map variables to lists"))
        sweep = {}
    for k, vals in sweep.items():
        if k not in spec.variables:
            problems.append(spec.problem(spec.line_of("evaluate", "sweep", k),
                                         f"evaluate.sweep: unknown variable {brief(k)}"))
        if not isinstance(vals, list) or not vals:
            problems.append(spec.problem(spec.line_of("evaluate", "sweep", k),
                                         f"evaluate.sweep.{k} must be a non-empty list"))
    n_points = math.prod(len(v) for v in sweep.values() if isinstance(v, list))
    if n_points > limits.max_sweep_points and not limits.force:
        problems.append(spec.problem(spec.line_of("evaluate", "sweep"),
                                     f"evaluate.sweep has {n_points} points (limit {limits.max_sweep_points}): "
                                     f"use fewer values, or pass --force"))
    images = _literal(ev.get("images"), cg)
    if isinstance(images, int) and not isinstance(images, bool):
        if images < 0:
            problems.append(spec.problem(spec.line_of("evaluate", "images"),
                                         f"evaluate.images must be >= 0, got {images}"))
        elif images * n_points > limits.max_eval_examples and not limits.force:
            problems.append(spec.problem(spec.line_of("evaluate", "images"),
                                         f"evaluation would run {images * n_points} examples ({images} images x "
                                         f"{n_points} sweep points; limit {limits.max_eval_examples}): lower "
                                         f"evaluate.images, or pass --force"))
    batch = _literal(ev.get("batch"), cg)
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        problems.append(spec.problem(spec.line_of("evaluate", "batch"),
                                     f"evaluate.batch must be an integer >= 1, got {brief(batch)}"))
    from .block import Sink
    for m in ev.get("metrics") or []:
        node = nodes.get(m)
        line = spec.line_of("evaluate", "metrics")
        if m in cg.graph_outputs:
            inner = sorted(n for n, rb in cg.blocks.items() if n.startswith(m + "/") and issubclass(rb.cls, Sink))
            problems.append(spec.problem(line, f"evaluate.metrics: '{m}' is a graph block; name a sink inside it"
                                               + (f" ({', '.join(inner)})" if inner else "")))
        elif m not in spec.blocks and m not in nodes:
            problems.append(spec.problem(line, f"evaluate.metrics: unknown block {brief(m)}"))
        elif node is not None and node.cls is not None and not issubclass(node.cls, Sink):
            problems.append(spec.problem(line, f"evaluate.metrics: block '{m}' ({node.cls.type_id}) is not a sink"))
    return problems


def _literal(raw, cg: CompiledGraph):
    """A setting's value when it evaluates without error (else None: reported elsewhere)."""
    if raw is None:
        return None
    try:
        return _eval_value(raw, cg.root.values if cg.root else {})
    except ExpressionError:
        return None


def _check_sweep_values(comp: _Compiler, spec: GraphSpec) -> list:
    """Every sweep value against every runtime param it feeds, reported at its own line."""
    problems = []
    sweep = (spec.evaluate or {}).get("sweep") or {}
    for k, vals in (sweep.items() if isinstance(sweep, dict) else ()):
        if k not in spec.variables or not isinstance(vals, list):
            continue
        seen = set()
        for i, v in enumerate(vals):
            if repr(v) in seen:
                continue
            seen.add(repr(v))
            line = spec.line_of("evaluate", "sweep", k, i)
            problems += check_runtime_values(comp, {k: v}, {k}, spec.path, line,
                                             f"evaluate.sweep.{k}[{i}] = {brief(v)}")
    return problems


def _stage_overrides(st: dict) -> dict:
    """The variables a train stage sets: keys that are not stage settings, and `variables:`."""
    out = {k: v for k, v in st.items() if k not in STAGE_KEYS}
    if isinstance(st.get("variables"), dict):
        out.update(st["variables"])
    return out


def _check_stage_values(comp: _Compiler, spec: GraphSpec, cg: CompiledGraph) -> list:
    """Each train stage's variables (literals, expressions, per-batch distributions) against
    every runtime param they feed, with the values they take during the stage."""
    values = cg.root.values if cg.root else {}
    problems = []
    for i, st in enumerate(spec.train):
        if i < len(cg.stages_enabled) and not cg.stages_enabled[i]:
            continue                             # a disabled stage sets nothing
        label = _stage_label(st, i)
        for k, raw in _stage_overrides(st).items():
            if k not in spec.variables:
                continue
            try:
                v = _eval_value(raw, values)     # stage settings are read in the root scope
            except ExpressionError:
                continue                         # reported by the stage checks
            line = spec.line_of("train", i, k) if k in st else spec.line_of("train", i, "variables", k)
            problems += check_runtime_values(comp, {k: v}, {k}, spec.path, line,
                                             f"train stage '{label}': {k} = {brief(v)}")
    return problems


def _check_losses(spec: GraphSpec, cg: CompiledGraph) -> list:
    """Each stage's loss, evaluated once on the ports' resolved shapes and kinds."""
    problems = []
    for i, st in enumerate(spec.train):
        text = st.get("loss")
        if not isinstance(text, str) or not text.strip():
            continue
        if i < len(cg.stages_enabled) and not cg.stages_enabled[i]:
            continue                             # a disabled stage never computes its loss
        try:
            loss = compile_loss(text, port_shape=cg.port_shapes())
        except ExpressionError:
            continue                             # reported by the stage checks
        loss.ports = _resolve_refs(loss.ports, cg, lambda m: None)
        variables = dict(cg.root.values if cg.root else {})
        for k, raw in _stage_overrides(st).items():
            try:
                variables[k] = fixed(_eval_value(raw, variables))
            except ExpressionError:
                pass
        reason = loss_reason(loss, cg, variables)
        if reason:
            problems.append(spec.problem(spec.line_of("train", i, "loss"),
                                         f"train stage '{_stage_label(st, i)}': loss {brief(text)} {reason}"))
    return problems


def _check_monte_carlo(spec: GraphSpec, nodes: dict, ev: dict, values: dict) -> list:
    """evaluate.repeats / until / bootstrap / image_grid / units (flowgraph/evaluation.py)."""
    from .block import Sink
    problems = []

    def P(msg, *keys):
        problems.append(spec.problem(spec.line_of("evaluate", *keys), msg))

    def value(key, *path):
        try:
            return _eval_value(ev[key] if not path else path[0], values)
        except ExpressionError as exc:
            P(f"evaluate.{key}: {exc}", key)
            return None

    def positive_int(v):
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    def unknown_keys(section, mapping, known):
        for k in mapping:
            if k not in known:
                problems.append(spec.problem(spec.line_of("evaluate", section, k),
                                             f"evaluate.{section}: unknown key '{k}' (known: {', '.join(known)})"))

    if "repeats" in ev:
        r = value("repeats")
        if r is not None and not positive_int(r):
            P(f"evaluate.repeats must be a positive integer, got {r!r}", "repeats")
        if "until" in ev:
            P("evaluate: give repeats or until, not both", "until")
    if "bootstrap" in ev:
        b = value("bootstrap")
        if b is not None and not (isinstance(b, int) and not isinstance(b, bool) and b >= 0):
            P(f"evaluate.bootstrap must be a number of resamples >= 0, got {b!r}", "bootstrap")
    until = ev.get("until")
    if until is not None:
        if not isinstance(until, dict):
            P("evaluate.until must be a mapping such as {metric: bler, errors: 100, max_examples: 100000}", "until")
        else:
            unknown_keys("until", until, ("metric", "errors", "max_examples"))
            m = until.get("metric")
            node = nodes.get(m) if isinstance(m, str) else None
            metrics = ev.get("metrics") or []
            if not isinstance(m, str):
                P("evaluate.until needs 'metric:', the error-rate sink that counts errors", "until")
            elif node is None or node.cls is None or not issubclass(node.cls, Sink):
                problems.append(spec.problem(spec.line_of("evaluate", "until", "metric"),
                                             f"evaluate.until.metric: '{m}' is not a sink of this graph"))
            elif metrics and m not in metrics:
                problems.append(spec.problem(spec.line_of("evaluate", "until", "metric"),
                                             f"evaluate.until.metric: '{m}' is not in evaluate.metrics"))
            for k in ("errors", "max_examples"):
                if k in until:
                    v = value("until", until[k])
                    if v is not None and not positive_int(v):
                        problems.append(spec.problem(spec.line_of("evaluate", "until", k),
                                                     f"evaluate.until.{k} must be a positive integer, got {v!r}"))
    grid = ev.get("image_grid")
    if grid is not None and grid is not True and grid is not False:
        if not isinstance(grid, dict):
            P("evaluate.image_grid must be true or a mapping {at: [{var: value}], n: 8, ports: [src.image, dec.image]}",
              "image_grid")
        else:
            unknown_keys("image_grid", grid, ("at", "n", "ports"))
            at = grid.get("at")
            if at is not None and (not isinstance(at, list) or not all(isinstance(a, dict) for a in at)):
                problems.append(spec.problem(spec.line_of("evaluate", "image_grid", "at"),
                                             "evaluate.image_grid.at must be a list of points such as [{snr_db: 0}]"))
            else:
                for a in at or []:
                    for k in a:
                        if k not in spec.variables:
                            problems.append(spec.problem(spec.line_of("evaluate", "image_grid", "at"),
                                                         f"evaluate.image_grid.at: unknown variable '{k}'"
                                                         + did_you_mean(k, spec.variables)))
            for p in grid.get("ports") or []:
                b, _, port = str(p).partition(".")
                node = nodes.get(b)
                if node is None or node.cls is None or port not in node.cls.outputs:
                    problems.append(spec.problem(spec.line_of("evaluate", "image_grid", "ports"),
                                                 f"evaluate.image_grid.ports: '{p}' is no output port of this graph"))
    units = ev.get("units")
    if units is not None and not (isinstance(units, dict) and all(isinstance(u, str) for u in units.values())):
        P("evaluate.units maps variables to unit strings, e.g. {snr_db: dB}", "units")
    return problems


def sweep_points(spec: GraphSpec) -> list[dict]:
    sweep = (spec.evaluate or {}).get("sweep") or {}
    keys = list(sweep)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweep[k] for k in keys))] or [{}]
