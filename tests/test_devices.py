"""Blocks create tensors on their input's device (issue 15 item 5).

Without a GPU, :func:`flowgraph.devicecheck.audit_frame` records every tensor factory a
block calls in ``forward`` without ``device=`` (a CPU tensor that would meet CUDA inputs).
The only ones allowed are the host-side sites below, each of which moves its result to the
input's device. With a GPU, every shipped graph's smoke preset runs on ``cuda``.
"""
import inspect

import pytest
import torch

from flowgraph.compile import compile_graph
from flowgraph.devicecheck import audit_frame
from flowgraph.graph import load_graph
from flowgraph.run import Runner
from flowgraph.scheduler import Scheduler
from graph_checks import shipped_graphs

#: factories without device= that are correct: file prefix -> why
HOST_SIDE = {
    "blocks/classical/jpeg.py": "the JPEG codec runs on the host (Pillow); outputs are moved with .to(input.device)",
    "blocks/classical/coding.py:126": "values of a sparse parity-check matrix built with device=",
    "pytorch_msssim/": "the library moves its Gaussian window to the input's device",
}


def device_less(graph) -> dict:
    sch = Scheduler(compile_graph(load_graph(graph), preset="smoke"))
    found = audit_frame(sch, train=True)
    found.update(audit_frame(sch, train=False))
    return {k: v for k, v in found.items() if not any(k[2].startswith(p) for p in HOST_SIDE)}


def test_audit_sees_a_device_less_factory(root):
    """The audit is live: a block that calls torch.zeros(n) in forward is reported."""
    from engine_blocks import Affine

    class Leaky(Affine):
        def forward(self, x):
            return {"y": self.lin(x) + torch.zeros(x.shape[0], 1)}
    spec = load_graph(root / "tests/graphs/tiny.yaml")
    sch = Scheduler(compile_graph(spec))
    sch.blocks["enc"].__class__ = Leaky
    found = audit_frame(sch)
    assert [(b, f) for b, f, _ in found] == [("enc", "zeros")]
    line = inspect.getsourcelines(Leaky.forward)[1] + 1          # the torch.zeros line
    assert next(iter(found))[2] == f"tests/test_devices.py:{line}"


@pytest.mark.parametrize("graph", ["graphs/deepjscc_awgn.yaml", "graphs/baselines/jpeg_ldpc_qam.yaml"])
def test_blocks_follow_the_input_device(root, graph):
    assert device_less(root / graph) == {}


@pytest.mark.slow
def test_every_shipped_graph_follows_the_input_device():
    bad = {g.name: found for g in shipped_graphs(parts=False) if (found := device_less(g))}
    assert bad == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
@pytest.mark.parametrize("graph", [str(g) for g in shipped_graphs(parts=False)])
def test_smoke_preset_runs_on_cuda(graph, tmp_path):
    r = Runner(load_graph(graph), preset="smoke", out=tmp_path / "run", device="cuda", quiet=True)
    r.run()
