"""Linear MIMO receive combiners: ZF, LMMSE and SVD (U^H y)."""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import EPS, energy, herm, noise_var, snr_param, svd_fixed

_IN = {"y": Port("complex", ("B", "Nr", "T"), tag="symbols", doc="received signal"),
       "h": Port("complex", ("B", "...", "Nr", "Nt"), tag="csi",
                 doc="channel (estimate) (B, Nr, Nt); (B, T, Nr, Nt) for per-symbol (fast) fading")}
_OUT = {"x_hat": Port("complex", ("B", "Nt", "T"), tag="symbols", doc="estimate of the transmitted x")}


def _apply(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x_hat = G y with G (B, M, Nr) or per symbol time G (B, T, M, Nr); y (B, Nr, T) -> (B, M, T)."""
    if g.dim() == 3:
        return g @ y
    return torch.einsum("btij,bjt->bit", g, y)


def _check(where, y, h):
    if h.dim() not in (3, 4):
        raise ValueError(f"{where}: h must be (B, Nr, Nt) or (B, T, Nr, Nt), got {tuple(h.shape)}")
    if h.shape[-2] != y.shape[1] or (h.dim() == 4 and h.shape[1] != y.shape[2]):
        raise ValueError(f"{where}: h {tuple(h.shape)} does not fit y {tuple(y.shape)}")


@register("combiner.zf")
class ZF(Block):
    """Zero-forcing MIMO detector x_hat = (H^H H)^{-1} H^H y (seed 000 eq. 1 model; Nr >= Nt).

    Unbiased: x_hat = x + (H^H H)^{-1} H^H n (Tse & Viswanath 2005, Sec. 8.3.1,
    decorrelator). Accepts a per-symbol channel (B, T, Nr, Nt) from fast fading.

    Shapes: y complex (B, Nr, T), h complex (B, Nr, Nt) -> x_hat complex (B, Nt, T).
    """
    inputs = dict(_IN)
    outputs = dict(_OUT)

    def forward(self, y, h):
        _check("combiner.zf", y, h)
        if h.shape[-2] < h.shape[-1]:
            raise ValueError(f"combiner.zf: Nr={h.shape[-2]} < Nt={h.shape[-1]}: H^H H is singular")
        h = h.to(y.dtype)
        g = torch.linalg.solve(herm(h) @ h, herm(h))
        return {"x_hat": _apply(g, y)}


@register("combiner.mmse")
class MMSE(Block):
    """Linear MMSE MIMO detector (Tse & Viswanath 2005, Sec. 8.3.3) for y = H x + n (seed 000 eq. 1).

        x_hat = (H^H H + (N0 / Ps) I)^{-1} H^H y,   N0 = 10^(-snr_db/10),
    with Ps the energy per transmitted stream: by the DESIGN.md convention the Nt streams
    share unit total energy, so Ps = 1/Nt (``stream_power: 0``, the default); set it to
    1.0 for unit-energy streams per antenna. ``unbiased: true`` divides stream i by its
    gain [G H]_ii so that E[x_hat | x] = x (same SINR, ZF-like scaling).
    Accepts a per-symbol channel (B, T, Nr, Nt) from fast fading.

    Shapes: y complex (B, Nr, T), h complex (B, Nr, Nt) -> x_hat complex (B, Nt, T).
    """
    inputs = dict(_IN)
    outputs = dict(_OUT)
    params = {"snr_db": snr_param("SNR (dB) the receiver assumes: N0 = 10^(-snr_db/10)"),
              "stream_power": Param(float, 0.0, "energy per stream Ps; 0 means 1/Nt (unit total)"),
              "unbiased": Param(bool, False, "scale each stream to unit gain")}

    def forward(self, y, h):
        _check("combiner.mmse", y, h)
        h = h.to(y.dtype)
        nt = h.shape[-1]
        ps = self.p.stream_power or 1.0 / nt
        eye = torch.eye(nt, dtype=h.dtype, device=h.device)
        g = torch.linalg.solve(herm(h) @ h + (noise_var(self.p.snr_db) / ps) * eye, herm(h))
        if self.p.unbiased:
            gain = torch.diagonal(g @ h, dim1=-2, dim2=-1).real.clamp_min(EPS)
            g = g / gain[..., None].to(g.dtype)
        return {"x_hat": _apply(g, y)}


@register("combiner.svd")
class SVD(Block):
    """SVD receive combiner r = U^H y, matched to ``precoder.svd`` (Telatar 1999; Tse & Viswanath 7.1.1).

    With H = U S V^H (phases fixed by ``svd_fixed``, as in precoder.svd) and x = V_S P^(1/2) s,
    r_i = sigma_i sqrt(p_i) s_i + (U^H n)_i: S parallel channels (U^H H V = diag(S)).
    ``equalize: true`` divides stream i by its gain: by [U^H H w]_ii when the precoder's
    matrix ``w`` is connected (undoes sqrt(p_i) too; streams without power give 0), else
    by sigma_i. The streams kept are S = w's column count, or min(Nr, Nt) without w.
    Block fading only (one H per example).

    Shapes: y complex (B, Nr, T), h complex (B, Nr, Nt), w complex (B, Nt, S) optional
            -> x_hat complex (B, S, T).
    """
    inputs = {"y": Port("complex", ("B", "Nr", "T"), tag="symbols"),
              "h": Port("complex", ("B", "Nr", "Nt"), tag="csi", doc="channel (estimate)"),
              "w": Port("complex", ("B", "Nt", "S"), tag="csi", optional=True,
                        doc="precoding matrix of precoder.svd (for equalization)")}
    outputs = {"x_hat": Port("complex", ("B", "S", "T"), tag="symbols", doc="per-stream estimates")}
    params = {"equalize": Param(bool, True, "divide each stream by its effective gain")}

    def forward(self, y, h, w=None):
        if h.dim() != 3 or h.shape[1] != y.shape[1]:
            raise ValueError(f"combiner.svd: h must be (B, Nr={y.shape[1]}, Nt) (block fading), "
                             f"got {tuple(h.shape)}")
        h = h.to(y.dtype)
        u, sv, _ = svd_fixed(h)
        ns = sv.shape[-1] if w is None else w.shape[-1]
        u = u[..., :ns]
        r = herm(u) @ y
        if self.p.equalize:
            if w is None:
                gain = sv[..., :ns].to(r.dtype)
            else:
                gain = torch.diagonal(herm(u) @ h @ w.to(h.dtype), dim1=-2, dim2=-1)
            ok = energy(gain) > EPS
            inv = torch.where(ok, 1.0 / torch.where(ok, gain, torch.ones_like(gain)), torch.zeros_like(gain))
            r = r * inv[..., None]
        return {"x_hat": r}
