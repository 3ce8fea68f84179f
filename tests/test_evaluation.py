"""Evaluation a researcher can trust: paired points, Monte Carlo, set-level metrics, splits,
intervals, tables and plots that show every dimension (flowgraph/evaluation.py, stats.py, report.py)."""
import math

import pytest
import torch

from flowgraph import Port, Sink, SemflowError, register
from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph, loads_graph
from flowgraph.registry import has
from flowgraph.run import Runner
from flowgraph import report, stats

TINY = "tests/graphs/tiny.yaml"
METRICS = "tests/graphs/tiny_metrics.yaml"


def runner(spec, tmp_path, name="run", **kw):
    kw.setdefault("quiet", True)
    return Runner(spec, out=tmp_path / name, **kw)


def with_evaluate(root, path, text_old, text_new):
    return loads_graph((root / path).read_text().replace(text_old, text_new), str(root / path))


# ---- paired sweep points ---------------------------------------------------------------------
def test_a_point_gives_the_same_numbers_wherever_it_sits_in_the_sweep(root, tmp_path):
    """Every point is seeded from the run seed alone: sigma=0.5 gives identical per-example
    values as the 2nd of three points, the 1st of two, alone, and three times in a row."""
    r = runner(load_graph(root / TINY), tmp_path, seed=4)
    a = r.evaluate(points=[{"sigma": 0.0}, {"sigma": 0.5}, {"sigma": 1.0}], write=False)
    b = r.evaluate(points=[{"sigma": 0.5}, {"sigma": 1.0}], write=False)
    c = r.evaluate(points=[{"sigma": 0.5}], write=False)
    same = r.evaluate(points=[{"sigma": 0.5}] * 3, write=False)
    vals = a["per_example"]["sigma=0.5"]["err"]
    assert b["per_example"]["sigma=0.5"]["err"] == vals == c["per_example"]["sigma=0.5"]["err"]
    assert a["rows"][1]["err"] == b["rows"][0]["err"] == c["rows"][0]["err"]
    assert [row["err"] for row in same["rows"]] == [c["rows"][0]["err"]] * 3
    # the noise is drawn (not zero), and another run seed draws other noise
    assert a["rows"][1]["err"] != a["rows"][0]["err"]
    other = runner(load_graph(root / TINY), tmp_path, "other", seed=5).evaluate(points=[{"sigma": 0.5}], write=False)
    assert other["rows"][0]["err"] != c["rows"][0]["err"]


def test_cli_sweep_of_one_value_three_times_gives_three_equal_rows(root, tmp_path, monkeypatch):
    import json
    from flowgraph.cli import main
    monkeypatch.chdir(root)
    assert main(["eval", TINY, "--checkpoint", str(_checkpoint(root, tmp_path)), "--quiet",
                 "--out", str(tmp_path / "e"), "--sweep", "sigma=[0.3, 0.3, 0.3]"]) == 0
    rows = json.loads((tmp_path / "e" / "metrics.json").read_text())["rows"]
    assert len(rows) == 3 and rows[0]["err"] == rows[1]["err"] == rows[2]["err"]


def _checkpoint(root, tmp_path):
    r = runner(load_graph(root / TINY), tmp_path, "trained", preset="smoke")
    r.train()
    return r.checkpoint_path


def test_evaluation_leaves_the_training_state_alone(root, tmp_path):
    """RNG streams, train/eval flags and graph variables are as before evaluating, so a
    validation pass in the middle of training changes nothing there."""
    r = runner(load_graph(root / TINY), tmp_path)
    sch = r.scheduler
    sch.train(True)
    sch.reset_variables({"sigma": 0.25})
    torch.manual_seed(11)
    state = torch.get_rng_state()
    gen = sch.block("src").generator.get_state()
    r.evaluate(write=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(sch.block("src").generator.get_state(), gen)
    assert all(m.training for m in sch.modules())
    assert sch.block("ch").p.sigma == pytest.approx(0.25)


# ---- Monte Carlo -------------------------------------------------------------------------------
def test_repeats_draw_fresh_noise_per_pass_and_pair_passes_across_points(root, tmp_path):
    spec = with_evaluate(root, TINY, "  batch: 4\n", "  batch: 4\n  repeats: 3\n")
    r = runner(spec, tmp_path)
    a = r.evaluate(points=[{"sigma": 0.0}, {"sigma": 0.5}], write=False)
    b = r.evaluate(points=[{"sigma": 0.5}], write=False)
    vals = a["per_example"]["sigma=0.5"]["err"]
    assert len(vals) == 30 and a["rows"][1]["n"] == 30 and a["rows"][1]["passes"] == 3
    assert vals == b["per_example"]["sigma=0.5"]["err"]          # pass r: same draws at every point
    passes = [vals[i * 10:(i + 1) * 10] for i in range(3)]
    assert passes[0] != passes[1] != passes[2]                   # fresh draws per pass
    clean = a["per_example"]["sigma=0.0"]["err"]
    assert clean[:10] == clean[10:20] == clean[20:]              # no noise: every pass equal
    # mean and std over all 30 values; the CI clusters the 3 passes of each example
    v = torch.tensor(vals, dtype=torch.float64)
    row = a["rows"][1]
    assert row["err"] == pytest.approx(float(v.mean()))
    assert row["err_std"] == pytest.approx(float(v.std()))
    s = stats.summarize(v, torch.arange(30) % 10)
    assert row["err_ci95"] == pytest.approx(s["ci95"])
    # clustering matters: the same 10 examples seen 3 times are not 30 independent values
    naive = 1.96 * float(torch.tensor(clean, dtype=torch.float64).std()) / math.sqrt(30)
    assert a["rows"][0]["err_ci95"] > naive


def test_values_of_a_sink_cluster_by_the_source_example_they_come_from():
    """A sink may give several values per source example (the K users of a frame) or a count
    that does not divide (codewords): ids are the example, or the value's place in the pass."""
    from flowgraph.evaluation import _MonteCarlo, _PointValues
    acc = _PointValues({}, _MonteCarlo(1, None))
    assert acc._cluster("psnr", 0, 2, 8).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert acc._cluster("psnr", 2, 2, 8).tolist() == [2, 2, 2, 2, 3, 3, 3, 3]
    assert acc._cluster("bler", 0, 4, 3).tolist() == [0, 1, 2]
    assert acc._cluster("bler", 4, 4, 3).tolist() == [3, 4, 5]
    assert acc._cluster("bler", 0, 4, 3).tolist() == [0, 1, 2]          # a new pass: the same ids


def test_until_stops_at_the_error_count_or_the_example_cap(root, tmp_path):
    spec = with_evaluate(root, METRICS, "  batch: 4\n",
                         "  batch: 4\n  until: {metric: flag, errors: 6, max_examples: 48}\n")
    r = runner(spec, tmp_path)
    res = r.evaluate(points=[{"sigma": 0.0}, {"sigma": 10.0}], write=False)
    quiet, noisy = res["rows"]
    flags = res["per_example"]["sigma=10.0"]["flag"]
    last = 2 if len(flags) % 10 == 0 else 4                      # batches of 4, 4, 2 per pass
    assert sum(flags) >= 6 and sum(flags[:-last]) < 6            # stopped after the batch that reached 6
    assert noisy["n"] == len(flags) < 48
    assert quiet["n"] == 48                                       # few errors: ran to the cap
    assert quiet["passes"] == 5                                   # 10 examples a pass, 48 values
    assert res["evaluation"]["until"] == {"metric": "flag", "errors": 6, "max_examples": 48}


def test_named_metrics_without_files_run_only_the_blocks_they_need(root, tmp_path):
    """Validation's pass (metrics named, write=False) skips sinks it does not report, with the
    same numbers for the ones it does."""
    r = runner(load_graph(root / METRICS), tmp_path)
    full = r.evaluate(points=[{"sigma": 0.5}], write=False)["rows"][0]
    calls = []
    flag = r.scheduler.block("flag")
    flag.register_forward_hook(lambda *a: calls.append(1))
    part = r.evaluate(metrics=["err"], points=[{"sigma": 0.5}], write=False)["rows"][0]
    assert calls == [] and "flag" not in part and part["err"] == full["err"]
    r.evaluate(points=[{"sigma": 0.5}], write=False)
    assert calls                                                  # the whole graph otherwise


# ---- set-level metrics, splits, data record --------------------------------------------------
def test_set_level_metric_reduces_stats_of_the_whole_point(root, tmp_path):
    from flowgraph.taps import TapHub
    hub, seen = TapHub(), []
    hub.subscribe("nmse.stats", lambda n, v, i: seen.append(v), min_interval=0.0)
    spec = with_evaluate(root, METRICS, "  batch: 4\n", "  batch: 4\n  repeats: 2\n")
    r = runner(spec, tmp_path, taps=hub)
    res = r.evaluate(points=[{"sigma": 0.5}], write=False)
    row = res["rows"][0]
    st = torch.cat(seen)
    assert st.shape == (20, 2)                                    # every batch of both passes
    assert row["nmse_of_set"] == pytest.approx(float(st[:, 0].sum() / st[:, 1].sum()))
    assert row["nmse_of_set"] != pytest.approx(row["nmse"], rel=1e-3)   # ratio of sums != mean of ratios
    assert row["nmse_of_set_lo"] < row["nmse_of_set"] < row["nmse_of_set_hi"]
    assert res["columns"]["nmse_of_set"]["kind"] == "set" and res["columns"]["nmse"]["kind"] == "mean"
    again = r.evaluate(points=[{"sigma": 0.5}], write=False)["rows"][0]
    assert again["nmse_of_set_lo"] == row["nmse_of_set_lo"]       # the bootstrap is seeded
    assert "nmse_of_set" in report.format_table(res)


def test_a_sink_without_per_example_meaning_reports_only_its_set_column(root, tmp_path):
    if not has("testing.set_only_nmse"):
        from engine_blocks import SetNMSE

        @register("testing.set_only_nmse")
        class SetOnly(SetNMSE):
            """Only the set-level NMSE is meaningful. Shapes: as testing.set_nmse (B, N)."""
            per_example = False
            set_bootstrap = False
            set_suffix = "set"
    spec = with_evaluate(root, METRICS, "nmse: {type: testing.set_nmse}", "nmse: {type: testing.set_only_nmse}")
    res = runner(spec, tmp_path).evaluate(points=[{"sigma": 0.5}])
    row = res["rows"][0]
    assert "nmse" not in row and "nmse_set" in row and math.isnan(row["nmse_set_lo"])
    assert "nmse" not in res["per_example"]["sigma=0.5"]
    assert (tmp_path / "run" / "nmse_set_vs_sigma.png").is_file()


def test_split_is_passed_to_the_source_and_recorded(root, tmp_path):
    r = runner(load_graph(root / TINY), tmp_path)
    val = r.evaluate(split="val", write=False)
    assert all(row["n"] == 6 for row in val["rows"])
    assert val["data"]["split"] == "val" and val["data"]["examples"] == 6
    assert val["data"]["dataset"]["name"] == "gaussian vectors" and val["data"]["type"] == "testing.vectors"
    test = r.evaluate(write=False)
    assert test["data"]["split"] == "test" and test["rows"][0]["n"] == 10


def test_a_source_without_splits_serves_test_only(tmp_path, write_graph):
    path = write_graph("format: 1\nname: img\nblocks:\n  src: {type: testing.images}\n  noise: {type: testing.image_noise}\n"
                       "  psnr: {type: sink.psnr}\nconnections:\n  - src.image -> noise.image\n"
                       "  - noise.image -> psnr.pred\n  - src.image -> psnr.target\n")
    r = runner(load_graph(path), tmp_path)
    assert r.evaluate(write=False)["rows"][0]["n"] == 6
    with pytest.raises(SemflowError, match=r"^block 'src' \(testing.images\) has no 'val' split$"):
        r.evaluate(split="val", write=False)


# ---- intervals ---------------------------------------------------------------------------------
def test_wilson_interval_stays_in_0_1_where_the_normal_one_does_not():
    for p, n in ((0.0, 10), (0.02, 50), (0.5, 4), (1.0, 7), (0.999, 1000)):
        lo, hi = stats.wilson(p, n)
        assert 0.0 <= lo <= p <= hi <= 1.0
    p, n = 0.02, 50
    assert p - 1.96 * math.sqrt(p * (1 - p) / n) < 0                # the normal approximation leaves [0, 1]
    assert stats.wilson(0.0, 10)[1] == pytest.approx(1.96 ** 2 / (10 + 1.96 ** 2), rel=1e-3)


def test_error_rate_rows_carry_wilson_bounds(root, tmp_path):
    r = runner(load_graph(root / METRICS), tmp_path)
    rows = r.evaluate(points=[{"sigma": s} for s in (0.0, 1.0, 3.0, 10.0)], write=False)["rows"]
    for row in rows:
        assert 0.0 <= row["flag_lo"] <= row["flag"] <= row["flag_hi"] <= 1.0
    zero = [row for row in rows if row["flag"] == 0.0]
    assert zero and all(row["flag_hi"] > 0 for row in zero)     # 0 of 10 is not "exactly 0"


def test_across_seeds_and_paired_difference():
    pooled = stats.across_seeds([20.0, 21.0, 22.0])
    assert pooled["mean"] == 21.0 and pooled["lo"] < 21.0 < pooled["hi"]
    assert pooled["ci95"] == pytest.approx(stats.t95(2) * 1.0 / math.sqrt(3))
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    d = stats.paired_difference(a + 0.5 + 0.01 * torch.tensor([1.0, -1.0, 1.0, -1.0]), a)
    assert d["diff"] == pytest.approx(0.5) and d["lo"] > 0.4      # tight: the examples' spread cancels


# ---- tables --------------------------------------------------------------------------------------
def test_table_prints_small_error_rates_and_says_what_the_spread_is():
    result = {"sweep": ["snr_db"], "graph": "g", "metrics": ["ber"],
              "columns": {"ber": {"metric": "ber", "unit": "", "higher_is_better": False, "scale": "log",
                                  "proportion": True, "kind": "mean"}},
              "rows": [{"snr_db": 10, "ber": 1.0e-4, "ber_std": 3e-4, "ber_lo": 5e-5, "ber_hi": 2e-4, "n": 5000}]}
    table = report.format_table(result)
    assert "1.000e-04 ± 3.0e-04" in table and "0.000" not in table
    assert "ber mean ± std" in table.splitlines()[0]
    assert report.fmt_value(28.5012) == "28.50" and report.fmt_value(0.71043) == "0.7104"


# ---- plots ---------------------------------------------------------------------------------------
@pytest.fixture
def figures(monkeypatch):
    """Figures the report module draws, kept open for inspection (artists, not pixels)."""
    got = []
    real = report._save

    def keep(fig, path):
        got.append((path.name, fig))
        fig.savefig(path)
        return path
    monkeypatch.setattr(report, "_save", keep)
    yield got
    import matplotlib.pyplot as plt
    for _, f in got:
        plt.close(f)
    assert real


def _lines(ax):
    return {c.get_label(): c for c in ax.containers}


def test_a_three_variable_sweep_shows_every_series(root, tmp_path, figures):
    """x = sigma, one line per kind (categorical, in sweep order), one panel per gain."""
    spec = with_evaluate(root, METRICS, "  sweep: {sigma: [0.0, 0.5, 1.0]}",
                         "  sweep: {sigma: [0.0, 0.5, 1.0], kind: [b, a], gain: [2, 1]}")
    r = runner(spec, tmp_path)
    r.evaluate()
    fig = dict(figures)["err_vs_sigma.png"]
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["gain = 2", "gain = 1"]     # sweep order, not sorted
    for ax in axes:
        lines = _lines(ax)
        assert list(lines) == ["kind=b", "kind=a"]
        for c in lines.values():
            assert list(c.lines[0].get_xdata()) == [0.0, 0.5, 1.0]
    assert axes[0].get_xlabel() == "sigma"
    assert "95% CI of the mean" in fig._suptitle.get_text()


def test_four_sweep_variables_give_one_file_per_value_of_the_fourth(root, tmp_path, figures):
    spec = with_evaluate(root, METRICS, "  sweep: {sigma: [0.0, 0.5, 1.0]}",
                         "  sweep: {kind: [b, a], sigma: [0.0, 1.0], gain: [1, 2], n_extra: [7, 8]}")
    spec.variables["n_extra"] = 0
    r = runner(spec, tmp_path)
    r.evaluate()
    names = {n for n, _ in figures}
    assert {"err_vs_kind__n_extra=7.png", "err_vs_kind__n_extra=8.png"} <= names
    ax = dict(figures)["err_vs_kind__n_extra=7.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "a"]    # categorical x in sweep order


def test_error_rates_use_a_log_axis_and_mark_zero_points(root, tmp_path, figures):
    r = runner(load_graph(root / METRICS), tmp_path)
    r.evaluate(points=[{"sigma": s} for s in (0.0, 3.0, 10.0)])
    flag = dict(figures)["flag_vs_sigma.png"].axes[0]
    assert flag.get_yscale() == "log"
    assert dict(figures)["err_vs_sigma.png"].axes[0].get_yscale() == "linear"
    assert "Wilson" in dict(figures)["flag_vs_sigma.png"]._suptitle.get_text()
    assert flag.collections and flag.collections[0].get_offsets().shape[0] >= 1   # mean 0: a triangle


def test_library_error_rates_declare_log_scale_and_proportion():
    from flowgraph import registry
    for t in ("sink.ber", "sink.bler"):
        cls = registry.get(t)
        assert cls.scale == "log" and cls.proportion
    assert registry.get("sink.nmse").scale == "log" and not registry.get("sink.nmse").proportion
    assert registry.get("sink.accuracy").proportion
    assert registry.get("sink.psnr").scale == "linear"


def test_ber_sweep_plots_on_a_log_axis(tmp_path, write_graph, figures):
    path = write_graph("""\
format: 1
name: bits
variables: {sigma: 0.1}
blocks:
  src: {type: testing.vectors}
  cx: {type: testing.to_complex}
  ch: {type: testing.noise, params: {sigma: $sigma}}
  rx: {type: testing.to_real}
  ber: {type: sink.ber}
connections:
  - src.x -> cx.x
  - cx.z -> ch.z
  - ch.z -> rx.z
  - src.x -> ber.bits
  - rx.x -> ber.bits_hat
evaluate: {sweep: {sigma: [0.1, 1.0, 3.0]}, metrics: [ber], units: {sigma: V}}
""")
    runner(load_graph(path), tmp_path).evaluate()
    ax = dict(figures)["ber_vs_sigma.png"].axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "sigma [V]"


def test_axis_labels_name_the_variable_and_its_unit():
    assert report.axis_label("snr_db") == "snr_db [dB]"
    assert report.axis_label("nt") == "nt"
    assert report.axis_label("power", {"power": "W"}) == "power [W]"


def test_image_grid_at_chosen_points(tmp_path, write_graph):
    path = write_graph("""\
format: 1
name: img
variables: {sigma: 0.0}
blocks:
  src: {type: testing.images}
  noise: {type: testing.image_noise, params: {sigma: $sigma}}
  psnr: {type: sink.psnr}
connections:
  - src.image -> noise.image
  - noise.image -> psnr.pred
  - src.image -> psnr.target
evaluate: {sweep: {sigma: [0.0, 0.2, 0.5]}, image_grid: {at: [{sigma: 0.0}, {sigma: 0.5}], n: 3}}
""")
    r = runner(load_graph(path), tmp_path)
    from flowgraph.evaluation import _ImageGrid
    grid = _ImageGrid.from_spec(r.spec.evaluate["image_grid"], r.graph)
    assert grid.ports == ["src.image", "noise.image"]
    r.evaluate()
    assert (tmp_path / "run" / "images.png").is_file()
    assert "images: " in (tmp_path / "run" / "log.txt").read_text()


# ---- validation of the evaluate keys -----------------------------------------------------------
@pytest.mark.parametrize("block,message", [
    ("  repeats: 0\n", ":44: evaluate.repeats must be a positive integer, got 0"),
    ("  until: {metric: err2, errors: 5}\n", ":44: evaluate.until.metric: 'err2' is not a sink of this graph"),
    ("  until: {metric: flag, errors: -1}\n", ":44: evaluate.until.errors must be a positive integer, got -1"),
    ("  until: {metric: flag, erors: 5}\n", ":44: evaluate.until: unknown key 'erors'"),
    ("  repeats: 2\n  until: {metric: flag}\n", ":45: evaluate: give repeats or until, not both"),
    ("  image_grid: {at: [{sgma: 0}]}\n", ":44: evaluate.image_grid.at: unknown variable 'sgma' (did you mean 'sigma'?)"),
    ("  image_grid: {ports: [dec.z]}\n", ":44: evaluate.image_grid.ports: 'dec.z' is no output port of this graph"),
    ("  repeets: 2\n", ":44: evaluate: unknown key 'repeets' (did you mean 'repeats'?)"),
])
def test_evaluate_keys_are_validated_with_file_and_line(root, block, message):
    spec = with_evaluate(root, METRICS, "  batch: 4\n", "  batch: 4\n" + block)
    probs = [str(p) for p in compile_graph(spec).problems]
    assert any(message in p for p in probs), probs
