"""Resource sanity (issue 18.5): what cannot fit is refused before anything is allocated,
in one line naming the variable to lower; --force lifts the limits."""
import pytest
import torch

from flowgraph import SemflowError
from flowgraph import resources
from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph
from flowgraph.limits import Limits
from flowgraph.run import Runner

DJSCC = "graphs/deepjscc_awgn.yaml"


@pytest.mark.parametrize("overrides,message", [
    ({"batch": 10 ** 7}, "for the blocks' outputs (src.image (10000000, 3, 32, 32) alone 114.4 GiB)"),
    ({"size": 10 ** 6}, "src.image (64, 3, 1000000, 1000000) alone"),
    ({"filters": 10 ** 6}, "of parameters, x4 for training; block 'enc' alone"),
])
def test_what_cannot_fit_is_refused_naming_the_variable(root, tmp_path, overrides, message, monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 16 * 2 ** 30)
    with pytest.raises(SemflowError) as exc:
        Runner(load_graph(root / DJSCC), preset="smoke", overrides=overrides, out=tmp_path / "r", quiet=True)
    msg = str(exc.value)
    assert "\n" not in msg and message in msg and "16.0 GiB are available" in msg, msg
    assert f"lower {next(iter(overrides))}" in msg and msg.endswith(", or pass --force")


def test_force_lifts_the_memory_check(root, tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 1000)      # 1000 bytes left
    spec = load_graph(root / "tests/graphs/tiny.yaml")
    with pytest.raises(SemflowError, match="are available: lower"):
        Runner(spec, out=tmp_path / "a", quiet=True)
    Runner(spec, out=tmp_path / "b", quiet=True, limits=Limits(force=True)).close()


def test_the_estimates(root, tmp_path):
    cg = compile_graph(load_graph(root / DJSCC), preset="smoke")
    assert resources.batch_size(cg) == 64                   # evaluate.batch 64 > training batch 4
    out, (block, port, shape, n) = resources.output_bytes(cg)
    assert (block, port, shape, n) in [("src", "image", (64, 3, 32, 32), 64 * 3 * 32 * 32 * 4),
                                       ("dec", "image", (64, 3, 32, 32), 64 * 3 * 32 * 32 * 4)]
    before = torch.get_rng_state()
    par, (big, nbytes) = resources.parameter_bytes(cg)
    assert torch.equal(before, torch.get_rng_state())         # the meta build draws nothing
    real = Runner(load_graph(root / DJSCC), preset="smoke", quiet=True, out=tmp_path / "real")
    measured = sum(t.numel() * t.element_size() for t in (*real.scheduler.parameters(), *real.scheduler.buffers()))
    real.close()
    assert par == measured and big in ("enc", "dec")


def test_evaluation_length_is_capped_unless_forced(root, tmp_path):
    spec = load_graph(root / "tests/graphs/tiny.yaml")
    r = Runner(spec, out=tmp_path / "r", quiet=True, limits=Limits(max_eval_examples=15))
    with pytest.raises(SemflowError) as exc:
        r.evaluate(write=False)
    assert str(exc.value) == ("evaluation would run 20 examples (2 sweep point(s) x 10 examples; limit 15): "
                              "lower evaluate.images or the sweep, or pass --force")
    forced = Runner(spec, out=tmp_path / "f", quiet=True, limits=Limits(max_eval_examples=15, force=True))
    assert len(forced.evaluate(write=False)["rows"]) == 2
