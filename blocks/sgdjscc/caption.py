"""Text guidance without hub weights for seed 004 (SGD-JSCC, Sec. IV-A).

The paper captions each image with BLIP-2 and embeds the caption with CLIP's text encoder;
neither can be loaded here. The stand-in is a caption of a few tokens from a fixed
vocabulary, computed from the image (and its label where the data has one):

    token 0            null (no caption / classifier-free guidance's unconditional branch)
    tokens 1..10       the class label 0..9 ("a photo of a <class>")
    tokens 11..21      the 11 basic colour terms (Berlin & Kay): the colour of the larger and
                       of the smaller of two k-means colour clusters in CIE Lab
    tokens 22..24      a lightness bin of the mean L* (dark < 35 <= medium < 65 <= light)

The DiT embeds the tokens with a learned table (its cross-attention keys/values), and, as in
the paper, the caption is assumed to reach the receiver perfectly. Colour is what the edge map
lacks: the paper's Fig. 13 argument for joint guidance.
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port, Sink
from flowgraph.registry import register

NULL = 0
LABEL0 = 1
COLOUR_NAMES = ("black", "white", "red", "green", "yellow", "blue", "brown", "orange", "pink", "purple", "grey")
COLOUR0 = LABEL0 + 10
LIGHTNESS_NAMES = ("dark", "medium", "light")
LIGHT0 = COLOUR0 + len(COLOUR_NAMES)
VOCAB = LIGHT0 + len(LIGHTNESS_NAMES)        # 25
FIELDS = ("label", "color1", "color2", "lightness")
#: sRGB prototypes of the 11 basic colour terms (matched in CIE Lab)
COLOUR_RGB = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.8, 0.1, 0.1), (0.1, 0.6, 0.1), (0.95, 0.9, 0.1),
              (0.1, 0.2, 0.8), (0.55, 0.3, 0.1), (1.0, 0.55, 0.0), (1.0, 0.6, 0.75), (0.5, 0.1, 0.6),
              (0.5, 0.5, 0.5))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (..., 3) -> CIE L*a*b* (D65, 2 degrees), as skimage.color.rgb2lab."""
    rgb = rgb.clamp(0, 1).double()
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                      [0.019334, 0.119193, 0.950227]], dtype=torch.float64, device=rgb.device)
    xyz = lin @ m.T / torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64, device=rgb.device)
    eps = (6 / 29) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = torch.stack((116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])), -1)
    return lab.float()


def _two_clusters(lab: torch.Tensor, iters: int = 6):
    """k-means with k = 2 per image. lab (B, P, 3) -> centres (B, 2, 3), sizes (B, 2); the
    clusters start at the darkest and the lightest pixel."""
    b = lab.shape[0]
    idx = torch.arange(b, device=lab.device)
    c = torch.stack((lab[idx, lab[..., 0].argmin(1)], lab[idx, lab[..., 0].argmax(1)]), dim=1)
    for _ in range(iters):
        assign = (lab[:, :, None, :] - c[:, None]).pow(2).sum(-1).argmin(-1)       # (B, P)
        one = torch.nn.functional.one_hot(assign, 2).to(lab.dtype)                 # (B, P, 2)
        sizes = one.sum(1)
        c = torch.where(sizes[..., None] > 0, (one.transpose(1, 2) @ lab) / sizes.clamp_min(1)[..., None], c)
    return c, sizes


def caption_tokens(image: torch.Tensor, label: torch.Tensor | None, fields) -> torch.Tensor:
    """Tokens int (B, len(fields)) for images (B, 3, H, W) in [0, 1] (module docstring)."""
    b = image.shape[0]
    lab = rgb_to_lab(image.permute(0, 2, 3, 1).reshape(b, -1, 3))
    need_colour = any(f in ("color1", "color2") for f in fields)
    if need_colour:
        centres, sizes = _two_clusters(lab)
        protos = rgb_to_lab(torch.tensor(COLOUR_RGB, device=image.device))
        names = (centres[:, :, None, :] - protos[None, None]).pow(2).sum(-1).argmin(-1)   # (B, 2)
        major = sizes[:, 1] > sizes[:, 0]
        c1 = torch.where(major, names[:, 1], names[:, 0])
        c2 = torch.where(major, names[:, 0], names[:, 1])
    out = []
    for f in fields:
        if f == "label":
            if label is None:
                out.append(torch.full((b,), NULL, dtype=torch.long, device=image.device))
            else:
                lbl = label.long().reshape(b)
                out.append(torch.where((lbl >= 0) & (lbl < 10), lbl + LABEL0, torch.full_like(lbl, NULL)))
        elif f == "color1":
            out.append(c1 + COLOUR0)
        elif f == "color2":
            out.append(c2 + COLOUR0)
        elif f == "lightness":
            mean_l = lab[..., 0].mean(1)
            out.append(LIGHT0 + (mean_l >= 35).long() + (mean_l >= 65).long())
        else:
            raise ValueError(f"unknown caption field {f!r}; choose from {list(FIELDS)}")
    return torch.stack(out, dim=1)


def _check_fields(where, fields):
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise ValueError(f"{where}: param 'fields' must be a non-empty list from {list(FIELDS)}, got {fields}")


@register("extractor.caption_tokens")
class CaptionTokens(Block):
    """Caption stand-in for seed 004's BLIP-2 text (SGD-JSCC, Sec. IV-A): a few tokens from a
    fixed 25-word vocabulary (blocks/sgdjscc/caption.py): the class label (null when the label
    is missing or < 0), the basic colour names of the larger and the smaller of two k-means
    colour clusters in CIE Lab, and a lightness bin. Assumed perfectly received (the paper
    neglects the text's transmission cost). No parameters, no gradient.

    Shapes: image real (B, 3, H, W) in [0, 1], label int (B,) optional -> tokens int (B, L),
            L = len(fields), values in 0..24.
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image"),
              "label": Port("int", ("B",), optional=True, tag="label")}
    outputs = {"tokens": Port("int", ("B", "L"), doc="caption tokens (0 = null)")}
    params = {"fields": Param(list, ["label", "color1", "color2", "lightness"],
                              f"which tokens make the caption, in order, from {list(FIELDS)}")}

    @classmethod
    def bind_dims(cls, p):
        return {"L": len(p["fields"])}

    def __init__(self, **params):
        super().__init__(**params)
        _check_fields("extractor.caption_tokens", self.p.fields)

    @torch.no_grad()
    def forward(self, image, label=None):
        return {"tokens": caption_tokens(image, label, self.p.fields)}


@register("sink.caption_agreement")
class CaptionAgreement(Sink):
    """Caption agreement per image: a weights-free stand-in for seed 004's CLIP score
    (SGD-JSCC, Sec. VII-A, "similarity between image and text descriptions"). The caption
    fields of ``extractor.caption_tokens`` (colours, lightness; the label needs a classifier:
    use the judge's accuracy) are recomputed on the reconstruction and on the original, and
    the fraction of fields that agree is reported.

    Shapes: pred real (B, 3, H, W), target real (B, 3, H, W) -> value real (B,) in [0, 1].
    """
    inputs = {"pred": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstruction"),
              "target": Port("real", ("B", 3, "H", "W"), tag="image", doc="original")}
    params = {"fields": Param(list, ["color1", "color2", "lightness"], "caption fields compared "
                              "(from color1, color2, lightness)")}
    unit = ""
    higher_is_better = True
    proportion = True

    def __init__(self, **params):
        super().__init__(**params)
        _check_fields("sink.caption_agreement", self.p.fields)
        if "label" in self.p.fields:
            raise ValueError("sink.caption_agreement: the label field cannot be read off an image; "
                             "use a judge classifier and sink.accuracy")

    def forward(self, pred, target):
        a = caption_tokens(pred.clamp(0, 1), None, self.p.fields)
        b = caption_tokens(target, None, self.p.fields)
        return {"value": (a == b).float().mean(dim=1)}
