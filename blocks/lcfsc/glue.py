"""Glue for codeword <-> MIMO stream mapping (seed 000, eq. 1) and a mask-ratio metric sink."""
from __future__ import annotations

import math

import torch

from flowgraph.block import Block, Param, Port, Sink
from flowgraph.registry import register


@register("csirs.stream_map")
class StreamMap(Block):
    """Real codeword -> Nt complex streams, the reshape of seed 000 eq. (1): y in C^(Nt x CL/Nt).

    Each example's real values are flattened in C order (v), consecutive pairs become one
    complex channel symbol c[n] = v[2n] + j v[2n+1] (docs/conventions.md), and the L
    symbols are split row-major over the antennas: antenna a sends c[a T : (a+1) T],
    T = L / Nt. L must be a multiple of Nt. No power normalisation (``channel.power_norm``
    with power = 1/Nt after this block gives E||x_t||^2 = 1 summed over the antennas).

    Shapes: x real (B, ...) with 2 Nt T values per example -> x complex (B, Nt, T).
    """
    inputs = {"x": Port("real", ("B", "..."), doc="real codeword (any shape per example)")}
    outputs = {"x": Port("complex", ("B", "Nt", "T"), tag="symbols", doc="streams, one row per antenna")}
    params = {"nt": Param(int, 2, "transmit antennas Nt")}

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["nt"]}

    def forward(self, x):
        b = x.shape[0]
        v = x.reshape(b, -1)
        if v.shape[1] % (2 * self.p.nt):
            raise ValueError(f"csirs.stream_map: {v.shape[1]} real values per example cannot fill "
                             f"{self.p.nt} streams of complex symbols (need a multiple of 2*Nt = {2 * self.p.nt})")
        c = torch.view_as_complex(v.reshape(b, -1, 2).contiguous())
        return {"x": c.reshape(b, self.p.nt, -1)}


@register("csirs.stream_unmap")
class StreamUnmap(Block):
    """Nt complex streams -> real codeword: the inverse of ``csirs.stream_map`` (seed 000, Sec. II-B:
    "the received semantics are reshaped as C_L and converted to real-valued sequence").

    Rows are concatenated (antenna 0 first), each complex symbol becomes the pair
    (Re, Im), and the result is reshaped to (B, *shape); ``shape: []`` keeps it flat.

    Shapes: x complex (B, Nt, T) -> x real (B, *shape) with prod(shape) = 2 Nt T.
    """
    inputs = {"x": Port("complex", ("B", "Nt", "T"), tag="symbols", doc="per-stream estimates")}
    outputs = {"x": Port("real", ("B", "..."), doc="real codeword")}
    params = {"shape": Param(list, [], "per-example output shape, e.g. [N, c_out]; [] = flat (2 Nt T,)")}

    def forward(self, x):
        b = x.shape[0]
        v = torch.view_as_real(x.reshape(b, -1).contiguous()).reshape(b, -1)
        shape = [int(s) for s in self.p.shape]
        if shape:
            if math.prod(shape) != v.shape[1]:
                raise ValueError(f"csirs.stream_unmap: {v.shape[1]} real values per example do not fit "
                                 f"shape {shape}")
            v = v.reshape(b, *shape)
        return {"x": v}


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
