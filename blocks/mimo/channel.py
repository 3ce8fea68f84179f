"""Flat-fading MIMO channel: y = H x + n (seed 000, eq. 1), pilots through the same H (eq. 9)."""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import complex_normal, exp_corr_sqrt, herm, noise_var, snr_param


@register("channel.mimo_flat")
class MimoFlat(Block):
    """Flat Rayleigh MIMO channel y = H x + n (seed 000 LCFSC, eq. 1; pilots: eq. 9).

    H has CN(0, 1) entries. ``correlation: kronecker`` draws H = R_rx^(1/2) G R_tx^(1/2)
    with G i.i.d. CN(0, 1) and exponential correlation [R]_ij = rho^|i-j| (Loyka 2001),
    so E[H H^H] = Nt R_rx and E[H^H H] = Nr R_tx; the unit diagonal keeps E|h_ij|^2 = 1.
    n ~ CN(0, N0) i.i.d., N0 = 10^(-snr_db/10).

    SNR convention: x is expected to carry E||x_t||^2 = 1 per symbol time summed over the
    Nt antennas (a precoder or ``channel.power_norm`` upstream; this block does not
    normalize). Then every receive antenna sees average signal energy 1, so snr_db is
    Es/N0 per receive antenna (measured in tests/test_mimo_channel.py).

    fading = "block": one H per example, shared by all T data symbols and the pilots
             (the paper's model; ``h`` is (B, Nr, Nt)).
    fading = "fast":  an independent H per data symbol time; ``h`` is then (B, T, Nr, Nt)
             (the port's ``...`` holds T), and each pilot symbol sees its own fresh H
             (not returned), so pilot-based estimation is meaningless under fast fading.

    Pilots: if ``pilots`` tau (B or 1, Nt, Np) is connected, y_pilots = H tau + n_p uses
    the same H and N0 as the data (seed 000, eq. 9: tau_hat = h tau + n); when it is
    unconnected, ``y_pilots`` is an empty (B, Nr, 0) tensor.

    Closed-loop use (CSI at the transmitter: seed 000's CSI-fusing encoder, precoders fed
    by an estimate) would make a cycle through one channel instance. Use two instances
    instead: a pilot phase ``ch_p`` (``pilots`` connected, ``x`` unconnected) that draws H,
    and a data phase ``ch_d`` whose optional input ``h`` takes ``ch_p.h``, so both phases
    see the same H within the coherence block:
        pil.pilots -> ch_p.pilots;  ch_p.y_pilots -> est.y_pilots;  est.h_hat -> pre.h
        pre.x -> ch_d.x;  ch_p.h -> ch_d.h;  ch_p.h -> rate.h;  pre.w -> rate.w
    With ``x`` unconnected, ``y`` is an empty (B, Nr, 0) tensor and B comes from ``h`` or
    ``pilots`` (connect ``csirs.pilots.ref`` to a batch tensor so tau has the batch dim).

    Shapes: x complex (B, Nt, T) optional, pilots complex (B, Nt, Np) optional,
            h complex (B, Nr, Nt) [fast: (B, T, Nr, Nt)] optional
            -> y complex (B, Nr, T), h complex (B, Nr, Nt) [fast: (B, T, Nr, Nt)],
               y_pilots complex (B, Nr, Np).
    """
    inputs = {"x": Port("complex", ("B", "Nt", "T"), tag="symbols", optional=True,
                        doc="E||x_t||^2 = 1 per symbol time"),
              "pilots": Port("complex", ("B", "Nt", "Np"), tag="symbols", optional=True,
                             doc="known pilots tau, sent through the same H"),
              "h": Port("complex", ("B", "...", "Nr", "Nt"), tag="csi", optional=True,
                        doc="use this channel instead of drawing one (the pilot phase's h)")}
    outputs = {"y": Port("complex", ("B", "Nr", "T"), tag="symbols",
                         doc="received data; (B, Nr, 0) if x is unconnected"),
               "h": Port("complex", ("B", "...", "Nr", "Nt"), tag="csi",
                         doc="true channel; (B, Nr, Nt), or (B, T, Nr, Nt) with fast fading"),
               "y_pilots": Port("complex", ("B", "Nr", "Np"), tag="symbols",
                                doc="received pilots; (B, Nr, 0) if no pilots are connected")}
    params = {"nt": Param(int, 2, "transmit antennas Nt"),
              "nr": Param(int, 2, "receive antennas Nr (K single-antenna users for MU-MISO)"),
              "snr_db": snr_param(),
              "fading": Param(str, "block", "block: one H per example; fast: one H per symbol time",
                              choices=("block", "fast")),
              "correlation": Param(str, "iid", "iid or kronecker (exponential correlation)",
                                   choices=("iid", "kronecker")),
              "rho_tx": Param(float, 0.0, "transmit correlation coefficient in [0, 1] (kronecker)"),
              "rho_rx": Param(float, 0.0, "receive correlation coefficient in [0, 1] (kronecker)")}
    channel_input = "x"

    def __init__(self, **params):
        super().__init__(**params)
        for k in ("rho_tx", "rho_rx"):
            if not 0.0 <= self.p[k] <= 1.0:
                raise ValueError(f"channel.mimo_flat: {k} must lie in [0, 1], got {self.p[k]}")
        if self.p.nt < 1 or self.p.nr < 1:
            raise ValueError("channel.mimo_flat: nt and nr must be >= 1")

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["nt"], "Nr": p["nr"]}

    def _draw(self, lead: tuple, like: torch.Tensor) -> torch.Tensor:
        nr, nt = self.p.nr, self.p.nt
        h = complex_normal(lead + (nr, nt), like).to(like.dtype)
        if self.p.correlation == "kronecker":
            r_rx = exp_corr_sqrt(nr, self.p.rho_rx, like.dtype, like.device)
            r_tx = exp_corr_sqrt(nt, self.p.rho_tx, like.dtype, like.device)
            h = r_rx @ h @ herm(r_tx)
        return h

    def forward(self, x=None, pilots=None, h=None):
        nt, nr = self.p.nt, self.p.nr
        ref = next((t for t in (x, pilots, h) if t is not None), None)
        if ref is None:
            raise ValueError("channel.mimo_flat: connect at least one of x, pilots or h")
        if x is not None and (x.dim() != 3 or x.shape[1] != nt):
            raise ValueError(f"channel.mimo_flat: x must be (B, Nt={nt}, T), got {tuple(x.shape)}")
        b = x.shape[0] if x is not None else (h.shape[0] if h is not None else pilots.shape[0])
        dtype = ref.dtype if ref.is_complex() else torch.complex64
        like = torch.zeros((), dtype=dtype, device=ref.device)
        block = self.p.fading == "block"
        t = x.shape[2] if x is not None else 0
        if h is None:
            h = self._draw((b,) if block else (b, t), like)
        else:
            want = (b, nr, nt) if block else (b, t, nr, nt)
            if tuple(h.shape) != want:
                raise ValueError(f"channel.mimo_flat: input h must be {want} ({self.p.fading} fading), "
                                 f"got {tuple(h.shape)}")
            h = h.to(dtype)
        n0 = noise_var(self.p.snr_db)
        if x is None:
            y = like.new_zeros(b, nr, 0)
        else:
            hx = h @ x if block else torch.einsum("btij,bjt->bit", h, x)
            y = hx + complex_normal(hx.shape, like, n0).to(dtype)
        if pilots is None:
            y_p = like.new_zeros(b, nr, 0)
        else:
            tau = pilots.to(dtype).expand(b, -1, -1)
            if block:
                hp = h @ tau
            else:                                   # fresh H per pilot symbol (not returned)
                hp = torch.einsum("btij,bjt->bit", self._draw((b, tau.shape[2]), like), tau)
            y_p = hp + complex_normal(hp.shape, like, n0).to(dtype)
        return {"y": y, "h": h, "y_pilots": y_p}
