"""Orthogonal pilot matrices tau for flat-MIMO channel estimation (seed 000, eqs. 3, 9)."""
from __future__ import annotations

import math

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import EPS, energy


def pilot_matrix(kind: str, nt: int, np_: int, power: float) -> torch.Tensor:
    """tau (Nt, Np), complex64, with tau tau^H = (power * Np / Nt) I and energy ``power`` per column.

    dft:      tau_{i,t} = sqrt(power/Nt) exp(-2 pi j i t / Np) (first Nt rows of the Np-point DFT)
    identity: tau = sqrt(power) [I_Nt, I_Nt, ...] (Np a multiple of Nt): one antenna per symbol
    """
    if np_ < nt:
        raise ValueError(f"csirs.pilots: num_pilots={np_} < nt={nt}: tau would not have full row "
                         f"rank and LS estimation would be underdetermined")
    if kind == "dft":
        i = torch.arange(nt, dtype=torch.float64)[:, None]
        t = torch.arange(np_, dtype=torch.float64)[None, :]
        tau = torch.polar(torch.full((nt, np_), math.sqrt(power / nt), dtype=torch.float64),
                          -2.0 * math.pi * i * t / np_)
    else:
        if np_ % nt:
            raise ValueError(f"csirs.pilots: identity pilots need num_pilots a multiple of nt, "
                             f"got {np_} and {nt}")
        tau = math.sqrt(power) * torch.eye(nt, dtype=torch.complex128).repeat(1, np_ // nt)
    return tau.to(torch.complex64)


@register("csirs.pilots")
class Pilots(Block):
    """Known orthogonal pilot matrix tau for LS/LMMSE estimation (seed 000 LCFSC, eqs. 3 and 9).

    Seed 000 sends a pilot block tau in C^{Nt x Nt} through the channel (tau_hat = h tau + n,
    eq. 9) and estimates h_LS = tau_hat tau^{-1} (eq. 10). Here Np >= Nt pilot symbol times
    are allowed; both kinds have orthogonal rows, tau tau^H = (power Np / Nt) I, and energy
    ``power`` per pilot symbol time summed over the antennas (the data convention, so the
    pilot SNR per receive antenna is power/N0):

      kind = "dft":      tau = sqrt(power/Nt) F[:Nt, :Np], F the Np-point DFT (unit modulus)
      kind = "identity": tau = sqrt(power) [I_Nt, I_Nt, ...] (Np a multiple of Nt)

    ``learnable: true`` makes tau a trainable parameter (initialized from ``kind``) that is
    rescaled on every call to the same total energy power * Np (a learnable CSI-RS in the
    spirit of seed 002's BS-CSIRS-Net); orthogonality is then no longer enforced.

    The optional input ``ref`` (any tensor whose first dim is the batch) only supplies the
    batch size and device; unconnected, tau has batch 1 (channel.mimo_flat broadcasts it).

    Shapes: ref any (B, ...) optional -> pilots complex (B, Nt, Np).
    """
    inputs = {"ref": Port("any", ("B", "..."), optional=True, doc="any batch tensor: gives B and device")}
    outputs = {"pilots": Port("complex", ("B", "Nt", "Np"), tag="symbols", doc="pilot matrix tau")}
    params = {"nt": Param(int, 2, "transmit antennas Nt"),
              "num_pilots": Param(int, 0, "pilot symbol times Np (>= Nt); 0 means Np = Nt"),
              "kind": Param(str, "dft", "orthogonal pilot family", choices=("dft", "identity")),
              "power": Param(float, 1.0, "energy per pilot symbol time, summed over antennas"),
              "learnable": Param(bool, False, "train tau (renormalized to the same total energy)")}

    def __init__(self, **params):
        super().__init__(**params)
        tau = pilot_matrix(self.p.kind, self.p.nt, self.num_pilots(self.p), self.p.power)
        if self.p.learnable:
            self.tau = nn.Parameter(tau)
        else:
            self.register_buffer("tau", tau, persistent=False)

    @staticmethod
    def num_pilots(p) -> int:
        return p["num_pilots"] or p["nt"]

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["nt"], "Np": cls.num_pilots(p)}

    def forward(self, ref=None):
        tau = self.tau
        if self.p.learnable:
            target = self.p.power * tau.shape[1]
            tau = tau * torch.sqrt(target / energy(tau).sum().clamp_min(EPS))
        b = 1 if ref is None else ref.shape[0]
        if ref is not None:
            tau = tau.to(ref.device)
            if ref.is_complex() and ref.dtype != tau.dtype:
                tau = tau.to(ref.dtype)
        return {"pilots": tau.unsqueeze(0).expand(b, -1, -1)}
