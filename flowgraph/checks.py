"""Value checks that need the compiled graph: what a value would do when the graph runs.

The structure of a file is :mod:`flowgraph.schema`'s; the graph's wiring is
:mod:`flowgraph.compile`'s. Here are the checks of *values* that only fail later
otherwise: a sweep point or a train stage's variables against every runtime param they
feed (type, finiteness, choices; a distribution by what it can draw), optimizer and
LR-schedule settings against what their type reads and accepts, and a loss evaluated
once on tensors of the ports' resolved shapes and kinds.
"""
from __future__ import annotations

import math
import warnings

import torch

from . import expr as E
from . import schema
from .errors import ExpressionError, brief
from .graph import Problem


def uses(raw, names: set):
    """The first of ``names`` that expression ``raw`` refers to, or None."""
    if not names or not E.is_expression(raw):
        return None
    try:
        hit = E.names_used(str(raw)) & names
    except ExpressionError:
        return None
    return sorted(hit)[0] if hit else None


def dynamic_closure(scopes: list, names: set) -> dict:
    """Per scope (by id): the variables whose value follows root variables ``names``."""
    out: dict[int, set] = {}
    for scope in scopes:           # parents come before their children
        if scope.parent is None:
            d = set(names)
        else:
            pd = out.get(id(scope.parent), set())
            d = {k for k, v in scope.parent_overrides.items() if uses(v, pd)}
        for name in scope.order:
            if name not in d and uses(scope.spec.variables.get(name), d):
                d.add(name)
        out[id(scope)] = d
    return out


# --------------------------------------------------------------------------------------
# Values against the params they feed
# --------------------------------------------------------------------------------------

def param_reason(pspec, value) -> str | None:
    """Why ``value`` (a literal or a Distribution) cannot feed a param, or None."""
    if isinstance(value, E.Distribution):
        return draws_reason(value, pspec)
    return pspec.check(value)


def draws_reason(dist, pspec) -> str | None:
    """Why a per-batch draw from ``dist`` cannot feed ``pspec``: its type, its bounds, choices."""
    if isinstance(dist, E.Choice):
        for option in dist.options:
            reason = pspec.check(option)
            if reason:
                return f"draws from {brief(dist)}: option {brief(option)}: {reason}"
        return None
    if isinstance(dist, E.RandInt):
        a, b = dist.args
        for v in (a, b):
            reason = pspec.check(v)
            if reason:
                return f"draws from {brief(dist)}: {reason}"
        if pspec.choices is not None:
            outside = next((v for v in range(a, min(b, a + 10_000) + 1) if v not in pspec.choices), None)
            if outside is not None:
                return f"draws from {brief(dist)}, which can give {outside}: must be one of {list(pspec.choices)}"
        return None
    # uniform, loguniform, normal: real numbers
    if pspec.type is not float:
        return f"draws real numbers from {brief(dist)} but expects {pspec.type.__name__}"
    if pspec.choices is not None:
        return f"draws real numbers from {brief(dist)} but must be one of {list(pspec.choices)}"
    if not all(math.isfinite(a) for a in dist.args):
        return f"draws from {brief(dist)}: expects finite bounds"
    return None


def check_runtime_values(comp, root_overrides: dict, names: set, file: str, line: int, where: str) -> list:
    """Evaluate the graph's variables with ``root_overrides`` (a sweep point, a stage's
    settings) and check every runtime param that follows ``names`` against its spec.

    Build-time params that follow such variables are refused elsewhere (they cannot
    change per batch), so only runtime params are looked at here."""
    if any(scope.failed for scope in comp.scopes):
        return []               # some variable fails as written: reported, and every check here would too
    closure = dynamic_closure(comp.scopes, names)
    try:
        values = _scope_values(comp, root_overrides)
    except ExpressionError as exc:
        return [Problem(file, line, f"{where}: {exc}")]
    problems = []
    for name, node in comp.nodes.items():
        if node.cls is None or not node.ok or node.scope is None or id(node.scope) not in values:
            continue
        followed = closure.get(id(node.scope), set())
        for p, raw in node.runtime_exprs.items():
            if not uses(raw, followed):
                continue
            try:
                value = E.resolve_value(raw, values[id(node.scope)])
            except ExpressionError as exc:
                problems.append(Problem(file, line, f"{where}: block '{name}': param '{p}': {exc}", name))
                continue
            reason = param_reason(node.cls.params[p], value)
            if reason:
                problems.append(Problem(file, line, f"{where}: block '{name}' ({node.cls.type_id}): "
                                                    f"param '{p}' {reason}", name))
    return problems


def _scope_values(comp, root_overrides: dict) -> dict:
    values: dict[int, dict] = {}
    for scope in comp.scopes:
        if scope.parent is None:
            values[id(scope)] = scope.evaluate({**comp.overrides, **root_overrides})
        else:
            values[id(scope)] = scope.evaluate(parent_values=values.get(id(scope.parent)))
    return values


# --------------------------------------------------------------------------------------
# Optimizer and LR-schedule settings
# --------------------------------------------------------------------------------------

_SETTINGS = {   # section -> (its schema record, options per type, keys every type reads, default type)
    "optimizer": (schema.OPTIMIZER, schema.OPTIMIZER_OPTIONS, schema.OPTIMIZER_COMMON, "adam"),
    "schedule": (schema.SCHEDULE, schema.SCHEDULE_OPTIONS, schema.SCHEDULE_COMMON, "constant"),
}


def check_stage_settings(stage: dict, values: dict, line_of) -> list:
    """(line, message) for every optimizer/schedule key its type does not read and every
    value it would refuse (evaluated with ``values``); ``line_of(section, key)``."""
    out = []
    for section, (record, table, common, default) in _SETTINGS.items():
        cfg = stage.get(section)
        if cfg is None:
            continue
        if not isinstance(cfg, dict):
            out.append((line_of(section, None), f"{section}: expected {record.what}, got {schema.got(cfg)}"))
            continue
        kind = cfg.get("type", default)
        if kind not in table:
            out.append((line_of(section, "type"), f"{section}.type: expected one of {', '.join(table)}, "
                                                   f"got {schema.got(kind)}"))
            continue
        bad = False
        for key, msg in schema.check_options(kind, table, common, cfg, section):
            out.append((line_of(section, key), f"{section}: {msg}"))
            bad = True
        evaluated = {}
        for key, raw in cfg.items():
            row = record.fields.get(key)
            if key == "type" or row is None:
                continue
            try:
                evaluated[key] = val = E.resolve_value(raw, values)
            except ExpressionError as exc:
                out.append((line_of(section, key), f"{section}.{key}: {exc}"))
                bad = True
                continue
            checks = [row.check] if row.check else []
            if key == "lr_by_block":
                continue            # its blocks and rates: the train-stage checks (compile._train_lr_by_block)
            for check in checks:
                reason = check(val)
                if reason:
                    out.append((line_of(section, key), f"{section}.{key}: {reason}"))
                    bad = True
        if section == "optimizer" and not bad:
            reason = _torch_refuses(kind, evaluated)
            if reason:
                out.append((line_of(section, None), f"optimizer: {reason}"))
    return out


def _torch_refuses(kind: str, settings: dict) -> str | None:
    """What torch itself says when building this optimizer (e.g. nesterov without momentum)."""
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
           "rmsprop": torch.optim.RMSprop}[kind]
    kwargs = {k: v for k, v in settings.items() if k not in ("lr_by_block",)}
    try:
        cls([torch.zeros(1, requires_grad=True)], **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        return f"torch.optim.{cls.__name__} refuses these settings: {' '.join(str(exc).split())[:200]}"
    return None


# --------------------------------------------------------------------------------------
# Losses on the graph's resolved shapes and kinds
# --------------------------------------------------------------------------------------

_BATCH = 2                      # stands in for the batch dimension B
_DTYPES = {"real": torch.float32, "complex": torch.complex64, "int": torch.int64, "bool": torch.bool}
_MAX_REAL_NUMEL = 1_000_000     # real zeros up to this many elements in all, meta tensors beyond


def loss_reason(loss, cg, variables: dict) -> str | None:
    """Evaluate ``loss`` (a CompiledLoss with resolved port references) once on zero
    tensors of the ports' declared kinds and resolved shapes; say why it fails.

    Returns None when it works or cannot be checked: a port whose shape is open
    (``None``, ``...`` or a symbol the graph does not fix, other than the batch ``B``)
    is only known at run time."""
    shapes = {}
    for b, p in loss.ports:
        rb = cg.blocks.get(b)
        if rb is None or p not in rb.cls.outputs:
            return None                       # reported by the stage checks
        dims = cg.resolved_dims(b, p, output=True)
        if dims is None:
            return None
        concrete = []
        for d in dims:
            if isinstance(d, int):
                concrete.append(d)
            elif d == "B":
                concrete.append(_BATCH)
            else:
                return None
        shapes[f"{b}.{p}"] = (tuple(concrete), _DTYPES.get(rb.cls.outputs[p].kind))
    if any(dt is None for _, dt in shapes.values()):
        return None                           # an "any" port: kind known at run time
    if any(math.prod(shape) > 2 ** 40 for shape, _ in shapes.values()):
        return None                           # beyond any memory: the run's memory check refuses it
    used = sorted(E.names_used(loss.code) - {f"port_ref_{i}" for i in range(len(loss.ports))})
    key = (loss.code, tuple(shapes.items()), tuple((n, repr(variables.get(n))) for n in used))
    if key not in _LOSS_CACHE:        # validation runs per preset and on every GUI edit: once is enough
        if len(_LOSS_CACHE) > 256:
            _LOSS_CACHE.clear()
        _LOSS_CACHE[key] = _try_loss(loss, shapes, variables)
    return _LOSS_CACHE[key]


_LOSS_CACHE: dict = {}


def _try_loss(loss, shapes: dict, variables: dict) -> str | None:
    desc = ", ".join(f"{k} {_fmt(s, dt)}" for k, (s, dt) in shapes.items())
    reason = None
    small = sum(math.prod(s) for s, _ in shapes.values()) <= _MAX_REAL_NUMEL
    # small tensors: real zeros on the CPU (fast kernels); large ones: meta tensors (no memory)
    for device in (("cpu",) if small else ("meta",)):
        values = {k: torch.zeros(s, dtype=dt, device=device) for k, (s, dt) in shapes.items()}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = loss(values, variables)
            except Exception as exc:   # any failure here is the loss's, reported as one line
                text = " ".join(str(exc).split())
                if device == "meta" and ("meta" in text.lower() or isinstance(exc, NotImplementedError)):
                    return None           # this function has no meta kernel: known at run time only
                if not isinstance(exc, ExpressionError):
                    text = f"{type(exc).__name__}: {text}"
                return f"fails on the ports' shapes ({desc}): {text[:240]}" if desc else f"fails: {text[:240]}"
        broadcast = [w for w in caught if "broadcast" in str(w.message)]
        if broadcast:
            reason = (f"mixes ports of different shapes ({desc}): "
                      f"{' '.join(str(broadcast[0].message).split())[:160]}")
        elif not torch.is_tensor(result) or result.dim() != 0:
            got = f"shape {tuple(result.shape)}" if torch.is_tensor(result) else type(result).__name__
            reason = f"must be a scalar, but on the ports' shapes ({desc}) it is {got}"
        return reason
    return None


def _fmt(shape, dtype) -> str:
    dims = ",".join("B" if i == 0 and d == _BATCH else str(d) for i, d in enumerate(shape))
    return f"({dims}) {str(dtype).replace('torch.', '')}"
