"""Run-directory lock (issue 18.6): a second run into a directory is refused in one line
naming the holder; a holder that died leaves a stale lock the next run takes over."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from flowgraph import SemflowError
from flowgraph.cli import main
from flowgraph.graph import load_graph
from flowgraph.lock import RunLock
from flowgraph.run import Runner

TINY = "tests/graphs/tiny.yaml"

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, "tests")
    import engine_blocks  # noqa: F401
    from flowgraph.graph import load_graph
    from flowgraph.run import Runner
    out = Path(sys.argv[1])
    r = Runner(load_graph("tests/graphs/tiny.yaml"), out=out, quiet=True)
    (out / "ready").write_text("1")
    time.sleep(3600)            # until the test kills it
""")


def _start_holder(root, out):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=root)
    for _ in range(1200):                       # wait for it to hold the lock (no wall-time assertion)
        if (out / "ready").exists() or p.poll() is not None:
            break
        time.sleep(0.05)
    assert (out / "ready").exists(), "the holder did not start"
    return p


def test_a_second_run_is_refused_and_a_killed_holders_lock_is_taken_over(root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    holder = _start_holder(root, out)
    try:
        with pytest.raises(SemflowError) as exc:
            Runner(load_graph(root / TINY), out=out, quiet=True)
        msg = str(exc.value)
        assert "\n" not in msg
        assert msg.startswith(f"{out}: another run is writing into this directory (pid {holder.pid} on "
                              f"{socket.gethostname()}, started ")
        monkeypatch.chdir(root)
        assert main(["train", TINY, "--preset", "smoke", "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0], err
        assert not (out / "checkpoints").exists()          # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)                 # dies holding the lock
        holder.wait(timeout=60)
    assert json.loads((out / "run.lock").read_text())["pid"] == holder.pid
    r = Runner(load_graph(root / TINY), preset="smoke", out=out, quiet=True, resume=True)   # the killed run's dir
    assert r.lock.stale["pid"] == holder.pid
    assert f"the previous run (pid {holder.pid} on" in (out / "log.txt").read_text()
    r.train(resume=False)       # the killed run left no checkpoint: it starts afresh
    r.close()
    assert (out / "run.lock").read_text() == ""             # released: nobody holds it
    again = Runner(load_graph(root / TINY), out=out, quiet=True, resume=True)
    assert again.lock.stale is None
    again.close()


@pytest.mark.slow
def test_two_cli_runs_at_once_never_interleave(root, tmp_path):
    """Two `semflow train` into one --out started together: exactly one runs."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "flowgraph", "train", TINY, "--preset", "smoke", "--set", "steps=40",
           "--threads", "1", "--quiet", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(root / "tests"), "SEMFLOW_BLOCKS": "engine_blocks"}
    a = subprocess.Popen(cmd, cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(cmd, cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    (ea, eb) = (a.communicate(timeout=300)[1], b.communicate(timeout=300)[1])
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 1], (ea, eb)
    refused = ea if a.returncode else eb
    lines = refused.strip().splitlines()
    assert not list(out.glob("checkpoints/*.tmp"))
    assert len(lines) == 1, lines
    if "the directory already holds a run" in lines[0]:
        # the second started only after the first had written its files: refused for that
        pytest.skip("the two runs did not overlap on this machine")
    assert "another run is writing into this directory" in lines[0], lines


def test_a_lock_in_one_process_is_handed_to_the_next_runner(tmp_path):
    a = RunLock(tmp_path).acquire()
    b = RunLock(tmp_path).acquire()        # same process: takes over
    assert a.fd is None and b.fd is not None
    b.release()
    b.release()                            # twice is fine
