"""Data-parallel runs under torchrun (gloo, 2 CPU processes) against one process.

The graph trains an affine encoder/decoder over a noiseless channel (training sigma 0) on a
seeded source, so a 2-process run with global batch 8 must follow the same loss curve as
one process with batch 8, and end at the same weights, to floating-point tolerance.
Evaluation runs with channel noise: per-example values must still equal those of one
process, because each held-out batch's draws depend on its index only.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flowgraph import cli
from flowgraph.checkpoint import load_checkpoint
from flowgraph.distributed import torchrun_command

ENTRY = Path(__file__).with_name("dist_entry.py")

GRAPH = """
format: 1
name: dp
variables: {n: 4, hidden: 8, batch: 8, steps: 6, sigma: 0.3}
blocks:
  src: {type: testing.vectors, params: {n: $n, batch: $batch}}
  enc: {type: testing.affine, params: {n: $n, m: $hidden}}
  cx:  {type: testing.to_complex}
  ch:  {type: testing.noise, params: {sigma: $sigma}}
  rx:  {type: testing.to_real}
  dec: {type: testing.affine, params: {n: $hidden, m: $n}}
  err: {type: testing.mse}
connections:
  - src.x -> enc.x
  - enc.y -> cx.x
  - cx.z -> ch.z
  - ch.z -> rx.z
  - rx.x -> dec.x
  - dec.y -> err.pred
  - src.x -> err.target
train:
  - stage: e2e
    trainable: [enc, dec]
    loss: mse(dec.y, src.x)
    optimizer: {type: adam, lr: 0.01}
    steps: $steps
    sigma: 0.0
    log_every: 1
    checkpoint_every: 3
evaluate:
  sweep: {sigma: [0.0, 0.5]}
  metrics: [err]
  batch: 3
"""


def run_entry(*args, nproc=2):
    """``semflow ARGS --nproc N`` through tests/dist_entry.py (torchrun on this machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ENTRY), *args, "--nproc", str(nproc), "--threads", "1", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)


def losses(run: Path) -> list:
    with open(run / "train.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")["blocks"]


def per_example(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["per_example"]


def assert_same_weights(a: dict, b: dict, atol=1e-6):
    tensors = [k for k, v in a.items() if torch.is_tensor(v) and v.is_floating_point()]
    assert tensors
    for k in tensors:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=atol, msg=k)


def test_torchrun_command_drops_nproc():
    cmd = torchrun_command(["run", "g.yaml", "--nproc", "2", "--seed", "1", "--nproc=3"], 2, "py")
    assert cmd == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "-m", "flowgraph", "run", "g.yaml", "--seed", "1"]


def test_two_processes_equal_one_process(write_graph, tmp_path):
    g = write_graph(GRAPH)
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli.main(["run", str(g), "--out", str(one), "--quiet"]) == 0
    res = run_entry("run", str(g), "--out", str(two))
    assert res.returncode == 0, res.stderr[-3000:]
    # rank 0 alone wrote the run directory, and says how many processes ran
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    assert weights(two) and load_checkpoint(two / "checkpoints" / "last.pt")["world_size"] == 2
    l1, l2 = losses(one), losses(two)
    assert len(l1) == len(l2) == 6 and l1[-1] < l1[0]
    assert l2 == pytest.approx(l1, rel=1e-5, abs=1e-7)
    assert_same_weights(weights(one), weights(two))
    # evaluation with noise, sharded over 2 ranks (4 batches of 3, 3, 3, 1 examples)
    e1, e2 = per_example(one), per_example(two)
    assert set(e1) == set(e2) == {"sigma=0.0", "sigma=0.5"}
    for point in e1:
        assert len(e2[point]["err"]) == 10
        assert e2[point]["err"] == pytest.approx(e1[point]["err"], rel=1e-4, abs=1e-6)
    assert e1["sigma=0.5"]["err"] != pytest.approx(e1["sigma=0.0"]["err"])   # the noise is there


@pytest.mark.slow
def test_sharded_eval_and_resume_under_torchrun(write_graph, tmp_path):
    g = write_graph(GRAPH)
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli.main(["train", str(g), "--out", str(full), "--quiet"]) == 0
    ckpt = str(full / "checkpoints" / "last.pt")
    # the same weights evaluated by 1 and by 2 processes: the same per-example values
    e1, e2 = tmp_path / "e1", tmp_path / "e2"
    assert cli.main(["eval", str(g), "--checkpoint", ckpt, "--out", str(e1), "--quiet"]) == 0
    res = run_entry("eval", str(g), "--checkpoint", ckpt, "--out", str(e2))
    assert res.returncode == 0, res.stderr[-3000:]
    for point, values in per_example(e1).items():
        assert per_example(e2)[point]["err"] == pytest.approx(values["err"], rel=1e-6, abs=1e-9)
    # 2 processes stopped after 3 steps and resumed end where an uninterrupted 2-process run does
    whole = tmp_path / "whole"
    assert run_entry("train", str(g), "--out", str(whole)).returncode == 0
    res = run_entry("train", str(g), "--out", str(part), "--stop-after", "3")
    assert res.returncode == 0, res.stderr[-3000:]
    assert load_checkpoint(part / "checkpoints" / "last.pt")["step"] == 3
    # a different world size is refused in one line
    res = run_entry("train", str(g), "--out", str(part), "--resume", nproc=1)
    assert res.returncode == 1
    assert "written by 2 process(es), this run has 1" in res.stderr and res.stderr.count("\n") == 1
    res = run_entry("train", str(g), "--out", str(part), "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_weights(weights(part), weights(whole), atol=0)
    assert losses(part) == losses(whole)
