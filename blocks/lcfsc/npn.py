"""Noise purified network (NPN) channel estimator (seed 000, Sec. III-B, eqs. 9-12, Fig. 6, Algorithm 1).

The coarse LS estimate h_LS = tau_hat tau^-1 (eq. 10, ``estimator.ls``) is treated as a
2-channel Nr x Nt image (real, imaginary) and purified by a U-Net whose skip connections
go through subspace attention (SSA, after NBNet: Cheng et al., "NBNet: Noise Basis
Learning for Image Denoising with Subspace Projection", CVPR 2021, seed 000 ref. [38]):

* basis generation (eq. 11): V_b = f_theta(X1, X2): the encoder skip features X1 and the
  upsampled decoder features X2 (same size) are concatenated along channels and pass a
  residual conv net with K output channels; each channel, flattened over the N = h*w
  positions, is one basis vector (columns of V_b in R^(N x K), normalised to unit norm);
* projection (eq. 12): Y = psi X1,  psi = V_b (V_b^T V_b)^-1 V_b^T, the orthogonal
  projector onto span(V_b) (psi^T = psi, psi psi = psi; tested), applied to X1 with its
  channels as columns (N x C).

Y replaces X1 in the decoder's concatenation. A global residual gives h_e = h_LS + U(h_LS)
(the purification is a correction of the coarse estimate). Algorithm 1 (pretraining with
an MSE loss on h_e against the true h over SNRs drawn per batch) is a train stage in
graphs/lcfsc.yaml: ``loss: mse(npn.h_hat, chp.h)``, ``trainable: [npn]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import csi_channels


def subspace_projection(v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """psi = V (V^T V)^-1 V^T for V (B, N, K): the orthogonal projector (B, N, N) of eq. (12).

    ``eps`` * I is added to V^T V only to keep a degenerate basis solvable; for a
    well-conditioned unit-norm basis its effect is O(eps)."""
    k = v.shape[-1]
    gram = v.transpose(-2, -1) @ v + eps * torch.eye(k, dtype=v.dtype, device=v.device)
    return v @ torch.linalg.solve(gram, v.transpose(-2, -1))


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.2))
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.net(x) + self.skip(x)


class SubspaceAttention(nn.Module):
    """SSA (eqs. 11-12): Y = V_b (V_b^T V_b)^-1 V_b^T X1 with V_b = f_theta([X1, X2]).

    Shapes: x1, x2 real (B, C, h, w) -> y real (B, C, h, w). With N = h*w < 2 there is no
    proper subspace and X1 is returned unchanged; K is clipped to N - 1.
    """

    def __init__(self, channels: int, basis: int):
        super().__init__()
        self.basis = basis
        self.f_theta = nn.Sequential(_ConvBlock(2 * channels, channels), nn.Conv2d(channels, basis, 1))

    def forward(self, x1, x2):
        b, c, h, w = x1.shape
        n = h * w
        if n < 2:
            return x1, None
        k = min(self.basis, n - 1)
        v = self.f_theta(torch.cat((x1, x2), dim=1))[:, :k].flatten(2).transpose(1, 2)   # (B, N, K)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-6)
        psi = subspace_projection(v)
        y = psi @ x1.flatten(2).transpose(1, 2)                                          # (B, N, C)
        return y.transpose(1, 2).reshape(b, c, h, w), psi


@register("estimator.npn")
class NPN(Block):
    """Noise purified network B_Upsilon: h_e from the coarse LS estimate (seed 000, Sec. III-B, Fig. 6).

    U-Net on x = [Re h_LS, Im h_LS] (B, 2, Nr, Nt): ``levels`` encoder levels (residual
    conv block, then 2x2 average pooling with ceil mode), a bottleneck, and decoder levels
    that upsample to the skip's size, pass the skip through SSA (eqs. 11-12) and
    concatenate. A 3x3 conv maps back to 2 channels and h_e = h_LS + that correction.
    ``ssa: false`` (runtime) uses plain U-Net skips (ablation).

    Shapes: h_ls complex (B, Nr, Nt) -> h_hat complex (B, Nr, Nt) (h_e).
    Taps: ``psi`` = the projector of the finest SSA, (B, N, N), N = Nr*Nt.
    """
    inputs = {"h_ls": Port("complex", ("B", "Nr", "Nt"), tag="csi", doc="coarse LS estimate (eq. 10)")}
    outputs = {"h_hat": Port("complex", ("B", "Nr", "Nt"), tag="csi", doc="purified estimate h_e")}
    params = dict({
        "nr": Param(int, 2, "receive antennas Nr"),
        "nt": Param(int, 2, "transmit antennas Nt"),
        "width": Param(int, 32, "channels of the first U-Net level (doubling per level)"),
        "levels": Param(int, 1, "U-Net down/up-sampling levels"),
        "basis": Param(int, 2, "K: basis vectors of the signal subspace per SSA (clipped to N - 1)"),
        "ssa": Param(bool, True, "subspace attention on the skips (false: plain U-Net skips)", runtime=True),
    })
    taps = {"psi": "SSA projector of the finest level, (B, N, N)"}

    @classmethod
    def bind_dims(cls, p):
        return {"Nr": p["nr"], "Nt": p["nt"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if p.levels < 0 or p.width < 1 or p.basis < 1:
            raise ValueError("estimator.npn: levels >= 0, width >= 1 and basis >= 1 required")
        w = [p.width * 2 ** i for i in range(p.levels + 1)]
        self.inc = _ConvBlock(2, w[0])
        self.downs = nn.ModuleList(_ConvBlock(w[i], w[i + 1]) for i in range(p.levels))
        self.ups = nn.ModuleList(nn.Conv2d(w[i + 1], w[i], 3, padding=1) for i in range(p.levels))
        self.ssas = nn.ModuleList(SubspaceAttention(w[i], p.basis) for i in range(p.levels))
        self.decs = nn.ModuleList(_ConvBlock(2 * w[i], w[i]) for i in range(p.levels))
        self.out = nn.Conv2d(w[0], 2, 3, padding=1)
        with torch.no_grad():      # start close to h_e = h_LS
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, h_ls):
        x = csi_channels(h_ls)
        skips, f = [], self.inc(x)
        for down in self.downs:
            skips.append(f)
            f = down(F.avg_pool2d(f, 2, ceil_mode=True))
        psi0 = None
        for i in reversed(range(len(self.downs))):
            x1 = skips[i]
            x2 = self.ups[i](F.interpolate(f, size=x1.shape[-2:], mode="nearest"))
            if self.p.ssa:
                x1, psi = self.ssas[i](x1, x2)
                if i == 0:
                    psi0 = psi
            f = self.decs[i](torch.cat((x1, x2), dim=1))
        if psi0 is not None:
            self.publish("psi", psi0)
        d = self.out(f)
        h_hat = h_ls + torch.complex(d[:, 0], d[:, 1]).to(h_ls.dtype)
        return {"h_hat": h_hat}
