"""The x0-denoiser of seed 004 (SGD-JSCC): a DiT/MDT with adaLN on the noise level,
cross-attention to caption tokens, and a ControlNet branch for the edge map.

Seed 004 Sec. V-B3, Figs. 4-5, eq. (20). The paper uses "the same DiT block as in [39]"
(PixArt-alpha) with the noise level bbar_t entering through adaLN [40] and CLIP text as the
keys/values of a cross-attention layer; MDT masking [41] with a side interpolator in
training; ControlNet [20, 21] copies of the first DiT blocks with zero-initialised linears.
Sizes are not in the extracted text (Table II(b) is lost); the released code's are
(MDTv2, ``mask_diffusion.py``): hidden 512, 8 heads, patch 1, 4 + 4 encoder blocks with
U-ViT long skips, a side interpolator, 4 decoder blocks, sinusoidal embedding of sigma.

Tokens: a latent (B, c, h, w) with patch size 1 gives T = h*w tokens of width D.

    x_embed    Linear(c, D) per token + a learnable position embedding (sin-cos initialised)
    level      sinusoidal(level) -> Linear -> GELU -> Linear -> LayerNorm : (B, D)
    text       Embedding(vocab, D) -> LayerNorm : (B, L, D); token 0 is the learned null token
    block      x += g1 * SelfAttn(mod(LN(x), sh1, sc1)) ; x += CrossAttn(x, text) ;
               x += g2 * MLP(mod(LN(x), sh2, sc2)),   (sh, sc, g) = Linear(SiLU(level)) zero-init
    encoder    depth_in "in" blocks, then depth_out "out" blocks; out block j first mixes in the
               output of in block depth_in-1-j through Linear(2D, D) (U-ViT long skip)
    masking    (training, MDT) only a random (1-r) share of the tokens enters the encoder; a
               learned mask token fills the rest, then the side interpolator (one block) runs
    MLP        Linear(D, 4D), GELU, Linear(4D, D) (exact GELU: PixArt/DiT use the tanh
               approximation, which costs 5x more on a CPU and differs by < 1e-3)
    decoder    depth_dec blocks on all tokens (+ a second position embedding), final adaLN
               layer, Linear(D, c) zero-init -> x0 prediction (B, c, h, w)
    control    a trainable copy of the encoder (same structure) fed with the embedded input
               plus before_proj(hint); after encoder block k the base adds
               scale * after_proj_k(control state k); before_proj and after_proj start at zero
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from blocks.lcfsc._swin import relative_index


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """2-D sin-cos position embedding (T, D), T = h*w, row-major (MAE / DiT)."""
    if dim % 4:
        raise ValueError(f"the DiT width must be a multiple of 4, got {dim}")
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    parts = []
    for pos in (ys.flatten(), xs.flatten()):
        ang = pos[:, None] * omega[None]
        parts += [torch.sin(ang), torch.cos(ang)]
    return torch.cat(parts, dim=1).float()


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class LevelEmbedding(nn.Module):
    """Noise level (B,) -> (B, D): 128 log-spaced frequencies 1..1000 (x 2 pi), sin and cos,
    an MLP and a LayerNorm (the released code's SinusoidalEmbedding)."""

    def __init__(self, dim: int, n_freq: int = 128):
        super().__init__()
        self.register_buffer("freq", 2 * math.pi * torch.exp(torch.linspace(0, math.log(1000.0), n_freq)),
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, dim), nn.GELU(), nn.Linear(dim, dim), nn.LayerNorm(dim))

    def forward(self, level):
        ang = level.float()[:, None] * self.freq[None]
        return self.mlp(torch.cat((torch.sin(ang), torch.cos(ang)), dim=1))


class SelfAttention(nn.Module):
    """Multi-head self-attention with an optional relative position bias on the token grid."""

    def __init__(self, dim: int, heads: int, grid: int | None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"DiT width {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.grid = grid
        if grid:
            self.bias_table = nn.Parameter(torch.zeros((2 * grid - 1) ** 2, heads))
            nn.init.trunc_normal_(self.bias_table, std=0.02)
            self.register_buffer("bias_index", relative_index(grid), persistent=False)

    def forward(self, x, ids=None):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        bias = None
        if self.grid:
            full = self.bias_table[self.bias_index].permute(2, 0, 1)          # (heads, T, T)
            if ids is None:
                bias = full.unsqueeze(0)
            else:                                                             # kept tokens only
                bias = full[:, ids[:, :, None], ids[:, None, :]].permute(1, 0, 2, 3)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class CrossAttention(nn.Module):
    """Queries from the tokens, keys/values from the text tokens (PixArt-alpha; ungated)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, text):
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(text).view(b, text.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class DiTBlock(nn.Module):
    """adaLN-Zero DiT block with cross-attention (PixArt-alpha), optional U-ViT skip input."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, grid: int | None, skip: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads, grid)
        self.cross = CrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)
        self.skip = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x, c, text, skip=None, ids=None):
        if self.skip is not None and skip is not None:
            x = self.skip(torch.cat((x, skip), dim=-1))
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1), ids)
        if text is not None:
            x = x + self.cross(x, text)
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))


class Encoder(nn.Module):
    """depth_in in-blocks, then depth_out out-blocks with U-ViT long skips (MDTv2 layout).

    ``forward`` returns the final state and the state after every block (ControlNet needs
    them); ``inject`` (optional, one tensor per block) is added after block k."""

    def __init__(self, dim, heads, mlp_ratio, grid, depth_in, depth_out):
        super().__init__()
        self.inblocks = nn.ModuleList(DiTBlock(dim, heads, mlp_ratio, grid) for _ in range(depth_in))
        self.outblocks = nn.ModuleList(DiTBlock(dim, heads, mlp_ratio, grid, skip=j < depth_in)
                                       for j in range(depth_out))

    def __len__(self):
        return len(self.inblocks) + len(self.outblocks)

    def forward(self, x, c, text, ids=None, inject=None):
        states, skips = [], []
        k = 0
        for blk in self.inblocks:
            x = blk(x, c, text, ids=ids)
            if inject is not None:
                x = x + inject[k]
            k += 1
            states.append(x)
            skips.append(x)
        for blk in self.outblocks:
            x = blk(x, c, text, skip=skips.pop() if skips else None, ids=ids)
            if inject is not None:
                x = x + inject[k]
            k += 1
            states.append(x)
        return x, states


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out)
        for m in (self.ada[1], self.linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x, c):
        shift, scale = self.ada(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class HintEncoder(nn.Module):
    """Edge map (B, k, H, W) -> tokens (B, T, D) on the latent grid: 3x3 convs, one stride-2
    conv per halving from H to the latent side (ControlNet's small hint network)."""

    def __init__(self, in_ch: int, dim: int, image: int, latent: int):
        super().__init__()
        halvings = int(round(math.log2(image / latent)))
        if 2 ** halvings * latent != image:
            raise ValueError(f"the edge map side {image} must be the latent side {latent} times a power of 2")
        layers, ch = [nn.Conv2d(in_ch, 16, 3, padding=1), nn.SiLU()], 16
        for i in range(halvings):
            nxt = min(dim, 32 * 2 ** i)
            layers += [nn.Conv2d(ch, nxt, 3, stride=2, padding=1), nn.SiLU()]
            ch = nxt
        layers.append(nn.Conv2d(ch, dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, edge):
        return self.net(edge).flatten(2).transpose(1, 2)


class ControlBranch(nn.Module):
    """ControlNet for the DiT (seed 004 Fig. 5): a trainable copy of the encoder blocks, a zero
    ``before_proj`` on the hint and one zero ``after_proj`` per block."""

    def __init__(self, encoder: Encoder, dim: int, hint: nn.Module):
        super().__init__()
        self.hint = hint
        self.encoder = copy.deepcopy(encoder)
        self.before_proj = nn.Linear(dim, dim)
        self.after_proj = nn.ModuleList(nn.Linear(dim, dim) for _ in range(len(encoder)))
        for m in (self.before_proj, *self.after_proj):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x_embedded, edge, c, text, ids=None):
        h = self.hint(edge)
        if ids is not None:
            h = torch.gather(h, 1, ids[:, :, None].expand(-1, -1, h.shape[-1]))
        _, states = self.encoder(x_embedded + self.before_proj(h), c, text, ids=ids)
        return [proj(s) for proj, s in zip(self.after_proj, states)]


class DiT(nn.Module):
    """The x0 predictor Omega(f_t, bbar_t | text, edge) of seed 004 (module docstring)."""

    def __init__(self, channels: int, size: int, dim: int, heads: int, depth_in: int, depth_out: int,
                 depth_dec: int, mlp_ratio: float, vocab: int, rel_pos_bias: bool, mask_branch: bool,
                 controlnet: bool, edge_channels: int, image_size: int):
        super().__init__()
        grid = size if rel_pos_bias else None
        t = size * size
        self.size, self.dim = size, dim
        self.x_embed = nn.Linear(channels, dim)
        self.pos_embed = nn.Parameter(sincos_2d(size, size, dim).unsqueeze(0))
        self.level_embed = LevelEmbedding(dim)
        self.text_embed = nn.Embedding(vocab, dim)
        self.text_norm = nn.LayerNorm(dim)
        self.encoder = Encoder(dim, heads, mlp_ratio, grid, depth_in, depth_out)
        self.dec_pos_embed = nn.Parameter(sincos_2d(size, size, dim).unsqueeze(0))
        self.decoder = nn.ModuleList(DiTBlock(dim, heads, mlp_ratio, grid) for _ in range(depth_dec))
        self.final = FinalLayer(dim, channels)
        if mask_branch:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.normal_(self.mask_token, std=0.02)
            self.side_interpolator = DiTBlock(dim, heads, mlp_ratio, grid)
        else:
            self.mask_token, self.side_interpolator = None, None
        self.control = (ControlBranch(self.encoder, dim, HintEncoder(edge_channels, dim, image_size, size))
                        if controlnet else None)
        self.tokens = t

    def init_control_from_base(self) -> None:
        """ControlNet's initialisation: the control blocks start as copies of the trained base."""
        if self.control is None:
            raise ValueError("this DiT has no ControlNet branch (controlnet: false)")
        self.control.encoder.load_state_dict(self.encoder.state_dict())

    def forward(self, f, level, tokens=None, edge=None, control_scale=None, mask_ratio: float = 0.0):
        """f (B, c, h, w), level (B,), tokens int (B, L) or None (null text), edge (B, k, H, W)
        or None, control_scale (B,) (0 turns the edge guidance off per example).
        mask_ratio > 0: the MDT masked pass (training only). Returns x0 (B, c, h, w)."""
        b, c, h, w = f.shape
        x = self.x_embed(f.flatten(2).transpose(1, 2)) + self.pos_embed
        cvec = self.level_embed(level)
        if tokens is None:
            tokens = torch.zeros(b, 1, dtype=torch.long, device=f.device)
        text = self.text_norm(self.text_embed(tokens))
        ids = None
        if mask_ratio > 0:
            if self.mask_token is None:
                raise ValueError("masked pass asked but the DiT has no mask branch (mask_branch: false)")
            keep = max(1, int(round(self.tokens * (1 - mask_ratio))))
            ids = torch.rand(b, self.tokens, device=f.device).argsort(dim=1)[:, :keep]
            x_in = torch.gather(x, 1, ids[:, :, None].expand(-1, -1, self.dim))
        else:
            x_in = x
        inject = None
        if self.control is not None and edge is not None and control_scale is not None:
            scale = control_scale.to(x.dtype).view(b, 1, 1)
            inject = [scale * r for r in self.control(x_in, edge, cvec, text, ids)]
            self.last_control_norm = torch.stack([r.detach().pow(2).mean() for r in inject]).mean().sqrt()
        x_in, _ = self.encoder(x_in, cvec, text, ids=ids, inject=inject)
        if ids is not None:
            full = self.mask_token.expand(b, self.tokens, self.dim).clone()
            full.scatter_(1, ids[:, :, None].expand(-1, -1, self.dim), x_in)
            x_in = self.side_interpolator(full + self.dec_pos_embed, cvec, text)
        else:
            x_in = x_in + self.dec_pos_embed
        for blk in self.decoder:
            x_in = blk(x_in, cvec, text)
        out = self.final(x_in, cvec)
        return out.transpose(1, 2).reshape(b, c, h, w)
