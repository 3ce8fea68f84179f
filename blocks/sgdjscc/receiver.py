"""Receiver front end of seed 004 (SGD-JSCC): MMSE equalisation with variance-preserving
normalisation (eqs. 5-9, 19, 22) and the pilot-free SNR estimator (Sec. V-C, eq. 21, Table I).

The two blocks turn the channel output into a diffusion state and its noise level:

    combiner.vp_mmse      y (and h) -> x = sqrt(1-d) z + sqrt(d) w, d = N0/(|h|^2+N0)
    estimator.snr_blind   x -> d estimated from x alone (blind), or the genie d passed through
"""
from __future__ import annotations

import math

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from blocks.channels import noise_var

from . import _schedule as S
from .diffusion import complex_to_latent


@register("combiner.vp_mmse")
class VPMMSE(Block):
    """MMSE equalisation + variance-preserving normalisation (seed 004 SGD-JSCC, eqs. 5-9, 22).

    For y = h z + n, n ~ CN(0, N0), E|z|^2 = 1: MMSE gives y_eq = conj(h) y / (|h|^2 + N0)
    (eq. 5); dividing by |h| / sqrt(|h|^2 + N0) gives
        x = conj(h) y / (|h| sqrt(|h|^2 + N0)) = sqrt(1-d) z + sqrt(d) w,  w ~ CN(0, 1),
        d = N0 / (|h|^2 + N0)                                         (eqs. 7-8, 19, 22)
    i.e. a variance-preserving diffusion state at level d, per element. Without h (AWGN) h = 1.

    normalize = expected: the formula above (uses N0 = 10^(-snr_db/10), i.e. the receiver knows
    the SNR). empirical: the phase is removed with h (if given) and each example is rescaled to
    unit measured power, without N0 (the released code's normalize(); pilot-free for AWGN). It
    assumes one gain per example (AWGN or slow fading); ``d`` is always the genie level from
    snr_db and h, for training the estimator and for genie runs.

    Shapes: y complex (B, N), h complex (B, N) optional -> x complex (B, N), d real (B, N).
    """
    inputs = {"y": Port("complex", ("B", "N"), tag="symbols", doc="channel output"),
              "h": Port("complex", ("B", "N"), tag="csi", optional=True, doc="channel gain per element")}
    outputs = {"x": Port("complex", ("B", "N"), tag="symbols", doc="VP-normalised state sqrt(1-d) z + sqrt(d) w"),
               "d": Port("real", ("B", "N"), doc="genie noise level d = N0/(|h|^2+N0) per element")}
    params = {"snr_db": Param(float, 10.0, "SNR = Es/N0 in dB (N0 = 10^(-snr_db/10)); used by "
                              "normalize: expected and for the genie d", runtime=True),
              "normalize": Param(str, "expected", "expected (uses N0) or empirical (unit measured "
                                 "power, no N0)", choices=("expected", "empirical"))}

    def forward(self, y, h=None):
        n0 = noise_var(self.p.snr_db)
        g = torch.ones_like(y.real) if h is None else (h.real ** 2 + h.imag ** 2)
        if h is not None and h.shape != y.shape:
            raise ValueError(f"combiner.vp_mmse: y {tuple(y.shape)} and h {tuple(h.shape)} must match")
        d = n0 / (g + n0)
        if self.p.normalize == "expected":
            x = y if h is None else torch.conj(h) * y / torch.sqrt(g).clamp_min(1e-12)
            x = x / torch.sqrt(g + n0)
        else:
            x = y if h is None else torch.conj(h) * y / torch.sqrt(g).clamp_min(1e-12)
            p = (x.real ** 2 + x.imag ** 2).mean(dim=1, keepdim=True)
            x = x / torch.sqrt(p.clamp_min(1e-12))
        return {"x": x, "d": d.to(y.real.dtype)}


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    return nn.Identity()


class _ResBlock(nn.Module):
    """BasicBlock (He et al. 2016): conv3x3-norm-ReLU-conv3x3-norm + 1x1-conv shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(norm, cout),
                                  nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _norm(norm, cout))
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


@register("estimator.snr_blind")
class SNRBlind(Block):
    """Pilot-free SNR estimator zeta_P of seed 004 (SGD-JSCC, Sec. V-C, eq. 21, Table I).

    The VP-normalised latent x = sqrt(alpha) f + sqrt(1-alpha) n is unpaired into a real
    (B, c, h, w) map (x sqrt 2, unit power per element) and read by four residual blocks of
    widths 32/64/128/256 (stride 2 as in Table I, or 1 as in the released code), global
    average pooling, one linear output and a sigmoid: alpha_hat = the signal power share
    (``square_output``: alpha_hat = sigmoid^2, as the code does). The code normalises with
    BatchNorm; here GroupNorm is the default, because semflow draws one SNR per training batch
    and BatchNorm's batch statistics would then normalise the noise level away in training
    (``norm: batch`` restores the code's layers). The estimate relies on the latent's structure:
    for i.i.d. Gaussian latents the normalised output is N(0, 1) at every SNR. Eq. (21) trains
    ||alpha_hat - alpha||^2 = ||d_est - d_ref||^2 with d = 1 - alpha; the graph's loss is
    ``mse(est.d_est, est.d_ref_mean)``.

    mode = blind: d = d_est broadcast to every element (one estimate per image, the paper's
    pilot-free step matching); genie: d = d_ref passed through (known SNR; keeps per-element
    levels for fast fading). snr_db = 10 log10((1-d)/d) of the mean d used downstream.

    Shapes: x complex (B, N), d_ref real (B, N) optional -> d real (B, N), d_est real (B,),
            d_ref_mean real (B,), snr_db real (B,).
    """
    inputs = {"x": Port("complex", ("B", "N"), tag="symbols", doc="VP-normalised received latent"),
              "d_ref": Port("real", ("B", "N"), optional=True, doc="genie level (combiner.vp_mmse.d)")}
    outputs = {"d": Port("real", ("B", "N"), doc="level used downstream (estimate or genie)"),
               "d_est": Port("real", ("B",), doc="estimated level 1 - alpha_hat per image"),
               "d_ref_mean": Port("real", ("B",), doc="mean genie level per image (training target)"),
               "snr_db": Port("real", ("B",), doc="SNR in dB implied by d")}
    params = {"channels": Param(int, 4, "latent channels c"),
              "size": Param(int, 8, "latent side h = w"),
              "widths": Param(list, [32, 64, 128, 256], "residual block widths (Table I)"),
              "stride": Param(int, 2, "residual block stride: 2 (Table I halves the map) or 1 (code)",
                              choices=(1, 2)),
              "norm": Param(str, "group", "normalisation in the residual blocks: group (default, "
                            "per example), batch (the code) or none", choices=("group", "batch", "none")),
              "square_output": Param(bool, True, "alpha_hat = sigmoid(.)^2 (the code) instead of sigmoid(.)"),
              "mode": Param(str, "blind", "blind (estimate from x) or genie (pass d_ref)", runtime=True,
                            choices=("blind", "genie"))}

    @classmethod
    def bind_dims(cls, p):
        return {"N": p["channels"] * p["size"] * p["size"] // 2}

    def __init__(self, **params):
        super().__init__(**params)
        widths = [int(w) for w in self.p.widths]
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"estimator.snr_blind: widths must be positive, got {widths}")
        layers, cin = [], self.p.channels
        for w in widths:
            layers.append(_ResBlock(cin, w, self.p.stride, self.p.norm))
            cin = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, x, d_ref=None):
        p = self.p
        f = complex_to_latent(x, p.channels, p.size, p.size)
        a = torch.sigmoid(self.head(self.body(f.float()).mean(dim=(2, 3)))).squeeze(1)
        alpha = a * a if p.square_output else a
        d_est = (1 - alpha).clamp(S.EPS, 1 - S.EPS)
        ref_mean = d_ref.mean(dim=1) if d_ref is not None else torch.full_like(d_est, math.nan)
        if p.mode == "genie":
            if d_ref is None:
                raise ValueError("estimator.snr_blind: mode genie needs input d_ref connected")
            d = d_ref
        else:
            d = d_est[:, None].expand(-1, x.shape[1])
        snr = S.snr_db_of_d(d.mean(dim=1)).to(d_est.dtype)
        return {"d": d, "d_est": d_est, "d_ref_mean": ref_mean, "snr_db": snr}
