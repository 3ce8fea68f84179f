"""Runtime values (issue 18.4): values set or drawn per batch are checked when set, and
evaluation names the first block that produces NaN/Inf, as training does."""
import pytest
import torch

from flowgraph import NonFiniteError, SemflowError
from flowgraph.cli import main
from flowgraph.graph import load_graph
from flowgraph.run import Runner

TINY = "tests/graphs/tiny.yaml"


def test_a_value_set_between_frames_is_checked_in_one_line(root, tmp_path):
    r = Runner(load_graph(root / TINY), out=tmp_path / "r", quiet=True)
    with pytest.raises(SemflowError) as exc:
        r.scheduler.set_variables({"sigma": float("nan")})
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{root / TINY}:15: block 'ch': param 'sigma' expects a finite float, got nan")
    assert "(with sigma=nan)" in msg
    with pytest.raises(SemflowError, match="param 'sigma' expects float, got str 'loud'"):
        r.scheduler.set_variables({"sigma": "loud"})


def test_evaluation_names_the_first_block_that_produces_nan(root, tmp_path):
    r = Runner(load_graph(root / TINY), out=tmp_path / "r", quiet=True)
    with torch.no_grad():
        r.scheduler.block("dec").lin.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError) as exc:
        r.evaluate(write=False)
    assert exc.value.block == "dec" and exc.value.port == "y"
    assert "first produced by block 'dec' at port 'y' (evaluation at {'sigma': 0.0})" in str(exc.value)


def test_a_sinks_own_nan_is_a_value_not_an_error(root, tmp_path):
    """A sink may define NaN as "undefined" (per-image mIoU of an image without counted
    pixels): finite inputs, NaN value -> evaluation goes on and the statistics see it."""
    r = Runner(load_graph(root / TINY), out=tmp_path / "r", quiet=True)
    sink = r.scheduler.block("err")
    sink.register_forward_hook(lambda m, a, out: {**out, "value": torch.full_like(out["value"], float("nan"))})
    res = r.evaluate(write=False)
    assert res["rows"] and all(row["n"] > 0 for row in res["rows"])


def test_cli_refuses_an_infinite_set_value_before_running(root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(root)
    code = main(["run", TINY, "--preset", "smoke", "--set", "train_sigma=.inf", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"semflow: error: {TINY}:33: train stage 'e2e': sigma = inf: block 'ch' (testing.noise): "
                   "param 'sigma' expects a finite float, got inf"]          # one problem: one line
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_cli_refuses_bad_sweep_values_before_running(root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(root)
    code = main(["eval", TINY, "--checkpoint", "none.pt", "--sweep", "sigma=[0.1, .nan, text]",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 3, err
    assert "evaluate.sweep.sigma[1] = nan: block 'ch' (testing.noise): param 'sigma' expects a finite float" in err[0]
    assert "evaluate.sweep.sigma[2] = 'text': block 'ch' (testing.noise): param 'sigma' expects float" in err[1]
