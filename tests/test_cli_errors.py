"""Every user error is one line on stderr (``semflow: error: ...``) and a non-zero exit.

One fresh interpreter (a subprocess) imports the engine and the blocks once, then forks a
child per case whose real stderr (file descriptor 2) is captured: a traceback or a stray
warning would show up as extra lines.
"""
import json
import os
import subprocess
import sys

import pytest

DRIVER = r'''
import json, os, sys, traceback
from flowgraph import registry
from flowgraph.cli import main
registry.load_plugins()
results = []
for argv in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 99
        sys.stderr.flush()
        os._exit(code or 0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    results.append({"argv": argv, "code": os.waitstatus_to_exitcode(status),
                    "stderr": b"".join(chunks).decode()})
print(json.dumps(results))
'''

TYPO_GRAPH = "tests/graphs/tiny.yaml"


def cases(tmp):
    typo = tmp / "typo.yaml"
    typo.write_text(open(TYPO_GRAPH).read().replace("type: testing.mse", "type: testing.msee"))
    (tmp / "taken").mkdir()
    (tmp / "taken" / "log.txt").write_text("an earlier run\n")
    (tmp / "empty").mkdir()
    (tmp / "notarun").mkdir()
    bad_study = tmp / "bad_study.yaml"
    bad_study.write_text("study: 1\nname: s\nvariants:\n  - label: a\n    graph: tests/graphs/tiny.yaml\n"
                         "    set: {sgima: 1}\n")
    return [
        (["run", TYPO_GRAPH, "--device", "tpu", "--out", str(tmp / "o1")], "--device tpu: unknown device"),
        (["train", TYPO_GRAPH, "--device", "cpu:x", "--out", str(tmp / "o2")], "--device cpu:x: unknown device"),
        (["run", TYPO_GRAPH, "--set", "sgima=0.1", "--out", str(tmp / "o3")],
         "--set sgima: unknown variable 'sgima' (did you mean 'sigma'?)"),
        (["run", str(typo), "--out", str(tmp / "o4")],
         "typo.yaml:18: block 'err': unknown block type 'testing.msee' (did you mean 'testing.mse'?)"),
        (["describe", "channel.awgm"], "unknown block type 'channel.awgm' (did you mean 'channel.awgn'?)"),
        (["run", TYPO_GRAPH, "--out", str(tmp / "taken")], "the directory already holds a run; pass --resume"),
        (["train", TYPO_GRAPH, "--resume", "--out", str(tmp / "empty")], "--resume: no checkpoint at"),
        (["blocks", "chanel"], "no block type or stage matches 'chanel' (did you mean 'channel'?)"),
        (["compare", str(tmp / "notarun")], "is neither a run directory (metrics.json) nor a study"),
        (["study", str(bad_study), "--dry-run", "--out", str(tmp / "s")],
         "bad_study.yaml:6: variant 'a': --set sgima: unknown variable 'sgima' (did you mean 'sigma'?)"),
    ]


def test_every_error_is_one_line(root, tmp_path):
    todo = cases(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(root / "tests"), SEMFLOW_BLOCKS="engine_blocks")
    p = subprocess.run([sys.executable, "-c", DRIVER, json.dumps([argv for argv, _ in todo])], cwd=root,
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout.strip().splitlines()[-1])
    bad = []
    for (argv, expect), res in zip(todo, results):
        lines = res["stderr"].strip().splitlines()
        if res["code"] == 0 or len(lines) != 1 or expect not in lines[0] or not lines[0].startswith("semflow: error:"):
            bad.append((argv, res["code"], res["stderr"]))
    assert not bad, "\n".join(f"{a}: exit {c}\n{e}" for a, c, e in bad)


@pytest.mark.parametrize("pattern,expect,absent", [("channel", "channel.awgn", "sink.psnr"),
                                                    ("*ofdm*", "channel.ofdm_draw", "channel.awgn"),
                                                    ("psnr", "sink.psnr", "channel.awgn")])
def test_blocks_filters_by_stage_or_pattern(capsys, pattern, expect, absent):
    from flowgraph.cli import main
    assert main(["blocks", pattern]) == 0
    out = capsys.readouterr().out
    assert expect in out and absent not in out


def test_block_summaries_are_whole_sentences(capsys):
    from flowgraph import registry
    from flowgraph.cli import main, summary
    assert main(["blocks"]) == 0
    out = capsys.readouterr().out
    for t, cls in registry.all_types().items():
        s = summary(cls)
        if s:
            assert s.rstrip().endswith((".", "!", "?", ")", ":")) or len(s.split()) < 12, (t, s)
    assert summary(registry.get("sink.psnr")) == \
        "Peak signal-to-noise ratio per example (e.g. Bourtsoulatze et al. 2019, eq. 6)."
    assert "Bourtsoulatze et al. 2019, eq. 6)." in out


def test_describe_takes_several_types(capsys):
    from flowgraph.cli import main
    assert main(["describe", "channel.awgn", "sink.psnr"]) == 0
    out = capsys.readouterr().out
    assert "channel.awgn  (stage: channel" in out and "sink.psnr  (stage: sink" in out
