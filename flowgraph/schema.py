"""The structure of a graph file: one table per section, checked before any meaning.

This module is the one place that says what each section of a graph file may hold
(which keys, and a value of which shape). ``check_graph(data, path)`` walks the
line-aware YAML model (:mod:`flowgraph.yamlio`) against the tables below and returns
the problems, each ``file:line: <section>.<key>: expected ..., got ...``, plus a
cleaned copy in which every value that failed is left out, so the semantic checks
in :mod:`flowgraph.compile` only ever see the types they expect.

Why hand-written rather than pydantic or jsonschema: the model already carries line
numbers per key, the messages must name a YAML path and a line, and the tables are
short; a library would add a dependency and a translation layer for both. To extend a
section, add a row to its table (e.g. a new train-stage key to ``STAGE``).

Expressions: wherever a number or flag may come from a variable, the tables accept an
expression string too (``steps: $steps``); its value is checked after evaluation, by
the ``check`` function of the row (``positive``, ``non_negative``...). The option
tables for optimizers and LR schedules (``OPTIMIZER_OPTIONS``, ``SCHEDULE_OPTIONS``)
say which keys each type reads.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import brief
from .expr import is_expression

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------------------
# Kinds of values
# --------------------------------------------------------------------------------------

class Kind:
    """A shape a value may have. ``what`` completes "expected ..."."""
    what = "a value"

    def accepts(self, value) -> bool:
        return True


@dataclass
class Scalar(Kind):
    types: tuple
    what: str
    expression: bool = False        # an expression string is accepted too

    def accepts(self, value) -> bool:
        if self.expression and is_expression(value):
            return True
        if isinstance(value, bool):
            return bool in self.types
        return isinstance(value, self.types)


@dataclass
class Choice(Kind):
    options: tuple
    what: str = ""

    def __post_init__(self):
        self.what = self.what or "one of " + ", ".join(map(str, self.options))

    def accepts(self, value) -> bool:
        return isinstance(value, str) and value in self.options


@dataclass
class OneOf(Kind):
    kinds: tuple
    what: str = ""

    def __post_init__(self):
        self.what = self.what or " or ".join(k.what for k in self.kinds)

    def accepts(self, value) -> bool:
        return any(k.accepts(value) and _deep_ok(k, value) for k in self.kinds)


@dataclass
class ListOf(Kind):
    item: Kind
    what: str = ""
    nonempty: bool = False
    length: int | None = None       # exactly this many items (e.g. an [x, y] pair)

    def __post_init__(self):
        self.what = self.what or f"a{' non-empty' if self.nonempty else ''} list"

    def accepts(self, value) -> bool:
        return (isinstance(value, list) and (bool(value) or not self.nonempty)
                and (self.length is None or len(value) == self.length))


@dataclass
class MapOf(Kind):
    value: Kind
    key: str = "name"               # what a key names, for messages ("block", "variable")
    identifier: bool = True         # keys must be identifiers (else: any string)
    what: str = ""

    def __post_init__(self):
        self.what = self.what or f"a mapping of {self.key} names to values"

    def accepts(self, value) -> bool:
        return isinstance(value, dict)


@dataclass
class Field:
    """One row of a section table."""
    kind: Kind
    required: bool = False
    check: Callable[[Any], str | None] | None = None   # value check after evaluation
    doc: str = ""


@dataclass
class Record(Kind):
    fields: dict
    what: str = "a mapping"
    extra: Kind | None = None       # kind of keys not in the table (None: unknown key)
    extra_doc: str = ""             # what such keys are, for the unknown-key message

    def accepts(self, value) -> bool:
        return isinstance(value, dict)


def _deep_ok(kind: Kind, value) -> bool:
    """For OneOf: does ``value`` fit ``kind`` including its items (no messages)?"""
    if isinstance(kind, ListOf):
        return all(kind.item.accepts(v) and _deep_ok(kind.item, v) for v in value)
    if isinstance(kind, MapOf):
        return all(isinstance(k, str) and kind.value.accepts(v) and _deep_ok(kind.value, v)
                   for k, v in value.items())
    return True


# --------------------------------------------------------------------------------------
# Value checks (run on evaluated values, by the semantic checks)
# --------------------------------------------------------------------------------------

def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v) -> str | None:
    if not _number(v):
        return f"expected a number, got {got(v)}"
    return None if math.isfinite(v) else f"expected a finite number, got {v!r}"


def positive(v) -> str | None:
    return finite(v) or (None if v > 0 else f"must be > 0, got {v!r}")


def non_negative(v) -> str | None:
    return finite(v) or (None if v >= 0 else f"must be >= 0, got {v!r}")


def fraction(v) -> str | None:
    return finite(v) or (None if 0 <= v <= 1 else f"must be in [0, 1], got {v!r}")


def beta(v) -> str | None:
    return finite(v) or (None if 0 <= v < 1 else f"must be in [0, 1), got {v!r}")


def count(v) -> str | None:
    """A non-negative integer."""
    if not isinstance(v, int) or isinstance(v, bool):
        return f"expected an integer, got {got(v)}"
    return None if v >= 0 else f"must be >= 0, got {v!r}"


def positive_count(v) -> str | None:
    return count(v) or (None if v >= 1 else f"must be >= 1, got {v!r}")


def betas(v) -> str | None:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        return f"expected a list of two numbers [beta1, beta2], got {got(v)}"
    return next((f"beta{i + 1} {r}" for i, b in enumerate(v) if (r := beta(b))), None)


def milestones(v) -> str | None:
    if not isinstance(v, (list, tuple)) or not v:
        return f"expected a non-empty list of steps or fractions of the stage, got {got(v)}"
    for m in v:
        r = finite(m)
        if r or m < 0 or (isinstance(m, float) and m >= 1 and not m.is_integer()):
            return f"each milestone must be a step (integer >= 0) or a fraction in (0, 1), got {m!r}"
    return None


def boolean(v) -> str | None:
    return None if isinstance(v, bool) else f"expected true or false, got {got(v)}"


# --------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------

ANY = Kind()
STR = Scalar((str,), "a string")
TEXT = Scalar((str, int, float), "text")          # names/descriptions: a number is fine as text
INT = Scalar((int,), "an integer")
BOOL = Scalar((bool,), "true or false")
NULL = Scalar((type(None),), "null")
INT_EXPR = Scalar((int,), "an integer or an expression", expression=True)
NUM_EXPR = Scalar((int, float), "a number or an expression", expression=True)
BOOL_EXPR = Scalar((bool,), "true, false or an expression such as $use_x", expression=True)
LIST_EXPR = OneOf((ListOf(NUM_EXPR, "a list of numbers"), Scalar((), "an expression", expression=True)),
                  "a list of numbers or an expression")
NAMES = ListOf(STR, "a list of block names")

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "multistep", "exponential")

#: optimizer type -> the keys it reads (passed to the torch optimizer of that name)
_ADAM = {"lr": positive, "betas": betas, "eps": positive, "weight_decay": non_negative,
         "amsgrad": boolean, "maximize": boolean}
OPTIMIZER_OPTIONS = {
    "adam": _ADAM,
    "adamw": _ADAM,
    "sgd": {"lr": positive, "momentum": non_negative, "dampening": non_negative,
            "weight_decay": non_negative, "nesterov": boolean, "maximize": boolean},
    "rmsprop": {"lr": positive, "alpha": non_negative, "eps": positive, "weight_decay": non_negative,
                "momentum": non_negative, "centered": boolean, "maximize": boolean},
}
#: keys every optimizer type accepts (read by the training stage, not by torch)
OPTIMIZER_COMMON = {"type": None, "lr_by_block": None}

OPTIMIZER = Record({
    "type": Field(Choice(OPTIMIZERS), doc="adam (default), adamw, sgd or rmsprop"),
    "lr": Field(NUM_EXPR, check=positive, doc="learning rate (default 1e-3)"),
    "betas": Field(LIST_EXPR, check=betas, doc="adam/adamw: [beta1, beta2]"),
    "eps": Field(NUM_EXPR, check=positive),
    "weight_decay": Field(NUM_EXPR, check=non_negative),
    "amsgrad": Field(BOOL_EXPR, check=boolean),
    "maximize": Field(BOOL_EXPR, check=boolean),
    "momentum": Field(NUM_EXPR, check=non_negative, doc="sgd, rmsprop"),
    "dampening": Field(NUM_EXPR, check=non_negative, doc="sgd"),
    "nesterov": Field(BOOL_EXPR, check=boolean, doc="sgd"),
    "alpha": Field(NUM_EXPR, check=non_negative, doc="rmsprop"),
    "centered": Field(BOOL_EXPR, check=boolean, doc="rmsprop"),
    "lr_by_block": Field(MapOf(NUM_EXPR, key="block", identifier=False,
                               what="a mapping of block names to learning rates"),
                         doc="learning rate per block (train-stage feature)"),
}, "a mapping such as {type: adam, lr: 1.0e-3}")

#: schedule type -> {key: value check}; every type also reads `warmup`
SCHEDULE_OPTIONS = {
    "constant": {},
    "cosine": {"min_factor": fraction},
    "step": {"gamma": positive, "step_size": positive_count},
    "multistep": {"gamma": positive, "milestones": milestones},
    "exponential": {"gamma": positive},
}
SCHEDULE_COMMON = {"type": None, "warmup": count}

SCHEDULE = Record({
    "type": Field(Choice(SCHEDULES), doc="constant (default), cosine, step, multistep or exponential"),
    "warmup": Field(INT_EXPR, check=count, doc="linear warm-up over this many steps (all types)"),
    "min_factor": Field(NUM_EXPR, check=fraction, doc="cosine: final LR as a fraction of lr (default 0)"),
    "gamma": Field(NUM_EXPR, check=positive, doc="step/multistep (default 0.1), exponential (0.999)"),
    "step_size": Field(INT_EXPR, check=positive_count, doc="step: steps between decays (default steps//3)"),
    "milestones": Field(LIST_EXPR, check=milestones, doc="multistep: steps, or fractions of the stage"),
}, "a mapping such as {type: cosine, warmup: 100}")

VALUES = MapOf(ANY, key="variable", what="a mapping of variable names to values")

#: one train stage. Keys not in the table override variables during the stage (checked
#: against `variables:` by the semantic checks). Rows marked (features) are train-stage
#: features whose values compile._check_train checks.
STAGE = Record({
    "stage": Field(TEXT, doc="stage name"),
    "trainable": Field(ListOf(STR, "a non-empty list of block names", nonempty=True)),
    "copy_weights": Field(MapOf(STR, key="destination block", identifier=False,
                                what="a mapping of destination blocks to source blocks")),
    "loss": Field(STR, doc="loss expression over block.port references"),
    "optimizer": Field(OPTIMIZER),
    "schedule": Field(SCHEDULE),
    "steps": Field(INT_EXPR, check=count),
    "grad_clip": Field(NUM_EXPR, check=non_negative),
    "log_every": Field(INT_EXPR, check=count),
    "checkpoint_every": Field(INT_EXPR, check=count),
    "variables": Field(VALUES),
    "enabled": Field(BOOL_EXPR),                        # (features)
    "batch": Field(INT_EXPR),                           # (features)
    "accumulate": Field(INT_EXPR),                      # (features)
    "ema": Field(ANY),                                  # (features)
    "discriminator": Field(ANY),                        # (features)
    "init": Field(ANY),                                 # (features)
    "validate": Field(ANY),                             # (features)
}, "a mapping (one train stage)", extra=ANY, extra_doc="a variable overridden during the stage")

EVALUATE = Record({
    "sweep": Field(MapOf(ListOf(ANY, "a non-empty list of values", nonempty=True), key="variable",
                         what="a mapping of variables to lists of values")),
    "metrics": Field(NAMES),
    "batch": Field(INT_EXPR),
    "images": Field(OneOf((INT_EXPR, NULL))),
    "plot": Field(ANY),
    "cbr": Field(OneOf((BOOL, ListOf(STR)), "true, false or a list of input ports such as [ch.x]")),
    # Monte-Carlo evaluation and outputs (flowgraph/evaluation.py): their values are
    # checked by compile._check_monte_carlo
    "repeats": Field(INT_EXPR),
    "until": Field(ANY),
    "bootstrap": Field(INT_EXPR),
    "image_grid": Field(ANY),
    "units": Field(ANY),
}, "a mapping with sweep, metrics, batch, images")

BLOCK = Record({
    "type": Field(STR, required=True),
    "params": Field(MapOf(ANY, key="param", identifier=False, what="a mapping of param names to values")),
    "enabled": Field(BOOL_EXPR),
    "bypass": Field(BOOL_EXPR),
    "doc": Field(TEXT),
}, "a block type such as channel.awgn, or a mapping with type: and params:")

PORTS = Record({
    "inputs": Field(MapOf(OneOf((STR, ListOf(STR))), key="port",
                          what="a mapping of port names to block.port (or a list of them)")),
    "outputs": Field(MapOf(STR, key="port", what="a mapping of port names to block.port")),
}, "a mapping with inputs: and outputs:")

# the editor's layout (owned by gui/): positions are checked, other keys are the editor's own
GUI = Record({
    "positions": Field(MapOf(ListOf(Scalar((int, float), "a number"), "an [x, y] pair of numbers", length=2),
                             key="block", identifier=False, what="a mapping of block names to [x, y]")),
}, "a mapping (the editor's layout)", extra=ANY, extra_doc="editor settings")


GRAPH = Record({
    "format": Field(INT, required=True),
    "name": Field(TEXT),
    "description": Field(TEXT),
    "variables": Field(VALUES),
    "blocks": Field(MapOf(OneOf((STR, BLOCK), BLOCK.what), key="block",
                          what="a mapping of block names to blocks")),
    "connections": Field(ListOf(STR, "a list of 'src.port -> dst.port' strings")),
    "train": Field(ListOf(STAGE, "a list of train stages (mappings)")),
    "evaluate": Field(EVALUATE),
    "presets": Field(MapOf(MapOf(ANY, key="variable", identifier=False,
                                 what="a mapping of variable overrides"),
                           key="preset", identifier=False,
                           what="a mapping of preset names to mappings of variable overrides")),
    "ports": Field(PORTS),
    "gui": Field(GUI),
}, "a mapping with blocks: and connections:")


# --------------------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------------------

def got(value) -> str:
    """What a value is, for "expected X, got Y"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {brief(value, 40)}"


MAX_PER_COLLECTION = 10        # findings reported from one list or mapping before "... and N more"


@dataclass
class Finding:
    line: int
    message: str


@dataclass
class _Walk:
    findings: list = field(default_factory=list)

    def bad(self, line, path, message):
        self.findings.append(Finding(line, f"{path}: {message}" if path else message))

    def cap(self, before: int, path: str, keep: int = MAX_PER_COLLECTION):
        """At most ``keep`` findings from one list or mapping, then one line counting the rest."""
        extra = len(self.findings) - before - keep
        if extra > 0:
            last = self.findings[before + keep - 1]
            del self.findings[before + keep:]
            self.findings.append(Finding(last.line, f"{path}: ... and {extra} more problems like these"))

    def check(self, kind: Kind, value, path: str, line: int):
        """Return the cleaned value, or _BAD after reporting why it does not fit."""
        if not kind.accepts(value):
            self.bad(line, path, f"expected {kind.what}, got {got(value)}")
            return _BAD
        if isinstance(kind, OneOf):
            for k in kind.kinds:     # the first kind that fits, checked in depth
                if k.accepts(value) and _deep_ok(k, value):
                    return self.check(k, value, path, line)
            return value
        if isinstance(kind, ListOf):
            from .yamlio import LineList
            out = LineList()
            out.line = getattr(value, "line", line)
            before = len(self.findings)
            for i, item in enumerate(value):
                iline = value.line_of(i) if hasattr(value, "line_of") else line
                v = self.check(kind.item, item, f"{path}[{i}]", iline)
                if v is not _BAD:
                    out.append(v)
                    out.lines.append(iline)
            self.cap(before, path)
            return out
        if isinstance(kind, MapOf):
            out = _empty_like(value, line)
            before = len(self.findings)
            for k, v in value.items():
                kline = value.line_of(k) if hasattr(value, "line_of") else line
                if not isinstance(k, str) or (kind.identifier and not _IDENT.match(k)):
                    need = "an identifier (letters, digits, _)" if kind.identifier else "a string"
                    self.bad(kline, path, f"{kind.key} name {brief(k, 40)} must be {need}")
                    continue
                cv = self.check(kind.value, v, _join(path, k), kline)
                if cv is not _BAD:
                    _put(out, k, cv, kline)
            self.cap(before, path)
            return out
        if isinstance(kind, Record):
            return self.record(kind, value, path, line)
        return value

    def record(self, kind: Record, value, path: str, line: int):
        out = _empty_like(value, line)
        for k, v in value.items():
            kline = value.line_of(k) if hasattr(value, "line_of") else line
            row = kind.fields.get(k) if isinstance(k, str) else None
            if row is None:
                if kind.extra is not None and isinstance(k, str):
                    _put(out, k, v, kline)
                    continue
                known = [f for f in kind.fields]
                close = difflib.get_close_matches(str(k), known, n=1) if isinstance(k, str) else []
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
                self.bad(kline, path, f"unknown {'top-level ' if not path else ''}key {brief(k, 40)}{hint}")
                continue
            if v is None and not row.required:
                continue                  # `key:` with nothing after it = not given
            cv = self.check(row.kind, v, _join(path, k), kline)
            if cv is not _BAD:
                _put(out, k, cv, kline)
        missing = [k for k, row in kind.fields.items() if row.required and k not in out]
        for k in missing:
            if value.get(k) is None:   # present but of the wrong type: reported above
                self.bad(line, path, f"missing required key '{k}'")
        return _BAD if missing else out


class _Bad:
    def __repr__(self):
        return "<bad>"


_BAD = _Bad()


def _join(path: str, key) -> str:
    key = str(key)
    key = key if _IDENT.match(key) else repr(key) if len(key) <= 40 else brief(key, 40)
    return f"{path}.{key}" if path else key


def _empty_like(value, line):
    from .yamlio import LineDict
    out = LineDict()
    out.line = getattr(value, "line", line)
    return out


def _put(out, key, value, line):
    out[key] = value
    out.lines[key] = line


def check_graph(data) -> tuple[Any, list]:
    """Check a loaded graph file (a LineDict) against ``GRAPH``.

    Returns ``(cleaned, findings)``: the data without any value that failed, and one
    :class:`Finding` (line, message) per failure, in file order of discovery."""
    walk = _Walk()
    cleaned = walk.record(GRAPH, data, "", getattr(data, "line", 1))
    return cleaned, walk.findings


def check_options(kind: str, table: dict, common: dict, value: dict, section: str):
    """Keys of an optimizer/schedule mapping that its ``type`` does not read.

    Yields ``(key, message)``; the message says what the type reads, or which key
    was probably meant (``min_fator`` -> ``min_factor``)."""
    reads = {**common, **table.get(kind, {})}
    for k in value:
        if k in reads:
            continue
        close = difflib.get_close_matches(str(k), list(reads), n=1)
        others = [t for t, opts in table.items() if k in opts]
        if close:
            yield k, f"unknown key {brief(k, 40)} (did you mean '{close[0]}'?)"
        elif others:
            yield k, (f"'{k}' is not read by {section} type '{kind}' (only by {', '.join(others)}); "
                      f"{kind} reads: {', '.join(r for r in reads if r != 'type') or 'nothing else'}")
        else:
            yield k, (f"unknown key {brief(k, 40)} ({section} type '{kind}' reads: "
                      f"{', '.join(r for r in reads if r != 'type') or 'nothing else'})")
