"""The sequence transformer every JSCBF network is built from (seed 001, Figs. 4-8).

Seed 001 (Deep JSCBF) describes its CSI extraction network (Sec. III-B2, Fig. 4) as "a fully
connected linear embedding layer followed by a position embedding layer" with "different
frequencies of sine functions" for the subcarrier positions, then U identical layers of
multi-head self-attention (MSA) and an MLP, then a linear output layer. The fusion,
data-driven, model-driven and receiver networks (Figs. 5-8) reuse the same structure; the
authors' notebook builds all five from one class (``TRANS_BLOCK``: embedding scaled by
sqrt(d_model), sinusoidal positions, pre-LayerNorm encoder layers with a ReLU FFN of width
4 d_model and no dropout, a final LayerNorm, a linear head). This module is that class.

Shapes: tokens (B, N, din) -> (B, N, dout), N = sequence length (subcarriers N_c).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_positions(n: int, d: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Vaswani et al. 2017 position codes (n, d): sin on even, cos on odd features."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(0, d, 2, device=device, dtype=torch.float32)
    ang = pos * torch.exp(-math.log(10000.0) * i / d)
    pe = torch.zeros(n, d, device=device)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang[:, : d // 2])
    return pe.to(dtype)


class SequenceTransformer(nn.Module):
    """Linear embedding (x sqrt(d)) + sinusoidal positions + ``layers`` pre-LN encoder layers
    + LayerNorm + linear head. ``layers = 0`` leaves a plain Linear(din -> dout) (the
    paper's "fully connected layer" wherever the notebook put a transformer instead).

    Shapes: x (B, N, din) -> (B, N, dout).
    """

    def __init__(self, din: int, dout: int, d_model: int = 128, layers: int = 2, heads: int = 8,
                 ffn_ratio: int = 4):
        super().__init__()
        if layers < 0:
            raise ValueError(f"transformer layers must be >= 0, got {layers}")
        self.layers = layers
        if layers == 0:
            self.head = nn.Linear(din, dout)
            return
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        self.d = d_model
        self.embed = nn.Linear(din, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn_ratio * d_model, dropout=0.0,
                                           activation="relu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, dout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layers == 0:
            return self.head(x)
        z = self.embed(x) * math.sqrt(self.d)
        z = z + sinusoidal_positions(x.shape[1], self.d, x.device, z.dtype)
        return self.head(self.norm(self.encoder(z)))
