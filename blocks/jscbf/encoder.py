"""Semantic extraction and fusion at the airship BS (seed 001 Deep JSCBF, Sec. III-B, Figs. 3-5).

``extractor.jscbf_image``  -- Swin image semantic extraction per UE (Fig. 3) + the per-UE
                              linear layer of Sec. III-B3 (s: 2Q reals per subcarrier).
``extractor.jscbf_csi``    -- CSI semantic extraction (Fig. 4, eq. 8).
``extractor.jscbf_fusion`` -- semantic fusion of image and CSI semantics into the complex
                              features W_s (Fig. 5, eq. 9).
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ..lcfsc._swin import token_side
from ..lcfsc.swin import _SwinEncoderNet
from ._transformer import SequenceTransformer

#: Swin architecture params shared by ``extractor.jscbf_image`` and ``decoder.jscbf_swin``
#: (defaults: the authors' notebook, cell 10; the paper gives no values)
SWIN_PARAMS = {
    "size": Param(int, 256, "image side H = W (seed 001: 256)"),
    "patch_size": Param(int, 2, "patch partition N (notebook: 2)"),
    "embed_dims": Param(list, [48, 96, 192, 384], "channels C per stage (notebook: 48, 96, 192, 384)"),
    "depths": Param(list, [2, 2, 6, 2], "Swin blocks per stage, U/T of Fig. 3 (notebook: 2, 2, 6, 2)"),
    "num_heads": Param(list, [3, 6, 12, 24], "attention heads per stage (notebook: 3, 6, 12, 24)"),
    "window": Param(int, 4, "window side M (notebook: 4)"),
    "mlp_ratio": Param(float, 4.0, "MLP hidden width / C"),
    "head_widths": Param(list, [384, 288], "hidden widths of the 3x3-conv head between the Swin "
                                           "stages and the N_c latent maps (notebook: 384, 288); "
                                           "[] = one per-token linear layer (the paper's)"),
    "n_subcarriers": Param(int, 64, "N_c: subcarriers = latent maps, one per subcarrier (seed 001: 64)"),
    "q": Param(int, 128, "Q: data OFDM symbols; s holds 2Q reals per subcarrier (seed 001: 128)"),
}


def latent_side(p) -> int:
    """Side of the latent map per subcarrier: size / (patch 2^(stages-1)) (16 at 256 px)."""
    return token_side(p, len(p["depths"]))


def conv_head(widths: list[int]) -> nn.Sequential:
    """3x3 convolutions through ``widths`` with GELU between; two entries = one 1x1 conv."""
    if len(widths) == 2:
        return nn.Sequential(nn.Conv2d(widths[0], widths[1], 1))
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1))
        if i < len(widths) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


@register("extractor.jscbf_image")
class JSCBFImage(Block):
    """Image semantic extraction network per UE (seed 001 Sec. III-B1, Fig. 3) and the per-UE
    linear layer of Sec. III-B3.

    Patch partition (N x N patches, linear embedding to C channels), Swin stages of W-MSA /
    SW-MSA blocks with patch merging between them (``blocks.lcfsc._swin``; Liu et al. 2021),
    then a head to N_c latent maps of side^2 values: "the semantic feature matrix of the
    image with a dimension of N_c x 256" (side = size / (N 2^(stages-1)) = 16 at 256 px).
    The paper calls the head "a fully connected linear layer" (``head_widths: []``); the
    notebook uses three 3x3 convolutions (default). Latent map n is the payload of
    subcarrier n. Then "the image semantic feature of each UE [is processed] through a linear
    layer" (Sec. III-B3; notebook ``embed1``): Linear(side^2 -> 2Q) per subcarrier row. All
    UEs share the weights. No stochastic depth (the notebook's drop-path 0.2 is not in the paper).

    Shapes: image real (B, K, 3, H, W), H = W = size -> s real (B, K, F, 2Q), F = N_c.
    Taps: ``z`` = the N_c x side^2 semantic feature matrix (B*K, F, side^2) before the
    linear layer; ``attn_stage<i>`` = attention weights of the last block of stage i.
    """
    inputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="one image per UE, in [0, 1]")}
    outputs = {"s": Port("real", ("B", "K", "F", "Q2"), doc="image semantics: 2Q reals per subcarrier")}
    params = dict(SWIN_PARAMS)
    taps = {"z": "N_c x side^2 semantic feature matrix per image, (B*K, F, side^2)",
            **{f"attn_stage{i}": f"attention weights of the last block of stage {i}" for i in range(1, 5)}}

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"], "F": p["n_subcarriers"], "Q2": 2 * p["q"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        self.swin = _SwinEncoderNet(p, self.type_id)
        self.side = latent_side(p)
        self.head = conv_head([int(p.embed_dims[-1])] + [int(w) for w in p.head_widths] + [p.n_subcarriers])
        self.embed = nn.Linear(self.side ** 2, 2 * p.q)

    def forward(self, image):
        b, k = image.shape[:2]
        if image.shape[-2:] != (self.p.size, self.p.size):
            raise ValueError(f"extractor.jscbf_image: images must be {self.p.size}x{self.p.size} "
                             f"(param size), got {tuple(image.shape[-2:])}")
        tokens, _, _ = self.swin(image.reshape(b * k, *image.shape[2:]), self.publish)
        fmap = tokens.transpose(1, 2).reshape(b * k, -1, self.side, self.side)
        z = self.head(fmap).flatten(2)                                    # (BK, F, side^2)
        self.publish("z", z)
        return {"s": self.embed(z).reshape(b, k, self.p.n_subcarriers, 2 * self.p.q)}


@register("extractor.jscbf_csi")
class JSCBFCSI(Block):
    """CSI semantic extraction network (seed 001 Sec. III-B2, Fig. 4, eq. 8).

    Eq. (8): each UE's estimated channel becomes H_bar[k] = [Re(H_hat[k]), Im(H_hat[k])]
    (N_c x 2Nt). ``per_user_fc: true`` (paper): a linear layer compresses every UE's row to
    ``user_width`` (64) values, the K results are concatenated per subcarrier (N_c x 64K);
    ``false`` (notebook): the token of subcarrier n is [Re, Im of all K Nt entries] directly.
    A transformer over the N_c subcarrier tokens (linear embedding to d_model, sinusoidal
    subcarrier positions, U layers of MSA + MLP, ``_transformer``) and a linear layer give
    the CSI semantic feature matrix N_c x ``out`` (64). The channel is static: the first
    OFDM symbol of h_hat is used.

    Shapes: h_hat complex (B, K, Nt, S, F) -> c real (B, F, Dc), Dc = out.
    """
    inputs = {"h_hat": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", doc="estimated CSI per UE")}
    outputs = {"c": Port("real", ("B", "F", "Dc"), doc="CSI semantic features per subcarrier")}
    params = {"n_users": Param(int, 4, "K UEs (seed 001: 4)"),
              "nt": Param(int, 64, "BS antennas Nt (seed 001: 64)"),
              "per_user_fc": Param(bool, True, "paper: per-UE linear layer to user_width, then concat; "
                                               "false: the notebook's raw 2 K Nt tokens"),
              "user_width": Param(int, 64, "per-UE width after the linear layer (seed 001: 64)"),
              "d_model": Param(int, 256, "transformer width (notebook: 256)"),
              "layers": Param(int, 4, "transformer layers U (notebook: 4)"),
              "heads": Param(int, 8, "attention heads (notebook: 8)"),
              "out": Param(int, 64, "Dc: CSI semantic features per subcarrier (seed 001: 64)")}

    @classmethod
    def bind_dims(cls, p):
        return {"K": p["n_users"], "Nt": p["nt"], "Dc": p["out"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if p.per_user_fc:
            self.user_fc = nn.Linear(2 * p.nt, p.user_width)
            din = p.n_users * p.user_width
        else:
            din = 2 * p.n_users * p.nt
        self.net = SequenceTransformer(din, p.out, p.d_model, p.layers, p.heads)

    def forward(self, h_hat):
        h = h_hat[:, :, :, 0, :].permute(0, 3, 1, 2)                     # (B, F, K, Nt)
        b, nf = h.shape[:2]
        if self.p.per_user_fc:
            hbar = torch.cat((h.real, h.imag), dim=-1).float()            # eq. (8), (B, F, K, 2Nt)
            tokens = self.user_fc(hbar).reshape(b, nf, -1)
        else:
            tokens = torch.cat((h.real.reshape(b, nf, -1), h.imag.reshape(b, nf, -1)), dim=-1).float()
        return {"c": self.net(tokens)}


def split_complex(t: torch.Tensor, n: int) -> torch.Tensor:
    """Eq. (9): the first n reals of the last dim are the real parts, the next n the imaginary."""
    return torch.complex(t[..., :n], t[..., n:2 * n])


def real_tokens(w: torch.Tensor) -> torch.Tensor:
    """Inverse of ``split_complex``: complex (..., n) -> real (..., 2n) [Re, Im]."""
    return torch.cat((w.real, w.imag), dim=-1)


_FUSION_MODES = ("joint", "per_symbol")


@register("extractor.jscbf_fusion")
class JSCBFFusion(Block):
    """Semantic fusion network: image and CSI semantics -> complex features W_s (seed 001
    Sec. III-B3, Fig. 5, eq. 9).

    "We first process the image semantic feature of each UE through a linear layer
    [``extractor.jscbf_image``'s s] and concatenate them with the CSI semantic feature.
    Subsequently, [we process] the concatenated data stream using a transformer to obtain a
    semantic matrix of dimension N_c x 2QK", split by eq. (9) into Re and Im of W_s
    (N_c x K x Q). ``mode``:
      joint      (paper reading, default): one token per subcarrier n, [s_1[n], ..., s_K[n],
                 c[n]] (2QK + Dc reals), a transformer over the N_c tokens, 2QK outputs;
      per_symbol (notebook): one sequence per OFDM symbol q, token (q, n) = the K UEs'
                 complex values s_k[n, q] + j s_k[n, Q + q] as 2K reals plus c[n], 2K outputs
                 (mixes UEs and subcarriers, not OFDM symbols).
    Because the BS knows every image, UE k's stream may depend on the others' images
    (joint multi-user encoding). W_s is not power-normalised (eq. 29 acts after the
    beamformers). ``use_csi: false`` (runtime) feeds zeros instead of c (the ablation
    "without CSI semantic fusion"); an unconnected c is the same.

    Shapes: s real (B, K, F, 2Q), c real (B, F, Dc) optional -> w complex (B, K, Q, F).
    """
    inputs = {"s": Port("real", ("B", "K", "F", "Q2"), doc="image semantics per UE"),
              "c": Port("real", ("B", "F", "Dc"), optional=True, doc="CSI semantics")}
    outputs = {"w": Port("complex", ("B", "K", "Q", "F"), tag="symbols",
                         doc="fused complex semantic features W_s")}
    params = {"n_users": Param(int, 4, "K UEs"),
              "q": Param(int, 128, "Q data OFDM symbols"),
              "csi_dim": Param(int, 64, "Dc: CSI semantic width"),
              "mode": Param(str, "joint", "joint: one token per subcarrier (paper); per_symbol: one "
                                          "sequence per OFDM symbol (notebook)", choices=_FUSION_MODES),
              "d_model": Param(int, 128, "transformer width (notebook: 128)"),
              "layers": Param(int, 4, "transformer layers (notebook: 4)"),
              "heads": Param(int, 8, "attention heads (notebook: 8)"),
              "use_csi": Param(bool, True, "fuse the CSI semantics (false: zeros in their place)",
                               runtime=True)}

    @classmethod
    def bind_dims(cls, p):
        return {"K": p["n_users"], "Q": p["q"], "Q2": 2 * p["q"], "Dc": p["csi_dim"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        k, q = p.n_users, p.q
        din, dout = (2 * q * k, 2 * q * k) if p.mode == "joint" else (2 * k, 2 * k)
        self.net = SequenceTransformer(din + p.csi_dim, dout, p.d_model, p.layers, p.heads)

    def _csi(self, c, b, nf, like):
        if c is None or not self.p.use_csi:
            return like.new_zeros(b, nf, self.p.csi_dim)
        return c.to(like.dtype)

    def forward(self, s, c=None):
        b, k, nf, q2 = s.shape
        q = q2 // 2
        c = self._csi(c, b, nf, s)
        if self.p.mode == "joint":
            tokens = torch.cat((s.permute(0, 2, 1, 3).reshape(b, nf, k * q2), c), dim=-1)
            out = self.net(tokens)                                        # (B, F, 2QK)
            w = split_complex(out, k * q).reshape(b, nf, k, q)            # eq. (9)
            return {"w": w.permute(0, 2, 3, 1).contiguous()}
        z = split_complex(s, q)                                           # (B, K, F, Q) complex
        tokens = real_tokens(z.permute(0, 3, 2, 1))                       # (B, Q, F, 2K)
        tokens = torch.cat((tokens, c[:, None].expand(b, q, nf, -1)), dim=-1)
        out = self.net(tokens.reshape(b * q, nf, -1)).reshape(b, q, nf, 2 * k)
        w = split_complex(out, k)                                         # (B, Q, F, K)
        return {"w": w.permute(0, 3, 1, 2).contiguous()}
