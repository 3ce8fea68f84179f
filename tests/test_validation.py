"""One test per validation error class: every problem is reported as file:line with names."""
import pytest

from flowgraph.cli import main
from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph

BASE = """\
format: 1
name: v
variables:
  n: 4
  hidden: 8
blocks:
  src: {type: testing.vectors, params: {n: $n}}
  enc: {type: testing.affine, params: {n: $n, m: $hidden}}
  dec: {type: testing.affine, params: {n: $hidden, m: $n}}
  err: {type: testing.mse}
connections:
  - src.x -> enc.x
  - enc.y -> dec.x
  - dec.y -> err.pred
  - src.x -> err.target
"""


def problems(write_graph, text, **kw):
    path = write_graph(text)
    cg = compile_graph(load_graph(path), **kw)
    return [str(p) for p in cg.problems], str(path)


def test_base_graph_is_valid(write_graph):
    probs, _ = problems(write_graph, BASE)
    assert probs == []


def test_unknown_block_type(write_graph):
    probs, path = problems(write_graph, BASE.replace("type: testing.mse", "type: testing.msee"))
    assert probs == [f"{path}:10: block 'err': unknown block type 'testing.msee' (did you mean 'testing.mse'?)"]


def test_unknown_param(write_graph):
    probs, path = problems(write_graph, BASE.replace("{n: $n, m: $hidden}", "{n: $n, m: $hidden, widht: 3}"))
    assert len(probs) == 1 and probs[0].startswith(f"{path}:8: block 'enc' (testing.affine): unknown param 'widht'")


def test_missing_required_param(write_graph):
    text = BASE + """\
  - enc.y -> extra.x
""".replace("enc.y -> extra.x", "src.x -> pick.x")
    text = text.replace("  err: {type: testing.mse}", "  err: {type: testing.mse}\n  pick: {type: testing.required}")
    import torch
    from flowgraph import Block, Param, Port, register
    from flowgraph.registry import has
    if not has("testing.required"):
        @register("testing.required")
        class Required(Block):
            """needs k"""
            inputs = {"x": Port("real", ("B", "N"))}
            outputs = {}
            params = {"k": Param(int)}
    probs, path = problems(write_graph, text)
    assert probs == [f"{path}:11: block 'pick' (testing.required): missing required param 'k'"]


def test_param_of_wrong_type(write_graph):
    probs, path = problems(write_graph, BASE.replace("{n: $n, m: $hidden}", "{n: $n, m: eight}"))
    assert probs == [f"{path}:8: block 'enc' (testing.affine): param 'm' expects int, got str 'eight'"]


def test_expression_error_and_unknown_variable(write_graph):
    probs, path = problems(write_graph, BASE.replace("m: $hidden}", "m: $hiden}"))
    assert len(probs) == 1
    assert probs[0].startswith(f"{path}:8: block 'enc': param 'm': unknown variable 'hiden'")
    probs, path = problems(write_graph, BASE.replace("m: $hidden}", "m: $hidden +* 2}"))
    assert len(probs) == 1 and probs[0].startswith(f"{path}:8: block 'enc': param 'm':")


def test_unconnected_required_input(write_graph):
    probs, path = problems(write_graph, BASE.replace("  - enc.y -> dec.x\n", ""))
    assert probs == [f"{path}:9: block 'dec' (testing.affine): required input 'x' is not connected"]


def test_output_connected_twice_into_one_input(write_graph):
    probs, path = problems(write_graph, BASE + "  - enc.y -> dec.x\n")
    assert probs == [f"{path}:16: input dec.x is connected twice: from enc.y and from enc.y"]


def test_unknown_port(write_graph):
    probs, path = problems(write_graph, BASE.replace("enc.y -> dec.x", "enc.out -> dec.x"))
    assert f"{path}:13: block 'enc' (testing.affine) has no output port 'out' (outputs: y)" in probs


def test_unknown_block_in_connection(write_graph):
    probs, path = problems(write_graph, BASE.replace("enc.y -> dec.x", "encoder.y -> dec.x"))
    assert f"{path}:13: connection 'encoder.y -> dec.x': unknown block 'encoder'" in probs


def test_cycle(write_graph):
    text = BASE.replace("  dec: {type: testing.affine, params: {n: $hidden, m: $n}}",
                        "  dec: {type: testing.affine, params: {n: $hidden, m: $n}}\n"
                        "  mix: {type: testing.two_in, params: {}}")
    text = text.replace("  - enc.y -> dec.x\n", "  - enc.y -> mix.a\n  - mix.y -> dec.x\n  - dec.y -> enc.x\n")
    text = text.replace("  - src.x -> enc.x\n", "")
    probs, path = problems(write_graph, text)
    cyc = [p for p in probs if "cycle" in p]
    assert len(cyc) == 1 and "(graphs must be acyclic)" in cyc[0] and cyc[0].startswith(f"{path}:")


def test_kind_mismatch(write_graph):
    text = BASE.replace("  err: {type: testing.mse}", "  err: {type: testing.mse}\n  cx: {type: testing.to_complex}")
    text = text.replace("  - enc.y -> dec.x\n", "  - enc.y -> cx.x\n  - cx.z -> dec.x\n")
    probs, path = problems(write_graph, text)
    assert probs == [f"{path}:15: kind mismatch: cx.z is complex but dec.x expects real"]


def test_shape_mismatch_after_unification(write_graph):
    # enc emits M=8 values; dec is built for N=6
    probs, path = problems(write_graph, BASE.replace("{n: $hidden, m: $n}", "{n: 6, m: $n}"))
    assert probs == [f"{path}:13: enc.y (B,M) -> dec.x expects (B,N): M=8 but N=6"]


def test_shape_mismatch_propagates_across_the_graph(write_graph):
    # the mismatch is only visible after unifying B/N through several blocks
    text = BASE.replace("  - src.x -> err.target\n", "  - enc.y -> err.target\n")
    probs, path = problems(write_graph, text)
    assert probs == [f"{path}:15: enc.y (B,M) -> err.target expects (B,N): M=8 but N=4"]


def test_all_problems_reported_at_once(write_graph):
    text = BASE.replace("type: testing.mse", "type: testing.nope").replace("m: $hidden}", "m: $nope}")
    text = text.replace("enc.y -> dec.x", "enc.q -> dec.x")
    probs, _ = problems(write_graph, text)
    assert len(probs) >= 3


def test_unknown_preset_key_and_stage_errors(write_graph):
    text = BASE + """\
train:
  - stage: s1
    trainable: [enc, ghost]
    loss: mse(dec.y, src.nope)
    steps: 3
presets:
  fast: {stepz: 1}
"""
    probs, path = problems(write_graph, text)
    assert any("trainable block 'ghost' does not exist" in p for p in probs)
    assert any("loss refers to unknown output 'src.nope'" in p for p in probs)
    assert any(p.startswith(f"{path}:22: preset 'fast': unknown variable 'stepz'") for p in probs)


def test_cli_validate_exit_codes(write_graph, capsys):
    good = write_graph(BASE, "good.yaml")
    bad = write_graph(BASE.replace("type: testing.mse", "type: testing.nope"), "bad.yaml")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:10: block 'err': unknown block type 'testing.nope'" in out


def test_non_runtime_param_cannot_follow_a_redrawn_variable(write_graph):
    text = BASE + """\
train:
  - stage: s1
    trainable: [enc, dec]
    loss: mse(dec.y, src.x)
    steps: 3
    hidden: randint(4, 8)
"""
    probs, path = problems(write_graph, text)
    assert any("param 'm' is fixed at build time but uses 'hidden'" in p for p in probs)
