"""--compile: torch.compile per block on CPU equals eager within a stated tolerance; a block
that cannot compile runs eagerly with one warning line. Compiling on 2 busy cores takes a
while, so the run comparison is marked slow."""
import csv

import pytest
import torch

from flowgraph.graph import load_graph
from flowgraph.run import Runner

#: compiled kernels reorder float32 arithmetic (fused ops): losses agree to 1e-4 relative
RTOL = 1e-4


def losses(run):
    with open(run / "train.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_compiled_run_equals_eager(root, tmp_path):
    spec = lambda: load_graph(root / "tests/graphs/tiny.yaml")  # noqa: E731
    sets = {"steps": 4}
    eager = Runner(spec(), overrides=sets, out=tmp_path / "eager", quiet=True).run()
    r = Runner(spec(), overrides=sets, out=tmp_path / "compiled", quiet=True, compile=True)
    assert set(r.scheduler.compiled) == {"enc", "cx", "ch", "rx", "dec", "err"}
    compiled = r.run()
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), rel=RTOL)
    for a, b in zip(compiled["rows"], eager["rows"]):
        assert a["err"] == pytest.approx(b["err"], rel=RTOL)


def test_a_block_that_cannot_compile_runs_eagerly_with_one_warning(root, tmp_path, monkeypatch):
    lines = []
    r = Runner(load_graph(root / "tests/graphs/tiny.yaml"), overrides={"steps": 2}, out=tmp_path / "r", quiet=True)

    def broken(**kwargs):
        raise torch._dynamo.exc.Unsupported("cannot trace this block")
    r.scheduler.compile_blocks(warn=lines.append)
    for name in list(r.scheduler.compiled):       # stand-ins: compiling enc fails, the others are eager
        r.scheduler.compiled[name] = broken if name == "enc" else r.scheduler.block(name)
    r.run()
    assert lines == ["warning: --compile: block 'enc' (testing.affine) runs eagerly: Unsupported: cannot trace this block"]
    assert "enc" not in r.scheduler.compiled
