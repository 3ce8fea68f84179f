"""Studies (flowgraph/study.py) and comparisons (flowgraph/compare.py).

Study points run as child processes (a second or two of imports each), so the study tests
keep to a few points; the comparison is tested on runs made in this process."""
import csv
import json
import os

import pytest

from flowgraph import SemflowError, ValidationError
from flowgraph.compare import compare, _entries
from flowgraph.graph import load_graph
from flowgraph.run import Runner
from flowgraph.study import load_study, run_study

GRAPH = """\
format: 1
name: toy
variables: {sigma: 0.1, n: 4, hidden: 8, steps: 4, lr: 0.01, nan_at: 0, warm: none}
blocks:
  src: {type: testing.vectors, params: {n: $n}}
  enc: {type: testing.affine, params: {n: $n, m: $hidden}}
  bad: {type: testing.nan_after, params: {at: $nan_at}}
  cx:  {type: testing.to_complex}
  ch:  {type: testing.noise, params: {sigma: $sigma}}
  rx:  {type: testing.to_real}
  dec: {type: testing.affine, params: {n: $hidden, m: $n}}
  err: {type: testing.mse}
connections: [src.x -> enc.x, enc.y -> bad.x, bad.x -> cx.x, cx.z -> ch.z, ch.z -> rx.z, rx.x -> dec.x,
              dec.y -> err.pred, src.x -> err.target]
train:
  - {stage: e2e, trainable: [enc, dec], loss: "mse(dec.y, src.x)", optimizer: {type: adam, lr: $lr}, steps: $steps}
evaluate: {sweep: {sigma: [0.0, 0.5]}, metrics: [err], batch: 5}
presets:
  smoke: {steps: 2}
"""

STUDY = """\
study: 1
name: toy_study
graph: {graph}
preset: smoke
seeds: [0]
set: {{lr: 0.02}}
variants:
  - id: base
    label: Base
  - label: Warm
    set: {{warm: "{{run:base}}/checkpoints/last.pt", hidden: 6}}
  - label: Broken
    set: {{nan_at: 1}}
compare: {{x: sigma, baseline: Base, colors: {{Base: C3}}}}
"""


@pytest.fixture
def child_env(root, monkeypatch):
    """Study points are child processes: they need the test blocks too."""
    monkeypatch.setenv("PYTHONPATH", str(root / "tests") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("SEMFLOW_BLOCKS", "engine_blocks")


def _study(tmp_path, text=STUDY):
    g = tmp_path / "toy.yaml"
    g.write_text(GRAPH)
    s = tmp_path / "study.yaml"
    s.write_text(text.format(graph=g))
    return s


WARM = """  - label: Warm
    set: {{warm: "{{run:base}}/checkpoints/last.pt", hidden: 6}}
"""


def test_study_runs_points_continues_past_a_failure_and_skips_finished_ones(tmp_path, child_env, capsys):
    path = _study(tmp_path, STUDY.replace(WARM, ""))       # two points (each a child process): Base, Broken
    out = tmp_path / "out"
    assert run_study(path, out=out, jobs=2) == 1                    # one point failed
    err = capsys.readouterr().err
    state = json.loads((out / "study.json").read_text())
    status = {p["label"]: p["status"] for p in state["points"]}
    assert status == {"Base": "done", "Broken": "failed"}
    broken = next(p for p in state["points"] if p["label"] == "Broken")
    assert broken["error"].startswith("semflow: error: non-finite value (NaN/Inf) first produced by block 'bad'")
    assert f"FAILED Broken, seed 0: {broken['error']}" in err
    # the comparison of the finished point
    assert (out / "compare" / "err.png").is_file() and (out / "compare" / "table.md").is_file()
    rows = list(csv.DictReader(open(out / "compare" / "tidy.csv")))
    assert {r["label"] for r in rows} == {"Base"} and len(rows) == 2      # 1 run x 2 points x 1 metric
    # a rerun starts nothing that finished (here without the broken variant: no child at all)
    mtime = (out / "base__seed0" / "metrics.json").stat().st_mtime
    path.write_text(path.read_text().replace("  - label: Broken\n    set: {nan_at: 1}\n", ""))
    assert run_study(path, out=out, jobs=2) == 0
    assert "finished earlier: Base, seed 0" in capsys.readouterr().err
    assert (out / "base__seed0" / "metrics.json").stat().st_mtime == mtime


@pytest.mark.slow
def test_study_runs_a_warm_start_after_the_run_it_names(tmp_path, child_env):
    path = _study(tmp_path)
    out = tmp_path / "out"
    assert run_study(path, out=out, jobs=2) == 1                    # Broken fails, the others finish
    # {run:base} became the Base point's run directory, and Base ran first
    warm_cmd = json.loads((out / ".points" / "warm__seed0.json").read_text())["command"]
    assert f"warm=\"{out.resolve() / 'base__seed0'}/checkpoints/last.pt\"" in warm_cmd
    assert json.loads((out / "warm__seed0" / "run.json").read_text())["overrides"]["hidden"] == 6
    state = json.loads((out / "study.json").read_text())
    assert {p["label"]: p["status"] for p in state["points"]} == {"Base": "done", "Warm": "done", "Broken": "failed"}


@pytest.mark.slow
def test_study_resumes_unfinished_points_pools_seeds_and_refuses_changed_settings(tmp_path, child_env, capsys):
    text = STUDY.replace("seeds: [0]", "seeds: 2").replace("""  - label: Broken
    set: {{nan_at: 1}}
""", "")
    path = _study(tmp_path, text)
    out = tmp_path / "out"
    assert run_study(path, out=out, jobs=2) == 0
    (out / "base__seed1" / "metrics.json").unlink()                   # as if killed while evaluating
    assert run_study(path, out=out) == 0
    assert "resume Base, seed 1" in capsys.readouterr().err
    table = (out / "compare" / "table.md").read_text()
    assert "Seeds of one configuration are pooled" in table
    path.write_text(path.read_text().replace("lr: 0.02", "lr: 0.03"))
    assert run_study(path, out=out) == 1
    assert "the settings changed since" in capsys.readouterr().err


def test_study_validation_names_file_and_line(tmp_path):
    g = tmp_path / "toy.yaml"
    g.write_text(GRAPH)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"study: 1\nname: b\ngraph: {g}\nseedz: 2\nmatrix: {{hidden: 4}}\nvariants:\n"
                   f"  - label: a\n    set: {{x: '{{run:nope}}'}}\n")
    with pytest.raises(ValidationError) as exc:
        load_study(bad)
    probs = [str(p) for p in exc.value.problems]
    assert f"{bad}:4: unknown key 'seedz' (did you mean 'seeds'?)" in probs
    assert f"{bad}:5: matrix.hidden must be a non-empty list of values" in probs
    ok = tmp_path / "ok.yaml"
    ok.write_text(f"study: 1\nname: b\ngraph: {g}\nvariants:\n  - label: a\n    set: {{x: '{{run:nope}}'}}\n")
    with pytest.raises(ValidationError, match=r"ok.yaml:5: variant 'a': set.x refers to unknown variant 'nope'"):
        load_study(ok)


def test_study_matrix_crosses_variants_and_seeds(tmp_path):
    g = tmp_path / "toy.yaml"
    g.write_text(GRAPH)
    s = tmp_path / "m.yaml"
    s.write_text(f"study: 1\nname: m\ngraph: {g}\nseeds: [0, 1]\nmatrix: {{hidden: [4, 8], lr: [0.1]}}\n"
                 "variants:\n  - label: A\n  - label: B\n    set: {nan_at: 0}\n")
    study, points = load_study(s, preset="smoke", overrides={"steps": 1})
    assert len(points) == 2 * 2 * 2
    assert {p.name for p in points} >= {"a__hidden=4__lr=0.1__seed0", "b__hidden=8__lr=0.1__seed1"}
    assert all(p.preset == "smoke" and p.set["steps"] == 1 for p in points)
    # settings for one preset only: a smoke run of a study stays small
    s.write_text(s.read_text().replace("    set: {nan_at: 0}\n", "    set: {nan_at: 0, n: 8}\n"
                                       "    set_for_preset: {smoke: {n: 2}}\n"))
    assert {p.set["n"] for p in load_study(s, preset="smoke")[1] if p.label == "B"} == {2}
    assert {p.set["n"] for p in load_study(s)[1] if p.label == "B"} == {8}


def test_study_variant_outside_the_matrix_runs_once_per_seed_and_serves_every_combination(tmp_path):
    """``matrix: false``: a shared prerequisite (e.g. a pretrained codec that does not depend on
    the pilot length) runs once per seed; {run:ID} from every matrix point resolves to it."""
    g = tmp_path / "toy.yaml"
    g.write_text(GRAPH)
    s = tmp_path / "m.yaml"
    s.write_text(f"study: 1\nname: m\ngraph: {g}\nseeds: [0, 1]\nmatrix: {{hidden: [4, 8]}}\nvariants:\n"
                 "  - {id: shared, label: Shared, matrix: false, compare: false}\n"
                 "  - label: A\n    set: {warm: '{run:shared}/checkpoints/last.pt'}\n")
    _, points = load_study(s)
    shared = [p for p in points if p.vid == "shared"]
    assert [(p.name, p.dims) for p in shared] == [("shared__seed0", {}), ("shared__seed1", {})]
    users = [p for p in points if p.vid == "a"]
    assert len(users) == 4
    for p in users:
        assert [points[j].name for j in p.needs] == [f"shared__seed{p.seed}"]
    s.write_text(s.read_text().replace("matrix: false", "matrix: true"))
    with pytest.raises(ValidationError, match=r"m.yaml:7: variant: matrix: false is the only value"):
        load_study(s)


def test_study_validates_an_init_from_a_run_that_has_not_happened_yet(tmp_path, capsys):
    """A stage's ``init: {checkpoint: '{run:ID}/...'}`` names a point the study runs first: the
    file cannot exist when the study validates its points."""
    g = tmp_path / "toy.yaml"
    g.write_text(GRAPH.replace("warm: none}", "warm: ''}").replace(
        "optimizer: {type: adam, lr: $lr}, steps: $steps}",
        "optimizer: {type: adam, lr: $lr}, steps: $steps, init: {checkpoint: $warm, blocks: [enc]}}"))
    s = tmp_path / "s.yaml"
    s.write_text(f"study: 1\nname: s\ngraph: {g}\nvariants:\n  - {{id: base, label: Base}}\n"
                 "  - label: Warm\n    set: {warm: '{run:base}/checkpoints/last.pt'}\n")
    assert run_study(s, out=tmp_path / "o", dry_run=True) == 0
    assert "--set warm=" in capsys.readouterr().out
    s.write_text(s.read_text().replace("{run:base}/checkpoints", "nowhere"))
    with pytest.raises(ValidationError, match="init: checkpoint 'nowhere/last.pt' not found"):
        run_study(s, out=tmp_path / "o", dry_run=True)


def test_study_dry_run_validates_every_point(tmp_path, capsys):
    path = _study(tmp_path)
    assert run_study(path, out=tmp_path / "o", dry_run=True) == 0
    out = capsys.readouterr().out
    assert out.count("new") == 3 and "--set warm=" in out
    assert not (tmp_path / "o").exists()
    bad = _study(tmp_path, STUDY.replace("{{nan_at: 1}}", "{{nan_att: 1}}"))
    with pytest.raises(ValidationError, match="variant 'broken': --set nan_att: unknown variable 'nan_att' "
                                              r"\(did you mean 'nan_at'\?\)"):
        run_study(bad, out=tmp_path / "o", dry_run=True)


# ---- compare (runs made in this process) ------------------------------------------------------------
def _run(root, tmp_path, name, seed=0, **over):
    r = Runner(load_graph(root / "tests/graphs/tiny_metrics.yaml"), preset="smoke", overrides=over or None,
               out=tmp_path / name, seed=seed, quiet=True)
    r.run()
    r.close()
    return tmp_path / name


def test_compare_overlays_runs_with_a_table_a_tidy_csv_and_paired_differences(root, tmp_path):
    a = _run(root, tmp_path, "a")
    b = _run(root, tmp_path, "b", hidden=2)
    entries, _ = _entries([f"wide={a}", f"narrow={b}"])
    out = compare(entries, tmp_path / "cmp", log=lambda m: None)
    names = {p.name for p in out["figures"]}
    assert names == {"err.png", "flag.png", "nmse.png", "nmse_of_set.png"}
    rows = list(csv.DictReader(open(out["tidy"])))
    assert len(rows) == 2 * 3 * 4 and set(rows[0]) >= {"label", "seed", "sigma", "metric", "mean", "lo", "hi"}
    table = out["table"].read_text()
    assert "| wide |" in table and "| narrow |" in table and "**" in table
    from flowgraph.report import data_label
    label = data_label(json.loads((a / "metrics.json").read_text()))
    assert label and table.rstrip().endswith(label[0].upper() + label[1:] + ".")    # the test set, named once
    diffs = out["differences"].read_text()
    assert "# Differences against wide" in diffs and "| narrow | sigma = 0.0 |" in diffs
    assert "| yes |" in diffs                     # same examples and passes: paired per example


def test_compare_pools_seeds_of_one_configuration(root, tmp_path):
    runs = [_run(root, tmp_path, f"s{s}", seed=s) for s in (0, 1, 2)]
    entries, _ = _entries([f"tiny={r}" for r in runs])
    out = compare(entries, tmp_path / "cmp", metrics=["err"], log=lambda m: None)
    means = [json.loads((r / "metrics.json").read_text())["rows"][0]["err"] for r in runs]
    table = out["table"].read_text()
    from flowgraph.report import fmt_value
    assert fmt_value(sum(means) / 3).split(".")[0] in table
    assert "Seeds of one configuration are pooled" in table
    assert table.count("| tiny |") == 1
    from flowgraph.compare import pool_seeds, records
    raw = records(entries, {"flag": {"factor": 1.0}, "err": {"factor": 1.0}})
    pooled = pool_seeds(raw)
    assert len(pooled) == len(raw) // 3
    for p in pooled:
        own = min(r["hi"] - r["lo"] for r in raw if r["metric"] == p["metric"] and r["sigma"] == p["sigma"])
        assert p["hi"] - p["lo"] >= own * 0.999 or p["metric"] == "flag"     # never narrower than a run's own CI
        if p["metric"] == "flag":
            assert 0.0 <= p["lo"] <= p["mean"] <= p["hi"] <= 1.0           # a proportion stays in [0, 1]


def test_compare_curves_are_the_figures_numbers_for_views(root, tmp_path):
    """flowgraph.compare.curves (what the GUI overlays) gives compare's points: the proportion's
    Wilson interval stays asymmetric, and runs of one label and different seeds are pooled."""
    from flowgraph.compare import curves, pool_seeds, records
    runs = [_run(root, tmp_path, f"s{s}", seed=s) for s in (0, 1)]
    got = curves([f"tiny={r}" for r in runs], "flag")
    entries, _ = _entries([f"tiny={r}" for r in runs])
    want = sorted((float(p["sigma"]), p["mean"], p["lo"], p["hi"])
                  for p in pool_seeds(records(entries, {"flag": {"factor": 1.0}})))
    assert list(got) == ["tiny"] and got["tiny"] == want
    one = curves([str(runs[0])], "flag")["s0"]
    assert any(abs((hi - m) - (m - lo)) > 1e-9 for _, m, lo, hi in one)     # Wilson: not mean ± h
    assert curves([str(runs[0])], "no_such_metric") == {}


def test_compare_series_can_be_a_dimension(root, tmp_path):
    """One run swept over sigma x kind: with series=kind a line per kind, panels none."""
    from flowgraph.graph import loads_graph
    text = (root / "tests/graphs/tiny_metrics.yaml").read_text().replace(
        "  sweep: {sigma: [0.0, 0.5, 1.0]}", "  sweep: {sigma: [0.0, 1.0], kind: [b, a]}")
    r = Runner(loads_graph(text, str(root / "tests/graphs/tiny_metrics.yaml")), out=tmp_path / "r", quiet=True)
    r.evaluate()
    r.close()
    entries, _ = _entries([str(tmp_path / "r")])
    out = compare(entries, tmp_path / "cmp", metrics=["err"], series="kind", log=lambda m: None)
    table = out["table"].read_text()
    assert "| kind=b |" in table and "| kind=a |" in table
    assert [p.name for p in out["figures"]] == ["err.png"]
    with pytest.raises(SemflowError, match="series 'knd' is neither 'label' nor a dimension"):
        compare(entries, tmp_path / "cmp2", series="knd", log=lambda m: None)


def test_compare_refuses_what_is_not_a_run(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(SemflowError, match="is neither a run directory"):
        _entries([str(tmp_path / "x")])
