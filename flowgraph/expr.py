"""Restricted expressions for YAML graph files.

A graph file is shared data, so its expressions must not be able to run code. Nothing
here uses ``eval``/``exec``: the text is parsed with ``ast.parse(mode="eval")`` and the
tree is walked by hand, with an explicit whitelist of node types and functions. Anything
else is refused with a one-line :class:`ExpressionError`.

    variables:
      c: 8
      n: $c * 2                 # variables may use other variables
      snr_db: uniform(0, 20)    # a Distribution, redrawn per batch by the engine
    blocks:
      enc: {type: encoder.deepjscc, params: {channels: $n, opt: adam}}

Which YAML strings are expressions (see :func:`is_expression`): those containing ``$``,
those starting with ``=`` (``"=2 ** 10"``), and call forms such as ``"uniform(0, 20)"``.
Everything else ("adam", "/data/kodak") is a plain string.

Names: ``$name`` always means a variable. A bare name means a function when it is
called (``max(1, 2)``) and a variable everywhere else, so a variable may share a name
with a function (``$max`` or bare ``max``).
"""
from __future__ import annotations

import ast
import functools
import keyword
import math
import re
import sys
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import ExpressionError, did_you_mean

__all__ = ["Distribution", "Uniform", "LogUniform", "Normal", "RandInt", "Choice",
           "DEFAULT_FUNCTIONS", "is_expression", "evaluate", "parse", "names_used",
           "resolve_value", "resolve_variables"]

# Resource limits: an expression in a shared file must not be able to hang or exhaust
# the machine (e.g. 9 ** 9 ** 9, 'x' * 10 ** 9, or variables that double a list 40 times).
MAX_TEXT = 10_000          # characters in one expression
MAX_STR = 10_000           # characters in a string built by * or +
MAX_SEQ = 100_000          # elements in a list built by range/linspace/* or +
MAX_SIZE = 1_000_000       # elements + characters in any one container value, nested
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300      # |result| of ** and pow; ints beyond this are refused anywhere
_MAX_INT_BITS = 1000       # ~ 1e301: every int result is checked against this


# --------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------

def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _rand(generator) -> float:
    """One U[0, 1) draw from ``generator`` only (never the global RNG: runs must resume exactly)."""
    import torch  # local: expression parsing alone should not need torch
    dtype = torch.float32 if generator.device.type == "mps" else torch.float64
    return float(torch.rand((), generator=generator, device=generator.device, dtype=dtype))


def _randn(generator) -> float:
    import torch
    dtype = torch.float32 if generator.device.type == "mps" else torch.float64
    return float(torch.randn((), generator=generator, device=generator.device, dtype=dtype))


def _randint(generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] inclusive."""
    import torch
    return int(torch.randint(low, high + 1, (), generator=generator, device=generator.device))


class Distribution:
    """A value redrawn per batch. ``repr`` is the expression text that recreates it.

    Only ``sample`` draws randomness, and only from the generator it is given. A
    distribution may be a whole parameter or variable value, but never an operand:
    ``$snr_db * 2`` is refused (the engine would not know what to redraw).
    """
    name = "distribution"

    def __init__(self, *args):
        self.args = args

    def sample(self, generator):
        raise NotImplementedError

    def mean(self):
        """A representative fixed value (for validation, dry runs and evaluation defaults)."""
        raise NotImplementedError

    def __repr__(self):
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"

    def __eq__(self, other):
        return type(other) is type(self) and other.args == self.args

    def __hash__(self):
        return hash(repr(self))

    # Defence in depth for engine code: arithmetic on a distribution is a bug, say so clearly.
    def _refuse(self, *other):
        raise ExpressionError(f"a distribution cannot be used inside arithmetic: {self!r} "
                              "(sample it first)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _refuse
    __mod__ = __rmod__ = __pow__ = __rpow__ = _refuse
    __neg__ = __pos__ = __abs__ = __float__ = __int__ = __round__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = _refuse


class Uniform(Distribution):
    name = "uniform"

    def __init__(self, a, b):
        if not (_is_number(a) and _is_number(b)) or not a <= b:
            raise ExpressionError(f"uniform(a, b) needs numbers with a <= b, got uniform({a!r}, {b!r})")
        super().__init__(a, b)

    def sample(self, generator):
        a, b = self.args
        return a + (b - a) * _rand(generator)

    def mean(self):
        a, b = self.args
        return (a + b) / 2


class LogUniform(Distribution):
    name = "loguniform"

    def __init__(self, a, b):
        if not (_is_number(a) and _is_number(b)) or not 0 < a <= b:
            raise ExpressionError(
                f"loguniform(a, b) needs numbers with 0 < a <= b, got loguniform({a!r}, {b!r})")
        super().__init__(a, b)

    def sample(self, generator):
        la, lb = (math.log(x) for x in self.args)
        return math.exp(la + (lb - la) * _rand(generator))

    def mean(self):  # geometric mean: the "middle" on the scale the values are drawn on
        a, b = self.args
        return math.exp((math.log(a) + math.log(b)) / 2)


class Normal(Distribution):
    name = "normal"

    def __init__(self, mean, std):
        if not (_is_number(mean) and _is_number(std)) or not std >= 0:
            raise ExpressionError(
                f"normal(mean, std) needs numbers with std >= 0, got normal({mean!r}, {std!r})")
        super().__init__(mean, std)

    def sample(self, generator):
        mean, std = self.args
        return mean + std * _randn(generator)

    def mean(self):
        return float(self.args[0])


class RandInt(Distribution):
    name = "randint"

    def __init__(self, a, b):
        if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) \
                or isinstance(b, bool) or not a <= b:
            raise ExpressionError(
                f"randint(a, b) needs integers with a <= b, got randint({a!r}, {b!r})")
        super().__init__(a, b)

    def sample(self, generator):
        return _randint(generator, *self.args)

    def mean(self):
        a, b = self.args
        return round((a + b) / 2)  # Python rounds halves to even: randint(0, 1) -> 0


class Choice(Distribution):
    name = "choice"

    def __init__(self, options):
        if not isinstance(options, (list, tuple)) or not options:
            raise ExpressionError(f"choice(list) needs a non-empty list, got choice({options!r})")
        super().__init__(list(options))

    @property
    def options(self) -> list:
        return self.args[0]

    def sample(self, generator):
        return self.options[_randint(generator, 0, len(self.options) - 1)]

    def mean(self):
        return self.options[0]


# --------------------------------------------------------------------------------------
# Default functions (each guarded so no call can hang or blow up memory)
# --------------------------------------------------------------------------------------

def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")    # a tensor exists only once torch is loaded: never import it here
    return torch is not None and isinstance(x, torch.Tensor)


def _power(base, exp):
    """``**`` and ``pow``: refuse results that would be huge or take long to compute.
    Tensors (in loss expressions) are raised elementwise, which cannot hang."""
    if _is_tensor(base) or _is_tensor(exp):
        return base ** exp
    if not (_is_number(base) or isinstance(base, bool)) or not (_is_number(exp) or isinstance(exp, bool)):
        raise TypeError(f"** needs numbers, got {type(base).__name__} and {type(exp).__name__}")
    if abs(exp) > MAX_EXPONENT:
        raise ExpressionError(f"exponent {exp!r} is too large (limit {MAX_EXPONENT})")
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1 \
            and abs(base).bit_length() * exp > 2 * _MAX_INT_BITS:
        raise ExpressionError(f"{base!r} ** {exp!r} is too large (limit {MAX_MAGNITUDE:g})")
    result = base ** exp
    if isinstance(result, complex):
        raise ExpressionError(f"{base!r} ** {exp!r} is not a real number")
    if abs(result) > MAX_MAGNITUDE:
        raise ExpressionError(f"{base!r} ** {exp!r} is too large (limit {MAX_MAGNITUDE:g})")
    return result


def _range(*args):
    r = range(*args)
    try:
        too_long = len(r) > MAX_SEQ
    except OverflowError:  # len() itself fails beyond sys.maxsize
        too_long = True
    if too_long:
        raise ExpressionError(f"range() would have more than {MAX_SEQ} elements")
    return list(r)


def _linspace(a, b, n):
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_SEQ:
        raise ExpressionError(f"linspace(a, b, n) needs an integer 0 <= n <= {MAX_SEQ}, got {n!r}")
    if n == 1:
        return [float(a)]
    step = (b - a) / (n - 1)
    return [float(a + i * step) for i in range(n - 1)] + [float(b)] if n else []


def _round(x, ndigits=None):
    # round(10 ** 300, -10 ** 9) would compute 10 ** (10 ** 9)
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_EXPONENT):
        raise ExpressionError(f"round(): ndigits must be an integer within +-{MAX_EXPONENT}")
    return round(x) if ndigits is None else round(x, ndigits)


def _str(x=""):
    # str() of a large nested list could build a gigantic string: scalars only
    if x is not None and not isinstance(x, (str, int, float, bool)):
        raise ExpressionError(f"str() takes a number, bool, None or string, not {type(x).__name__}")
    return str(x)


def _sum(values, start=0):
    # sum(lists, []) concatenates: numbers only
    values = list(values)
    if not all(_is_number(v) or isinstance(v, bool) for v in [*values, start]):
        raise ExpressionError("sum() adds numbers only")
    return sum(values, start)


def _lin2db(x):
    if not _is_number(x) or x <= 0:
        raise ExpressionError(f"lin2db() needs a positive number, got {x!r}")
    return 10 * math.log10(x)


def _db2lin(x):
    return _power(10.0, x / 10)


DEFAULT_FUNCTIONS: Mapping[str, Callable] = MappingProxyType({
    "abs": abs, "min": min, "max": max, "round": _round, "int": int, "float": float,
    "bool": bool, "str": _str, "len": len, "sqrt": math.sqrt, "log": math.log,
    "log10": math.log10, "log2": math.log2, "exp": math.exp, "floor": math.floor,
    "ceil": math.ceil, "pow": _power, "sum": _sum, "range": _range, "linspace": _linspace,
    "db2lin": _db2lin, "lin2db": _lin2db,
    "uniform": Uniform, "loguniform": LogUniform, "normal": Normal, "randint": RandInt,
    "choice": Choice,
})

#: names of the functions that build a Distribution (redrawn per batch)
DISTRIBUTIONS = frozenset({"uniform", "loguniform", "normal", "randint", "choice"})


# --------------------------------------------------------------------------------------
# Parsing: $name preprocessing and the static whitelist check
# --------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# 'name(' with no space, so prose such as "Kodak (24 images)" stays a plain string
_CALL_FORM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\(.*\)", re.DOTALL)


def is_expression(value) -> bool:
    """True for YAML string values meant as expressions: containing ``$``, starting with
    ``=``, or a whole call form ``name(...)`` (no space before the parenthesis).
    Non-strings are never expressions."""
    if not isinstance(value, str):
        return False
    s = value.strip()
    return "$" in s or s.startswith("=") or _CALL_FORM.fullmatch(s) is not None


def _strip(text: str) -> str:
    text = text.strip()
    return text[1:].strip() if text.startswith("=") else text


def _preprocess(text: str) -> str:
    """``$name`` -> ``name``, leaving quoted strings alone (``'$5'`` stays a string).

    A small scanner rather than a bare regex so ``$`` inside '...', "..." and triple-quoted
    strings is kept. String prefixes need no care: they are letters before the quote.
    """
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            j = min(j + len(quote), n)  # an unclosed string is left for ast.parse to report
            out.append(text[i:j])
            i = j
        elif ch == "$":
            m = _IDENT.match(text, i + 1)
            if m is None:
                raise ExpressionError(f"'$' must be followed by a variable name: {_brief(text)}")
            if out and out[-1] and (out[-1][-1].isalnum() or out[-1][-1] == "_"):
                # 'a$b' would silently become the different name 'ab'
                raise ExpressionError(f"'$' must start a variable name: {_brief(text)}")
            rest = text[m.end():].lstrip()
            if rest.startswith("("):
                raise ExpressionError(f"variable '${m.group()}' cannot be called: {_brief(text)}")
            out.append(m.group())
            i = m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_CONSTANT_TYPES = (int, float, str, bool, type(None))
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**"}
_REFUSED_BINOPS = {ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&",
                   ast.BitXor: "^", ast.MatMult: "@"}
_UNARYOPS = (ast.USub, ast.UAdd, ast.Not)
_CMPOPS = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
           ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
           ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
           ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
           ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b}
_ALLOWED_NODES = (ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp,
                  ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.IfExp, ast.Call, ast.keyword,
                  ast.List, ast.Tuple, ast.Dict, ast.Subscript,
                  *_BINOPS, *_UNARYOPS, *_CMPOPS)
# Friendlier words for the refusals users will actually hit.
_REFUSED_WORDS = {
    ast.Attribute: "attribute access is", ast.Lambda: "lambda is",
    ast.ListComp: "comprehensions are", ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are", ast.GeneratorExp: "generator expressions are",
    ast.NamedExpr: "assignment (:=) is", ast.Starred: "unpacking (*) is",
    ast.JoinedStr: "f-strings are", ast.Set: "set literals are", ast.Slice: "slicing is",
    ast.Await: "await is", ast.Yield: "yield is", ast.YieldFrom: "yield is",
}


def _brief(text: str) -> str:
    """``text`` quoted as one short line, for messages."""
    text = " ".join(text.split())
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _show(text: str, node: ast.AST) -> str:
    """The source of ``node`` as one short line, for messages."""
    return _brief(ast.get_source_segment(text, node) or ast.unparse(node))


@functools.lru_cache(maxsize=2048)  # params are re-evaluated per batch: parse each text once
def _compile(text: str):
    """Parse and whitelist-check ``text``. Returns (body, call names, variable names)."""
    if not isinstance(text, str):
        raise TypeError(f"expression must be a string, not {type(text).__name__}")
    src = _strip(text)
    if not src:
        raise ExpressionError("empty expression")
    if len(src) > MAX_TEXT:
        raise ExpressionError(f"expression is too long ({len(src)} characters, limit {MAX_TEXT})")
    src = _preprocess(src)
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"invalid expression {_brief(text)}: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression is nested too deeply: {_brief(text)}") from None

    calls, names = set(), set()
    called = set()  # ids of Name nodes in call position: functions, not variables
    for node in ast.walk(tree):  # breadth-first: a parent is judged before its children
        if not isinstance(node, _ALLOWED_NODES):
            what = _REFUSED_WORDS.get(type(node))
            what = what or f"{type(node).__name__} nodes are"
            where = f": {_show(src, node)}" if isinstance(node, ast.expr) else ""
            raise ExpressionError(f"{what} not allowed in expressions{where}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, _CONSTANT_TYPES):
            raise ExpressionError(f"{type(node.value).__name__} literals are not allowed in "
                                  f"expressions: {_show(src, node)}")
        elif isinstance(node, ast.BinOp) and type(node.op) not in _BINOPS:
            op = _REFUSED_BINOPS.get(type(node.op), type(node.op).__name__)
            raise ExpressionError(f"operator '{op}' is not allowed in expressions: {_show(src, node)}")
        elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, _UNARYOPS):
            raise ExpressionError(f"operator '~' is not allowed in expressions: {_show(src, node)}")
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):  # x.f(): report the attribute access
                raise ExpressionError(
                    f"attribute access is not allowed in expressions: {_show(src, node.func)}")
            if not isinstance(node.func, ast.Name):
                raise ExpressionError(
                    f"only named functions can be called in expressions: {_show(src, node)}")
            if any(k.arg is None for k in node.keywords):
                raise ExpressionError(f"unpacking (**) is not allowed in expressions: {_show(src, node)}")
            calls.add(node.func.id)
            called.add(id(node.func))
        elif isinstance(node, ast.Dict) and any(k is None for k in node.keys):
            raise ExpressionError(f"unpacking (**) is not allowed in expressions: {_show(src, node)}")
        elif isinstance(node, ast.Name) and id(node) not in called:
            names.add(node.id)
    return tree.body, src, frozenset(calls), frozenset(names)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------

def _unknown_variable(name: str, known) -> str:
    return f"unknown variable '{name}'" + did_you_mean(name, [k for k in known if isinstance(k, str)])


class _Evaluator:
    """One evaluation of one parsed expression; dispatches on node type."""

    def __init__(self, src, variables, functions):
        self.src, self.variables, self.functions = src, variables, functions
        self._sizes = {}  # id(container) -> (container, nested size): shared sublists measured once

    # -- helpers ------------------------------------------------------------------------
    def _no_distribution(self, node, *values):
        if any(isinstance(v, Distribution) for v in values):
            raise ExpressionError(
                f"a distribution cannot be used inside arithmetic: {_show(self.src, node)} "
                "(a distribution must be a whole value, e.g. 'snr_db: uniform(0, 20)')")

    def _size(self, value) -> int:
        if isinstance(value, str):
            return len(value)
        if not isinstance(value, (list, tuple, dict)):
            return 1
        key = id(value)
        if key not in self._sizes:
            items = value.values() if isinstance(value, dict) else value
            total = 1
            for v in items:
                total += self._size(v)
                if total > MAX_SIZE:
                    break
            # keep `value` alive with its size: a freed temporary's id could be reused
            self._sizes[key] = (value, total)
        return self._sizes[key][1]

    def _checked(self, value, node):
        """Refuse oversized results (every int, and every container that an expression builds)."""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
            raise ExpressionError(f"number is too large (limit about {MAX_MAGNITUDE:g}): {_show(self.src, node)}")
        if isinstance(value, (list, tuple, dict)) and self._size(value) > MAX_SIZE:
            raise ExpressionError(f"value is too large (over {MAX_SIZE} elements and characters): "
                                  f"{_show(self.src, node)}")
        return value

    def _fail(self, node, exc):
        raise ExpressionError(f"{exc} in {_show(self.src, node)}") from None

    # -- dispatch -----------------------------------------------------------------------
    def visit(self, node):
        return getattr(self, "_" + type(node).__name__)(node)  # _compile whitelisted the types

    def _Constant(self, node):
        return node.value

    def _Name(self, node):
        if node.id in self.variables:
            return self.variables[node.id]
        if node.id in self.functions:
            raise ExpressionError(f"'{node.id}' is a function: call it, e.g. '{node.id}(...)'")
        raise ExpressionError(_unknown_variable(node.id, self.variables))

    def _BinOp(self, node):
        a, b = self.visit(node.left), self.visit(node.right)
        self._no_distribution(node, a, b)
        op = type(node.op)
        try:
            if op is ast.Pow:
                return self._checked(_power(a, b), node)
            if op is ast.Mult:
                self._check_repeat(node, a, b)
            result = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                      ast.Div: lambda: a / b, ast.FloorDiv: lambda: a // b,
                      ast.Mod: lambda: a % b}[op]()
        except ExpressionError:
            raise
        except (ArithmeticError, TypeError, ValueError) as e:
            self._fail(node, e)
        if isinstance(result, str) and len(result) > MAX_STR:
            raise ExpressionError(f"string of {len(result)} characters is too long "
                                  f"(limit {MAX_STR}): {_show(self.src, node)}")
        if isinstance(result, (list, tuple)) and len(result) > MAX_SEQ:
            raise ExpressionError(f"sequence of {len(result)} elements is too long "
                                  f"(limit {MAX_SEQ}): {_show(self.src, node)}")
        return self._checked(result, node)

    def _check_repeat(self, node, a, b):
        """'x' * 10 ** 9 must be refused before it is built, not after."""
        seq, count = (a, b) if isinstance(a, (str, list, tuple)) else (b, a)
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and count > 0:
            limit, unit = (MAX_STR, "characters") if isinstance(seq, str) else (MAX_SEQ, "elements")
            if len(seq) * count > limit:
                raise ExpressionError(f"repetition builds {len(seq) * count} {unit}, too many "
                                      f"(limit {limit}): {_show(self.src, node)}")
            if self._size(seq) * count > MAX_SIZE:  # [[0] * 10 ** 5] * 10 ** 5: nested size counts
                raise ExpressionError(f"repetition builds a value over {MAX_SIZE} elements and "
                                      f"characters in all: {_show(self.src, node)}")

    def _UnaryOp(self, node):
        v = self.visit(node.operand)
        self._no_distribution(node, v)
        try:
            if isinstance(node.op, ast.Not):
                return not v
            return self._checked(-v if isinstance(node.op, ast.USub) else +v, node)
        except TypeError as e:
            self._fail(node, e)

    def _BoolOp(self, node):
        # short-circuits like Python and returns the deciding operand
        value = None
        for operand in node.values:
            value = self.visit(operand)
            self._no_distribution(node, value)
            if bool(value) == isinstance(node.op, ast.Or):
                return value
        return value

    def _Compare(self, node):
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.visit(right_node)
            self._no_distribution(node, left, right)
            try:
                if not _CMPOPS[type(op)](left, right):
                    return False
            except TypeError as e:
                self._fail(node, e)
            left = right
        return True

    def _IfExp(self, node):
        test = self.visit(node.test)
        self._no_distribution(node, test)
        return self.visit(node.body if test else node.orelse)

    def _Call(self, node):
        name = node.func.id
        fn = self.functions[name]  # evaluate() checked every called name up front
        args = [self.visit(a) for a in node.args]
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords}
        self._no_distribution(node, *args, *kwargs.values())
        try:
            result = fn(*args, **kwargs)
        except ExpressionError:
            raise
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as e:
            raise ExpressionError(f"{name}(): {e} in {_show(self.src, node)}") from None
        return self._checked(result, node)

    def _List(self, node):
        return self._checked([self.visit(e) for e in node.elts], node)

    def _Tuple(self, node):
        return self._checked(tuple(self.visit(e) for e in node.elts), node)

    def _Dict(self, node):
        out = {}
        for k, v in zip(node.keys, node.values):
            key = self.visit(k)
            try:
                out[key] = self.visit(v)
            except TypeError as e:  # unhashable key
                self._fail(node, e)
        return self._checked(out, node)

    def _Subscript(self, node):
        container, index = self.visit(node.value), self.visit(node.slice)
        if not isinstance(container, (list, tuple, dict)):
            raise ExpressionError(f"only lists, tuples and dicts can be indexed, not "
                                  f"{type(container).__name__}: {_show(self.src, node)}")
        if isinstance(container, (list, tuple)) and (not isinstance(index, int) or isinstance(index, bool)):
            raise ExpressionError(f"list index must be an integer, not {type(index).__name__}: "
                                  f"{_show(self.src, node)}")
        try:
            return container[index]
        except IndexError:
            raise ExpressionError(f"index {index!r} is out of range: {_show(self.src, node)}") from None
        except KeyError:
            raise ExpressionError(f"key {index!r} not found: {_show(self.src, node)}") from None
        except TypeError as e:
            self._fail(node, e)


def _functions(extra: Mapping[str, Callable] | None) -> Mapping[str, Callable]:
    return {**DEFAULT_FUNCTIONS, **extra} if extra else DEFAULT_FUNCTIONS


def evaluate(text: str, variables: Mapping[str, Any],
             functions: Mapping[str, Callable] | None = None) -> Any:
    """Evaluate expression ``text`` (a leading ``=`` is ignored) against ``variables``.

    ``functions`` adds to (or replaces entries of) :data:`DEFAULT_FUNCTIONS`. Raises
    :class:`ExpressionError` for anything unknown, refused, or failing.
    """
    body, src, calls, _ = _compile(text)
    funcs = _functions(functions)
    for name in sorted(calls):  # refuse up front, even in branches that would not run
        if name not in funcs:
            raise ExpressionError(f"function '{name}' is not allowed "
                                  f"(allowed: {', '.join(sorted(funcs))})")
    try:
        return _Evaluator(src, variables, funcs).visit(body)
    except RecursionError:
        raise ExpressionError(f"expression is nested too deeply: {_brief(text)}") from None


def parse(text: str) -> tuple[ast.expr, set[str]]:
    """The whitelist-checked syntax tree of expression ``text`` (``$name`` already read as
    ``name``) and the names of the functions it calls, for callers that check or rewrite
    an expression before evaluating it (the loss language). The tree is shared: copy it
    before changing it."""
    body, _, calls, _ = _compile(text)
    return body, set(calls)


def names_used(text) -> set[str]:
    """Variable names that an expression refers to (function names in call position excluded).

    ``text`` is read as expression text even without ``$``/``=``. Lists, tuples and dicts
    are searched recursively, and there only strings for which :func:`is_expression` holds
    count; other values use no names.
    """
    if isinstance(text, str):
        return set(_compile(text)[3])
    names = set()
    items = text.values() if isinstance(text, dict) else text if isinstance(text, (list, tuple)) else ()
    for item in items:
        if isinstance(item, (list, tuple, dict)) or is_expression(item):
            names |= names_used(item)
    return names


def resolve_value(value, variables: Mapping[str, Any],
                  functions: Mapping[str, Callable] | None = None):
    """Evaluate ``value`` if it is an expression string; recurse into lists/tuples/dict
    values; return anything else unchanged (``"adam"`` stays ``"adam"``)."""
    if isinstance(value, str):
        return evaluate(value, variables, functions) if is_expression(value) else value
    if isinstance(value, list):
        return [resolve_value(v, variables, functions) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_value(v, variables, functions) for v in value)
    if isinstance(value, dict):
        return {k: resolve_value(v, variables, functions) for k, v in value.items()}
    return value


def _dependency_order(deps: Mapping[str, set]) -> list[str]:
    """Depth-first topological order; a cycle is reported with the variables in it."""
    order, state, stack = [], {}, []   # state: 1 = in progress, 2 = done

    def visit(name):
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = stack[stack.index(name):] + [name]
            raise ExpressionError(f"variables refer to each other in a cycle: {' -> '.join(cycle)}")
        state[name] = 1
        stack.append(name)
        for dep in sorted(deps[name]):
            visit(dep)
        stack.pop()
        state[name] = 2
        order.append(name)

    for name in deps:
        visit(name)
    return order


def resolve_variables(raw: Mapping[str, Any], overrides: Mapping[str, Any] = MappingProxyType({}),
                      functions: Mapping[str, Callable] | None = None) -> dict:
    """Evaluate a graph's ``variables:`` section; variables may use other variables.

    ``overrides`` (e.g. from the command line) replace raw values before evaluation and may
    themselves be expression strings; overriding a variable the graph does not define is
    an error (it is almost always a typo). Values are evaluated in dependency order, so
    the file order does not matter. Returns a new dict in the order of ``raw``.
    """
    merged = dict(raw)
    for name, value in overrides.items():
        if name not in merged:
            raise ExpressionError("override for " + _unknown_variable(str(name), merged))
        merged[name] = value
    for name in merged:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ExpressionError(f"variable name {name!r} is not a valid identifier")

    deps = {}
    for name, value in merged.items():
        try:
            used = names_used(value) if isinstance(value, (list, tuple, dict)) or is_expression(value) \
                else set()
        except ExpressionError as e:
            raise ExpressionError(f"variable '{name}': {e}") from None
        # a bare function name is left to evaluate(), which explains it better
        unknown = sorted(used - merged.keys() - _functions(functions).keys())
        if unknown:
            raise ExpressionError(f"variable '{name}': {_unknown_variable(unknown[0], merged)}")
        deps[name] = used & merged.keys()

    resolved = {}
    for name in _dependency_order(deps):
        try:
            resolved[name] = resolve_value(merged[name], resolved, functions)
        except ExpressionError as e:
            raise ExpressionError(f"variable '{name}': {e}") from None
    return {name: resolved[name] for name in merged}
