"""Restricted expression evaluator: arithmetic, variables, refusals, limits, distributions."""
import math

import pytest
import torch

from flowgraph.errors import ExpressionError
from flowgraph.expr import (Choice, DEFAULT_FUNCTIONS, Distribution, LogUniform, Normal,
                            RandInt, Uniform, evaluate, is_expression, names_used,
                            resolve_value, resolve_variables)


def refused(text, match, variables=None):
    with pytest.raises(ExpressionError, match=match) as info:
        evaluate(text, variables or {})
    assert "\n" not in str(info.value)  # one line, as the CLI prints it
    return str(info.value)


# -- arithmetic -----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2 ** 3 ** 2", 512), ("-2 ** 2", -4),
    ("7 // 2", 3), ("7 % 3", 1), ("7 / 2", 3.5), ("+3 - -2", 5), ("not 0", True),
    ("1 < 2 <= 2 < 3", True), ("1 < 2 > 5", False), ("2 in [1, 2]", True), ("None is None", True),
    ("0 or 5", 5), ("3 and 0", 0), ("1 if 2 > 1 else 2", 1), ("'a' + 'b' * 2", "abb"),
    ("[1, (2, 3), {'k': 4}]", [1, (2, 3), {"k": 4}]), ("[10, 20, 30][-1]", 30),
    ("{'a': [1, 2]}['a'][1]", 2), ("=2 ** 10", 1024), ("  = 1 + 1 ", 2), ("True + 1", 2),
])
def test_arithmetic_and_precedence(text, expected):
    assert evaluate(text, {}) == expected


@pytest.mark.parametrize("text, expected", [
    ("abs(-3)", 3), ("min(3, 1, 2)", 1), ("max([1, 5])", 5), ("round(2.567, 2)", 2.57),
    ("int('12')", 12), ("float(2)", 2.0), ("bool(0)", False), ("str(3)", "3"), ("len([1, 2])", 2),
    ("sqrt(16)", 4.0), ("log(math_e)", 1.0), ("log10(1000)", 3.0), ("log2(8)", 3.0),
    ("exp(0)", 1.0), ("floor(2.7)", 2), ("ceil(2.1)", 3), ("pow(2, 10)", 1024),
    ("sum([1, 2, 3])", 6), ("range(3)", [0, 1, 2]), ("range(1, 7, 2)", [1, 3, 5]),
    ("linspace(0, 1, 5)", [0.0, 0.25, 0.5, 0.75, 1.0]), ("linspace(2, 3, 1)", [2.0]),
    ("db2lin(20)", 100.0), ("lin2db(1000)", 30.0), ("max([], default=7)", 7),
])
def test_default_functions(text, expected):
    got = evaluate(text, {"math_e": math.e})
    assert got == pytest.approx(expected) if isinstance(expected, float) else got == expected


def test_extra_functions_and_errors_inside_calls():
    assert evaluate("twice($c)", {"c": 4}, {"twice": lambda x: 2 * x}) == 8
    assert "twice" not in DEFAULT_FUNCTIONS
    refused("1 / 0", "division by zero")
    refused("sqrt(-1)", r"sqrt\(\): math domain error")
    refused("lin2db(0)", "positive")
    refused("[1, 2][5]", "out of range")
    refused("{'a': 1}['b']", "key 'b' not found")
    refused("1 + 'a'", "unsupported operand")


# -- variables --------------------------------------------------------------------------

def test_dollar_and_bare_variables():
    v = {"c": 8, "snr_db": 10.0, "max": 3, "sizes": [4, 8]}
    assert evaluate("$c * 2", v) == 16
    assert evaluate("c * 2", v) == 16
    assert evaluate("$snr_db", v) == 10.0
    assert evaluate("$sizes[1] + sizes[0]", v) == 12
    # a called name is a function, any other name a variable, even if it shadows a function
    assert evaluate("max($max, 1) + max", v) == 6
    # '$' inside a quoted string is text, not a variable
    assert evaluate("'cost: $c' + \"$\"", v) == "cost: $c$"


def test_dollar_syntax_errors():
    refused("$ c", "must be followed by a variable name")
    refused("a$c", "must start a variable name", {"a": 1, "c": 2})
    refused("$c(1)", "cannot be called", {"c": 1})
    refused("1 +", "invalid expression")
    refused("   ", "empty expression")


def test_unknown_variable_message():
    assert refused("$foo + 1", r"^unknown variable 'foo'$", {"bar": 1}) == "unknown variable 'foo'"
    msg = refused("$snr_bd", "unknown variable", {"snr_db": 1, "c": 2})
    assert msg == "unknown variable 'snr_bd' (did you mean 'snr_db'?)"
    refused("abs + 1", "'abs' is a function")


def test_resolve_variables_nested_in_any_order():
    raw = {"n": "$c * 2", "m": "$n + $c", "c": 8, "opt": "adam", "path": "/data/kodak",
           "sizes": ["$c", 16, {"k": "=n - 1", "name": "x"}], "mix": ("$m",)}
    out = resolve_variables(raw)
    assert out == {"n": 16, "m": 24, "c": 8, "opt": "adam", "path": "/data/kodak",
                   "sizes": [8, 16, {"k": 15, "name": "x"}], "mix": (24,)}
    assert list(out) == list(raw)  # file order kept
    assert raw["n"] == "$c * 2"    # input untouched


def test_resolve_variables_overrides():
    raw = {"c": 8, "n": "$c * 2", "snr_db": "uniform(0, 20)"}
    assert resolve_variables(raw, {"c": 3})["n"] == 6
    assert resolve_variables(raw, {"c": "=2 + 2"})["n"] == 8  # override may be an expression
    assert resolve_variables(raw, {"snr_db": 7.5})["snr_db"] == 7.5
    with pytest.raises(ExpressionError, match=r"override for unknown variable 'cc' \(did you mean 'c'\?\)"):
        resolve_variables(raw, {"cc": 1})


@pytest.mark.parametrize("raw, cycle", [
    ({"a": "$b", "b": "$c + 1", "c": "$a * 2", "d": 1}, "a -> b -> c -> a"),
    ({"x": 1, "a": "$a + 1"}, "a -> a"),
    ({"a": ["$b"], "b": {"k": "$a"}}, "a -> b -> a"),
])
def test_resolve_variables_cycle(raw, cycle):
    with pytest.raises(ExpressionError, match="cycle") as info:
        resolve_variables(raw)
    assert str(info.value).endswith(cycle)


def test_resolve_variables_errors_name_the_variable():
    with pytest.raises(ExpressionError, match=r"^variable 'n': unknown variable 'cc' \(did you mean 'c'\?\)$"):
        resolve_variables({"c": 1, "n": "$cc * 2"})
    with pytest.raises(ExpressionError, match=r"^variable 'n': division by zero"):
        resolve_variables({"c": 0, "n": "1 / $c"})
    with pytest.raises(ExpressionError, match="not a valid identifier"):
        resolve_variables({"bad-name": 1})


def test_resolve_value():
    v = {"c": 2}
    assert resolve_value({"a": ["$c", "sgd", 3], "b": "=c ** 2"}, v) == {"a": [2, "sgd", 3], "b": 4}
    assert resolve_value("plain", v) == "plain"
    assert resolve_value(None, v) is None


# -- refusals -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, match", [
    ("__import__('os')", r"^function '__import__' is not allowed \(allowed: abs, bool, ceil, "),
    ("().__class__", r"^attribute access is not allowed in expressions: '\(\)\.__class__'$"),
    ("x.y", r"^attribute access is not allowed in expressions: 'x\.y'$"),
    ("x.__class__.__bases__[0]", "attribute access is not allowed"),
    ("c.upper()", "attribute access is not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("[i for i in range(3)]", "comprehensions are not allowed"),
    ("{k: 1 for k in 'ab'}", "comprehensions are not allowed"),
    ("sum(i for i in range(3))", "generator expressions are not allowed"),
    ("open('f')", r"^function 'open' is not allowed"),
    ("getattr(1, 'real')", r"^function 'getattr' is not allowed"),
    ("eval('1')", r"^function 'eval' is not allowed"),
    ("exec('1')", r"^function 'exec' is not allowed"),
    ("1 if True else __import__('os')", "function '__import__' is not allowed"),  # even unreached
    ("(lambda: 1)()", "only named functions can be called"),
    ("(y := 1)", r"assignment \(:=\) is not allowed"),
    ("f'{x}'", "f-strings are not allowed"),
    ("{1, 2}", "set literals are not allowed"),
    ("[*x]", r"unpacking \(\*\) is not allowed"),
    ("max(**x)", r"unpacking \(\*\*\) is not allowed"),
    ("{**x}", r"unpacking \(\*\*\) is not allowed"),
    ("x[0:1]", "slicing is not allowed"),
    ("1 << 3", "operator '<<' is not allowed"),
    ("~1", "operator '~' is not allowed"),
    ("1j", "complex literals are not allowed"),
    ("b'x'", "bytes literals are not allowed"),
    ("'abc'[0]", "only lists, tuples and dicts can be indexed"),
    ("[1, 2]['a']", "list index must be an integer"),
])
def test_refusals(text, match):
    refused(text, match, {"x": [1, 2], "c": "s"})


def test_refusal_lists_allowed_functions():
    msg = refused("__import__('os')", "not allowed")
    assert "(allowed: abs, bool, ceil, choice, db2lin" in msg and "uniform" in msg
    assert "__import__" not in msg.split("(allowed:")[1]


@pytest.mark.parametrize("text, match", [
    ("9 ** 9 ** 9", "exponent .* is too large"),
    ("2 ** 5000", "exponent 5000 is too large"),
    ("2 ** 1000", "too large"),            # 1.07e301 > 1e300
    ("10.0 ** 301", "too large"),
    ("pow(10, 2000)", "exponent 2000 is too large"),
    ("(10 ** 300) ** 2", "too large"),
    ("(-8) ** 0.5", "not a real number"),
    ("'x' * 10001", "10001 characters, too many"),
    ("'x' * 10 ** 9", "too many"),
    ("('ab' * 5000) + ('c' * 5000)", "too long"),
    ("[0] * 200000", "200000 elements, too many"),
    ("[[0] * 100000] * 100000", "over 1000000 elements"),
    ("range(10 ** 6)", "more than 100000 elements"),
    ("range(10 ** 300)", "more than 100000 elements"),
    ("linspace(0, 1, 10 ** 6)", "linspace"),
    ("round(10 ** 300, -10 ** 9)", "ndigits"),
    ("str(range(10))", "str\\(\\) takes"),
    ("sum([[1]], [])", "numbers only"),
    ("10 ** 300 * 10 ** 300", "number is too large"),
    ("db2lin(100000)", "too large"),
])
def test_huge_results_refused(text, match):
    refused(text, match)


def test_limits_allow_ordinary_values():
    assert evaluate("2 ** 10", {}) == 1024
    assert evaluate("10 ** 300", {}) == 10 ** 300
    assert evaluate("0.5 ** -10", {}) == 1024.0
    assert len(evaluate("'x' * 10000", {})) == 10000
    assert len(evaluate("range(100000)", {})) == 100000


def test_nested_variable_doubling_is_bounded():
    raw = {"a0": "range(100000)"}
    for i in range(1, 30):
        raw[f"a{i}"] = f"[$a{i - 1}, $a{i - 1}]"
    with pytest.raises(ExpressionError, match="too large"):
        resolve_variables(raw)


# -- distributions ------------------------------------------------------------------------

def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("text, cls, mean", [
    ("uniform(0, 20)", Uniform, 10.0),
    ("loguniform(0.001, 10)", LogUniform, 0.1),
    ("normal(2, 0.5)", Normal, 2.0),
    ("randint(1, 4)", RandInt, 2),        # midpoint 2.5, rounded half to even
    ("randint(-3, 3)", RandInt, 0),
    ("choice(['a', 'b', 'c'])", Choice, "a"),
    ("uniform(-1.5, 2.5)", Uniform, 0.5),
])
def test_distribution_construct_mean_repr(text, cls, mean):
    d = evaluate(text, {})
    assert type(d) is cls and isinstance(d, Distribution)
    assert d.mean() == pytest.approx(mean) if isinstance(mean, float) else d.mean() == mean
    assert repr(d) == text
    assert evaluate(repr(d), {}) == d and hash(evaluate(repr(d), {})) == hash(d)


def test_distribution_args_from_variables_and_repr():
    d = evaluate("uniform($lo, $hi * 2)", {"lo": 1, "hi": 5})
    assert repr(d) == "uniform(1, 10)"  # repr shows the evaluated arguments
    assert names_used("uniform($lo, $hi * 2)") == {"lo", "hi"}


def test_distribution_samples_in_bounds_and_reproducible():
    g = gen(1)
    u = [Uniform(0, 20).sample(g) for _ in range(300)]
    assert all(0 <= x < 20 for x in u) and max(u) - min(u) > 15
    lu = [LogUniform(1e-3, 10).sample(g) for _ in range(300)]
    assert all(1e-3 <= x <= 10 for x in lu) and min(lu) < 1e-2 and max(lu) > 1
    r = [RandInt(1, 4).sample(g) for _ in range(300)]
    assert set(r) == {1, 2, 3, 4} and all(type(x) is int for x in r)  # inclusive both ends
    c = [Choice(["a", "b", 3]).sample(g) for _ in range(100)]
    assert set(c) == {"a", "b", 3}
    n = [Normal(2, 0.5).sample(g) for _ in range(2000)]
    assert abs(sum(n) / len(n) - 2) < 0.1

    for d in (Uniform(0, 20), LogUniform(0.1, 10), Normal(0, 1), RandInt(0, 100), Choice(list(range(50)))):
        g1, g2 = gen(7), gen(7)
        assert [d.sample(g1) for _ in range(5)] == [d.sample(g2) for _ in range(5)]
        assert [d.sample(gen(7)) for _ in range(2)] != [d.sample(gen(8)) for _ in range(2)] \
            or isinstance(d, Choice)  # may collide by chance only for small supports


def test_distribution_uses_only_the_given_generator():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    g = gen(3)
    state = g.get_state()
    a = Uniform(0, 1).sample(g)
    assert torch.equal(torch.get_rng_state(), before)  # global RNG untouched
    g.set_state(state)
    assert Uniform(0, 1).sample(g) == a                 # resumable from a saved state


@pytest.mark.parametrize("text, match", [
    ("uniform(5, 1)", r"a <= b"), ("loguniform(0, 1)", "0 < a"), ("normal(0, -1)", "std >= 0"),
    ("randint(0.5, 2)", "integers"), ("choice([])", "non-empty"), ("choice(3)", "non-empty list"),
    ("uniform('a', 1)", "numbers"),
])
def test_distribution_bad_arguments(text, match):
    refused(text, match)


@pytest.mark.parametrize("text", [
    "$snr * 2", "-$snr", "db2lin($snr)", "$snr > 3", "1 if $snr else 2", "not $snr",
    "$snr or 1", "uniform(0, 20) + 1", "uniform(uniform(0, 1), 2)",
])
def test_distribution_refused_in_arithmetic(text):
    refused(text, "^a distribution cannot be used inside arithmetic: ", {"snr": Uniform(0, 20)})


def test_distribution_as_whole_value_and_python_arithmetic_refused():
    d = Uniform(0, 20)
    assert evaluate("$snr", {"snr": d}) is d
    assert evaluate("[$snr, 1]", {"snr": d}) == [d, 1]
    out = resolve_variables({"snr_db": "uniform(0, 20)", "other": "$snr_db"})
    assert out["snr_db"] == d and out["other"] == d
    with pytest.raises(ExpressionError, match="inside arithmetic"):
        d * 2
    with pytest.raises(ExpressionError, match="inside arithmetic"):
        float(d)


# -- is_expression / names_used -----------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("$c * 2", True), ("$snr_db", True), ("=2 ** 10", True), ("  =1", True),
    ("uniform(0, 20)", True), ("loguniform(1e-4, 1e-2)", True), ("max($a, 3)", True),
    (" range(3) ", True),
    ("bundled", False), ("adam", False), ("/data/kodak", False), ("", False),
    ("a == b", False), ("hello (world)", False), ("(1, 2)", False), ("snr(db", False),
    (3, False), (2.5, False), (None, False), (["$c"], False), (True, False),
])
def test_is_expression(value, expected):
    assert is_expression(value) is expected


@pytest.mark.parametrize("text, names", [
    ("$c * 2", {"c"}), ("c * 2 + $d", {"c", "d"}), ("uniform(0, $hi)", {"hi"}),
    ("max(a, 1) + max", {"a", "max"}), ("1 + 2", set()), ("=n - 1", {"n"}),
    ("'$x' + y", {"y"}), ("$x if $flag else [z, {'k': w}][0]", {"x", "flag", "z", "w"}),
    (["$a", "plain", {"k": "=b + 1"}, 3], {"a", "b"}), ({"k": "uniform($lo, 1)"}, {"lo"}),
])
def test_names_used(text, names):
    assert names_used(text) == names


def test_names_used_refuses_like_evaluate():
    with pytest.raises(ExpressionError, match="attribute access"):
        names_used("$x.__class__")
