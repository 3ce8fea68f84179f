"""Every shipped graph validates, round-trips through save/load, and runs its smoke preset."""
from pathlib import Path

import pytest
import torch

from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph
from flowgraph.run import Runner

from graph_checks import shipped_graphs

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = [p.relative_to(ROOT).as_posix() for p in shipped_graphs(parts=False)]


def test_graphs_exist():
    assert "graphs/deepjscc_awgn.yaml" in GRAPHS and "graphs/deepjscc_rayleigh.yaml" in GRAPHS


@pytest.mark.parametrize("graph", GRAPHS)
def test_graph_validates_in_every_preset(graph):
    spec = load_graph(ROOT / graph)
    assert "smoke" in spec.presets, f"{graph} needs a smoke preset"
    for preset in [None, *spec.presets]:
        cg = compile_graph(spec, preset=preset)
        assert cg.problems == [], f"{graph} preset {preset}: " + "; ".join(map(str, cg.problems))


@pytest.mark.parametrize("graph", GRAPHS)
def test_graph_round_trips(graph, tmp_path):
    g1 = load_graph(ROOT / graph)
    g1.save(tmp_path / "g.yaml")
    g2 = load_graph(tmp_path / "g.yaml")
    assert g1.to_dict() == g2.to_dict()


@pytest.mark.parametrize("graph", GRAPHS)
def test_graph_runs_smoke_preset(graph, tmp_path):
    r = Runner(load_graph(ROOT / graph), preset="smoke", out=tmp_path / "run", quiet=True)
    result = r.run()
    r.close()
    if result is not None:
        for row in result["rows"]:
            for m in result["metrics"]:
                # a sink whose value is not per example (per_example False, e.g. FID) reports its set column only
                col = m if m in row else f"{m}_{r.scheduler.block(m).set_suffix}"
                assert row[col] == row[col], f"{graph}: metric {col} is NaN at {row}"
    assert (tmp_path / "run" / "graph.yaml").is_file()


def test_deepjscc_resume_equals_uninterrupted(tmp_path):
    spec = lambda: load_graph(ROOT / "graphs/deepjscc_rayleigh.yaml")  # noqa: E731  (redraws SNR per batch)
    ov = {"steps": 6}
    full = Runner(spec(), preset="smoke", overrides=ov, out=tmp_path / "a", seed=11, quiet=True)
    full.train()
    part = Runner(spec(), preset="smoke", overrides=ov, out=tmp_path / "b", seed=11, quiet=True)
    assert part.train(stop_after=4) is False
    again = Runner(spec(), preset="smoke", overrides=ov, out=tmp_path / "b", seed=11, quiet=True, resume=True)
    assert again.train(resume=True)
    a, b = full.scheduler.state_dict(), again.scheduler.state_dict()
    for k, v in a.items():
        if torch.is_tensor(v):
            assert torch.equal(v, b[k]), k


def test_deepjscc_reports_cbr_one_sixth(tmp_path):
    r = Runner(load_graph(ROOT / "graphs/deepjscc_awgn.yaml"), preset="smoke", out=tmp_path / "r", quiet=True)
    res = r.evaluate()
    assert res["cbr"]["fraction"] == "1/6"
