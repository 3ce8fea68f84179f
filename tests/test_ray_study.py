"""semflow study --ray local: a 2-point smoke study through a local Ray instance.

Ray is an optional extra (pip install -e '.[ray]'); `make test` does not install it (a
79 MB wheel and a local cluster start per run), so this test runs where the extra is
installed and is skipped, saying so, where it is not."""
import json

import pytest

from flowgraph import SemflowError
from flowgraph.study import run_study
from test_study import GRAPH, child_env  # noqa: F401  (the fixture: child processes get the test blocks)

STUDY = """\
study: 1
name: ray_study
graph: {graph}
preset: smoke
seeds: [0]
resources: {{cpus: 1}}
variants:
  - {{id: base, label: Base}}
  - {{id: fast, label: Fast, set: {{lr: 0.05}}}}
compare: {{x: sigma}}
"""


@pytest.mark.slow
def test_study_points_run_as_ray_tasks(tmp_path, child_env, capsys):  # noqa: F811
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    g = tmp_path / "toy.yaml"
    g.write_text(GRAPH)
    s = tmp_path / "study.yaml"
    s.write_text(STUDY.format(graph=g))
    out = tmp_path / "out"
    assert run_study(s, out=out, ray="local") == 0
    err = capsys.readouterr().err
    assert "Ray at a local Ray instance: 1 CPU(s), 0 GPU(s) per point" in err
    state = json.loads((out / "study.json").read_text())
    assert [p["status"] for p in state["points"]] == ["done", "done"]
    for p in state["points"]:
        metrics = json.loads((out / p["dir"] / "metrics.json").read_text())
        assert len(metrics["rows"]) == 2 and metrics["rows"][0]["n"] == 10
    assert (out / "compare").is_dir()


def test_ray_missing_is_one_line(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    from flowgraph.raystudy import RayLauncher
    with pytest.raises(SemflowError, match=r"--ray: Ray is not installed \(pip install -e '.\[ray\]'\)"):
        RayLauncher("local", {}, 1, "cpu")
