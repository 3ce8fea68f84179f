"""Checkpoints (issues 18.3, 19.7, 10.4-10.5): what they record, and one line for every
way a checkpoint can fail to fit or be damaged."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from flowgraph import SemflowError
from flowgraph.checkpoint import FORMAT, atomic_torch_save, content_hash, load_checkpoint
from flowgraph.cli import main
from flowgraph.graph import load_graph
from flowgraph.run import Runner

TINY = "tests/graphs/tiny.yaml"


@pytest.fixture
def trained(root, tmp_path):
    """A finished smoke run of the tiny graph: (runner, checkpoint path)."""
    r = Runner(load_graph(root / TINY), preset="smoke", overrides={"hidden": 8}, out=tmp_path / "run",
               quiet=True, seed=1)
    r.train()
    return r, r.checkpoint_path


def _rewrite(path, **changes):
    """Change entries of a checkpoint and re-sign it (so only the change is tested)."""
    ckpt = torch.load(path, weights_only=True)
    for k, v in changes.items():
        if v is _DROP:
            ckpt.pop(k)
        else:
            ckpt[k] = v
    if "content_hash" not in changes:
        ckpt["content_hash"] = content_hash(ckpt)
    torch.save(ckpt, path)


_DROP = object()


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg and "weights_only" not in msg and "Traceback" not in msg, msg
    return msg


def test_a_checkpoint_records_its_run(trained):
    r, path = trained
    ck = load_checkpoint(path)
    assert ck["format"] == FORMAT and ck["graph"] == "tiny" and ck["preset"] == "smoke"
    assert ck["overrides"] == {"hidden": 8} and ck["resolved"] == {"steps": 3, "hidden": 8}
    assert len(ck["graph_hash"]) == 64 and len(ck["content_hash"]) == 64
    assert ck["stage"] == 1 and ck["step"] == 0 and ck["done"] is True
    assert ck["params"]["enc"] == {"n": 4, "m": 8} and "sigma" not in ck["params"]["ch"]   # runtime: not recorded


def test_every_flipped_byte_is_caught_or_harmless(trained):
    """A bit flip anywhere either fails to load (one line) or changes nothing loaded."""
    _, path = trained
    data = path.read_bytes()
    reference = content_hash(load_checkpoint(path))
    bad = path.with_name("bad.pt")
    caught = 0
    for i in range(0, len(data), max(1, len(data) // 97)):
        flipped = bytearray(data)
        flipped[i] ^= 0x10
        bad.write_bytes(bytes(flipped))
        try:
            ck = load_checkpoint(bad)
        except SemflowError as exc:
            assert "\n" not in str(exc) and "weights_only" not in str(exc), str(exc)
            caught += 1
            continue
        assert content_hash(ck) == reference, f"flip at byte {i} loaded silently"
    assert caught > 50


def test_a_flipped_weight_is_caught_by_the_content_hash(trained):
    _, path = trained
    ckpt = torch.load(path, weights_only=True)
    w = ckpt["blocks"]["blocks.enc.lin.weight"]
    w.view(torch.int32)[0, 0] ^= 1           # one bit of one weight: the file still unpickles fine
    torch.save(ckpt, path)
    with pytest.raises(SemflowError) as exc:
        load_checkpoint(path)
    assert _one_line(exc).endswith("checkpoint content does not match its hash: the file was changed or damaged "
                                   "after it was written")


@pytest.mark.parametrize("content,message", [
    (b"", "empty file, not a checkpoint"),
    (b"hello, this is a text file\n", "not a readable checkpoint"),
    (b"PK\x03\x04" + b"\x00" * 100, "not a readable checkpoint"),
])
def test_files_that_are_not_checkpoints(tmp_path, content, message):
    p = tmp_path / "x.pt"
    p.write_bytes(content)
    with pytest.raises(SemflowError) as exc:
        load_checkpoint(p)
    assert message in _one_line(exc)


def test_a_pickle_of_code_is_refused_without_torch_advice(tmp_path):
    p = tmp_path / "code.pt"
    torch.save({"blocks": {}, "evil": subprocess.Popen}, p)
    with pytest.raises(SemflowError) as exc:
        load_checkpoint(p)
    msg = _one_line(exc)
    assert "holds something other than tensors and plain data" in msg and "Popen" in msg


@pytest.mark.parametrize("changes,message", [
    ({"blocks": _DROP}, "checkpoint has no 'blocks' entry"),
    ({"blocks": [1, 2]}, "checkpoint 'blocks' entry is not a mapping"),
    ({"stage": "1"}, "checkpoint stage '1' is not an integer"),
    ({"stage": True}, "checkpoint stage True is not an integer"),
    ({"step": -3}, "checkpoint step -3 is out of range"),
    ({"step": 10 ** 12}, "checkpoint step 1000000000000 is out of range"),
    ({"format": 7}, "checkpoint format 7 was written by a newer semflow"),
    ({"format": "two"}, "checkpoint format 'two' is not a version number"),
    ({"content_hash": _DROP}, "checkpoint has no content hash"),
])
def test_damaged_entries_are_one_line(trained, changes, message):
    _, path = trained
    _rewrite(path, **changes)
    with pytest.raises(SemflowError) as exc:
        load_checkpoint(path)
    assert message in _one_line(exc)


def _interrupted(root, tmp_path, **kw):
    r = Runner(load_graph(root / TINY), preset="smoke", out=tmp_path / "part", quiet=True, seed=2,
               overrides={"steps": 6})
    assert r.train(stop_after=2) is False
    return r.checkpoint_path


@pytest.mark.parametrize("runner_kw,message", [
    ({"preset": "redraw"}, "was written with --preset smoke, this run has --preset redraw"),
    ({"preset": "smoke", "overrides": {"steps": 7}}, "was written with other --set values: steps=6 then, 7 now"),
    ({"preset": "smoke", "overrides": {"steps": 6, "lr": 0.1}},
     "was written with other --set values: lr=(unset) then, 0.1 now"),
])
def test_resume_refuses_another_preset_or_set_values(root, tmp_path, runner_kw, message):
    _interrupted(root, tmp_path)
    kw = {"overrides": {"steps": 6}, **runner_kw}
    r = Runner(load_graph(root / TINY), out=tmp_path / "part", quiet=True, seed=2, resume=True, **kw)
    with pytest.raises(SemflowError) as exc:
        r.train(resume=True)
    assert message in _one_line(exc)


def test_resume_refuses_a_changed_graph_and_impossible_positions(root, tmp_path):
    path = _interrupted(root, tmp_path)
    spec = load_graph(root / TINY)
    spec.blocks["enc"].params["m"] = "$hidden * 1"   # same meaning, other text: still another graph
    r = Runner(spec, preset="smoke", out=tmp_path / "part", quiet=True, seed=2, overrides={"steps": 6}, resume=True)
    with pytest.raises(SemflowError, match="the graph changed since"):
        r.train(resume=True)

    def again():
        return Runner(load_graph(root / TINY), preset="smoke", out=tmp_path / "part", quiet=True, seed=2,
                      overrides={"steps": 6}, resume=True)
    good = path.read_bytes()
    for changes, message in (({"step": 99}, "is at step 99 of stage 1, which has 6 steps"),
                             ({"stage": 5}, "is at stage 6, but this graph has 1 train stage(s)"),
                             ({"rng": _DROP}, "has no RNG state"),
                             ({"rng": {"torch": 1}}, "has no RNG state"),
                             ({"graph": "other"}, "is from graph 'other', this is 'tiny'")):
        path.write_bytes(good)
        _rewrite(path, **changes)
        with pytest.raises(SemflowError) as exc:
            again().train(resume=True)
        assert message in _one_line(exc), changes
    path.write_bytes(good)
    assert again().train(resume=True) is True


def test_eval_names_the_param_that_differs(trained, root, tmp_path):
    _, path = trained
    r = Runner(load_graph(root / TINY), overrides={"hidden": 6}, out=tmp_path / "eval", quiet=True)
    with pytest.raises(SemflowError) as exc:
        r.load_weights(path)
    assert _one_line(exc) == ("checkpoint was trained with enc.m=8, this graph has 6: pass the same --preset/--set")


def test_eval_refuses_another_graph_unless_allowed(trained, root, tmp_path):
    _, path = trained
    spec = load_graph(root / TINY)
    spec.name = "tiny_rayleigh"          # same block names and shapes, another system
    r = Runner(spec, out=tmp_path / "eval", quiet=True)
    with pytest.raises(SemflowError) as exc:
        r.load_weights(path)
    assert _one_line(exc) == ("checkpoint is from graph 'tiny', this is 'tiny_rayleigh': pass --allow-other-graph "
                              "to load it anyway")
    r.load_weights(path, allow_other_graph=True)
    assert torch.equal(r.scheduler.block("enc").lin.weight, load_checkpoint(path)["blocks"]["blocks.enc.lin.weight"])


def test_an_old_format_1_checkpoint_still_loads_for_evaluation_with_a_note(trained, root, tmp_path):
    r0, path = trained
    old = {"format": 1, "graph": "tiny", "stage": 1, "step": 0, "done": True,
           "blocks": r0.scheduler.state_dict(), "optimizer": None, "lr_scheduler": None,
           "rng": {"torch": torch.get_rng_state()}, "seed": 1}
    torch.save(old, path)
    r = Runner(load_graph(root / TINY), out=tmp_path / "eval", quiet=True)
    lines = []
    r.log.listeners.append(lines.append)
    r.load_weights(path)
    assert any("format-1 checkpoint without metadata" in line for line in lines), lines
    assert torch.equal(r.scheduler.block("dec").lin.weight, r0.scheduler.block("dec").lin.weight)
    # a bare state_dict too
    torch.save(r0.scheduler.state_dict(), path)
    Runner(load_graph(root / TINY), out=tmp_path / "eval2", quiet=True).load_weights(path)


def test_a_failing_write_removes_its_temp_file(tmp_path, monkeypatch):
    """Simulated: torch.save writes part of the file, then the disk is full."""
    real_fdopen = os.fdopen

    def full_disk(fd, *a, **kw):
        f = real_fdopen(fd, *a, **kw)

        def write(data):
            f.raw.write(bytes(data[:1000]))      # part of it reaches the disk, then it is full
            raise OSError(28, "No space left on device")
        f.write = write
        return f
    monkeypatch.setattr(os, "fdopen", full_disk)
    target = tmp_path / "ck" / "last.pt"
    with pytest.raises(SemflowError) as exc:
        atomic_torch_save({"a": torch.zeros(3)}, target)
    assert _one_line(exc) == f"{target}: cannot write checkpoint: No space left on device"
    assert list((tmp_path / "ck").iterdir()) == []


def test_a_really_failing_write_removes_its_temp_file(tmp_path):
    """A real failing write: the file-size limit (RLIMIT_FSIZE) of a child process, as a
    full disk would do, and the old checkpoint is kept."""
    code = textwrap.dedent(f"""
        import resource, signal, sys, torch
        from pathlib import Path
        from flowgraph.checkpoint import atomic_torch_save
        from flowgraph import SemflowError
        target = Path({str(tmp_path / 'last.pt')!r})
        atomic_torch_save({{"w": torch.zeros(10)}}, target)          # a small, good checkpoint
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)                 # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
        try:
            atomic_torch_save({{"w": torch.zeros(1_000_000)}}, target)
        except SemflowError as exc:
            print(exc)
            sys.exit(3)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd())
    assert res.returncode == 3, res.stderr
    assert res.stdout.strip() == f"{tmp_path / 'last.pt'}: cannot write checkpoint: File too large"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert torch.load(tmp_path / "last.pt")["w"].numel() == 10      # the previous checkpoint is intact


def test_cli_checkpoint_errors_are_one_line(trained, root, tmp_path, capsys, monkeypatch):
    _, path = trained
    monkeypatch.chdir(root)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    for i, (ckpt, message) in enumerate(((text, "not a readable checkpoint"),
                                         (path, "checkpoint was trained with enc.m=8, this graph has 6"))):
        code = main(["eval", TINY, "--checkpoint", str(ckpt), "--set", "hidden=6", "--out", str(tmp_path / f"o{i}")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith("semflow: error: ") and message in err[0], err
