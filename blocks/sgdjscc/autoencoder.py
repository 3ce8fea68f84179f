"""Paper-scale JSCC autoencoder of seed 004 (SGD-JSCC, Sec. V-A, Fig. 3; eqs. 3, 12).

The paper: residual blocks with self-attention whose queries/keys/values come from three
convolutions ("the architecture proposed in [17]"). The released code uses the latent-diffusion
``AutoencoderKL`` with ddconfig {ch 128, ch_mult [1, 2, 4, 4], num_res_blocks 2,
attn_resolutions [], z_channels 16, double_z}, embed_dim 16: 128 px -> a (16, 16, 16) latent,
2048 complex symbols (CBR 1/24). This module builds that shape (the code's, since the paper
gives no sizes); only the posterior mean is sent (the code's ``latent_dist.mean / 15.45``,
whose scale the power normalisation cancels). For the CPU scale the graphs use
``extractor.deepjscc`` instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(32 if ch % 32 == 0 else 1, ch, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.n1, self.c1 = _norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.n2, self.c2 = _norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class AttnBlock(nn.Module):
    """Self-attention over positions with q, k, v from three 1x1 convolutions (Fig. 3)."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = _norm(ch)
        self.q, self.k, self.v = (nn.Conv2d(ch, ch, 1) for _ in range(3))
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).flatten(2).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj(out)


class Encoder(nn.Module):
    def __init__(self, ch, mult, n_res, z, attn_levels):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        widths = [ch * m for m in mult]
        layers, cin = [], ch
        for i, w in enumerate(widths):
            for _ in range(n_res):
                layers.append(ResBlock(cin, w))
                cin = w
                if i in attn_levels:
                    layers.append(AttnBlock(w))
            if i < len(widths) - 1:
                layers.append(nn.Conv2d(w, w, 3, 2, 0))        # padded (0, 1, 0, 1) as in LDM
        self.down = nn.ModuleList(layers)
        self.mid = nn.ModuleList([ResBlock(cin, cin), AttnBlock(cin), ResBlock(cin, cin)])
        self.norm_out, self.conv_out = _norm(cin), nn.Conv2d(cin, 2 * z, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for m in self.down:
            h = m(F.pad(h, (0, 1, 0, 1))) if isinstance(m, nn.Conv2d) else m(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, mult, n_res, z, attn_levels):
        super().__init__()
        widths = [ch * m for m in mult]
        cin = widths[-1]
        self.conv_in = nn.Conv2d(z, cin, 3, 1, 1)
        self.mid = nn.ModuleList([ResBlock(cin, cin), AttnBlock(cin), ResBlock(cin, cin)])
        layers = []
        for i in reversed(range(len(widths))):
            w = widths[i]
            for _ in range(n_res + 1):
                layers.append(ResBlock(cin, w))
                cin = w
                if i in attn_levels:
                    layers.append(AttnBlock(w))
            if i > 0:
                layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
                layers.append(nn.Conv2d(w, w, 3, 1, 1))
        self.up = nn.ModuleList(layers)
        self.norm_out, self.conv_out = _norm(cin), nn.Conv2d(cin, 3, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for m in self.up:
            h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


_AE_PARAMS = {
    "ch": Param(int, 128, "base width (code: 128)"),
    "ch_mult": Param(list, [1, 2, 4, 4], "width multipliers per level; len - 1 halvings (code: [1, 2, 4, 4])"),
    "num_res_blocks": Param(int, 2, "residual blocks per level (code: 2)"),
    "z_channels": Param(int, 16, "latent channels (code: 16)"),
    "attn_levels": Param(list, [], "levels with self-attention after every residual block "
                                   "(code: none, attention in the middle only; the paper: all)"),
}


def _downsample(p) -> int:
    return 2 ** (len(p["ch_mult"]) - 1)


@register("extractor.sgd_autoencoder")
class SGDAutoencoderEncoder(Block):
    """JSCC encoder F(x; Theta) of seed 004 at paper scale (SGD-JSCC, eq. 3, Sec. V-A, Fig. 3),
    in the released code's AutoencoderKL shape (module docstring). Input x*2-1; the posterior
    mean (first z_channels of the moments) is flattened (channel, row, column) and paired
    consecutively into complex symbols. Power normalisation: ``channel.power_norm`` after it.

    Shapes: image real (B, 3, H, W) in [0, 1] -> z complex (B, N), N = z_channels (H/f)^2 / 2,
            f = 2^(len(ch_mult)-1) (128 px, code config: (16, 16, 16) -> N = 2048, CBR 1/24).
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image")}
    outputs = {"z": Port("complex", ("B", "N"), tag="symbols")}
    params = dict(_AE_PARAMS)

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        self.enc = Encoder(p.ch, [int(m) for m in p.ch_mult], p.num_res_blocks, p.z_channels,
                           [int(a) for a in p.attn_levels])
        self.quant_conv = nn.Conv2d(2 * p.z_channels, 2 * p.z_channels, 1)

    def forward(self, image):
        f = _downsample(self.p)
        if image.shape[-1] % f or image.shape[-2] % f:
            raise ValueError(f"extractor.sgd_autoencoder: H and W must be multiples of {f}")
        moments = self.quant_conv(self.enc(image * 2 - 1))
        mean = moments[:, : self.p.z_channels]
        v = mean.reshape(image.shape[0], -1)
        return {"z": torch.view_as_complex(v.reshape(v.shape[0], -1, 2).contiguous())}


@register("decoder.sgd_autoencoder")
class SGDAutoencoderDecoder(Block):
    """JSCC decoder G(f^; Psi) of seed 004 at paper scale (SGD-JSCC, eq. 12, Sec. V-A), the
    released code's AutoencoderKL decoder: symbols unpaired to (B, z, h, w), post-quant 1x1
    conv, mid block (res, attention, res), num_res_blocks + 1 residual blocks per level with
    nearest upsampling, output (out + 1) / 2.

    Shapes: z complex (B, N) -> image real (B, 3, H, W), H = W = size, N = z_channels (size/f)^2 / 2.
    """
    inputs = {"z": Port("complex", ("B", "N"), tag="symbols")}
    outputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstruction (about [0, 1])")}
    params = {**_AE_PARAMS, "size": Param(int, 128, "image side H = W")}

    @classmethod
    def bind_dims(cls, p):
        s = p["size"] // _downsample(p)
        return {"H": p["size"], "W": p["size"], "N": p["z_channels"] * s * s // 2}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if p.size % _downsample(p):
            raise ValueError(f"decoder.sgd_autoencoder: size must be a multiple of {_downsample(p)}")
        self.post_quant_conv = nn.Conv2d(p.z_channels, p.z_channels, 1)
        self.dec = Decoder(p.ch, [int(m) for m in p.ch_mult], p.num_res_blocks, p.z_channels,
                           [int(a) for a in p.attn_levels])

    def forward(self, z):
        p = self.p
        s = p.size // _downsample(p)
        if z.shape[1] * 2 != p.z_channels * s * s:
            raise ValueError(f"decoder.sgd_autoencoder: got {z.shape[1]} symbols, expected {p.z_channels * s * s // 2}")
        f = torch.view_as_real(z).reshape(z.shape[0], p.z_channels, s, s).float()
        return {"image": (self.dec(self.post_quant_conv(f)) + 1) / 2}
