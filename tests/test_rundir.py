"""Run directories: never mixed, a record that survives resumes, self-contained graphs,
early checkpoints, SIGTERM with a checkpoint, train.csv that matches the resumed steps."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from flowgraph import SemflowError
from flowgraph.graph import load_graph
from flowgraph.rundir import git_info, truncate_train_csv
from flowgraph.run import Runner, load_checkpoint

TINY = "tests/graphs/tiny.yaml"


def runner(spec, out, **kw):
    kw.setdefault("quiet", True)
    return Runner(spec, out=out, **kw)


def params(state):
    return {k: v for k, v in state.items() if torch.is_tensor(v) and torch.is_floating_point(v)}


def test_an_existing_out_is_refused_unless_resuming(root, tmp_path):
    spec = load_graph(root / TINY)
    r = runner(spec, tmp_path / "run", preset="smoke")
    r.run()
    r.close()
    with pytest.raises(SemflowError, match=r"--out .*run: the directory already holds a run; pass --resume"):
        runner(spec, tmp_path / "run", preset="smoke")
    runner(spec, tmp_path / "run", preset="smoke", resume=True).close()      # resuming is fine
    (tmp_path / "empty").mkdir()
    runner(spec, tmp_path / "empty").close()                               # an empty directory is fine


def test_default_run_directories_never_collide(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")
    spec = load_graph(root / TINY)
    a = Runner(spec, quiet=True)
    b = Runner(spec, quiet=True)
    assert a.out.name == "tiny-default-20260101-000000" and b.out.name == "tiny-default-20260101-000000-2"


def test_run_json_records_git_graph_hashes_and_resumes(root, tmp_path):
    spec = load_graph(root / TINY)
    r = runner(spec, tmp_path / "run", preset="smoke", overrides={"steps": 6})
    r.train(stop_after=2)
    first = json.loads((tmp_path / "run" / "run.json").read_text())
    assert first["graph_files"] == {str(root / TINY): hashlib.sha256((root / TINY).read_bytes()).hexdigest()}
    assert first["git"] == git_info()               # the engine's checkout (None outside a repository)
    assert first["resumes"] == []
    r2 = runner(spec, tmp_path / "run", preset="smoke", overrides={"steps": 6}, resume=True, command=["again"])
    r2.train()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["started"] == first["started"] and info["command"] == first["command"]
    assert len(info["resumes"]) == 1 and info["resumes"][0]["command"] == ["again"]
    assert (tmp_path / "run" / "train.png").is_file()


def test_git_info_gives_the_commit_and_whether_tracked_files_changed(tmp_path):
    assert git_info(tmp_path) is None                    # not a repository
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, capture_output=True, check=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "f.txt").write_text("a\n")
    run("add", "f.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_info(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "f.txt").write_text("b\n")
    assert git_info(tmp_path) == {"commit": head, "dirty": True}


def test_train_csv_drops_rows_after_the_checkpoint_on_resume(root, tmp_path):
    """A kill after the last checkpoint leaves rows for steps that are trained again: they go."""
    spec = load_graph(root / TINY)
    full = runner(spec, tmp_path / "full", preset="smoke", seed=2, overrides={"steps": 8})
    full.train()
    r = runner(spec, tmp_path / "run", preset="smoke", seed=2, overrides={"steps": 8})
    r.train(stop_after=3)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    shutil.copy(ckpt, tmp_path / "step3.pt")
    runner(spec, tmp_path / "run", preset="smoke", seed=2, overrides={"steps": 8}, resume=True).train(stop_after=3)
    assert load_checkpoint(ckpt)["step"] == 6
    shutil.copy(tmp_path / "step3.pt", ckpt)         # as if killed at step 6 with the step-3 checkpoint on disk
    resumed = runner(spec, tmp_path / "run", preset="smoke", seed=2, overrides={"steps": 8}, resume=True)
    assert resumed.train() is True
    lines = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in lines[1:]] == [str(i) for i in range(1, 9)]
    assert lines == (tmp_path / "full" / "train.csv").read_text().splitlines()
    a, b = params(full.scheduler.state_dict()), params(resumed.scheduler.state_dict())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_truncate_train_csv_across_stages(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text("stage,step,loss\npre,1,1\npre,2,1\nmain,1,1\nmain,2,1\nmain,3,1\n")
    assert truncate_train_csv(p, ["pre", "main"], 1, 1) == 2
    assert p.read_text().splitlines() == ["stage,step,loss", "pre,1,1", "pre,2,1", "main,1,1"]
    assert truncate_train_csv(p, ["pre", "main"], 2, 0) == 0      # a finished run keeps everything


def test_the_first_checkpoint_comes_early(root, tmp_path, monkeypatch):
    """Without checkpoint_every the first checkpoint is time-based after FIRST_CHECKPOINT_S
    (10 s), then every CHECKPOINT_EVERY_S; here the first wait is set to 0 s."""
    from flowgraph import training
    from flowgraph.taps import TapHub
    monkeypatch.setattr(training, "FIRST_CHECKPOINT_S", 0.0)
    monkeypatch.setattr(training, "CHECKPOINT_EVERY_S", 1e9)
    hub, seen = TapHub(), []
    out = tmp_path / "run"
    hub.subscribe("train.step", lambda n, row, i: seen.append(
        (row["step"], load_checkpoint(out / "checkpoints" / "last.pt")["step"]
         if (out / "checkpoints" / "last.pt").is_file() else None)), min_interval=0.0)
    spec = load_graph(root / TINY)
    spec.train[0]["log_every"] = 1
    runner(spec, out, overrides={"steps": 5}, taps=hub).train()
    # the step-1 checkpoint is written after step 1's row; no later time-based one (1e9 s)
    assert seen == [(1, None), (2, 1), (3, 1), (4, 1), (5, 1)]


def test_graph_yaml_of_a_hierarchical_run_is_self_contained(tmp_path, write_graph, root):
    (tmp_path / "parts").mkdir()
    write_graph("""\
format: 1
name: codec
variables: {n: 4, hidden: 8, sigma: 0.0}
ports: {inputs: {x: enc.x}, outputs: {y: dec.y}}
blocks:
  enc: {type: testing.affine, params: {n: $n, m: $hidden}}
  ch: {type: "graph:channel.yaml", params: {sigma: $sigma}}
  dec: {type: testing.affine, params: {n: $hidden, m: $n}}
connections: [enc.y -> ch.x, ch.y -> dec.x]
""", "parts/codec.yaml")
    write_graph("""\
format: 1
name: channel
variables: {sigma: 0.0}
ports: {inputs: {x: cx.x}, outputs: {y: rx.x}}
blocks:
  cx: {type: testing.to_complex}
  noise: {type: testing.noise, params: {sigma: $sigma}}
  rx: {type: testing.to_real}
connections: [cx.z -> noise.z, noise.z -> rx.z]
""", "parts/channel.yaml")
    top = write_graph("""\
format: 1
name: top
variables: {noise: 0.3, steps: 2}
blocks:
  src: {type: testing.vectors}
  codec: {type: "graph:parts/codec.yaml", params: {sigma: $noise}}
  err: {type: testing.mse}
connections: [src.x -> codec.x, codec.y -> err.pred, src.x -> err.target]
train:
  - {stage: e2e, trainable: [codec], loss: "mse(codec/dec.y, src.x)", steps: $steps}
evaluate: {sweep: {noise: [0.0, 0.5]}, metrics: [err]}
""", "top.yaml")
    run = tmp_path / "run"
    r = runner(load_graph(top), run)
    first = r.run()
    r.close()
    info = json.loads((run / "run.json").read_text())
    assert len(info["graph_files"]) == 3
    shutil.rmtree(tmp_path / "parts")                     # the originals are gone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(root / "tests"), SEMFLOW_BLOCKS="engine_blocks")
    p = subprocess.run([sys.executable, "-m", "flowgraph", "eval", str(run / "graph.yaml"), "--checkpoint",
                        str(run / "checkpoints" / "last.pt"), "--out", str(tmp_path / "again"), "--quiet"],
                       cwd=elsewhere, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert [row["err"] for row in again["rows"]] == [row["err"] for row in first["rows"]]


def test_sigterm_during_training_checkpoints_and_resume_equals_an_uninterrupted_run(root, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(root / "tests"), SEMFLOW_BLOCKS="engine_blocks")
    argv = [sys.executable, "-m", "flowgraph", "train", "tests/graphs/tiny_slow.yaml", "--set", "steps=40",
            "--set", "delay=0.05", "--seed", "3", "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    csv = out / "train.csv"
    try:
        for _ in range(1200):                 # wait until it trains (rows are logged every step)
            if csv.is_file() and len(csv.read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    step = load_checkpoint(out / "checkpoints" / "last.pt")["step"]
    assert 3 <= step < 40
    spec = load_graph(root / "tests/graphs/tiny_slow.yaml")
    resumed = runner(spec, out, seed=3, overrides={"steps": 40, "delay": 0.05}, resume=True)
    assert resumed.train() is True
    full = runner(spec, tmp_path / "full", seed=3, overrides={"steps": 40})   # no sleep: same numbers
    full.train()
    a, b = params(full.scheduler.state_dict()), params(resumed.scheduler.state_dict())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r.split(",")[1] for r in csv.read_text().splitlines()[1:]] == [str(i) for i in range(1, 41)]
