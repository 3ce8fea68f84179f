"""Validation that covers every section (issue 19): a graph that is wrong only in one
section fails `validate` with file:line naming the section and key."""
import pytest
import torch

from flowgraph import Block, Param, Port, register
from flowgraph.cli import main
from flowgraph.compile import compile_graph, validate_graph
from flowgraph.graph import load_graph, loads_graph
from flowgraph.registry import has

if not has("testing.gain"):
    @register("testing.gain")
    class Gain(Block):
        """y = gain * x, or x when mode is 'clean' (B, N) -> (B, N): runtime params of three types."""
        inputs = {"x": Port("real", ("B", "N"))}
        outputs = {"y": Port("real", ("B", "N"))}
        params = {"gain": Param(float, 1.0, "a real factor", runtime=True),
                  "mode": Param(str, "scaled", "scaled or clean", runtime=True, choices=("scaled", "clean")),
                  "taps": Param(int, 1, "an integer", runtime=True)}

        def forward(self, x):
            return {"y": x if self.p.mode == "clean" else self.p.gain * x}

G = """\
format: 1
name: v
variables:
  n: 4
  hidden: 8
  g: 1.0
  mode: scaled
  taps: 1
  lr: 0.01
  steps: 2
blocks:
  src: {type: testing.vectors, params: {n: $n}}
  enc: {type: testing.affine, params: {n: $n, m: $hidden}}
  amp: {type: testing.gain, params: {gain: $g, mode: $mode, taps: $taps}}
  dec: {type: testing.affine, params: {n: $hidden, m: $n}}
  err: {type: testing.mse}
connections:
  - src.x -> enc.x
  - enc.y -> amp.x
  - amp.y -> dec.x
  - dec.y -> err.pred
  - src.x -> err.target
train:
  - stage: e2e
    trainable: [enc, dec]
    loss: mse(dec.y, src.x)
    optimizer: {type: adam, lr: $lr}
    schedule: {type: cosine, min_factor: 0.1}
    steps: $steps
evaluate:
  sweep:
    g: [0.5, 1.0]
  metrics: [err]
  batch: 4
presets:
  smoke: {steps: 1}
"""


def probs(text, **kw):
    return [str(p) for p in compile_graph(loads_graph(text, "v.yaml"), **kw).problems]


def line_of(text, snippet):
    return text[:text.index(snippet)].count("\n") + 1


def test_base_is_valid():
    assert probs(G) == []
    assert validate_graph(loads_graph(G, "v.yaml")) == []


# ---- 19.1 sweep values ---------------------------------------------------------------

@pytest.mark.parametrize("var,values,bad,reason", [
    ("g", "[0.5, .nan]", ".nan", "param 'gain' expects a finite float, got nan"),
    ("g", "[0.5, .inf]", ".inf", "param 'gain' expects a finite float, got inf"),
    ("g", "[0.5, loud]", "loud", "param 'gain' expects float, got str 'loud'"),
    ("g", "[0.5, null]", "null", "param 'gain' expects float, got NoneType None"),
    ("mode", "[scaled, clen]", "clen", "param 'mode' must be one of ['scaled', 'clean'], got 'clen'"),
    ("taps", "[1, 2.5]", "2.5", "param 'taps' expects int, got float 2.5"),
])
def test_sweep_values_are_checked_against_the_params_they_feed(var, values, bad, reason):
    text = G.replace("    g: [0.5, 1.0]\n", f"    {var}: [{values[1:-1].split(', ')[0]},\n      {bad}]\n")
    line = line_of(text, f"      {bad}]")
    index = 1
    shown = {"null": "None", ".nan": "nan", ".inf": "inf", "loud": "'loud'", "clen": "'clen'"}.get(bad, bad)
    assert probs(text) == [f"v.yaml:{line}: evaluate.sweep.{var}[{index}] = {shown}: block 'amp' (testing.gain): "
                           f"{reason}"]


def test_sweep_values_reach_params_inside_graph_blocks_and_through_expressions(tmp_path):
    (tmp_path / "inner.yaml").write_text(
        "format: 1\nname: inner\nvariables: {k: 1.0}\nports: {inputs: {x: a.x}, outputs: {y: a.y}}\n"
        "blocks:\n  a: {type: testing.gain, params: {gain: $k * 2}}\n")
    top = tmp_path / "top.yaml"
    top.write_text("format: 1\nname: top\nvariables: {level: 1.0}\nblocks:\n  src: {type: testing.vectors}\n"
                   "  box: {type: 'graph:inner.yaml', params: {k: $level}}\n  err: {type: testing.mse}\n"
                   "connections:\n  - src.x -> box.x\n  - box.y -> err.pred\n  - src.x -> err.target\n"
                   "evaluate:\n  sweep: {level: [1.0, text]}\n")
    # 'text' * 2 is 'texttext': the inner param sees the value through both expressions
    assert [str(p) for p in compile_graph(load_graph(top)).problems] == [
        f"{top}:13: evaluate.sweep.level[1] = 'text': block 'box/a' (testing.gain): param 'gain' expects float, "
        "got str 'texttext'"]


def test_sweep_size_is_capped_unless_forced():
    from flowgraph.limits import Limits
    text = G.replace("    g: [0.5, 1.0]\n", "    g: [0.5, 1.0]\n    taps: [1, 2]\n")
    small = Limits(max_sweep_points=3)
    [p] = probs(text, limits=small)
    assert p == f"v.yaml:{line_of(text, '  sweep:')}: evaluate.sweep has 4 points (limit 3): use fewer values, or pass --force"
    assert probs(text, limits=Limits(max_sweep_points=3, force=True)) == []
    images = text.replace("  batch: 4\n", "  batch: 4\n  images: 1000\n")
    [p] = probs(images, limits=Limits(max_eval_examples=3000))
    assert "evaluation would run 4000 examples (1000 images x 4 sweep points; limit 3000)" in p


# ---- 19.2 / 10.5 optimizer and schedule --------------------------------------------

@pytest.mark.parametrize("old,new,message", [
    ("{type: adam, lr: $lr}", "{type: adam, lr: .nan}", "optimizer.lr: expected a finite number, got nan"),
    ("{type: adam, lr: $lr}", "{type: adam, lr: -1}", "optimizer.lr: must be > 0, got -1"),
    ("{type: adam, lr: $lr}", "{type: adam, lr: $lr, betas: [0.9, 1.5]}",
     "optimizer.betas: beta2 must be in [0, 1), got 1.5"),
    ("{type: adam, lr: $lr}", "{type: adam, lr: $lr, momentum: 0.9}",
     "optimizer: 'momentum' is not read by optimizer type 'adam' (only by sgd, rmsprop)"),
    ("{type: adam, lr: $lr}", "{type: sgd, lr: $lr, nesterov: true}",
     "optimizer: torch.optim.SGD refuses these settings: Nesterov momentum requires a momentum and zero dampening"),
    ("{type: cosine, min_factor: 0.1}", "{type: step, step_size: 0}", "schedule.step_size: must be >= 1, got 0"),
    ("{type: cosine, min_factor: 0.1}", "{type: cosine, min_factor: 2}", "schedule.min_factor: must be in [0, 1], got 2"),
    ("{type: cosine, min_factor: 0.1}", "{type: cosine, gamma: 0.5}",
     "schedule: 'gamma' is not read by schedule type 'cosine' (only by step, multistep, exponential)"),
    ("{type: cosine, min_factor: 0.1}", "{type: multistep, milestones: [0.5, -3]}",
     "schedule.milestones: each milestone must be a step (integer >= 0) or a fraction in (0, 1), got -3"),
    ("{type: cosine, min_factor: 0.1}", "{type: exponential, gamma: 0}", "schedule.gamma: must be > 0, got 0"),
    ("{type: cosine, min_factor: 0.1}", "{type: cosine, warmup: -5}", "schedule.warmup: must be >= 0, got -5"),
])
def test_optimizer_and_schedule_values_and_keys(old, new, message):
    text = G.replace(old, new)
    line = line_of(text, new)
    got = probs(text)
    assert len(got) == 1 and got[0].startswith(f"v.yaml:{line}: train stage 'e2e': {message}"), got


def test_a_misspelled_schedule_key_is_named_with_a_suggestion():
    text = G.replace("{type: cosine, min_factor: 0.1}", "{type: cosine, min_fator: 0.1}")
    assert probs(text) == [f"v.yaml:{line_of(text, 'min_fator')}: train[0].schedule: unknown key 'min_fator' "
                           "(did you mean 'min_factor'?)"]


def test_optimizer_values_from_a_preset_are_checked():
    text = G.replace("  smoke: {steps: 1}", "  smoke: {steps: 1}\n  hot: {lr: .nan}")
    problems = [str(p) for p in validate_graph(loads_graph(text, "v.yaml"))]
    assert problems == [f"v.yaml:{line_of(text, 'lr: $lr}')}: preset 'hot': train stage 'e2e': optimizer.lr: "
                        "expected a finite number, got nan"]


# ---- 19.3 the loss on the graph's resolved shapes and kinds ------------------------

@pytest.mark.parametrize("loss,message", [
    ("mse(enc.y, src.x)", "fails on the ports' shapes (enc.y (B,8) float32, src.x (B,4) float32): "),
    ("mse(dec.y, one.x)", "mixes ports of different shapes (dec.y (B,4) float32, one.x (B,1) float32): "
                          "Using a target size (torch.Size([2, 1])) that is different to the input size"),
    ("dec.y", "must be a scalar, but on the ports' shapes (dec.y (B,4) float32) it is shape (2, 4)"),
    ("ce(dec.y, src.x) * 0 + mse(dec.y, src.x[0])", None),
])
def test_the_loss_is_evaluated_on_resolved_shapes(loss, message):
    text = G.replace("loss: mse(dec.y, src.x)", f"loss: {loss}").replace(
        "  err: {type: testing.mse}\n", "  err: {type: testing.mse}\n  one: {type: testing.vectors, params: {n: 1}}\n")
    got = probs(text)
    if message is None:
        assert all("loss" in p for p in got)   # whatever it says, it says it about the loss
        return
    assert len(got) == 1 and got[0].startswith(f"v.yaml:{line_of(text, 'loss:')}: train stage 'e2e': loss "), got
    assert message in got[0], got
    if loss == "mse(enc.y, src.x)":
        assert "The size of tensor a (8) must match the size of tensor b (4)" in got[0]


def test_a_loss_over_a_complex_port_and_a_real_port_is_refused():
    """Kinds matter: a complex (B, N) port is (B, N, 2) real numbers to mse."""
    if not has("testing.cplx"):
        @register("testing.cplx")
        class Cplx(Block):
            """z = x + 0j: (B, N) real -> (B, N) complex."""
            inputs = {"x": Port("real", ("B", "N"))}
            outputs = {"z": Port("complex", ("B", "N"))}

            def forward(self, x):
                return {"z": torch.complex(x, torch.zeros_like(x))}
    text = G.replace("  err: {type: testing.mse}\n", "  err: {type: testing.mse}\n  cx: {type: testing.cplx}\n")
    text = text.replace("  - src.x -> err.target\n", "  - src.x -> err.target\n  - dec.y -> cx.x\n")
    text = text.replace("loss: mse(dec.y, src.x)", "loss: mse(cx.z, src.x)")
    [p] = probs(text)
    assert "train stage 'e2e': loss 'mse(cx.z, src.x)' fails on the ports' shapes (cx.z (B,4) complex64, " \
           "src.x (B,4) float32)" in p


# ---- 19.4 losses and metrics over graph-block ports --------------------------------

CODEC = """\
format: 1
name: codec
variables: {n: 4, hidden: 8}
ports:
  inputs: {x: [enc.x, err.target]}
  outputs: {y: dec.y, z: enc.y}
blocks:
  enc: {type: testing.affine, params: {n: $n, m: $hidden}}
  dec: {type: testing.affine, params: {n: $hidden, m: $n}}
  err: {type: testing.mse}
connections:
  - enc.y -> dec.x
  - dec.y -> err.pred
"""

TOP = """\
format: 1
name: top
variables: {steps: 3}
blocks:
  src: {type: testing.vectors}
  codec: {type: "graph:codec.yaml"}
  err: {type: testing.mse}
connections:
  - src.x -> codec.x
  - codec.y -> err.pred
  - src.x -> err.target
train:
  - stage: e2e
    trainable: [codec]
    loss: mse(codec.y, src.x)
    steps: $steps
evaluate: {metrics: [err], batch: 5}
presets:
  smoke: {steps: 2}
"""


def test_a_loss_over_a_graph_block_port_trains(tmp_path):
    from flowgraph.run import Runner
    (tmp_path / "codec.yaml").write_text(CODEC)
    (tmp_path / "top.yaml").write_text(TOP)
    spec = load_graph(tmp_path / "top.yaml")
    cg = compile_graph(spec)
    assert cg.problems == []
    assert cg.resolve_port("codec", "y") == ("codec/dec", "y")
    r = Runner(spec, preset="smoke", out=tmp_path / "run", quiet=True)
    w0 = r.scheduler.block("codec/enc").lin.weight.clone()
    assert r.run() is not None
    assert not torch.equal(w0, r.scheduler.block("codec/enc").lin.weight)


def test_graph_block_port_errors_in_losses_and_metrics(tmp_path):
    (tmp_path / "codec.yaml").write_text(CODEC)
    top = tmp_path / "top.yaml"
    top.write_text(TOP.replace("mse(codec.y, src.x)", "mse(codec.q, src.x)").replace("metrics: [err]",
                                                                                      "metrics: [codec]"))
    problems = [str(p) for p in compile_graph(load_graph(top)).problems]
    assert f"{top}:15: train stage 'e2e': loss refers to 'codec.q', but graph block 'codec' exposes no " \
           f"output 'q' (outputs: y, z)" in problems
    assert f"{top}:17: evaluate.metrics: 'codec' is a graph block; name a sink inside it (codec/err)" in problems
    # naming the inner sink works
    top.write_text(TOP.replace("metrics: [err]", "metrics: [codec/err]"))
    assert compile_graph(load_graph(top)).problems == []


def test_a_bad_graph_block_param_is_reported_once_at_its_line(tmp_path):
    (tmp_path / "codec.yaml").write_text(CODEC)
    top = tmp_path / "top.yaml"
    top.write_text(TOP.replace('  codec: {type: "graph:codec.yaml"}',
                               '  codec:\n    type: "graph:codec.yaml"\n    params:\n      hidden: $hiden'))
    assert [str(p) for p in compile_graph(load_graph(top)).problems] == [
        f"{top}:9: block 'codec': param 'hidden': unknown variable 'hiden'"]


def test_nested_graph_blocks_resolve_through_every_level(tmp_path):
    (tmp_path / "codec.yaml").write_text(CODEC)
    (tmp_path / "outer.yaml").write_text("format: 1\nname: outer\nports:\n  inputs: {x: inner.x}\n"
                                         "  outputs: {y: inner.y}\nblocks:\n  inner: {type: 'graph:codec.yaml'}\n")
    top = tmp_path / "top.yaml"
    top.write_text(TOP.replace("graph:codec.yaml", "graph:outer.yaml"))
    cg = compile_graph(load_graph(top))
    assert cg.problems == []
    assert cg.resolve_port("codec", "y") == ("codec/inner/dec", "y")
    assert ("src", "x", "codec/inner/enc", "x") in cg.edges and ("codec/inner/dec", "y", "err", "pred") in cg.edges


# ---- 19.5 stage variables ------------------------------------------------------------

@pytest.mark.parametrize("setting,message", [
    ("g: .nan", "train stage 'e2e': g = nan: block 'amp' (testing.gain): param 'gain' expects a finite float, got nan"),
    ('g: "uniform(0, 1e999)"', "param 'gain' draws from uniform(0, inf): expects finite bounds"),
    ('taps: "uniform(1, 4)"', "param 'taps' draws real numbers from uniform(1, 4) but expects int"),
    ('mode: "choice([\'scaled\', \'loud\'])"', "param 'mode' draws from choice(['scaled', 'loud']): option 'loud': "
                                               "must be one of ['scaled', 'clean'], got 'loud'"),
    ('taps: "randint(0, 3)"', None),
    ('mode: "uniform(0, 1)"', "param 'mode' draws real numbers from uniform(0, 1) but expects str"),
    ("variables: {g: oops}", "g = 'oops': block 'amp' (testing.gain): param 'gain' expects float, got str 'oops'"),
])
def test_stage_variables_are_checked_against_the_params_they_feed(setting, message):
    text = G.replace("    steps: $steps\n", f"    steps: $steps\n    {setting}\n")
    got = probs(text)
    if message is None:
        assert got == []
        return
    assert len(got) == 1 and got[0].startswith(f"v.yaml:{line_of(text, setting)}: train stage 'e2e': "), got
    assert message in got[0], got


def test_a_set_value_reaching_a_param_through_a_stage_is_checked(write_graph, capsys):
    text = G.replace("  steps: 2\n", "  steps: 2\n  train_g: 1.0\n").replace(
        "    steps: $steps\n", "    steps: $steps\n    g: $train_g\n")
    path = write_graph(text)
    assert main(["validate", str(path), "--set", "train_g=.inf"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{path}:{line_of(text, 'g: $train_g')}: train stage 'e2e': g = inf: block 'amp' "
                   "(testing.gain): param 'gain' expects a finite float, got inf"]


def test_a_variable_that_is_a_distribution_is_checked_where_it_is_used():
    text = G.replace("  taps: 1\n", "  taps: \"uniform(1, 3)\"\n")
    [p] = probs(text)
    assert "block 'amp' (testing.gain): param 'taps' draws real numbers from uniform(1, 3) but expects int" in p


# ---- 19.6 every preset ----------------------------------------------------------------

def test_validate_checks_every_preset(write_graph, capsys):
    text = G.replace("  smoke: {steps: 1}", "  smoke: {steps: 1}\n  quick: {g: .nan, hidden: 2.5}\n  ok: {n: 6}")
    path = write_graph(text)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert f"{path}:{line_of(text, 'gain: $g')}: preset 'quick': block 'amp' (testing.gain): param 'gain' " \
           "expects a finite float, got nan" in out
    assert f"{path}:{line_of(text, 'm: $hidden')}: preset 'quick': block 'enc' (testing.affine): param 'm' " \
           "expects int, got float 2.5" in out
    assert not any("preset 'ok'" in line or "preset 'smoke'" in line for line in out)
    # one preset only, when one is named
    assert main(["validate", str(path), "--preset", "ok"]) == 0


def test_every_shipped_graph_validates_in_every_preset(root):
    bad = {}
    for path in sorted((root / "graphs").rglob("*.yaml")):
        if "parts" in path.parts:
            continue
        problems = validate_graph(load_graph(path))
        if problems:
            bad[str(path)] = [str(p) for p in problems]
    assert bad == {}
