"""Swin Transformer pieces for the LCFSC codec (seed 000, Sec. III-A, Figs. 3-5).

Window attention follows Liu et al., "Swin Transformer", ICCV 2021 (window / shifted
window MSA with a relative position bias, patch merging); the JSCC layout (patch
embedding, merging per stage, reverse merging in the decoder) follows WITT (Yang et al.,
"WITT: A Wireless Image Transmission Transformer for Semantic Communications", ICASSP
2023), which seed 000 uses as its backbone.

The NI-CFMA module (seed 000, Fig. 4/5) lives here too: :class:`CSIFusionMask` builds the
attention masking map M from the patch features and the estimated CSI h_e, and
:class:`WindowAttention` applies it as Q_m K_m^T = M (.) Q K^T (eq. 7 as printed: a masked
logit becomes 0) or, with ``fill="neg_inf"``, drops the masked logits from the softmax (the
usual reading of masked attention, :func:`masked_softmax`), with a learnable temperature
rho in place of sqrt(d) (eq. 8).

Shapes: tokens are (B, L, C) with L = H*W on an H x W grid, row-major; windows are
(B*nW, D, C) with D = ws*ws patches per window (the paper's D).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*nW, ws*ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(win: torch.Tensor, ws: int, b: int, h: int, w: int) -> torch.Tensor:
    """(B*nW, ws*ws, C) -> (B, H, W, C); inverse of :func:`window_partition`."""
    c = win.shape[-1]
    x = win.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def shifted_window_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """Swin's SW-MSA mask (nW, D, D): 0 within a region, -100 across the cyclic-shift seams."""
    img = torch.zeros(1, h, w, 1)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img, ws).squeeze(-1)                 # (nW, D)
    diff = mw[:, None, :] - mw[:, :, None]
    return diff.ne(0).float() * -100.0


def relative_index(ws: int) -> torch.Tensor:
    """Index (D, D) into the ((2ws-1)^2, heads) relative position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


class GRN(nn.Module):
    """Gated residual network (Lim et al., Temporal Fusion Transformers, 2021; seed 000 refs [36, 37]).

    Direct path: eta2 = ELU(W2 x + b2), eta1 = W1 eta2 + b1, GLU(eta1) = sigmoid(W4 eta1) (.) (W5 eta1);
    residual path: a linear skip; out = LayerNorm(skip(x) + GLU(eta1)).
    Shapes: (..., din) -> (..., dout): the semantic importance of each patch (seed 000, Fig. 5).
    """

    def __init__(self, din: int, hidden: int, dout: int):
        super().__init__()
        self.fc2 = nn.Linear(din, hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.glu = nn.Linear(hidden, 2 * dout)
        self.skip = nn.Linear(din, dout)
        self.norm = nn.LayerNorm(dout)

    def forward(self, x):
        eta1 = self.fc1(F.elu(self.fc2(x)))
        gate, val = self.glu(eta1).chunk(2, dim=-1)
        return self.norm(self.skip(x) + torch.sigmoid(gate) * val)


def rank_mask(p: torch.Tensor, m: torch.Tensor, temp: float) -> torch.Tensor:
    """Eq. (6) of seed 000 with a straight-through gradient.

    p: (Bw, heads, D2) mask-strategy scores (softmax over the D2 = D*D entries);
    m: (Bw,) mask ratio. After an ascending sort of p, the U = round(m * D2) entries of
    lowest rank get M = 0 and the rest M = 1 -- exactly U per head and window.

    Forward value: that hard 0/1 mask. Gradient: the hard threshold has none, so the
    backward pass uses sigma((p - tau) / T), with tau the sorted scores interpolated at
    the fractional position m*D2 - 1/2 (so tau moves with m) and T = temp / D2 (scores
    average 1/D2). Without it the mask network and the CVAE's generation net d_q would
    never receive a gradient from the reconstruction loss L1 (eq. 24).
    """
    d2 = p.shape[-1]
    u = torch.round(m.detach() * d2).clamp(0, d2)                       # (Bw,)
    order = p.argsort(dim=-1)                                           # ascending sort
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(d2, device=p.device).expand_as(order))
    hard = (ranks >= u[:, None, None]).to(p.dtype)                      # rank+1 <= U -> 0
    if d2 < 2 or not torch.is_grad_enabled():
        return hard
    sorted_p = p.gather(-1, order)
    pos = (m * d2 - 0.5)[:, None, None]                                 # fractional index
    lo = pos.detach().floor().clamp(0, d2 - 2)
    w = pos - lo                                                        # may leave [0, 1]: linear extrapolation
    lo = lo.long().expand(-1, p.shape[1], 1)
    s_lo, s_hi = sorted_p.gather(-1, lo), sorted_p.gather(-1, lo + 1)
    tau = s_lo + w * (s_hi - s_lo)
    soft = torch.sigmoid((p - tau) * (d2 / temp))
    return hard + soft - soft.detach()


#: how NI-CFMA applies M: "zero" = eq. (7) as printed, M (.) Q K^T (a masked logit is 0 and
#: keeps a softmax weight like its neighbours'); "neg_inf" = masked logits at -inf (they get
#: no attention at all)
MASK_FILLS = ("zero", "neg_inf")


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with the entries where M = 0 left out (logits at -inf).

    logits (..., D) and mask (..., D), mask from :func:`rank_mask` (forward values 0/1).
    Forward: exactly the softmax over the kept entries (a row with every entry masked,
    possible only for m near 1, gets uniform weights rather than NaN). Gradient: the logits
    get that softmax's own gradient; M gets the gradient of the soft re-weighting
    p_i M_i / sum_j p_j M_j (p = the unmasked softmax), which equals the forward value at
    M in {0, 1} -- a masked entry learns whether letting it back in would help, which is
    what the straight-through mask of eq. (6) needs to train.
    """
    keep = mask.detach() > 0.5
    hard = torch.softmax(logits.masked_fill(~keep, torch.finfo(logits.dtype).min), dim=-1)
    if not (torch.is_grad_enabled() and mask.requires_grad):
        return hard
    pm = torch.softmax(logits.detach(), dim=-1) * mask
    soft = pm / pm.sum(-1, keepdim=True).clamp_min(1e-30)
    return hard + soft - soft.detach()


class CSIFusionMask(nn.Module):
    """CSI fusion masking model of NI-CFMA (seed 000, Sec. III-A, Fig. 5).

    1. GRN: semantic importance I (Bw, D, k) of each patch of the window.
    2. Link 1 (importance): the pairwise importance map I_i (.) I_j, (Bw, k, D, D), through
       two 3x3 convolutions; link 2 (CSI): h_e as a 2 x Nr x Nt real image through a 3x3
       convolution and a linear layer to the same width, broadcast over the D x D map.
    3. Concatenate, two 1x1 convolutions with a GELU between (the nonlinear layers), one
       output map per head; softmax over the D*D entries and ascending sort give the mask
       strategy M_s; eq. (6) with the mask ratio m gives M (:func:`rank_mask`).

    ``fill`` (one of :data:`MASK_FILLS`) says how :class:`WindowAttention` applies M.

    Shapes: x (Bw, D, C), csi (Bw, 2, Nr, Nt), m (Bw,) -> M (Bw, heads, D, D) in {0, 1}
    (straight-through gradient), scores (Bw, heads, D, D) (the softmax M_s before ranking).
    """

    def __init__(self, dim: int, heads: int, nr: int, nt: int, importance_dim: int = 4,
                 width: int = 8, temp: float = 1.0, fill: str = "zero"):
        super().__init__()
        if fill not in MASK_FILLS:
            raise ValueError(f"NI-CFMA: mask fill must be one of {', '.join(MASK_FILLS)}, got '{fill}'")
        self.heads, self.temp, self.fill = heads, temp, fill
        self.grn = GRN(dim, dim, importance_dim)
        self.importance_link = nn.Sequential(
            nn.Conv2d(importance_dim, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1))
        self.csi_link = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1), nn.GELU(), nn.Flatten(),
            nn.Linear(width * nr * nt, width))
        self.fuse = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.GELU(), nn.Conv2d(width, heads, 1))
        self.nr, self.nt = nr, nt

    def forward(self, x, csi, m):
        bw, d, _ = x.shape
        imp = self.grn(x)                                               # (Bw, D, k)
        pair = torch.einsum("bik,bjk->bkij", imp, imp) / math.sqrt(imp.shape[-1])
        f_imp = self.importance_link(pair)                              # (Bw, w, D, D)
        if csi.shape[-2:] != (self.nr, self.nt):
            raise ValueError(f"NI-CFMA: CSI must be (B, {self.nr}, {self.nt}) (params nr, nt), "
                             f"got {tuple(csi.shape[-2:])}")
        f_csi = self.csi_link(csi)[:, :, None, None].expand(-1, -1, d, d)
        scores = self.fuse(torch.cat((f_imp, f_csi), dim=1))            # (Bw, heads, D, D)
        p = torch.softmax(scores.flatten(2), dim=-1)                    # mask strategy M_s
        mask = rank_mask(p, m, self.temp)
        return mask.view(bw, self.heads, d, d), p.view(bw, self.heads, d, d)


class WindowAttention(nn.Module):
    """Window multi-head self-attention (eq. 5) or NI-CFMA (eqs. 7-8) when ``fusion`` is given.

    MHA:     A = softmax(Q K^T / sqrt(d) + B_rel [+ shift mask]) V                  (eq. 5)
    NI-CFMA: A = softmax((M (.) Q K^T) / rho + B_rel [+ shift mask]) V,  rho learnable,
             initialised to sqrt(d), so with m = 0 (M = 1) NI-CFMA equals MHA exactly.
    V is not masked (the paper: "the rest embedding V ... remains unchanged").
    The fusion's ``fill`` "zero" (default) sets masked entries of Q K^T to 0, eq. (7) as
    printed (a product, not a -inf mask); "neg_inf" leaves them out of the softmax
    (:func:`masked_softmax`): A = softmax over {M = 1} of (Q K^T / rho + B_rel [+ shift]).
    """

    def __init__(self, dim: int, ws: int, heads: int, fusion: CSIFusionMask | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.ws = heads, ws
        self.hd = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("rel_index", relative_index(ws), persistent=False)
        self.register_buffer("sqrt_d", torch.tensor(math.sqrt(self.hd)), persistent=False)
        self.fusion = fusion
        if fusion is not None:
            self.rho = nn.Parameter(torch.tensor(math.sqrt(self.hd)))   # eq. (8)

    def forward(self, x, shift_mask=None, csi=None, m=None, use_fusion: bool = True):
        bw, d, c = x.shape
        qkv = self.qkv(x).reshape(bw, d, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        qk = q @ k.transpose(-2, -1)                                    # (Bw, heads, D, D)
        mask = scores = None
        if self.fusion is not None and use_fusion:
            mask, scores = self.fusion(x, csi, m)
            if self.fusion.fill == "zero":
                qk = mask * qk                                          # eq. (7) as printed
            logits = qk / self.rho.clamp_min(1e-3)                      # eq. (8)
        else:
            logits = qk / self.sqrt_d                                    # eq. (5)
        bias = self.bias_table[self.rel_index.reshape(-1)].view(d, d, -1).permute(2, 0, 1)
        logits = logits + bias.unsqueeze(0)
        if shift_mask is not None:
            nw = shift_mask.shape[0]
            logits = logits.view(bw // nw, nw, self.heads, d, d) + shift_mask[None, :, None]
            logits = logits.view(bw, self.heads, d, d)
        if mask is not None and self.fusion.fill == "neg_inf":
            attn = masked_softmax(logits, mask)                         # eq. (7), -inf reading
        else:
            attn = torch.softmax(logits, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, d, c)
        return self.proj(out), attn, mask, scores


class SwinBlock(nn.Module):
    """One Swin Transformer block (Fig. 3b): LN -> (S)W-MSA or NI-CFMA -> residual -> LN -> MLP -> residual.

    ``res`` is the token grid (H, W); ``ws`` is clipped to the grid and the shift dropped
    when the grid fits in one window (as in Swin).
    """

    def __init__(self, dim: int, res: tuple, heads: int, ws: int, shift: bool, mlp_ratio: float,
                 fusion: CSIFusionMask | None = None):
        super().__init__()
        self.res = res
        self.ws = min(ws, *res)
        if res[0] % self.ws or res[1] % self.ws:
            raise ValueError(f"token grid {res} is not a multiple of the window {self.ws}")
        self.shift = self.ws // 2 if shift and min(res) > self.ws else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.ws, heads, fusion)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        if self.shift:
            self.register_buffer("shift_mask", shifted_window_mask(*res, self.ws, self.shift), persistent=False)
        else:
            self.shift_mask = None

    @property
    def is_cfma(self) -> bool:
        return self.attn.fusion is not None

    def forward(self, x, csi=None, m=None, use_fusion: bool = True):
        b, l, c = x.shape
        h, w = self.res
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        win = window_partition(y, self.ws)
        nw = win.shape[0] // b
        csi_w = csi.repeat_interleave(nw, dim=0) if (csi is not None and self.is_cfma) else None
        m_w = m.repeat_interleave(nw, dim=0) if (m is not None and self.is_cfma) else None
        out, attn, mask, scores = self.attn(win, self.shift_mask, csi_w, m_w, use_fusion)
        y = window_reverse(out, self.ws, b, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, l, c)
        x = x + self.mlp(self.norm2(x))
        return x, attn, mask, scores


class PatchMerging(nn.Module):
    """2x2 patch merging (Swin): (B, H*W, C) -> (B, H/2*W/2, C_out) via concat, LN, linear."""

    def __init__(self, res: tuple, dim: int, out_dim: int):
        super().__init__()
        self.res = res
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x):
        b, _, c = x.shape
        h, w = self.res
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduce(self.norm(x.reshape(b, -1, 4 * c)))


class PatchSplit(nn.Module):
    """Reverse merging (WITT's PatchReverseMerging): (B, H*W, C) -> (B, (fH)*(fW), C_out)
    via LN, linear to f*f*C_out and a pixel shuffle by f."""

    def __init__(self, res: tuple, dim: int, out_dim: int, factor: int = 2, norm: bool = True):
        super().__init__()
        self.res, self.f, self.out_dim = res, factor, out_dim
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()
        self.expand = nn.Linear(dim, factor * factor * out_dim)

    def forward(self, x):
        b, _, _ = x.shape
        h, w = self.res
        y = self.expand(self.norm(x)).view(b, h, w, -1).permute(0, 3, 1, 2)
        y = F.pixel_shuffle(y, self.f)                                  # (B, C_out, fH, fW)
        return y.flatten(2).transpose(1, 2)


def check_lists(where: str, p, n_key="depths", keys=("embed_dims", "num_heads")) -> int:
    """Validate the per-stage list params; return the number of stages."""
    n = len(p[n_key])
    if not 1 <= n <= 4:
        raise ValueError(f"{where}: {n_key} must list 1 to 4 stages, got {p[n_key]}")
    for k in keys:
        if len(p[k]) != n:
            raise ValueError(f"{where}: {k} {p[k]} must have one entry per stage ({n})")
    for d, hds in zip(p["embed_dims"], p["num_heads"]):
        if int(d) % int(hds):
            raise ValueError(f"{where}: width {d} is not divisible by {hds} heads")
    if any(int(d) < 1 for d in p[n_key]):
        raise ValueError(f"{where}: every stage needs at least one block, got {p[n_key]}")
    return n


def token_side(p, n_stages: int) -> int:
    """Side of the final token grid: size / (patch * 2^(stages-1))."""
    div = p["patch_size"] * 2 ** (n_stages - 1)
    if p["size"] % div:
        raise ValueError(f"image size {p['size']} is not a multiple of patch_size * 2^(stages-1) = {div}")
    return p["size"] // div
