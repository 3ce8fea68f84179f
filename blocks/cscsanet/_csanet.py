"""Transformer layers and the feedback quantizer of seed 002's channel semantic-aware networks.

Seed 002 = CSC-SA-Net (Wu, Gao; ../shared/seeds/002_aedd076013fb2eee.txt), Secs. III-C/D,
Figs. 3-4, footnote 5. The paper gives the structure ("a fully connected linear embedding
layer, followed by a position embedding layer ... U identical layers ... multi-head
self-attention sublayer and a multilayer perceptron sublayer"); the sizes (d_model 192,
U = 2, 8 heads, MLP 768, GELU, pre-norm, no dropout) are the authors' code's.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def sine_positions(length: int, dim: int) -> torch.Tensor:
    """Sinusoidal position embedding (Vaswani et al. 2017, ref. [53]): (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class TransformerStack(nn.Module):
    """U pre-norm Transformer encoder layers over the subcarrier sequence, then LayerNorm.

    Shapes: (N, F, d_model) -> (N, F, d_model).
    """

    def __init__(self, d_model: int, heads: int, layers: int, ff: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x):
        return self.norm(self.layers(x))


class Branch(nn.Module):
    """One output branch of a CSANet (Figs. 3-4): Linear + LayerNorm into a Transformer over the
    subcarriers, then a fully connected layer on the flattened sequence.

    Shapes: (N, F, d_in) -> (N, n_out).
    """

    def __init__(self, d_in: int, d_model: int, heads: int, layers: int, ff: int, seq: int, n_out: int):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(d_in, d_model), nn.LayerNorm(d_model))
        self.transformer = TransformerStack(d_model, heads, layers, ff)
        self.out = nn.Linear(seq * d_model, n_out)

    def forward(self, x):
        return self.out(self.transformer(self.embed(x)).flatten(1))


def unit_modulus(raw: torch.Tensor, param: str) -> torch.Tensor:
    """Analog (phase-shifter) matrix from a network output.

    ``exp``: the paper's exp(j Theta) on real phases (eqs. 12-13, 16, 18), raw (..., n).
    ``project``: the code's z / |z| on complex values, raw (..., 2n) as [re, im] pairs.
    Both give |entry| = 1 exactly.
    """
    if param == "exp":
        return torch.polar(torch.ones_like(raw), raw)
    z = torch.view_as_complex(raw.reshape(*raw.shape[:-1], -1, 2).contiguous())
    return z / z.abs().clamp_min(1e-12)


class _Quantize(torch.autograd.Function):
    """x in (0, 1) -> b bits per scalar, MSB first; backward: mean of the bit gradients."""

    @staticmethod
    def forward(ctx, x, bits):
        levels = 2 ** bits
        n = torch.clamp(torch.floor(x * levels), 0, levels - 1).to(torch.int64)
        shifts = torch.arange(bits - 1, -1, -1, device=x.device)
        out = ((n[..., None] >> shifts) & 1).to(x.dtype)
        ctx.bits = bits
        return out.flatten(-2)

    @staticmethod
    def backward(ctx, g):
        return g.unflatten(-1, (-1, ctx.bits)).mean(-1), None


class _Dequantize(torch.autograd.Function):
    """b bits per scalar -> interval centre (n + 0.5) / 2^b; backward: the scalar's gradient
    copied to each of its bits (so Quantize followed by Dequantize passes it unchanged)."""

    @staticmethod
    def forward(ctx, q, bits):
        weights = 2.0 ** torch.arange(bits - 1, -1, -1, device=q.device, dtype=q.dtype)
        n = (q.unflatten(-1, (-1, bits)) * weights).sum(-1)
        ctx.bits = bits
        return (n + 0.5) / 2 ** bits

    @staticmethod
    def backward(ctx, g):
        return g[..., None].expand(*g.shape, ctx.bits).flatten(-2), None


def quantize(x: torch.Tensor, bits: int, ste: bool = True) -> torch.Tensor:
    """Uniform quantizer of footnote 5: x in [0, 1] (after the sigmoid) -> 2^bits equal
    intervals -> ``bits`` bits per scalar, MSB first. Straight-through: with ``ste`` the
    gradient of the dequantized value reaches x unchanged; without it, none does.
    Shapes: (..., M) -> (..., M * bits) in {0, 1}."""
    if not ste:
        return _Quantize.apply(x.detach(), bits)
    return _Quantize.apply(x, bits)


def dequantize(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of :func:`quantize` to the interval centres (n + 0.5) / 2^bits.
    Shapes: (..., M * bits) -> (..., M)."""
    return _Dequantize.apply(q, bits)
