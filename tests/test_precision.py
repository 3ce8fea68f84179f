"""--amp bf16|fp16: autocast training on CPU, complex blocks kept in fp32, results near fp32."""
import csv

import pytest
import torch

from flowgraph import SemflowError
from flowgraph.checkpoint import load_checkpoint
from flowgraph.graph import load_graph
from flowgraph.precision import autocast, check_amp, keeps_fp32
from flowgraph.run import Runner
from flowgraph.scheduler import Scheduler
from flowgraph.compile import compile_graph

#: the stated tolerance: bf16 keeps 8 mantissa bits (~0.4% per rounding), so a short run's
#: losses stay within 5% of fp32's and the final evaluation MSE within 10%
LOSS_RTOL = 0.05
EVAL_RTOL = 0.10


def losses(run):
    with open(run / "train.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_complex_blocks_run_in_fp32_under_autocast(root):
    graph = compile_graph(load_graph(root / "tests/graphs/tiny.yaml"))
    sch = Scheduler(graph)
    assert {n for n, rb in graph.blocks.items() if keeps_fp32(rb.cls, rb.type_id)} == {"cx", "ch", "rx"}
    with autocast("bf16", torch.device("cpu")):
        values = sch()
    # affine layers ran in bf16; view_as_complex (no bf16 complex dtype) got float32 and worked
    assert values["enc.y"].dtype == torch.bfloat16
    assert values["cx.z"].dtype == torch.complex64 and values["rx.x"].dtype == torch.float32
    assert values["dec.y"].dtype == torch.bfloat16


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_is_close_to_fp32(root, tmp_path, amp):
    spec = lambda: load_graph(root / "tests/graphs/tiny.yaml")  # noqa: E731
    sets = {"steps": 12, "train_sigma": 0.0}
    ref = Runner(spec(), overrides=sets, out=tmp_path / "fp32", quiet=True)
    ref_res = ref.run()
    run = Runner(spec(), overrides=sets, out=tmp_path / amp, quiet=True, amp=amp)
    res = run.run()
    l32, lamp = losses(tmp_path / "fp32"), losses(tmp_path / amp)
    assert len(l32) == len(lamp) == 12 and lamp[-1] < lamp[0]
    assert lamp == pytest.approx(l32, rel=LOSS_RTOL)
    assert lamp != l32                      # autocast really changed the arithmetic
    for a, b in zip(res["rows"], ref_res["rows"]):
        assert a["err"] == pytest.approx(b["err"], rel=EVAL_RTOL)
    if amp == "fp16":     # a mid-stage checkpoint keeps the scaler's state for --resume
        stopped = Runner(spec(), overrides=sets, out=tmp_path / "stopped", quiet=True, amp=amp)
        assert stopped.train(stop_after=4) is False
        state = load_checkpoint(stopped.checkpoint_path)["grad_scaler"]
        assert state and state["scale"] > 0


def test_unknown_amp_is_one_line():
    with pytest.raises(SemflowError, match="--amp fp8: unknown precision"):
        check_amp("fp8")


def test_codecs_run_in_half_precision_and_the_channel_in_fp32(root):
    """extractor/decoder blocks have complex ports but real networks: autocast inside, the
    complex symbols formed from float32; the channel between them stays fp32."""
    graph = compile_graph(load_graph(root / "graphs/deepjscc_awgn.yaml"), preset="smoke")
    sch = Scheduler(graph)
    dtypes = {}
    for name in ("enc", "dec"):
        conv = next(m for m in sch.block(name).modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
        conv.register_forward_hook(lambda m, i, o, _n=name: dtypes.update({_n: o.dtype}) and None)
    with autocast("bf16", torch.device("cpu")):
        values = sch()
    assert dtypes == {"enc": torch.bfloat16, "dec": torch.bfloat16}
    assert values["enc.z"].dtype == torch.complex64 and values["ch.y"].dtype == torch.complex64
    assert "ch" in sch._fp32 and "enc" not in sch._fp32
