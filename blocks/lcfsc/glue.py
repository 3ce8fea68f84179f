"""The mask-ratio metric sink of seed 000 (the codeword <-> stream reshape of eq. 1 is the generic
``tensor.stream_map`` / ``tensor.stream_unmap`` in blocks/glue.py)."""
from __future__ import annotations

from flowgraph.block import Port, Sink
from flowgraph.registry import register


@register("sink.mask_ratio")
class MaskRatio(Sink):
    """The mask ratio m used per image (seed 000, eq. 19's m*; Fig. 13 plots its mean against SNR).

    value_b = m_b. Evaluation then reports mean, spread and a 95% interval over the
    held-out images at every sweep point: the "learned mean mask ratio m-bar".

    Shapes: m real (B,) -> value real (B,).
    """
    inputs = {"m": Port("real", ("B",), tag="scalar", doc="mask ratio per example")}
    higher_is_better = False
    unit = ""

    def forward(self, m):
        return {"value": m.detach().float()}
