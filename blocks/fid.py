"""FID with user-supplied Inception weights (the perceptual set metric of seed 004 SGD-JSCC).

``sink.fid`` is ``sink.frechet`` (blocks/sinks.py: the Fréchet distance of Heusel et al.,
NeurIPS 2017, eq. 6, between Gaussian fits of the reconstructed and the original feature sets,
set level, ``<name>_set``) on Inception features. Nothing is downloaded: the user provides a
TorchScript Inception file, e.g. the ``inception-2015-12-05.pt`` detector of StyleGAN2-ADA's
metrics, which returns 2048-d pool features for uint8 images of any size when called with
``return_features=True``. Without weights the block refuses to build with one line.
"""
from __future__ import annotations

from pathlib import Path

import torch

from flowgraph.block import Param, Port
from flowgraph.errors import SemflowError
from flowgraph.registry import register

from .sinks import Frechet


@register("sink.fid")
class FID(Frechet):
    """Fréchet Inception distance between reconstructions and originals (Heusel et al. 2017;
    seed 004 SGD-JSCC, Sec. VII-A, Fig. 8d) with user-supplied weights: ``weights`` is a
    TorchScript Inception feature extractor (e.g. StyleGAN2-ADA's inception-2015-12-05.pt);
    images in [0, 1] are scaled by ``input_scale`` (rounded to uint8 with ``as_uint8``) and
    passed with ``call_kwargs``. Set level like ``sink.frechet``: the reported number is
    ``<name>_set`` over every example of an evaluation point.

    Shapes: pred real (B, 3, H, W), target real (B, 3, H, W) in [0, 1] -> value real (B,)
            (squared feature distance per pair, a diagnostic), stats real (B, 2D).
    """
    inputs = {"pred": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstruction"),
              "target": Port("real", ("B", 3, "H", "W"), tag="image", doc="original")}
    params = {"weights": Param(str, "", "path of a TorchScript Inception feature extractor (required)"),
              "input_scale": Param(float, 255.0, "images in [0, 1] are multiplied by this"),
              "as_uint8": Param(bool, True, "round to uint8 before the call (what the NVlabs detector expects)"),
              "call_kwargs": Param(dict, {"return_features": True}, "keyword arguments of the call")}
    log_in_training = False

    def __init__(self, **params):
        super().__init__(**params)
        path = self.p.weights
        if not path:
            raise SemflowError("sink.fid needs Inception weights: set param 'weights' to a TorchScript "
                               "feature extractor (e.g. inception-2015-12-05.pt); nothing is downloaded here")
        if not Path(path).expanduser().is_file():
            raise SemflowError(f"sink.fid: param 'weights' = '{path}': no such file")
        try:
            self.model = torch.jit.load(str(Path(path).expanduser()), map_location="cpu").eval()
        except Exception as exc:
            raise SemflowError(f"sink.fid: cannot load '{path}' as TorchScript: {type(exc).__name__}: {exc}") from None
        for prm in self.model.parameters():
            prm.requires_grad_(False)

    def _features(self, x):
        x = x.clamp(0, 1) * self.p.input_scale
        if self.p.as_uint8:
            x = x.round().to(torch.uint8)
        with torch.no_grad():
            f = self.model(x, **self.p.call_kwargs)
        return f.reshape(f.shape[0], -1).float()

    def forward(self, pred, target):
        return super().forward(self._features(pred), self._features(target))
