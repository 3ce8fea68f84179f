"""Image classifiers used as frozen "judges" of reconstructions.

A weights-free stand-in for CLIP-score-like semantic metrics (seed 004 SGD-JSCC, Sec. VII-A):
train a small classifier on clean images of the dataset, freeze it, and report its accuracy
(``sink.accuracy``) on reconstructions; its penultimate features also feed a Fréchet distance
(``sink.frechet``), an FID-like set metric that needs no Inception weights ("FD-judge").
"""
from __future__ import annotations

from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register


@register("decoder.image_classifier")
class ImageClassifier(Block):
    """Small CNN image classifier (a "judge" of reconstructed images; seed 004 SGD-JSCC's
    CLIP-score stand-in, Sec. VII-A).

    For each width w: conv3x3 stride 2 (-> w), BatchNorm, ReLU, conv3x3 (w -> w), BatchNorm,
    ReLU (each width halves the map); global average pooling -> features (B, w_last), dropout, Linear -> logits (B, classes).
    Train it on clean images (``ce(judge.logits, src.label)``), then copy its weights into a
    frozen instance that reads the reconstructions (stage ``copy_weights``).

    Shapes: image real (B, 3, H, W) -> logits real (B, K), features real (B, D),
            K = classes, D = widths[-1].
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image")}
    outputs = {"logits": Port("real", ("B", "K"), tag="logits"),
               "features": Port("real", ("B", "D"), doc="penultimate features (for sink.frechet)")}
    params = {"classes": Param(int, 10, "number of classes K"),
              "widths": Param(list, [16, 32, 64], "conv widths, one stride-2 stage each"),
              "dropout": Param(float, 0.1, "dropout before the linear layer (training only)")}

    @classmethod
    def bind_dims(cls, p):
        return {"K": p["classes"], "D": int(p["widths"][-1])}

    def __init__(self, **params):
        super().__init__(**params)
        w = [int(x) for x in self.p.widths]
        if not w or any(x < 1 for x in w) or self.p.classes < 2:
            raise ValueError(f"decoder.image_classifier: widths {w} must be positive and classes >= 2")
        layers, cin = [], 3
        for b in w:
            layers += [nn.Conv2d(cin, b, 3, 2, 1), nn.BatchNorm2d(b), nn.ReLU(), nn.Conv2d(b, b, 3, 1, 1),
                       nn.BatchNorm2d(b), nn.ReLU()]
            cin = b
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(self.p.dropout)
        self.head = nn.Linear(w[-1], self.p.classes)

    def forward(self, image):
        feat = self.body(image.float()).mean(dim=(2, 3))
        return {"logits": self.head(self.drop(feat)), "features": feat}


@register("decoder.patch_discriminator")
class PatchDiscriminator(Block):
    """PatchGAN discriminator (Isola et al., CVPR 2017, "pix2pix", Sec. 3.2.2) for the adversarial
    term of seed 004 (SGD-JSCC) eq. (13): "a patch-based discriminator to enhance perceptual
    performance", min_{Theta,Psi} max_D L_GAN, weighted by lambda.

    conv4x4/2 (3 -> w), LeakyReLU 0.2, then for each further width conv4x4/2 + GroupNorm +
    LeakyReLU, then conv3x3 (-> 1): one real/fake logit per patch. The same weights score the
    ``real`` and the ``fake`` input (the engine's ``discriminator:`` stage part trains it on the
    first and the generator against it through the second).

    Shapes: real real (B, 3, H, W), fake real (B, 3, H, W) -> real real (B, 1, h, w),
            fake real (B, 1, h, w), h = H / 2^len(widths).
    """
    inputs = {"real": Port("real", ("B", 3, "H", "W"), tag="image", doc="original images"),
              "fake": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstructions")}
    outputs = {"real": Port("real", ("B", 1, "h", "w"), doc="patch logits of the originals"),
               "fake": Port("real", ("B", 1, "h", "w"), doc="patch logits of the reconstructions")}
    params = {"widths": Param(list, [32, 64], "conv widths, one stride-2 layer each")}

    def __init__(self, **params):
        super().__init__(**params)
        w = [int(x) for x in self.p.widths]
        if not w or any(x < 1 for x in w):
            raise ValueError(f"decoder.patch_discriminator: widths must be positive, got {w}")
        layers, cin = [], 3
        for i, c in enumerate(w):
            layers.append(nn.Conv2d(cin, c, 4, 2, 1))
            if i:
                layers.append(nn.GroupNorm(min(8, c), c))
            layers.append(nn.LeakyReLU(0.2))
            cin = c
        layers.append(nn.Conv2d(cin, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, real, fake):
        return {"real": self.net(real.float()), "fake": self.net(fake.float())}
