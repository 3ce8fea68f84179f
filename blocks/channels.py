"""Channel blocks: per-example power normalization, AWGN and Rayleigh fading.

Conventions (DESIGN.md): complex baseband, batch first; the transmitter normalizes
each example to average symbol energy Es = 1; SNR means Es/N0 and the noise is
CN(0, N0) with N0 = 10^(-SNR/10), i.e. n = sqrt(N0/2) * (a + j b), a, b ~ N(0, 1).
Noise and fading draws use the global torch RNG (the engine saves and restores it,
so resumed runs continue the same random stream).

References: the channel model of Bourtsoulatze, Kurka, Gündüz, "Deep Joint
Source-Channel Coding for Wireless Image Transmission", IEEE TCCN 2019, eqs. (2)-(4)
(power constraint, AWGN, slow Rayleigh fading); Tse & Viswanath, "Fundamentals of
Wireless Communication", 2005, Sec. 3.1 (CN(0, 1) Rayleigh gain).
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register


def noise_var(snr_db: float) -> float:
    """N0 = 10^(-SNR/10) for unit symbol energy (SNR = Es/N0 in dB)."""
    return 10.0 ** (-float(snr_db) / 10.0)


def complex_normal(shape, like: torch.Tensor, var: float = 1.0) -> torch.Tensor:
    """CN(0, var) samples: sqrt(var/2) * (a + j b), a, b ~ N(0, 1) from the global RNG."""
    real_dtype = like.real.dtype if like.is_complex() else like.dtype
    ab = torch.randn(*shape, 2, dtype=real_dtype, device=like.device)
    return torch.view_as_complex(ab) * (var / 2.0) ** 0.5


_SNR = Param(float, 10.0, "SNR = Es/N0 in dB; noise CN(0, N0), N0 = 10^(-snr_db/10)", runtime=True)


@register("channel.power_norm")
class PowerNorm(Block):
    """Per-example average power normalization (Bourtsoulatze et al. 2019, eq. 2).

    x_b <- x_b * sqrt(P / mean_i |x_b,i|^2) for every example b separately, the mean
    taken over all of that example's elements (all symbols, antennas, resource
    elements). After it, (1/N) sum_i |x_b,i|^2 = P exactly for each example (not
    only on average over the batch). An all-zero example stays zero (1e-12 guard).

    ``antenna_dim`` > 0 names the transmit-antenna axis of a MIMO signal (e.g. 1 for
    (B, Nt, T) or (B, Nt, S, F)): the energy per channel use is then summed over that
    axis, so the TOTAL energy per channel use across all antennas is P (the MIMO
    convention of docs/conventions.md), i.e. the mean is divided by Nt.

    ``per_dim`` > 0 normalizes every slice along that axis separately, e.g. ``per_dim: 1``
    on seed 003's (B, K, D) user symbols gives every user energy P per symbol (per-user
    power); the default (0) is seed 003's joint normalization over the K users of an
    example, under which one user may take most of the power.

    Shapes: x complex (B, ...) -> x complex (B, ...), same shape.
    """
    inputs = {"x": Port("complex", ("B", "..."), tag="symbols")}
    outputs = {"x": Port("complex", ("B", "..."), tag="symbols", doc="per-example energy = power")}
    params = {"power": Param(float, 1.0, "average energy per complex symbol, per example"),
              "antenna_dim": Param(int, 0, "transmit-antenna axis to sum energy over (MIMO: total "
                                           "power P per channel use across antennas); 0 = none"),
              "per_dim": Param(int, 0, "axis whose slices are normalized separately (1 on (B, K, D): "
                                       "each user, seed 003 per-user power); 0 = the whole example")}

    def __init__(self, **params):
        super().__init__(**params)
        if self.p.per_dim < 0 or self.p.antenna_dim < 0:
            raise ValueError("channel.power_norm: antenna_dim and per_dim must be >= 0")
        if self.p.per_dim and self.p.per_dim == self.p.antenna_dim:
            raise ValueError("channel.power_norm: per_dim and antenna_dim must differ")

    def forward(self, x):
        if x.dim() < 2:
            raise ValueError(f"channel.power_norm: expects (B, ...) with at least one symbol dim, "
                             f"got shape {tuple(x.shape)}")
        if max(self.p.per_dim, self.p.antenna_dim) >= x.dim():
            raise ValueError(f"channel.power_norm: per_dim/antenna_dim {self.p.per_dim}/{self.p.antenna_dim} "
                             f"outside x of shape {tuple(x.shape)}")
        dims = tuple(d for d in range(1, x.dim()) if d != self.p.per_dim)
        energy = x.real ** 2 + x.imag ** 2
        if dims:                          # (mean over dims=() would reduce every dim)
            energy = energy.mean(dim=dims, keepdim=True)
        if self.p.antenna_dim:
            energy = energy * x.shape[self.p.antenna_dim]
        scale = torch.sqrt(self.p.power / energy.clamp_min(1e-12))
        return {"x": x * scale}


@register("channel.awgn")
class AWGN(Block):
    """Additive white Gaussian noise channel (Bourtsoulatze et al. 2019, eq. 3).

    y = x + n,  n ~ CN(0, N0) i.i.d. per complex element,  N0 = 10^(-snr_db/10).
    N0 assumes the input already has unit average symbol energy (``channel.power_norm``
    before this block); the block does not measure the signal power.

    Shapes: x complex (B, ...) -> y complex (B, ...), same shape.
    """
    inputs = {"x": Port("complex", ("B", "..."), tag="symbols", doc="unit-energy symbols")}
    outputs = {"y": Port("complex", ("B", "..."), tag="symbols")}
    params = {"snr_db": _SNR}
    channel_input = "x"

    def forward(self, x):
        n = complex_normal(x.shape, x, noise_var(self.p.snr_db))
        return {"y": x + n.to(x.dtype)}


@register("channel.rayleigh")
class Rayleigh(Block):
    """Rayleigh fading channel (Bourtsoulatze et al. 2019, eq. 4; Tse & Viswanath Sec. 3.1).

    y = h * x + n, elementwise, h ~ CN(0, 1) (so E|h|^2 = 1, |h| Rayleigh, arg h uniform
    on [-pi, pi): the full complex gain, phase included), n ~ CN(0, N0),
    N0 = 10^(-snr_db/10) (unit-energy input assumed, as in ``channel.awgn``).

    fading = "block": one h per example (slow / block fading over the whole codeword,
             the paper's model); "fast": an independent h per complex element.
    The output ``h`` always has x's shape: with block fading the per-example gain is
    broadcast (copied) to every element, so a per-symbol combiner needs no special case.

    Shapes: x complex (B, ...) -> y complex (B, ...), h complex (B, ...), same shape.
    """
    inputs = {"x": Port("complex", ("B", "..."), tag="symbols", doc="unit-energy symbols")}
    outputs = {"y": Port("complex", ("B", "..."), tag="symbols"),
               "h": Port("complex", ("B", "..."), tag="csi", doc="channel gain per element (x's shape)")}
    params = {"snr_db": _SNR,
              "fading": Param(str, "block", "block: one gain per example; fast: one per symbol",
                              choices=("block", "fast"))}
    channel_input = "x"

    def forward(self, x):
        if self.p.fading == "block":
            gshape = (x.shape[0],) + (1,) * (x.dim() - 1)
            h = complex_normal(gshape, x, 1.0).to(x.dtype).expand(x.shape).contiguous()
        else:
            h = complex_normal(x.shape, x, 1.0).to(x.dtype)
        n = complex_normal(x.shape, x, noise_var(self.p.snr_db)).to(x.dtype)
        return {"y": h * x + n, "h": h}
