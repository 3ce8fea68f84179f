"""Learned perceptual metrics: LPIPS on VGG-16 (Zhang et al., CVPR 2018).

Seed 001 (Deep JSCBF) trains with and reports LPIPS on a pre-trained VGG-16 (eqs. 30-31);
seed 004 (SGD-JSCC) reports it too. VGG-16 (Simonyan and Zisserman 2014) is written here in
plain torch (no torchvision), so the block runs wherever torch does. Nothing is downloaded:
the user supplies the weights by path, and without them the block refuses to build with one
line saying what is missing.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from flowgraph.block import Param, Port, Sink
from flowgraph.registry import register

#: VGG-16 ``features``: output channels per conv layer, "M" = 2x2 max pooling
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
#: torchvision indices of the ReLUs LPIPS reads: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
LPIPS_TAPS = (3, 8, 15, 22, 29)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
#: LPIPS' input scaling layer (lpips v0.1, ``ScalingLayer``), for inputs in [-1, 1]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def vgg16_features() -> nn.Sequential:
    """VGG-16's convolutional part with torchvision's module indices (so its state dict loads)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    return nn.Sequential(*layers)


class LPIPSNet(nn.Module):
    """LPIPS distance: d(x0, x1) = sum_j mean_hw || w_j (.) (phi_j(x0)^ - phi_j(x1)^) ||^2
    (seed 001 eq. 30; Zhang et al. 2018 eq. 1), phi_j the VGG-16 features at relu{1_2, 2_2,
    3_3, 4_3, 5_3}, ^ unit-normalised over channels, w_j >= 0 the learned linear layers.

    Shapes: x0, x1 (N, 3, H, W) in [-1, 1] -> (N,).
    """

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features[:LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if i in LPIPS_TAPS:
                out.append(x)
        return out

    def forward(self, x0, x1):
        d = 0.0
        for lin, f0, f1 in zip(self.lins, self.taps(x0), self.taps(x1)):
            n0 = f0 / (f0.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            n1 = f1 / (f1.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            d = d + lin((n0 - n1).square()).mean(dim=(1, 2, 3))
        return d


def _load(path: str, what: str) -> dict:
    if not Path(path).is_file():
        raise ValueError(f"sink.lpips: {what} {path!r} is not a file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"sink.lpips: {what} {path!r} does not hold a state dict")
    return state.get("state_dict", state)


def lpips_state(weights: str, vgg_weights: str = "") -> dict:
    """Map the published files onto ``LPIPSNet``'s state dict.

    weights:     lpips v0.1 ``vgg.pth`` (keys ``lin{j}.model.1.weight``), or a full LPIPS
                 module state dict (also ``net.slice{s}.{i}.weight``: the VGG part).
    vgg_weights: torchvision's VGG-16 ImageNet file (``vgg16-397923af.pth``, keys
                 ``features.{i}.weight``); not needed when ``weights`` holds the VGG part.
    """
    lin = _load(weights, "weights")
    out = {}
    for j in range(len(LPIPS_CHANNELS)):
        for key in (f"lin{j}.model.1.weight", f"lins.{j}.model.1.weight", f"lin{j}.weight"):
            if key in lin:
                out[f"lins.{j}.weight"] = lin[key]
                break
        else:
            raise ValueError(f"sink.lpips: weights {weights!r} has no LPIPS linear layer {j} "
                             f"(expected key 'lin{j}.model.1.weight', lpips v0.1 vgg.pth)")
    vgg = {}
    for k, v in lin.items():                     # a full LPIPS state dict carries the VGG too
        if k.startswith("net.slice"):
            vgg["features." + k.split(".", 2)[2]] = v
    if vgg_weights:
        vgg = {k: v for k, v in _load(vgg_weights, "vgg_weights").items() if k.startswith("features.")}
    if not vgg:
        raise ValueError(f"sink.lpips: no VGG-16 weights: set vgg_weights to torchvision's "
                         f"vgg16-397923af.pth (weights {weights!r} holds only the linear layers)")
    out.update(vgg)
    return out


@register("sink.lpips")
class LPIPS(Sink):
    """LPIPS perceptual distance per example on VGG-16 (seed 001 eq. 30; Zhang et al. 2018),
    lower is better; the mean over the users of an example when pred is (B, K, 3, H, W).

    The weights come from the user: ``weights`` = the LPIPS v0.1 linear layers (the lpips
    package's ``weights/v0.1/vgg.pth``) and ``vgg_weights`` = torchvision's VGG-16 ImageNet
    weights (``vgg16-397923af.pth``), or one file with both (a full LPIPS state dict). Without
    them the block fails to build with one line; nothing is downloaded. ``normalize: true``
    maps images in [0, 1] to LPIPS' [-1, 1] (the authors' notebook forgets this, seed001.md
    Sec. 6). The network is frozen (no trainable parameters) but differentiable in pred, so
    ``mean(lp.value)`` can enter a loss (eq. 31). Images smaller than 32 px leave the deepest
    VGG stage a 1x1 (16 px) or empty map; 32 px crops give relu5_3 a 2x2 map.

    Shapes: pred real (B, ..., 3, H, W), target real (B, ..., 3, H, W) -> value real (B,).
    """
    log_in_training = False
    inputs = {"pred": Port("real", ("B", "...", 3, "H", "W"), tag="image", doc="reconstruction"),
              "target": Port("real", ("B", "...", 3, "H", "W"), tag="image", doc="reference")}
    params = {"weights": Param(str, "", "LPIPS v0.1 linear layers (lpips' weights/v0.1/vgg.pth) or a "
                                        "full LPIPS state dict; required"),
              "vgg_weights": Param(str, "", "torchvision VGG-16 ImageNet weights (vgg16-397923af.pth); "
                                            "'' when 'weights' holds the VGG part"),
              "normalize": Param(bool, True, "inputs are in [0, 1]: map them to [-1, 1]")}
    higher_is_better = False
    unit = ""

    def __init__(self, **params):
        super().__init__(**params)
        if not self.p.weights:
            raise ValueError("sink.lpips: param 'weights' is empty: LPIPS needs user-supplied weights "
                             "(lpips v0.1 vgg.pth + torchvision vgg16-397923af.pth); nothing is downloaded")
        self.net = LPIPSNet()
        self.net.load_state_dict(lpips_state(self.p.weights, self.p.vgg_weights))
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()            # a fixed metric: never in training mode
        return self

    def forward(self, pred, target):
        if pred.shape != target.shape:
            raise ValueError(f"sink.lpips: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        b = pred.shape[0]
        x0, x1 = pred.reshape(-1, *pred.shape[-3:]), target.reshape(-1, *target.shape[-3:])
        if self.p.normalize:
            x0, x1 = 2 * x0 - 1, 2 * x1 - 1
        return {"value": self.net(x0, x1).reshape(b, -1).mean(dim=1)}


