"""Scheduler, training, evaluation, run directories, resume, taps (tiny graphs: fast)."""
import json
from pathlib import Path
import subprocess
import sys

import pytest
import torch

from flowgraph import NonFiniteError, SemflowError
from flowgraph.graph import load_graph, loads_graph
from flowgraph.run import Runner, load_checkpoint
from flowgraph.taps import CsvTapLogger, TapHub

TINY = "tests/graphs/tiny.yaml"


@pytest.fixture
def tiny(root):
    return load_graph(root / TINY)


def _params(r):
    return {k: v.clone() for k, v in r.scheduler.state_dict().items()
            if torch.is_tensor(v) and torch.is_floating_point(v)}


def runner(spec, tmp_path, name="run", **kw):
    kw.setdefault("quiet", True)
    return Runner(spec, out=tmp_path / name, **kw)


def test_run_writes_a_complete_run_directory(tiny, tmp_path):
    r = runner(tiny, tmp_path, preset="smoke", seed=3)
    result = r.run()
    out = tmp_path / "run"
    for f in ("graph.yaml", "run.json", "log.txt", "train.csv", "metrics.json", "metrics.csv",
              "err_vs_sigma.png", "checkpoints/last.pt"):
        assert (out / f).is_file(), f
    info = json.loads((out / "run.json").read_text())
    assert info["seed"] == 3 and info["preset"] == "smoke" and "torch" in info["versions"]
    assert [row["sigma"] for row in result["rows"]] == [0.0, 0.5]
    assert all(row["n"] == 10 for row in result["rows"])
    # per-example values are recorded, and mean/std come from them
    vals = torch.tensor(result["per_example"]["sigma=0.5"]["err"])
    assert len(vals) == 10
    assert result["rows"][1]["err"] == pytest.approx(float(vals.mean()), rel=1e-6)
    assert result["rows"][1]["err_std"] == pytest.approx(float(vals.std()), rel=1e-5)
    # more noise, more error
    assert result["rows"][1]["err"] > result["rows"][0]["err"]
    assert result["cbr"]["cbr"] == pytest.approx(1.0)
    # the resolved graph loads again and validates
    again = load_graph(out / "graph.yaml")
    assert again.variables["steps"] == 3
    lines = (out / "train.csv").read_text().splitlines()
    assert lines[0].startswith("stage,step,loss,lr") and len(lines) == 4


def test_gradients_flow_end_to_end_and_frozen_blocks_stay(tiny, tmp_path):
    r = runner(tiny, tmp_path, preset="smoke")
    before = _params(r)
    r.train()
    after = _params(r)
    assert not torch.equal(before["blocks.enc.lin.weight"], after["blocks.enc.lin.weight"])
    assert not torch.equal(before["blocks.dec.lin.weight"], after["blocks.dec.lin.weight"])
    # now train only the decoder: the encoder must not move
    tiny.train[0]["trainable"] = ["dec"]
    r2 = runner(tiny, tmp_path, "r2", preset="smoke")
    before = _params(r2)
    r2.train()
    after = _params(r2)
    assert torch.equal(before["blocks.enc.lin.weight"], after["blocks.enc.lin.weight"])
    assert not torch.equal(before["blocks.dec.lin.weight"], after["blocks.dec.lin.weight"])


@pytest.mark.parametrize("preset", ["smoke", "redraw"])
def test_resumed_run_equals_uninterrupted_run(tiny, tmp_path, preset):
    full = runner(tiny, tmp_path, "full", preset=preset, seed=7, overrides={"steps": 8})
    assert full.train() is True
    part = runner(tiny, tmp_path, "part", preset=preset, seed=7, overrides={"steps": 8})
    assert part.train(stop_after=3) is False
    ck = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")
    assert ck["step"] == 3
    # a fresh process would rebuild everything: so do we, then resume
    resumed = runner(tiny, tmp_path, "part", preset=preset, seed=7, overrides={"steps": 8}, resume=True)
    assert resumed.train() is True
    # the resumed run's train.csv continues the interrupted one
    steps = [line.split(",")[1] for line in (tmp_path / "part" / "train.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, 9)]
    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_train_csv_logs_the_draw_that_was_used(tiny, tmp_path):
    """`sigma: $train_sigma` with train_sigma ~ uniform: train.csv has the sigma the blocks
    saw each logged step, and no second, unused train_sigma column."""
    r = runner(tiny, tmp_path, "redraw", preset="redraw", overrides={"steps": 4})
    r.train()
    header, *rows = (tmp_path / "redraw" / "train.csv").read_text().splitlines()
    cols = header.split(",")
    assert "sigma" in cols and "train_sigma" not in cols
    sigmas = [float(row.split(",")[cols.index("sigma")]) for row in rows]
    assert len(set(sigmas)) == len(sigmas) == 4 and all(0 <= x <= 1 for x in sigmas)


def test_nan_is_reported_with_the_block_that_produced_it(tmp_path, root):
    spec = load_graph(root / TINY)
    spec.add_block("bad", "testing.nan_after", {"at": 2})
    spec.disconnect("rx", "x", "dec", "x")
    spec.connect("rx", "x", "bad", "x")
    spec.connect("bad", "x", "dec", "x")
    r = runner(spec, tmp_path, preset="smoke")
    with pytest.raises(NonFiniteError) as exc:
        r.train()
    assert exc.value.block == "bad" and exc.value.port == "x"
    assert "first produced by block 'bad' at port 'x'" in str(exc.value)
    assert "step 2" in str(exc.value)


def test_taps_deliver_detached_cpu_copies_throttled(tiny, tmp_path):
    hub = TapHub()
    got = {"ch.z": [], "cx.energy": [], "train.step": []}
    hub.subscribe("ch.z", lambda n, v, i: got[n].append((v, i)), min_interval=0.0)
    hub.subscribe("cx.energy", lambda n, v, i: got[n].append((v, i)), min_interval=0.0, every=2)
    hub.subscribe("train.step", lambda n, v, i: got[n].append((v, i)), min_interval=0.0)
    r = runner(tiny, tmp_path, preset="smoke", taps=hub)
    r.train()
    assert len(got["ch.z"]) == 3                       # one per training frame
    v, info = got["ch.z"][0]
    assert v.is_complex() and v.device.type == "cpu" and not v.requires_grad
    assert info["stage"] == "e2e" and info["step"] == 1
    assert len(got["cx.energy"]) == 2                  # every 2nd of 3 publications
    assert [row["step"] for row, _ in got["train.step"]] == [1, 2, 3]


def test_tap_time_throttle_and_unsubscribe():
    hub = TapHub()
    seen = []
    sub = hub.subscribe("a.b", lambda n, v, i: seen.append(v), min_interval=3600)
    for k in range(5):
        hub.publish("a.b", torch.tensor(k))
    assert [int(s) for s in seen] == [0]
    sub.close()
    assert not hub.wants("a.b")


def test_csv_tap_logger(tmp_path):
    hub = TapHub()
    log = CsvTapLogger(hub, tmp_path / "x.csv", ["blk.y"])
    hub.publish("blk.y", torch.tensor([1.0, 3.0]), step=1)
    hub.publish("blk.y", torch.tensor([1j, 1j]), step=2)
    log.close()
    rows = (tmp_path / "x.csv").read_text().splitlines()
    assert rows[0] == "tap,value,step" and rows[1] == "blk.y,2.0,1" and rows[2] == "blk.y,1.0,2"


def test_bypass_turns_a_block_into_a_wire(root, tmp_path):
    text = (root / TINY).read_text().replace("ch:  {type: testing.noise, params: {sigma: $sigma}}",
                                              "ch:  {type: testing.noise, params: {sigma: $sigma}, bypass: true}")
    spec = loads_graph(text, "bypass.yaml")
    r = runner(spec, tmp_path, preset="smoke")
    assert "ch" not in r.graph.blocks
    result = r.evaluate()
    # without the noise block every sweep point sees the same clean channel
    assert result["rows"][0]["err"] == pytest.approx(result["rows"][1]["err"], abs=1e-6)


def test_disabled_block_leaves_an_optional_input_unconnected(tmp_path, write_graph):
    path = write_graph("""\
format: 1
name: opt
blocks:
  src: {type: testing.vectors}
  side: {type: testing.affine, enabled: false}
  mix: {type: testing.two_in}
  err: {type: testing.mse}
connections:
  - src.x -> mix.a
  - src.x -> side.x
  - side.y -> mix.b
  - mix.y -> err.pred
  - src.x -> err.target
evaluate: {metrics: [err]}
""")
    r = runner(load_graph(path), tmp_path)
    assert "side" not in r.graph.blocks
    result = r.evaluate()
    assert result["rows"][0]["err"] == pytest.approx(0.0)   # mix passes a through


def test_hierarchical_graph_block(tmp_path, write_graph):
    write_graph((Path(__file__).parent / "graphs" / "tiny_codec_part.yaml").read_text(), "codec.yaml")
    top = write_graph("""\
format: 1
name: top
variables: {noise: 0.2}
blocks:
  src: {type: testing.vectors}
  codec: {type: "graph:codec.yaml", params: {sigma: $noise, hidden: 6}}
  err: {type: testing.mse}
connections:
  - src.x -> codec.x
  - codec.y -> err.pred
  - src.x -> err.target
train:
  - stage: e2e
    trainable: [codec]
    loss: mse(codec/dec.y, src.x) + 0 * mean(err.value)
    steps: 2
evaluate: {sweep: {noise: [0.0, 5.0]}, metrics: [err]}
""", "top.yaml")
    r = runner(load_graph(top), tmp_path)
    assert set(r.graph.blocks) == {"src", "codec/enc", "codec/cx", "codec/ch", "codec/rx", "codec/dec", "err"}
    assert r.scheduler.block("codec/enc").p.m == 6          # the graph block's param reached inside
    assert r.scheduler.block("codec/ch").p.sigma == pytest.approx(0.2)
    w0 = r.scheduler.block("codec/enc").lin.weight.clone()
    r.train()
    assert not torch.equal(w0, r.scheduler.block("codec/enc").lin.weight)
    res = r.evaluate()
    assert res["rows"][1]["err"] > res["rows"][0]["err"]    # sweeping the outer variable moves the inner noise


def test_hierarchical_port_errors_are_reported(tmp_path, write_graph):
    write_graph("format: 1\nname: p\nvariables: {n: 4}\nports: {inputs: {x: enc.x}}\n"
                "blocks:\n  enc: {type: testing.affine}\n", "p.yaml")
    top = write_graph("format: 1\nname: t\nblocks:\n  src: {type: testing.vectors}\n"
                      "  p: {type: 'graph:p.yaml', params: {m: 3}}\nconnections:\n  - src.x -> p.q\n", "t.yaml")
    from flowgraph.compile import compile_graph
    probs = [str(p) for p in compile_graph(load_graph(top)).problems]
    assert any("graph 'p.yaml' has no variable 'm'" in p for p in probs)
    assert any("graph block 'p' exposes no input 'q' (inputs: x)" in p for p in probs)


@pytest.mark.parametrize("graph", ["tests/graphs/tiny.yaml"])
def test_save_and_load_round_trip(root, tmp_path, graph):
    g1 = load_graph(root / graph)
    g1.save(tmp_path / "saved.yaml")
    g2 = load_graph(tmp_path / "saved.yaml")
    assert g1.to_dict() == g2.to_dict()
    g2.save(tmp_path / "saved2.yaml")
    assert (tmp_path / "saved.yaml").read_text() == (tmp_path / "saved2.yaml").read_text()


def test_first_frame_checks_block_contracts(tmp_path, write_graph):
    from flowgraph import Block, Port, register
    from flowgraph.registry import has
    if not has("testing.liar"):
        @register("testing.liar")
        class Liar(Block):
            """declares complex but returns real"""
            inputs = {"x": Port("real", ("B", "N"))}
            outputs = {"y": Port("complex", ("B", "N"))}

            def forward(self, x):
                return {"y": x}
    path = write_graph("format: 1\nname: l\nblocks:\n  src: {type: testing.vectors}\n"
                       "  l: {type: testing.liar}\nconnections:\n  - src.x -> l.x\n")
    r = runner(load_graph(path), tmp_path)
    with pytest.raises(SemflowError, match="block 'l' \\(testing.liar\\) output 'y' is real but the port declares complex"):
        r.scheduler()


def test_runtime_variable_change_moves_runtime_params(tiny, tmp_path):
    r = runner(tiny, tmp_path)
    r.scheduler.set_variables({"sigma": 0.7})
    assert r.scheduler.block("ch").p.sigma == pytest.approx(0.7)


def test_registry_refuses_duplicate_ids():
    from flowgraph import Block, RegistryError, register

    @register("testing.dup")
    class A(Block):
        """a"""

    with pytest.raises(RegistryError, match="already registered"):
        @register("testing.dup")
        class B(Block):
            """b"""


CLI_ERRORS = [
    (["run", "nope.yaml"], "semflow: error: nope.yaml: no such file"),
    (["run", "tests/graphs/tiny.yaml", "--preset", "warp"], "unknown preset 'warp' (presets: smoke, redraw)"),
    (["run", "tests/graphs/tiny.yaml", "--set", "sigma"], "--set 'sigma': expected VAR=VALUE"),
    (["describe", "channel.nope"], "semflow: error: unknown block type 'channel.nope'"),
    (["eval", "tests/graphs/tiny.yaml", "--checkpoint", "missing.pt"], "missing.pt: no such checkpoint"),
    (["run", "tests/graphs/tiny.yaml", "--sweep", "sigma=0.1"], "--sweep 'sigma=0.1': expected VAR=[v1, v2, ...]"),
]


@pytest.mark.parametrize("argv,message", CLI_ERRORS)
def test_cli_errors_are_one_line(root, tmp_path, argv, message, capsys):
    from flowgraph.cli import main
    import os
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = main(argv + (["--out", str(tmp_path / "o")] if argv[0] in ("run", "eval") else []))
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and message in err[0], err


def test_cli_sweep_replaces_the_graph_sweep(root, tmp_path, capsys):
    """--sweep VAR=[...] (repeatable) evaluates over that grid, in the order given; an
    unknown variable is a validation error naming the graph."""
    from flowgraph.cli import main
    import os
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = main(["run", "tests/graphs/tiny.yaml", "--preset", "smoke", "--quiet", "--out", str(tmp_path / "o"),
                     "--sweep", "sigma=[0.4, 0.0, 0.2]"])
        assert code == 0
        rows = json.loads((tmp_path / "o" / "metrics.json").read_text())["rows"]
        assert [r["sigma"] for r in rows] == [0.4, 0.0, 0.2]      # the graph's own sweep is [0.0, 0.5]
        code = main(["run", "tests/graphs/tiny.yaml", "--preset", "smoke", "--out", str(tmp_path / "p"),
                     "--sweep", "sgma=[0.0]"])
    finally:
        os.chdir(cwd)
    assert code != 0
    assert "tiny.yaml:35: evaluate.sweep: unknown variable 'sgma'" in capsys.readouterr().err


def test_bad_yaml_is_one_line(write_graph, capsys):
    from flowgraph.cli import main
    p = write_graph("format: 1\nblocks: {a: [1, 2}\n")
    assert main(["validate", str(p)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{p}:2: invalid YAML")


def test_python_dash_m_flowgraph_matches_semflow(root):
    a = subprocess.run([sys.executable, "-m", "flowgraph", "describe", "channel.awgn"], cwd=root,
                       capture_output=True, text=True)
    assert a.returncode == 0 and "snr_db" in a.stdout and "runtime" in a.stdout
    b = subprocess.run([sys.executable, "-m", "flowgraph", "blocks", "--json"], cwd=root, capture_output=True, text=True)
    data = json.loads(b.stdout)
    assert data["channel.awgn"]["params"]["snr_db"]["runtime"] is True
    assert data["extractor.deepjscc"]["outputs"]["z"]["kind"] == "complex"


def test_copy_weights_at_stage_start(tiny, tmp_path):
    tiny.train.append({"stage": "second", "trainable": ["dec"], "copy_weights": {"dec": "enc"},
                       "loss": "mse(dec.y, src.x)", "steps": 0})
    # enc (4 -> 8) and dec (8 -> 4) differ in shape: copying must be refused at load time,
    # so use a same-shaped pair instead
    tiny.variables["hidden"] = 4
    r = runner(tiny, tmp_path, preset="smoke")
    r.train()
    enc, dec = r.scheduler.block("enc"), r.scheduler.block("dec")
    assert torch.equal(enc.lin.weight, dec.lin.weight)


def test_enabled_and_bypass_take_expressions(root, tmp_path):
    text = (root / TINY).read_text().replace("ch:  {type: testing.noise, params: {sigma: $sigma}}",
                                              "ch:  {type: testing.noise, params: {sigma: $sigma}, bypass: $clean}")
    text = text.replace("  n: 4\n", "  n: 4\n  clean: false\n")
    spec = loads_graph(text, "flags.yaml")
    from flowgraph.compile import compile_graph
    assert "ch" in compile_graph(spec).blocks
    assert "ch" not in compile_graph(spec, overrides={"clean": True}).blocks
    bad = compile_graph(spec, overrides={"clean": 3})
    assert any("bypass must evaluate to true or false, got 3" in str(p) for p in bad.problems)
    # saving keeps the expression
    assert loads_graph(spec.dumps(), "again.yaml").blocks["ch"].bypass == "$clean"


def test_a_block_that_raises_is_named(tmp_path, write_graph):
    from flowgraph import BlockError, Block, Port, register
    from flowgraph.registry import has
    if not has("testing.raiser"):
        @register("testing.raiser")
        class Raiser(Block):
            """raises on purpose"""
            inputs = {"x": Port("real", ("B", "N"))}
            outputs = {"y": Port("real", ("B", "N"))}

            def forward(self, x):
                raise RuntimeError("singular matrix\nsecond line")
    path = write_graph("format: 1\nname: r\nblocks:\n  src: {type: testing.vectors}\n"
                       "  bad: {type: testing.raiser}\nconnections:\n  - src.x -> bad.x\n")
    r = runner(load_graph(path), tmp_path)
    with pytest.raises(BlockError, match=r"block 'bad' \(testing.raiser\) failed: RuntimeError: singular matrix$"):
        r.scheduler()


def test_taps_carry_a_frame_counter_and_logs_reach_listeners(tiny, tmp_path):
    hub = TapHub()
    frames = []
    hub.subscribe("ch.z", lambda n, v, i: frames.append(i["frame"]), min_interval=0.0)
    r = runner(tiny, tmp_path, preset="smoke", taps=hub)
    lines = []
    r.log.listeners.append(lines.append)
    r.train()
    assert frames == [1, 2, 3]
    assert any("[e2e] done" in line for line in lines)


def test_evaluation_honours_stop_requests(tiny, tmp_path):
    r = runner(tiny, tmp_path)
    r.stop_requested = True
    res = r.evaluate(write=False)
    assert len(res["rows"]) == 1 and res["rows"][0]["n"] == 0
