"""Semantic decoding at each UE (seed 001 Deep JSCBF, Sec. III-C3, Fig. 8).

``decoder.jscbf_rx``   -- the UE's first stage: the received grid Y[k] (N_c x Q) to 2Q reals
                          per subcarrier, without CSI and without equalisation.
``decoder.jscbf_swin`` -- the Swin decoder symmetric to ``extractor.jscbf_image``. Split from
                          the receiver so that the codec can be pretrained "without
                          considering the physical layer" (Sec. IV-C): the pretraining path
                          feeds ``extractor.jscbf_image``'s s straight into this block.
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ..lcfsc._swin import PatchSplit, SwinBlock, check_lists
from ._transformer import SequenceTransformer
from .encoder import SWIN_PARAMS, JSCBFImage, conv_head, latent_side, real_tokens


@register("decoder.jscbf_rx")
class JSCBFReceiver(Block):
    """UE receiver network, the first part of the semantic decoding network (seed 001
    Sec. III-C3, Fig. 8).

    "Each UE first processes the received signal through a fully connected layer": one token
    per subcarrier n, [Re Y[k][n, :], Im Y[k][n, :]] (2Q reals), mapped to 2Q reals. The
    paper's fully connected layer is ``layers: 0``; the notebook puts a 6-layer transformer
    (d_model 1024, three quarters of its parameters) in its place, and this block's default is
    a transformer too (``_transformer``): without CSI or equalisation the UE has to undo the
    channel from the received grid alone, and a per-subcarrier linear layer cannot use the
    other subcarriers. All UEs share the weights.

    Shapes: y complex (B, K, Q, F) -> s real (B, K, F, 2Q).
    """
    inputs = {"y": Port("complex", ("B", "K", "Q", "F"), tag="symbols", doc="received grid per UE")}
    outputs = {"s": Port("real", ("B", "K", "F", "Q2"), doc="received semantics, 2Q reals per subcarrier")}
    params = {"q": Param(int, 128, "Q data OFDM symbols"),
              "d_model": Param(int, 1024, "transformer width (notebook: 1024)"),
              "layers": Param(int, 6, "transformer layers (notebook: 6; 0 = the paper's linear layer)"),
              "heads": Param(int, 8, "attention heads (notebook: 8)")}

    @classmethod
    def bind_dims(cls, p):
        return {"Q": p["q"], "Q2": 2 * p["q"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        self.net = SequenceTransformer(2 * p.q, 2 * p.q, p.d_model, p.layers, p.heads)

    def forward(self, y):
        b, k, q, nf = y.shape
        tokens = real_tokens(y.permute(0, 1, 3, 2)).reshape(b * k, nf, 2 * q).float()
        return {"s": self.net(tokens).reshape(b, k, nf, 2 * q)}


@register("decoder.jscbf_swin")
class JSCBFSwinDecoder(Block):
    """Swin semantic decoder per UE, symmetric to ``extractor.jscbf_image`` (seed 001
    Sec. III-C3, Fig. 8).

    A linear layer maps each subcarrier's 2Q reals to side^2 values, "a semantic feature map
    of dimension N_c x 16 x 16" at 256 px (notebook ``embed2``); a head mirrors the encoder's
    (convolutions N_c -> reversed ``head_widths`` -> C of the last stage); Swin stages in
    reverse order, each followed by patch splitting ("the Swin Transformer decoder uses patch
    splitting to upsample the feature map resolution and reduce the number of feature map
    channels"); "a final linear de-embedding layer": the notebook's Conv(C -> N^2 C, 5x5),
    pixel shuffle by N and Conv(C -> 3, 3x3). ``output: clamp`` (notebook) returns the raw
    de-embedding while training and clamps to [0, 1] in eval mode; ``sigmoid`` squashes it.
    All UEs share the weights.

    Shapes: s real (B, K, F, 2Q) -> image real (B, K, 3, H, W), H = W = size.
    Taps: ``attn_stage<i>`` (decoder stage i, i = 1 at the coarsest grid).
    """
    inputs = {"s": Port("real", ("B", "K", "F", "Q2"), doc="semantics per subcarrier")}
    outputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="reconstruction per UE")}
    params = {**SWIN_PARAMS,
              "output": Param(str, "clamp", "clamp: raw in training, clamped to [0, 1] in eval "
                                            "(notebook); sigmoid", choices=("clamp", "sigmoid"))}
    taps = {f"attn_stage{i}": f"attention weights of the last block of decoder stage {i}" for i in range(1, 5)}
    bind_dims = JSCBFImage.bind_dims

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        n = check_lists(self.type_id, p)
        self.side = side = latent_side(p)
        dims = [int(d) for d in p.embed_dims][::-1]
        depths, heads = [int(d) for d in p.depths][::-1], [int(h) for h in p.num_heads][::-1]
        self.embed = nn.Linear(2 * p.q, side * side)
        self.head = conv_head([p.n_subcarriers] + [int(w) for w in p.head_widths][::-1] + [dims[0]])
        self.stages, self.splits = nn.ModuleList(), nn.ModuleList()
        res = side
        for i in range(n):
            self.stages.append(nn.ModuleList(SwinBlock(dims[i], (res, res), heads[i], p.window, j % 2 == 1,
                                                       p.mlp_ratio) for j in range(depths[i])))
            if i < n - 1:
                self.splits.append(PatchSplit((res, res), dims[i], dims[i + 1], 2))
                res *= 2
        self.res = res
        c0, pch = dims[-1], p.patch_size
        self.deembed = nn.Sequential(nn.Conv2d(c0, pch * pch * c0, 5, padding=2), nn.PixelShuffle(pch),
                                     nn.Conv2d(c0, 3, 3, padding=1))

    def forward(self, s):
        b, k, nf, q2 = s.shape
        z = self.embed(s.reshape(b * k, nf, q2)).reshape(b * k, nf, self.side, self.side)
        x = self.head(z).flatten(2).transpose(1, 2)                       # (BK, side^2, C)
        for i, blocks in enumerate(self.stages):
            attn = None
            for blk in blocks:
                x, attn, _, _ = blk(x)
            self.publish(f"attn_stage{i + 1}", attn)
            if i < len(self.splits):
                x = self.splits[i](x)
        fmap = x.transpose(1, 2).reshape(b * k, -1, self.res, self.res)
        img = self.deembed(fmap)
        img = torch.sigmoid(img) if self.p.output == "sigmoid" else (img if self.training else img.clamp(0.0, 1.0))
        return {"image": img.reshape(b, k, 3, self.p.size, self.p.size)}


