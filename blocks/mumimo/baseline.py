"""The DJSCC baseline of seed 003 (Sec. IV), applied per user on the MU-MIMO OFDM grid.

"For a fair comparison, we adapted the original DJSCC architecture to the MU-MIMO OFDM
environment, maintaining the same channel settings and bandwidth constraints as our
proposed framework." The codec is ``extractor.deepjscc`` / ``decoder.deepjscc``
(Bourtsoulatze, Kurka, Gündüz 2019; seed 003 ref. [5]) run on every user's image with
shared weights; its c feature maps are chosen so that one image fills exactly the
N_sf x N_st data REs of one user's stream: c = 32 D / (H W), e.g. N_f = 128 -> D = 1536,
c = 48 at 32 x 32. The seed's DJSCC also classifies (Fig. 11), so the decoder carries the
same classification net as ``decoder.pilot_guided`` (Table I) on its received features.
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ..codecs import DeepJSCCDecoder, DeepJSCCEncoder
from ._layers import ClassificationNet

_PARAMS = {
    "size": Param(int, 32, "image side H = W (multiple of 4)"),
    "channels": Param(int, 24, "c: DeepJSCC feature maps; D = c H W / 32 symbols per user "
                               "(set c = 32 D / (H W) to fill the user's data REs)"),
    "filters": Param(int, 32, "DeepJSCC inner width F (Bourtsoulatze et al.: 32)"),
    "gdn": Param(bool, False, "GDN/IGDN activations instead of PReLU"),
}


def _dims(p):
    s = p["size"]
    return {"H": s, "W": s, "D": p["channels"] * s * s // 32}


@register("extractor.deepjscc_mu")
class DeepJSCCUsers(Block):
    """DJSCC encoder per user (seed 003 Sec. IV baseline; ``extractor.deepjscc`` with users
    folded into the batch). Symbols are paired as in ``extractor.deepjscc``; no power
    normalization (``channel.power_norm`` follows).

    Shapes: image real (B, K, 3, H, W) -> data complex (B, K, D), D = c H W / 32.
    """
    inputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="one image per user")}
    outputs = {"data": Port("complex", ("B", "K", "D"), tag="symbols", doc="channel symbols per user")}
    params = dict(_PARAMS)

    @classmethod
    def bind_dims(cls, p):
        return _dims(p)

    def __init__(self, **params):
        super().__init__(**params)
        self.codec = DeepJSCCEncoder(channels=self.p.channels, filters=self.p.filters, gdn=self.p.gdn)

    def forward(self, image):
        b, k = image.shape[:2]
        z = self.codec(image.reshape(b * k, *image.shape[2:]))["z"]
        return {"data": z.reshape(b, k, -1)}


@register("decoder.deepjscc_mu")
class DeepJSCCUsersDecoder(Block):
    """DJSCC decoder per UE (seed 003 Sec. IV baseline; ``decoder.deepjscc`` with users folded
    into the batch) plus a classification head.

    The received data symbols of UE k (no equalization: DJSCC decodes blindly) are unpaired
    to real features (c, H/4, W/4); ``decoder.deepjscc`` reconstructs the image and the
    classification net of seed 003 Table I (SepConv 16/32/64 + pooling, Dense 128, Dense
    classes) gives the logits from the same features.

    Shapes: z complex (B, K, D) -> image real (B, K, 3, H, W), logits real (B, K, C).
    """
    inputs = {"z": Port("complex", ("B", "K", "D"), tag="symbols", doc="received data symbols per UE")}
    outputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="reconstruction per user"),
               "logits": Port("real", ("B", "K", "C"), tag="logits", doc="class scores per user")}
    params = {**_PARAMS,
              "num_classes": Param(int, 10, "classes of the classification head"),
              "classifier_widths": Param(list, [16, 32, 64], "classification SepConv widths (Table I)"),
              "classifier_hidden": Param(int, 128, "hidden Dense of the classification net")}

    @classmethod
    def bind_dims(cls, p):
        return {**_dims(p), "C": p["num_classes"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        self.codec = DeepJSCCDecoder(channels=p.channels, filters=p.filters, gdn=p.gdn, size=p.size)
        self.classifier = ClassificationNet(p.channels, [int(w) for w in p.classifier_widths],
                                            p.classifier_hidden, p.num_classes)

    def forward(self, z):
        b, k, d = z.shape
        zf = z.reshape(b * k, d)
        image = self.codec(zf)["image"]
        side = self.p.size // 4
        feat = torch.view_as_real(zf).reshape(b * k, self.p.channels, side, side)   # the pairing, undone
        logits = self.classifier(feat.to(image.dtype))
        return {"image": image.reshape(b, k, *image.shape[1:]), "logits": logits.reshape(b, k, -1)}

