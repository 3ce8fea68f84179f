"""Train-stage features (issue 11.3-11.5, issue 10.2): enabled, parameter patterns, sub-module
copies, per-stage batch, EMA, accumulation, per-block learning rates, init from another run,
validation with best.pt, alternating discriminator steps -- and their file:line errors.

Tiny graphs of tests/engine_blocks.py blocks: every test runs in well under a second or two.
"""
import csv
import json
from pathlib import Path

import pytest
import torch

from flowgraph import ValidationError
from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph
from flowgraph.run import Runner, load_checkpoint
from flowgraph.taps import TapHub

HEAD = """\
format: 1
name: t
variables:
  sigma: 0.1
  n: 4
  hidden: 8
  steps: 4
  lr: 0.01
  use_branch: true
  ckpt: ""
{variables}blocks:
  src: {{type: testing.vectors, params: {{n: $n{src}}}}}
  enc: {{type: testing.affine, params: {{n: $n, m: $hidden}}}}
  cx:  {{type: testing.to_complex}}
  ch:  {{type: testing.noise, params: {{sigma: $sigma}}}}
  rx:  {{type: testing.to_real}}
  dec: {{type: testing.affine, params: {{n: $hidden, m: $n}}}}
  err: {{type: testing.mse}}
{blocks}connections:
  - src.x -> enc.x
  - enc.y -> cx.x
  - cx.z -> ch.z
  - ch.z -> rx.z
  - rx.x -> dec.x
  - dec.y -> err.pred
  - src.x -> err.target
{connections}train:
{train}evaluate:
  sweep: {{sigma: [0.0, 0.5]}}
  metrics: [err]
  batch: 4
"""

E2E = """\
  - stage: e2e
    trainable: [enc, dec]
    loss: mse(dec.y, src.x)
    optimizer: {type: adam, lr: $lr}
    steps: $steps
"""

BRANCH_BLOCKS = "  br:  {type: testing.branch, params: {n: $n}, enabled: $use_branch}\n"
BRANCH_CONNS = "  - dec.y -> br.x\n"


def text(train=E2E, blocks="", connections="", variables="", src=""):
    return HEAD.format(train=train, blocks=blocks, connections=connections, variables=variables, src=src)


def line(text_, needle, after=0):
    """1-based line of the first line containing ``needle`` (after line ``after``)."""
    for i, ln in enumerate(text_.splitlines(), 1):
        if i > after and needle in ln:
            return i
    raise AssertionError(needle)


def problems(write_graph, t, **kw):
    path = write_graph(t)
    return [str(p) for p in compile_graph(load_graph(path), **kw).problems], str(path)


def run(write_graph, tmp_path, t, name="run", fname="g.yaml", **kw):
    kw.setdefault("quiet", True)
    return Runner(load_graph(write_graph(t, fname)), out=tmp_path / name, **kw)


def weights(r):
    return {k: v.clone() for k, v in r.scheduler.state_dict().items()
            if torch.is_tensor(v) and torch.is_floating_point(v)}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def train_csv(r):
    with open(r.out / "train.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---- enabled: and the blocks a stage trains (issue 10.2) -------------------------------------------
BRANCH_STAGE = """\
  - stage: branch
    enabled: $use_branch
    trainable: [br]
    loss: mse(br.y, src.x)
    steps: 2
"""


def test_a_disabled_stage_is_skipped_so_an_ablation_is_a_preset(write_graph, tmp_path):
    t = text(E2E + BRANCH_STAGE, BRANCH_BLOCKS, BRANCH_CONNS)
    probs, _ = problems(write_graph, t)
    assert probs == []
    # the ablation removes the trainable block; its stage goes with it and nothing is reported
    probs, _ = problems(write_graph, t, overrides={"use_branch": False})
    assert probs == []
    r = run(write_graph, tmp_path, t, overrides={"use_branch": False})
    assert r.stage_settings(1)["enabled"] is False and r.stage_settings(1)["steps"] == 0
    assert r.train() is True
    assert {row["stage"] for row in train_csv(r)} == {"e2e"}
    assert "[branch] disabled" in (r.out / "log.txt").read_text()
    r2 = run(write_graph, tmp_path, t, name="on")
    r2.train()
    assert [row["stage"] for row in train_csv(r2)][-1] == "branch"


def test_a_stage_training_a_disabled_or_bypassed_block_is_caught_with_its_line(write_graph):
    t = text(E2E + BRANCH_STAGE.replace("    enabled: $use_branch\n", ""), BRANCH_BLOCKS, BRANCH_CONNS)
    probs, path = problems(write_graph, t, overrides={"use_branch": False})
    want = line(t, "trainable: [br]")
    assert f"{path}:{want}: train stage 'branch': trainable block 'br' is disabled" in probs
    bypassed = t.replace("enabled: $use_branch}", "bypass: true}")
    probs, path = problems(write_graph, bypassed)
    assert f"{path}:{want}: train stage 'branch': trainable block 'br' is bypassed, so it has nothing to " \
           "train or copy" in probs


def test_a_stage_whose_blocks_have_no_parameters_fails_before_training_with_its_line(write_graph, tmp_path):
    t = text(E2E + "  - stage: rx_only\n    trainable: [rx]\n    loss: mse(dec.y, src.x)\n    steps: 1\n")
    with pytest.raises(ValidationError) as exc:
        run(write_graph, tmp_path, t).train()
    assert not (tmp_path / "run" / "checkpoints").exists()          # nothing was trained
    assert str(exc.value) == (f"{tmp_path / 'g.yaml'}:{line(t, 'trainable: [rx]')}: train stage 'rx_only': "
                              "trainable blocks rx have no parameters: nothing to train (disable the stage "
                              "with enabled: ... in this configuration)")


def test_enabled_must_be_a_flag(write_graph):
    t = text(E2E.replace("    steps: $steps\n", "    steps: $steps\n    enabled: $lr\n"))
    probs, path = problems(write_graph, t)
    assert probs == [f"{path}:{line(t, 'enabled: $lr')}: train stage 'e2e': enabled must evaluate to true or "
                     "false, got 0.01"]


def test_a_distribution_is_redrawn_in_every_stage(write_graph, tmp_path):
    """Regression: the second stage used to train at the first stage's last draw of the
    distribution (its settings were evaluated against the scheduler's current values)."""
    stage = E2E.replace("    steps: $steps\n", "    steps: 4\n    sigma: $train_sigma\n")
    t = text(stage + stage.replace("e2e", "again"), variables="  train_sigma: uniform(0, 1)\n")
    r = run(write_graph, tmp_path, t)
    for i in (0, 1):
        assert repr(r.stage_settings(i)["variables"]["sigma"]) == "uniform(0, 1)"
    r.train()
    rows = train_csv(r)
    again = [float(row["sigma"]) for row in rows if row["stage"] == "again"]
    assert len(again) == 4 and len(set(again)) == 4
    assert repr(r.stage_settings(1)["variables"]["sigma"]) == "uniform(0, 1)"     # still, after training


# ---- parameter patterns and sub-module copies (issue 11.3) --------------------------------------------
PATTERN_STAGE = """\
  - stage: control
    trainable: ["br:control.*"]
    copy_weights: {"br:control": "br:base"}
    loss: mse(br.y, src.x)
    optimizer: {type: adam, lr: 0.05}
    steps: 3
"""


def test_a_pattern_trains_only_matching_parameters_and_sub_modules_copy(write_graph, tmp_path):
    t = text(PATTERN_STAGE, BRANCH_BLOCKS, BRANCH_CONNS)
    r = run(write_graph, tmp_path, t)
    br = r.scheduler.block("br")
    assert not torch.equal(br.control.weight, br.base.weight)
    before = weights(r)
    assert r.train()
    after = weights(r)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # frozen parameters (the base, every other block) are bit-identical
    assert changed == {"blocks.br.control.weight", "blocks.br.control.bias"}
    # a block with a trained parameter is in train mode, the others in eval mode
    assert br.training and not r.scheduler.block("enc").training
    # the copy happens at the stage start: with no steps the branch equals the base
    r0 = run(write_graph, tmp_path, t.replace("    steps: 3\n", "    steps: 0\n"), name="zero")
    r0.train()
    assert torch.equal(r0.scheduler.block("br").control.weight, r0.scheduler.block("br").base.weight)
    assert torch.equal(r0.scheduler.block("br").control.bias, before["blocks.br.base.bias"])


def test_a_pattern_that_matches_nothing_fails_at_run_start(write_graph, tmp_path):
    t = text(PATTERN_STAGE.replace("br:control.*", "br:contrl.*"), BRANCH_BLOCKS, BRANCH_CONNS)
    with pytest.raises(ValidationError) as exc:
        run(write_graph, tmp_path, t).train()
    assert str(exc.value) == (f"{tmp_path / 'g.yaml'}:{line(t, 'trainable:')}: train stage 'control': trainable "
                              "'br:contrl.*': pattern 'contrl.*' matches no parameter of block 'br' (parameters: "
                              "base.weight, base.bias, control.weight, control.bias)")
    t = text(PATTERN_STAGE.replace('"br:base"', '"br:bse"'), BRANCH_BLOCKS, BRANCH_CONNS)
    with pytest.raises(ValidationError, match=r"g.yaml:\d+: train stage 'control': 'br:bse': block 'br' has no "
                                              r"sub-module 'bse' \(top-level sub-modules: base, control\)"):
        run(write_graph, tmp_path, t, name="b").train()


def test_run_start_problems_are_one_line_each_on_the_cli(write_graph, tmp_path, capsys):
    from flowgraph.cli import main
    t = text(PATTERN_STAGE.replace("br:control.*", "br:contrl.*"), BRANCH_BLOCKS, BRANCH_CONNS)
    path = write_graph(t)
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # one problem: one line (the CLI's convention for a single validation problem)
    assert len(err) == 1
    assert err[0].startswith(f"semflow: error: {path}:{line(t, 'trainable:')}: train stage 'control': "
                             f"trainable 'br:contrl.*'")


def test_selector_syntax_errors_are_static(write_graph):
    t = text(PATTERN_STAGE.replace('["br:control.*"]', '["br:", "brr:x", "enc"]'), BRANCH_BLOCKS, BRANCH_CONNS)
    probs, path = problems(write_graph, t)
    at = f"{path}:{line(t, 'trainable:')}: train stage 'control':"
    assert f"{at} trainable block 'br:': empty parameter pattern after ':'" in probs
    assert f"{at} trainable block 'brr' does not exist" in probs


def test_whole_block_copy_between_different_shapes_is_one_located_line(write_graph, tmp_path):
    t = text(E2E + "  - stage: second\n    trainable: [dec]\n    copy_weights: {dec: enc}\n"
                   "    loss: mse(dec.y, src.x)\n    steps: 0\n")
    with pytest.raises(ValidationError) as exc:
        run(write_graph, tmp_path, t).train()
    assert str(exc.value) == (f"{tmp_path / 'g.yaml'}:{line(t, 'copy_weights')}: train stage 'second': "
                              "copy_weights dec <- enc: parameter 'lin.weight' has shape (8, 4) in the source "
                              "but (4, 8) here")


# ---- batch, accumulation, per-block learning rates (issue 11.3) ------------------------------------------
def test_stage_batch_is_used_then_the_graph_batch_is_restored(write_graph, tmp_path):
    t = text(E2E.replace("    steps: $steps\n", "    steps: 2\n    batch: 3\n")
             + E2E.replace("e2e", "after").replace("$steps", "1"))
    hub = TapHub()
    sizes = []
    hub.subscribe("src.x", lambda n, v, i: sizes.append((i["stage"], v.shape[0])), min_interval=0.0)
    r = run(write_graph, tmp_path, t, taps=hub)
    r.train()
    assert [(st, b) for st, b in sizes if st in ("e2e", "after")] == [("e2e", 3), ("e2e", 3), ("after", 5)]
    assert r.scheduler.block("src").p.batch == 5


def test_accumulating_two_micro_batches_equals_one_batch_of_twice_the_size(write_graph, tmp_path):
    # sequential rows: two micro-batches of 5 hold the rows of one batch of 10; no channel noise
    sgd = E2E.replace("{type: adam, lr: $lr}", "{type: sgd, lr: 0.1}")
    one = run(write_graph, tmp_path, text(sgd.replace("    steps: $steps\n", "    steps: 2\n    batch: 10\n"),
                                          src=", sequential: true").replace("sigma: 0.1", "sigma: 0.0"), name="one")
    two = run(write_graph, tmp_path, text(sgd.replace("    steps: $steps\n", "    steps: 2\n    batch: 5\n"
                                                                          "    accumulate: 2\n"),
                                          src=", sequential: true").replace("sigma: 0.1", "sigma: 0.0"), name="two")
    w0 = weights(one)
    one.train(), two.train()
    a, b = weights(one), weights(two)
    for k in a:
        assert not torch.equal(a[k], w0[k]), k
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k
    # the logged loss of an accumulated step is the mean over its micro-batches
    la, lb = (float(train_csv(r)[-1]["loss"]) for r in (one, two))
    assert la == pytest.approx(lb, rel=1e-5)


def test_lr_by_block_sets_a_learning_rate_per_block(write_graph, tmp_path):
    t = text(E2E.replace("{type: adam, lr: $lr}", "{type: sgd, lr: 0.1, lr_by_block: {dec: 0.0}}"))
    r = run(write_graph, tmp_path, t)
    w0 = weights(r)
    r.train()
    w1 = weights(r)
    assert torch.equal(w0["blocks.dec.lin.weight"], w1["blocks.dec.lin.weight"])       # lr 0: unchanged
    assert not torch.equal(w0["blocks.enc.lin.weight"], w1["blocks.enc.lin.weight"])   # the stage's lr
    bad = text(E2E.replace("{type: adam, lr: $lr}", "{type: adam, lr: $lr, lr_by_block: {ch: 1.0e-2, dec: -1}}"))
    probs, path = problems(write_graph, bad)
    at = f"{path}:{line(bad, 'lr_by_block')}: train stage 'e2e':"
    assert f"{at} optimizer.lr_by_block: 'ch' is not among this stage's trainable blocks (dec, enc)" in probs
    assert f"{at} optimizer.lr_by_block.dec must be a learning rate >= 0, got -1" in probs


# ---- EMA (issue 11.3) ---------------------------------------------------------------------------------------
EMA_STAGE = E2E.replace("    steps: $steps\n", "    steps: $steps\n    ema: 0.5\n")


def test_ema_weights_are_the_average_of_the_trajectory_and_replace_the_trained_ones(write_graph, tmp_path):
    # EMA does not change what trains: the plain run's weights after k steps are the trajectory
    traj = []
    for k in range(5):
        r = run(write_graph, tmp_path, text(), name=f"plain{k}", seed=4)
        r.train(stop_after=k) if k < 4 else r.train()
        traj.append(weights(r))
    expect = dict(traj[0])
    for w in traj[1:]:
        expect = {key: 0.5 * expect[key] + 0.5 * w[key] for key in expect}
    r = run(write_graph, tmp_path, text(EMA_STAGE), name="ema", seed=4)
    r.train()
    got = weights(r)
    for key in ("blocks.enc.lin.weight", "blocks.dec.lin.bias"):
        assert torch.allclose(got[key], expect[key], atol=1e-7), key
        assert not torch.equal(got[key], traj[-1][key])
    # the final checkpoint holds the EMA weights, and evaluation uses them
    ck = load_checkpoint(r.checkpoint_path)
    assert torch.equal(ck["blocks"]["blocks.enc.lin.weight"], got["blocks.enc.lin.weight"])


def test_ema_resume_equals_uninterrupted(write_graph, tmp_path):
    t = text(EMA_STAGE)
    full = run(write_graph, tmp_path, t, name="full", seed=2, overrides={"steps": 6})
    full.train()
    part = run(write_graph, tmp_path, t, name="part", seed=2, overrides={"steps": 6})
    assert part.train(stop_after=3) is False
    ck = load_checkpoint(part.checkpoint_path)
    assert ck["step"] == 3 and set(ck["ema"]["shadow"]) == {"enc:lin.weight", "enc:lin.bias",
                                                            "dec:lin.weight", "dec:lin.bias"}
    again = run(write_graph, tmp_path, t, name="part", seed=2, overrides={"steps": 6}, resume=True)
    assert again.train(resume=True)
    assert_same(weights(full), weights(again))


def test_ema_must_lie_between_zero_and_one(write_graph):
    t = text(EMA_STAGE.replace("ema: 0.5", "ema: 1.5"))
    probs, path = problems(write_graph, t)
    assert probs == [f"{path}:{line(t, 'ema:')}: train stage 'e2e': 'ema' must be a number in (0.0, 1.0), got 1.5"]


# ---- init from another run (issue 11.4) ----------------------------------------------------------------------------
def test_init_from_a_runs_checkpoint_reproduces_its_evaluation_exactly(write_graph, tmp_path):
    a = run(write_graph, tmp_path, text(), name="a", seed=5)
    res_a = a.run()
    ck = a.checkpoint_path
    # another graph: the same blocks, trained for no steps, started from run a
    t = text(E2E.replace("    steps: $steps\n", "    steps: 0\n    init: {checkpoint: $ckpt, blocks: [enc, dec]}\n"))
    b = run(write_graph, tmp_path, t, name="b", fname="warm.yaml", seed=5, overrides={"ckpt": str(ck)})
    res_b = b.run()
    assert res_b["rows"] == res_a["rows"]
    assert "initialised enc <- enc, dec <- dec from" in (b.out / "log.txt").read_text()
    # a path relative to the graph file works as well
    rel = ck.relative_to(tmp_path)
    c = run(write_graph, tmp_path, t, name="c", fname="warm.yaml", seed=5, overrides={"ckpt": str(rel)})
    assert c.run()["rows"] == res_a["rows"]


def test_init_errors_name_the_file_the_block_and_the_parameter(write_graph, tmp_path):
    t = text(E2E.replace("    steps: $steps\n", "    steps: 0\n    init: {checkpoint: $ckpt, blocks: {enc: enc}}\n"))
    probs, path = problems(write_graph, t, overrides={"ckpt": "nowhere/last.pt"})
    assert probs == [f"{path}:{line(t, 'init:')}: train stage 'e2e': init: checkpoint 'nowhere/last.pt' not found "
                     f"(a relative path is looked up beside {path}, then in the working directory)"]
    a = run(write_graph, tmp_path, text(), name="a", overrides={"steps": 1})
    a.train()
    with pytest.raises(ValidationError) as exc:      # a graph whose encoder is 4 -> 6
        run(write_graph, tmp_path, t, name="b", overrides={"ckpt": str(a.checkpoint_path), "hidden": 6}).train()
    assert str(exc.value) == (f"{tmp_path / 'g.yaml'}:{line(t, 'init:')}: train stage 'e2e': init: enc <- "
                              f"{a.checkpoint_path}:enc: parameter 'lin.weight' has shape (8, 4) in the source "
                              "but (6, 4) here")
    other = t.replace("blocks: {enc: enc}", "blocks: {enc: encoder}")
    with pytest.raises(ValidationError, match=r"init: 'encoder': the checkpoint holds no block 'encoder' "
                                              r"\(it holds: dec, enc, src\)"):
        run(write_graph, tmp_path, other, name="c", overrides={"ckpt": str(a.checkpoint_path)}).train()


# ---- validation during training (issue 11.5) -------------------------------------------------------------------------
VAL_STAGE = E2E.replace("    steps: $steps\n", "    steps: 6\n    validate: {every: 2, metric: err, split: val}\n")


def test_validation_keeps_the_best_checkpoint_and_logs_it(write_graph, tmp_path):
    r = run(write_graph, tmp_path, text(VAL_STAGE), seed=1)
    r.train()
    rows = [row for row in train_csv(r) if row["val_err"]]
    assert [int(row["step"]) for row in rows] == [2, 4, 6]
    vals = [float(row["val_err"]) for row in rows]
    best = load_checkpoint(r.best_checkpoint_path)
    # best.pt is the best logged validation step (err: lower is better, the sink's default)
    assert best["validation"]["best"] == pytest.approx(min(vals))
    assert best["step"] == best["validation"]["step"] == int(rows[vals.index(min(vals))]["step"])
    # evaluating best.pt on the validation split gives the logged value again
    check = run(write_graph, tmp_path, text(VAL_STAGE), name="check", seed=1)
    check.load_weights(r.best_checkpoint_path)
    again = check.evaluate(metrics=["err"], points=[{}], split="val", write=False)
    assert again["rows"][0]["err"] == pytest.approx(min(vals), rel=1e-6)
    assert f"validation (val) err {vals[0]:.4f} (best; best.pt saved)" in (r.out / "log.txt").read_text()


def test_validation_does_not_change_what_is_trained(write_graph, tmp_path):
    plain = run(write_graph, tmp_path, text(VAL_STAGE.replace("    validate: {every: 2, metric: err, split: val}\n",
                                                              "")), name="plain", seed=3)
    plain.train()
    val = run(write_graph, tmp_path, text(VAL_STAGE), name="val", seed=3)
    val.train()
    assert_same(weights(plain), weights(val))


def test_restore_best_and_mode(write_graph, tmp_path):
    t = text(VAL_STAGE.replace("split: val}", "split: val, mode: max, restore_best: true}"))
    r = run(write_graph, tmp_path, t, seed=1)
    r.train()
    vals = [float(row["val_err"]) for row in train_csv(r) if row["val_err"]]
    best = load_checkpoint(r.best_checkpoint_path)
    assert best["validation"]["best"] == pytest.approx(max(vals))     # mode: max overrides the sink's default
    for k in ("blocks.enc.lin.weight", "blocks.dec.lin.bias"):
        assert torch.equal(r.scheduler.state_dict()[k], best["blocks"][k])


def test_ema_and_validation_resume_equals_uninterrupted(write_graph, tmp_path):
    t = text(VAL_STAGE.replace("    steps: 6\n", "    steps: 6\n    ema: 0.7\n"))
    full = run(write_graph, tmp_path, t, name="full", seed=8)
    full.train()
    part = run(write_graph, tmp_path, t, name="part", seed=8)
    assert part.train(stop_after=3) is False
    again = run(write_graph, tmp_path, t, name="part", seed=8, resume=True)
    again.train(resume=True)
    assert_same(weights(full), weights(again))
    a, b = load_checkpoint(full.best_checkpoint_path), load_checkpoint(again.best_checkpoint_path)
    assert a["validation"] == b["validation"]
    assert torch.equal(a["blocks"]["blocks.enc.lin.weight"], b["blocks"]["blocks.enc.lin.weight"])


def test_a_source_without_a_validation_split_is_one_line(write_graph, tmp_path):
    r = run(write_graph, tmp_path, text(VAL_STAGE, src=", val: false"))
    from flowgraph import SemflowError
    with pytest.raises(SemflowError, match=r"^source 'src' \(testing.vectors\) has no 'val' split$"):
        r.train()


def test_cli_eval_takes_best_pt(write_graph, tmp_path, capsys):
    from flowgraph.cli import main
    path = write_graph(text(VAL_STAGE))
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path / "r")]) == 0
    best = tmp_path / "r" / "checkpoints" / "best.pt"
    assert best.is_file() and (tmp_path / "r" / "checkpoints" / "last.pt").is_file()
    assert main(["eval", str(path), "--quiet", "--checkpoint", str(best), "--out", str(tmp_path / "e")]) == 0
    rows = json.loads((tmp_path / "e" / "metrics.json").read_text())["rows"]
    assert len(rows) == 2 and rows[0]["err"] == rows[0]["err"]


def test_validate_keys_are_checked(write_graph):
    t = text(E2E.replace("    steps: $steps\n", "    steps: 4\n    validate: {every: 0, metric: enc, keep: all, "
                                                "at: {snr: 3}, splt: val}\n"))
    probs, path = problems(write_graph, t)
    at = f"{path}:{line(t, 'validate:')}: train stage 'e2e':"
    assert f"{at} validate: unknown key 'splt' (known: every, metric, split, keep, mode, at, images, batch, " \
           "restore_best)" in probs
    assert f"{at} 'validate.every' must be an integer >= 1, got 0" in probs
    assert f"{at} validate.metric: block 'enc' (testing.affine) is not a sink" in probs
    assert f"{at} validate.keep must be one of best, none, got 'all'" in probs
    assert f"{at} validate.at: unknown variable 'snr'" in probs


# ---- alternating discriminator (seed 004 eq. 13) -------------------------------------------------------------------
GAN_BLOCKS = "  dis: {type: testing.critic, params: {n: $n}}\n"
GAN_CONNS = "  - src.x -> dis.real\n  - dec.y -> dis.fake\n"
GAN_STAGE = """\
  - stage: gan
    trainable: [enc, dec]
    loss: mse(dec.y, src.x) + 0.1 * mean((dis.fake - 1) * (dis.fake - 1))
    optimizer: {type: adam, lr: $g_lr}
    steps: 3
    discriminator:
      trainable: [dis]
      loss: mean((dis.real - 1) * (dis.real - 1)) + mean(dis.fake * dis.fake)
      optimizer: {type: adam, lr: $d_lr}
      steps: 2
"""
GAN_VARS = "  g_lr: 0.01\n  d_lr: 0.01\n"


def gan(write_graph, tmp_path, name, resume=False, **ov):
    return run(write_graph, tmp_path, text(GAN_STAGE, GAN_BLOCKS, GAN_CONNS, GAN_VARS), name=name, seed=6,
               overrides=ov, resume=resume)


def test_discriminator_steps_alternate_with_their_own_optimizer(write_graph, tmp_path):
    r = gan(write_graph, tmp_path, "both")
    w0 = weights(r)
    r.train()
    w1 = weights(r)
    assert r.scheduler.block("dis").calls == 3 * 2 + 3      # 2 critic frames per step, plus the generator's
    for k in ("blocks.dis.score.weight", "blocks.enc.lin.weight"):
        assert not torch.equal(w0[k], w1[k]), k
    assert all(row["d_loss"] for row in train_csv(r))
    # each optimizer moves only its own part: with one learning rate at zero, that part stays
    for frozen, ov in (("blocks.dis.score.weight", {"d_lr": 0.0}), ("blocks.enc.lin.weight", {"g_lr": 0.0})):
        r = gan(write_graph, tmp_path, frozen, **ov)
        r.train()
        assert torch.equal(weights(r)[frozen], w0[frozen])
        other = "blocks.enc.lin.weight" if "dis" in frozen else "blocks.dis.score.weight"
        assert not torch.equal(weights(r)[other], w0[other])


def test_discriminator_resume_equals_uninterrupted(write_graph, tmp_path):
    full = gan(write_graph, tmp_path, "full")
    full.train()
    part = gan(write_graph, tmp_path, "part")
    assert part.train(stop_after=1) is False
    assert load_checkpoint(part.checkpoint_path)["disc_optimizer"] is not None
    again = gan(write_graph, tmp_path, "part", resume=True)
    again.train(resume=True)
    assert_same(weights(full), weights(again))


def test_discriminator_keys_are_checked(write_graph):
    t = text(GAN_STAGE.replace("trainable: [dis]", "trainable: [dis, dec]").replace("steps: 2", "steps: 0")
             .replace("mean(dis.fake * dis.fake)", "mean(dis.fak * dis.fak)"), GAN_BLOCKS, GAN_CONNS, GAN_VARS)
    probs, path = problems(write_graph, t)
    d = line(t, "discriminator:")
    assert f"{path}:{line(t, 'trainable: [dis, dec]')}: train stage 'gan': discriminator: blocks ['dec'] are " \
           "trained by both the generator and the discriminator" in probs
    assert f"{path}:{line(t, 'steps: 0', d)}: train stage 'gan': 'discriminator.steps' must be an integer >= 1, " \
           "got 0" in probs
    assert f"{path}:{line(t, 'loss:', d)}: train stage 'gan': discriminator: loss refers to unknown output " \
           "'dis.fak' (outputs: real, fake)" in probs


def test_new_stage_keys_reject_bad_values(write_graph):
    t = text(E2E.replace("    steps: $steps\n", "    steps: 4\n    batch: 0\n    accumulate: 1.5\n"
                                                "    init: {checkpoint: 3, blocks: {}}\n"))
    probs, path = problems(write_graph, t)
    assert f"{path}:{line(t, 'batch: 0')}: train stage 'e2e': 'batch' must be an integer >= 1, got 0" in probs
    assert f"{path}:{line(t, 'accumulate')}: train stage 'e2e': 'accumulate' must be an integer >= 1, got 1.5" in probs
    assert any(p.endswith("init.checkpoint must be a file path ('' for none), got 3") for p in probs)


# ---- graphs/examples: each capability in a shipped graph (their smoke runs are in test_graphs) ----------
def _example(root, name, tmp_path, out, **kw):
    return Runner(load_graph(root / "graphs" / "examples" / name), preset="smoke", out=tmp_path / out,
                  quiet=True, **kw)


def test_example_frozen_base_adapts_only_the_selected_layers(root, tmp_path):
    r = _example(root, "frozen_base.yaml", tmp_path, "fb")
    assert r.train(stop_after=3) is False           # the base stage's 3 steps; stops as adapt starts
    before = weights(r)
    assert r.train(resume=True)
    after = weights(r)
    changed = {k.split(".", 2)[1] + ":" + k.split(".", 2)[2] for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("dec:net.0.", "dec:net.1.")) for k in changed), changed


def test_example_warm_start_starts_from_the_other_run(root, tmp_path):
    awgn = Runner(load_graph(root / "graphs" / "deepjscc_awgn.yaml"), preset="smoke", out=tmp_path / "awgn", quiet=True)
    awgn.train()
    ws = _example(root, "warm_start.yaml", tmp_path, "ws",
                  overrides={"base_ckpt": str(awgn.checkpoint_path), "steps": 0})
    ws.train()
    for b in ("enc", "dec"):
        a, w = awgn.scheduler.block(b).state_dict(), ws.scheduler.block(b).state_dict()
        assert all(torch.equal(a[k], w[k]) for k in a), b


def test_example_ema_validate_keeps_best_pt(root, tmp_path):
    r = _example(root, "ema_validate.yaml", tmp_path, "ev")
    r.train()
    best = load_checkpoint(r.best_checkpoint_path)
    vals = {int(row["step"]): float(row["val_psnr"]) for row in train_csv(r) if row["val_psnr"]}
    assert sorted(vals) == [2, 4] and best["validation"]["best"] == max(vals.values())


# ---- graph blocks: outer/inner selectors, and init of a whole graph block ------------------------------
CODEC = (Path(__file__).parent / "graphs" / "tiny_codec_part.yaml").read_text()
TOP = """\
format: 1
name: top
variables: {ckpt: ""}
blocks:
  src: {type: testing.vectors}
  codec: {type: "graph:codec.yaml"}
  err: {type: testing.mse}
connections:
  - src.x -> codec.x
  - codec.y -> err.pred
  - src.x -> err.target
train:
  - stage: s
    trainable: [TRAINABLE]
    INIT
    loss: mse(codec/dec.y, src.x)
    steps: 2
"""


def test_inner_blocks_of_graph_blocks_are_selected_and_initialised(write_graph, tmp_path):
    write_graph(CODEC, "codec.yaml")
    top = TOP.replace("TRAINABLE", "codec/dec").replace("    INIT\n", "")
    r = run(write_graph, tmp_path, top, fname="top.yaml")
    w0 = weights(r)
    r.train()
    changed = {k for k, v in weights(r).items() if not torch.equal(v, w0[k])}
    assert changed == {"blocks.codec__dec.lin.weight", "blocks.codec__dec.lin.bias"}
    # a whole graph block from a checkpoint: codec/* <- codec/*
    warm = TOP.replace("TRAINABLE", "codec").replace("INIT", "init: {checkpoint: $ckpt, blocks: [codec]}")
    b = run(write_graph, tmp_path, warm.replace("steps: 2", "steps: 0"), name="b", fname="warm.yaml",
            overrides={"ckpt": str(r.checkpoint_path)})
    b.train()
    assert_same({k: v for k, v in weights(b).items() if "codec" in k},
                {k: v for k, v in weights(r).items() if "codec" in k})
    probs, path = problems(write_graph, TOP.replace("TRAINABLE", "codec/dek").replace("    INIT\n", ""))
    assert any("trainable block 'codec/dek' does not exist inside graph block 'codec'" in p for p in probs)
