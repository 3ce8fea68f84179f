"""Swin JSCC codec (WITT style) and the CSI-fusion semantic encoder with NI-CFMA (seed 000).

``extractor.swin``      -- f_e without CSI: the WITT semantic encoder (Fig. 12's "WITT").
``extractor.swin_cfma`` -- f_e(s, h_e, m) of seed 000 (eq. 2, Fig. 3): in stage ``cfma_stage``
                           (the paper: stage 3) the second block of every pair uses NI-CFMA
                           (Figs. 4-5, eqs. 6-8) in place of (S)W-MSA.
``decoder.swin``        -- f_d (Sec. III-C): the mirrored Swin decoder with reverse merging.

Layout (Sec. III-A): patch partition into patch_size x patch_size patches and a linear
embedding to C_1 channels (stage 1 at H/p x W/p), then every later stage i starts with
2x2 patch merging (H/(p 2^(i-1)) x W/(p 2^(i-1)), C_i) followed by N_i Swin blocks that
alternate W-MSA and SW-MSA. The paper uses 128x128 images, p = 2, {N_1..N_4} = {2, 2, 6, 2}
(Sec. V-A2); the widths/heads default to WITT's (128, 192, 256, 320) / (4, 6, 8, 10) and
window 8. Tiny settings for tests and CPU presets are just other param values.
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import csi_channels
from ._swin import CSIFusionMask, PatchMerging, PatchSplit, SwinBlock, check_lists, token_side

_ARCH = {
    "size": Param(int, 128, "image side H = W (the token grids and window masks are built for it)"),
    "patch_size": Param(int, 2, "patch partition p: stage 1 works on an H/p x W/p grid"),
    "embed_dims": Param(list, [128, 192, 256, 320], "width C_i of each stage (encoder order)"),
    "depths": Param(list, [2, 2, 6, 2], "Swin blocks {N_1..N_4} per stage (seed 000: 2, 2, 6, 2)"),
    "num_heads": Param(list, [4, 6, 8, 10], "attention heads per stage"),
    "window": Param(int, 8, "window side ws: attention over D = ws^2 patches (clipped to the grid)"),
    "mlp_ratio": Param(float, 4.0, "MLP hidden width / C_i"),
}
_TAPS = {f"attn_stage{i}": f"attention weights of the last block of stage {i}, (B*nW, heads, D, D)"
         for i in range(1, 5)}


def _ints(p, key):
    return [int(v) for v in p[key]]


class _SwinEncoderNet(nn.Module):
    """Patch embedding + stages of Swin blocks (+ NI-CFMA in one stage when ``cfma`` is given)."""

    def __init__(self, p, where: str, cfma: dict | None = None):
        super().__init__()
        n = check_lists(where, p)
        token_side(p, n)
        dims, depths, heads = _ints(p, "embed_dims"), _ints(p, "depths"), _ints(p, "num_heads")
        pch = p["patch_size"]
        self.patch_embed = nn.Conv2d(3, dims[0], pch, stride=pch)
        self.embed_norm = nn.LayerNorm(dims[0])
        res = p["size"] // pch
        self.merges, self.stages = nn.ModuleList(), nn.ModuleList()
        for i in range(n):
            if i:
                self.merges.append(PatchMerging((res, res), dims[i - 1], dims[i]))
                res //= 2
            else:
                self.merges.append(nn.Identity())
            blocks = nn.ModuleList()
            for j in range(depths[i]):
                fusion = None
                if cfma is not None and i == cfma["stage"] - 1 and j % 2 == 1:
                    fusion = CSIFusionMask(dims[i], heads[i], cfma["nr"], cfma["nt"], cfma["importance_dim"],
                                           cfma["width"], cfma["temp"])
                blocks.append(SwinBlock(dims[i], (res, res), heads[i], p["window"], j % 2 == 1,
                                        p["mlp_ratio"], fusion))
            self.stages.append(blocks)
        self.norm = nn.LayerNorm(dims[-1])

    def forward(self, image, publish, csi=None, m=None, use_fusion=True):
        x = self.embed_norm(self.patch_embed(image).flatten(2).transpose(1, 2))
        masks, scores = [], []
        for i, (merge, blocks) in enumerate(zip(self.merges, self.stages)):
            x = merge(x)
            attn = None
            for blk in blocks:
                x, attn, mask, sc = blk(x, csi, m, use_fusion)
                if mask is not None:
                    masks.append(mask)
                    scores.append(sc)
            publish(f"attn_stage{i + 1}", attn)
        return self.norm(x), masks, scores


def _check_image(where, image, size):
    if image.shape[-2:] != (size, size):
        raise ValueError(f"{where}: image must be {size}x{size} (param size), got {tuple(image.shape[-2:])}")


@register("extractor.swin")
class SwinExtractor(Block):
    """Swin Transformer semantic encoder f_e, WITT style, without CSI (seed 000 Sec. III-A, Fig. 3a;
    Fig. 12's "WITT" when followed by ``extractor.channel_modnet``).

    Patch partition (p x p, linear embedding to C_1, LayerNorm), then stages: stage i > 1
    starts with 2x2 patch merging; every stage has N_i blocks alternating W-MSA and SW-MSA
    (eq. 5, plus Swin's relative position bias); a final LayerNorm.

    Shapes: image real (B, 3, H, W), H = W = size  ->  x real (B, N, C),
            N = (size / (p 2^(S-1)))^2 tokens, C = embed_dims[-1], S = len(depths).
    Taps: ``attn_stage<i>`` = softmax attention weights of the last block of stage i.
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="images in [0, 1]")}
    outputs = {"x": Port("real", ("B", "N", "C"), doc="semantic features x (eq. 2), one row per token")}
    params = dict(_ARCH)
    taps = dict(_TAPS)

    @classmethod
    def bind_dims(cls, p):
        n = len(p["depths"])
        try:
            side = token_side(p, n)
        except ValueError:
            return {"H": p["size"], "W": p["size"]}
        return {"H": p["size"], "W": p["size"], "N": side * side, "C": int(p["embed_dims"][-1])}

    def __init__(self, **params):
        super().__init__(**params)
        self.net = _SwinEncoderNet(self.p, self.type_id)

    def forward(self, image):
        _check_image(self.type_id, image, self.p.size)
        x, _, _ = self.net(image, self.publish)
        return {"x": x}


@register("extractor.swin_cfma")
class SwinCFMAExtractor(Block):
    """CSI-fusion semantic encoder f_e(s, h_e, m) with NI-CFMA (seed 000, Sec. III-A, eqs. 5-8, Figs. 3-5).

    The ``extractor.swin`` encoder in which, in stage ``cfma_stage`` (paper: 3), the second
    block of every pair replaces (S)W-MSA by NI-CFMA:

    * CSI fusion masking model (Fig. 5): a gated residual network gives each patch's
      semantic importance; one convolutional link maps the pairwise importance map and a
      second maps h_e (real/imag as 2 x Nr x Nt channels) into the same feature space; they
      are concatenated and pass through nonlinear (1x1 conv, GELU) layers; a softmax and
      an ascending sort give the mask strategy M_s.
    * Eq. (6): M(i, j) = 0 for the U = round(m D^2) lowest-ranked entries of each head and
      window, 1 otherwise (D = window^2 patches).
    * Eq. (7): Q_m K_m^T = M (.) Q K^T;  eq. (8): A = softmax(Q_m K_m^T / rho) V with a
      learnable rho initialised to sqrt(d). With m = 0 the block equals plain window
      attention exactly (tested).

    The mask ratio m comes from the ``m`` input (per example, e.g. ``csirs.cvae_mask_ratio``'s
    m*, eq. 19) when connected, else from the runtime param ``m`` (CFSC's fixed m).
    ``cfma: false`` (runtime) switches every NI-CFMA back to MHA with sqrt(d) -- the
    ablation "without CSI fusion masking"; h is then ignored.
    The hard 0/1 mask has no gradient, so the backward pass uses a straight-through
    sigmoid relaxation around the rank threshold (see ``_swin.rank_mask``); the forward
    value is exactly eq. (6).

    Shapes: image real (B, 3, H, W), h complex (B, Nr, Nt), m real (B,) optional
            -> x real (B, N, C) as ``extractor.swin``.
    Taps: ``mask`` = M of every NI-CFMA block, (B*nW, n_cfma, heads, D, D) in {0, 1} (windows of
    example b first, so the GUI's "example 0" is example 0's first window);
    ``mask_strategy`` = the softmax scores M_s, same shape; ``m`` = the ratio used (B,);
    ``attn_stage<i>`` as in ``extractor.swin``.
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="images in [0, 1]"),
              "h": Port("complex", ("B", "Nr", "Nt"), tag="csi", doc="estimated CSI h_e (feedback)"),
              "m": Port("real", ("B",), tag="scalar", optional=True,
                        doc="mask ratio per example (e.g. the CVAE's m*); overrides param m")}
    outputs = {"x": Port("real", ("B", "N", "C"), doc="CSI-aware semantic features x (eq. 2)")}
    params = dict(_ARCH, **{
        "nt": Param(int, 2, "transmit antennas Nt (CSI width)"),
        "nr": Param(int, 2, "receive antennas Nr (CSI height)"),
        "m": Param(float, 0.009, "mask ratio m = U / D^2 when the m input is unconnected (CFSC)",
                   runtime=True),
        "cfma": Param(bool, True, "use NI-CFMA (false: plain MHA everywhere, for ablations)", runtime=True),
        "cfma_stage": Param(int, 3, "1-based stage whose 2nd, 4th, ... blocks use NI-CFMA (seed 000: 3)"),
        "importance_dim": Param(int, 4, "GRN output width k (semantic importance per patch)"),
        "mask_width": Param(int, 8, "channels of the two convolutional links and the fusion layers"),
        "ste_temp": Param(float, 1.0, "temperature of the straight-through relaxation of eq. (6), "
                                      "in units of 1/D^2"),
    })
    taps = dict(_TAPS, mask="NI-CFMA masks M (eq. 6), (B*nW, n_cfma, heads, D, D) in {0, 1}",
                mask_strategy="mask strategy scores M_s (softmax), same shape as mask",
                m="mask ratio used per example (B,)")

    @classmethod
    def bind_dims(cls, p):
        dims = SwinExtractor.bind_dims(p)
        dims.update({"Nr": p["nr"], "Nt": p["nt"]})
        return dims

    def __init__(self, **params):
        super().__init__(**params)
        p, where = self.p, self.type_id
        n = check_lists(where, p)
        if not 1 <= p.cfma_stage <= n:
            raise ValueError(f"{where}: cfma_stage {p.cfma_stage} is outside the {n} stages")
        if int(p.depths[p.cfma_stage - 1]) < 2:
            raise ValueError(f"{where}: stage {p.cfma_stage} has {p.depths[p.cfma_stage - 1]} block(s); "
                             f"NI-CFMA replaces the attention of the second block of each pair, so it needs >= 2")
        if not 0.0 <= p.m <= 1.0:
            raise ValueError(f"{where}: m must lie in [0, 1], got {p.m}")
        cfg = {"stage": p.cfma_stage, "nr": p.nr, "nt": p.nt, "importance_dim": p.importance_dim,
               "width": p.mask_width, "temp": p.ste_temp}
        self.net = _SwinEncoderNet(p, where, cfg)

    def forward(self, image, h, m=None):
        _check_image(self.type_id, image, self.p.size)
        b = image.shape[0]
        if m is None:
            m = image.new_full((b,), float(self.p.m))
        else:
            m = m.to(image.dtype).reshape(b).clamp(0.0, 1.0)
        csi = csi_channels(h).to(image.dtype)
        x, masks, scores = self.net(image, self.publish, csi, m, bool(self.p.cfma))
        if masks:
            self.publish("mask", torch.stack(masks, dim=1))
            self.publish("mask_strategy", torch.stack(scores, dim=1))
        self.publish("m", m)
        return {"x": x}


@register("decoder.swin")
class SwinDecoder(Block):
    """Swin Transformer semantic decoder f_d (seed 000 Sec. III-C; WITT decoder).

    Mirror of the encoder: the stages run in reverse order (widths, depths and heads are
    given in *encoder* order and reversed here). Stage i has N_i blocks alternating W-MSA
    and SW-MSA on its grid and ends with reverse patch merging (LayerNorm, linear to 4
    C_(i-1), pixel shuffle x2); the last stage splits each token into a p x p patch of
    3 colour values, followed by a sigmoid.

    Shapes: x real (B, N, C), N = (size / (p 2^(S-1)))^2, C = embed_dims[-1]
            -> image real (B, 3, H, W) in (0, 1), H = W = size.
    Taps: ``attn_stage<i>`` (decoder stage i, i = 1 at the coarsest grid).
    """
    inputs = {"x": Port("real", ("B", "N", "C"), doc="recovered semantic features")}
    outputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstruction in (0, 1)")}
    params = dict(_ARCH)
    taps = dict(_TAPS)

    bind_dims = SwinExtractor.bind_dims

    def __init__(self, **params):
        super().__init__(**params)
        p, where = self.p, self.type_id
        n = check_lists(where, p)
        side = token_side(p, n)
        dims = _ints(p, "embed_dims")[::-1]
        depths, heads = _ints(p, "depths")[::-1], _ints(p, "num_heads")[::-1]
        self.side = side
        self.stages, self.splits = nn.ModuleList(), nn.ModuleList()
        res = side
        for i in range(n):
            self.stages.append(nn.ModuleList(
                SwinBlock(dims[i], (res, res), heads[i], p.window, j % 2 == 1, p.mlp_ratio)
                for j in range(depths[i])))
            if i < n - 1:
                self.splits.append(PatchSplit((res, res), dims[i], dims[i + 1], 2))
                res *= 2
            else:
                self.splits.append(PatchSplit((res, res), dims[i], 3, p.patch_size))

    def forward(self, x):
        b, n, c = x.shape
        if n != self.side ** 2:
            raise ValueError(f"decoder.swin: expected {self.side ** 2} tokens (size {self.p.size}), got {n}")
        for i, (blocks, split) in enumerate(zip(self.stages, self.splits)):
            attn = None
            for blk in blocks:
                x, attn, _, _ = blk(x)
            self.publish(f"attn_stage{i + 1}", attn)
            x = split(x)
        s = self.p.size
        image = torch.sigmoid(x.transpose(1, 2).reshape(b, 3, s, s))
        return {"image": image}
