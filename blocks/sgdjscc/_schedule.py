"""Noise schedules, step matching and the sampler updates of seed 004 (SGD-JSCC).

Seed 004 = Zhang, Wu, Zhu, Jin, Chen, Gündüz, "Semantics-Guided Diffusion for Deep Joint
Source-Channel Coding in Wireless Image Transmission" (../shared/seeds/004_*.txt).

Notation (the paper's, Sec. V-B): a variance-preserving state at continuous time t in [0, 1]

    f_t = sqrt(1 - bbar_t) f_0 + sqrt(bbar_t) n,   n ~ N(0, I)          (eq. 14)

where bbar_t = S(t) is the noise *variance* of the state. Everything here works on real
tensors with unit power per element (a complex latent is unpaired and scaled by sqrt(2)).

* :class:`Schedule` -- S(t) and S^-1 for the sigmoid schedule of eq. (17) (e, g, tau) and
  the cosine schedule of Chen 2023 (the paper's ref. [38]) as an ablation.
* :func:`ddim_step` -- Algorithm 2 line 7 / eq. (16) with sigma_{s,t} = eta * (DDIM's
  sigma); eta = 0 is the paper's deterministic sampler. (Eq. 18 prints sqrt(bbar_s) where
  Algorithm 2 has sqrt(1 - bbar_s); Algorithm 2 is the correct form.)
* :func:`dpmpp_2m_x0` -- the data-prediction multistep combination of DPM-Solver++(2M)
  (Lu et al. 2022), the released code's sampler, with the exact lambda = log(alpha/sigma).
* :func:`water_fill` / :func:`alg3_update` -- Algorithm 3 for fast fading (eqs. 22-24).
* :func:`water_fill_code` / :func:`code_fading_update` -- the released code's variant
  (``generate_fading``, never called there): noise std's subtracted linearly, each element
  updated by DDIM from its own level.
"""
from __future__ import annotations

import math

import torch

#: variance clamp of S(t), as the released code does (keeps S^-1 and the DDIM ratios finite)
EPS = 1e-6


class Schedule:
    """bbar_t = S(t) and its inverse (continuous t in [0, 1]).

    sigmoid (eq. 17): S(t) = [sig((t(e-g)+g)/tau) - sig(g/tau)] / [sig(e/tau) - sig(g/tau)]
             with e = 3, g = 0, tau = 0.7 in the paper (its "s = 0" is g); S(0) = 0, S(1) = 1.
    cosine ([38]): bbar = 1 - cos^2(pi/2 (t+s)/(1+s)) / cos^2(pi/2 s/(1+s)), s = 0.008.
    Values are clamped to [0, 1 - 1e-6]; t_of() clamps its input to [1e-6, 1 - 1e-6] and its
    output to [0, 1] (the code clips to [0, 3], a harmless slip).
    """

    def __init__(self, kind: str = "sigmoid", e: float = 3.0, g: float = 0.0, tau: float = 0.7,
                 cosine_s: float = 0.008):
        if kind not in ("sigmoid", "cosine"):
            raise ValueError(f"unknown schedule {kind!r} (sigmoid or cosine)")
        if kind == "sigmoid" and (e <= g or tau <= 0):
            raise ValueError(f"sigmoid schedule needs e > g and tau > 0, got e={e}, g={g}, tau={tau}")
        self.kind, self.e, self.g, self.tau, self.s = kind, float(e), float(g), float(tau), float(cosine_s)
        if kind == "sigmoid":
            self.v_g = 1.0 / (1.0 + math.exp(-self.g / self.tau))
            self.v_e = 1.0 / (1.0 + math.exp(-self.e / self.tau))
        else:
            self.c0 = math.cos(0.5 * math.pi * self.s / (1.0 + self.s)) ** 2

    def beta_bar(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "sigmoid":
            v = torch.sigmoid((t * (self.e - self.g) + self.g) / self.tau)
            b = (v - self.v_g) / (self.v_e - self.v_g)
        else:
            b = 1.0 - torch.cos(0.5 * math.pi * (t + self.s) / (1.0 + self.s)) ** 2 / self.c0
        return b.clamp(0.0, 1.0 - EPS)

    def t_of(self, beta_bar: torch.Tensor) -> torch.Tensor:
        b = torch.as_tensor(beta_bar, dtype=torch.float64).clamp(EPS, 1.0 - EPS)
        if self.kind == "sigmoid":
            v = b * (self.v_e - self.v_g) + self.v_g
            t = (self.tau * torch.logit(v) - self.g) / (self.e - self.g)
        else:
            c = torch.sqrt((1.0 - b) * self.c0).clamp(0.0, 1.0)
            t = torch.arccos(c) * 2.0 / math.pi * (1.0 + self.s) - self.s
        return t.clamp(0.0, 1.0)


def d_of_snr_db(snr_db) -> torch.Tensor:
    """Noise level of the VP-normalised channel output at SNR gamma: d = 1/(1+gamma) (eq. 19)."""
    g = 10.0 ** (torch.as_tensor(snr_db, dtype=torch.float64) / 10.0)
    return 1.0 / (1.0 + g)


def snr_db_of_d(d) -> torch.Tensor:
    """Inverse of :func:`d_of_snr_db`: SNR = (1-d)/d in dB."""
    d = torch.as_tensor(d, dtype=torch.float64).clamp(EPS, 1.0 - EPS)
    return 10.0 * torch.log10((1.0 - d) / d)


def _b(x, ref):
    """A per-example level (B,) or per-element level broadcast to ref's shape."""
    x = torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
    return x.reshape(x.shape + (1,) * (ref.dim() - x.dim()))


def ddim_step(f_t, x0, bt, bs, eta: float = 0.0, noise=None):
    """One reverse step t -> s < t given the x0 prediction (eq. 16, Algorithm 2 line 7).

    eta = 0: f_s = sqrt(bs/bt) f_t + (sqrt(1-bs) - sqrt(bs (1-bt)/bt)) x0  (deterministic).
    eta > 0: sigma^2 = eta^2 (bs/bt)(1 - (1-bt)/(1-bs)) (DDIM's variance), then
    f_s = sqrt(1-bs) x0 + sqrt(bs - sigma^2) eps_hat + sigma n, eps_hat = (f_t - sqrt(1-bt) x0)/sqrt(bt).
    bt, bs: (B,) or f_t's shape; bs may be 0 (the last step returns x0).
    """
    bt, bs = _b(bt, f_t).clamp_min(EPS), _b(bs, f_t).clamp_min(0.0)
    if eta == 0.0:
        return torch.sqrt(bs / bt) * f_t + (torch.sqrt(1 - bs) - torch.sqrt(bs * (1 - bt) / bt)) * x0
    var = (eta ** 2) * (bs / bt) * (1 - (1 - bt) / (1 - bs).clamp_min(EPS))
    var = var.clamp(min=0.0) * (bs > 0)
    var = torch.minimum(var, bs)
    eps_hat = (f_t - torch.sqrt(1 - bt) * x0) / torch.sqrt(bt)
    noise = torch.randn_like(f_t) if noise is None else noise
    return torch.sqrt(1 - bs) * x0 + torch.sqrt(bs - var) * eps_hat + torch.sqrt(var) * noise


def log_snr(bbar):
    """lambda = log(alpha/sigma) = 0.5 log((1-bbar)/bbar) (DPM-Solver++)."""
    b = torch.as_tensor(bbar, dtype=torch.float64).clamp(EPS, 1 - EPS)
    return 0.5 * torch.log((1 - b) / b)


def dpmpp_2m_x0(x0, x0_prev, bt, bs, bt_prev):
    """DPM-Solver++(2M) data term D for the step t -> s (Lu et al. 2022, Alg. 2):
    D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev, r = h_prev / h, h = lambda_s - lambda_t.
    Returns x0 itself on the first step (x0_prev None) and on the last step (bs = 0),
    where the update is first order. bt, bs, bt_prev: (B,) per-example levels."""
    if x0_prev is None:
        return x0
    bs_ = torch.as_tensor(bs, dtype=torch.float64)
    if bool((bs_ <= 0).all()):
        return x0
    h = log_snr(bs) - log_snr(bt)
    h_prev = log_snr(bt) - log_snr(bt_prev)
    r = (h_prev / h.clamp_min(1e-12)).clamp_min(1e-12)
    c = _b((1.0 / (2.0 * r)).to(x0.dtype), x0)
    d = (1 + c) * x0 - c * x0_prev
    last = _b((bs_ <= 0).to(x0.dtype), x0)
    return last * x0 + (1 - last) * d


def water_fill(f, b, bt, noise=None):
    """Eq. (23): bring every element of f (levels b <= bt) to the common level bt.

    g_i = sqrt((1-bt)/(1-b_i)) f_i + sqrt(bt - b_i (1-bt)/(1-b_i)) eps_i, so
    g ~ N(sqrt(1-bt) f0, bt I) whenever f_i ~ N(sqrt(1-b_i) f0_i, b_i).
    b: f's shape; bt: (B,) or f's shape. Elements with b_i >= bt are left as they are."""
    bt = _b(bt, f)
    b = torch.minimum(b, bt)
    noise = torch.randn_like(f) if noise is None else noise
    scale = torch.sqrt((1 - bt) / (1 - b).clamp_min(EPS))
    var = (bt - b * (1 - bt) / (1 - b).clamp_min(EPS)).clamp_min(0.0)
    return scale * f + torch.sqrt(var) * noise


def alg3_update(f_t, b_t, g_s, bs):
    """Algorithm 3 lines 10-16: elements whose level is at least the next target bbar_s
    take the denoised g_s and level bbar_s; cleaner ones keep their value and level.
    (The printed test "b_i >= sqrt(bbar_s)" compares a variance with a std; bbar_s is meant.)"""
    bs = _b(bs, f_t).expand_as(f_t)
    take = b_t >= bs
    return torch.where(take, g_s, f_t), torch.where(take, bs, b_t)


def water_fill_code(f, b_std, sigma_t, noise=None):
    """The released code's water filling (``generate_fading``): std's, not variances.

    Adds noise of std max(0, sigma_t - b_i sqrt(1-sigma_t^2)/a_i), a_i = sqrt(1-b_i^2), then
    L2-normalises each example to unit power per element. Adds less noise than eq. (23)."""
    st = _b(sigma_t, f)
    a = torch.sqrt((1 - b_std ** 2).clamp_min(EPS))
    std = (st - b_std * torch.sqrt(1 - st ** 2) / a).clamp_min(0.0)
    noise = torch.randn_like(f) if noise is None else noise
    g = f + std * noise
    return g / g.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).reshape(-1, *([1] * (f.dim() - 1)))


def code_fading_update(f, b_std, x0, sigma_s):
    """The code's per-element update: for b_i >= sigma_s, DDIM from the element's own level,
    f_i <- (sqrt(1-sigma_s^2) - (sigma_s/b_i) sqrt(1-b_i^2)) x0_i + (sigma_s/b_i) f_i, b_i <- sigma_s."""
    ss = _b(sigma_s, f).expand_as(f)
    take = b_std >= ss
    ratio = ss / b_std.clamp_min(EPS)
    upd = (torch.sqrt(1 - ss ** 2) - ratio * torch.sqrt((1 - b_std ** 2).clamp_min(0))) * x0 + ratio * f
    return torch.where(take, upd, f), torch.where(take, ss, b_std)
