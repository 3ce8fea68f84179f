"""Metric sinks of seed 004 (SGD-JSCC): edge fidelity and the pilot-free SNR error."""
from __future__ import annotations

import torch

from flowgraph.block import Param, Port, Sink
from flowgraph.registry import register

from . import _canny
from . import _schedule as S


@register("sink.edge_f1")
class EdgeF1(Sink):
    """Edge F1 per image: does the reconstruction keep the structure the edge guidance carries
    (seed 004 SGD-JSCC, Sec. IV-B and the Fig. 13 discussion)?

    inputs = images: Canny edges (the ``extractor.edge_map`` algorithm) of pred and target;
    inputs = edges: pred and target are edge maps already (e.g. decoder.edge_jscc.prob vs
    extractor.edge_map.edge), binarised at 0.5. Matching with a tolerance of ``tolerance``
    pixels (a (2r+1)^2 square): precision = |P & dilate(T)| / |P|, recall = |T & dilate(P)| / |T|,
    F1 = 2PR / (P + R); 1 when both maps are empty, 0 when exactly one is.

    Shapes: pred real (B, C, H, W), target real (B, C, H, W) -> value real (B,) in [0, 1].
    """
    inputs = {"pred": Port("real", ("B", "C", "H", "W"), doc="reconstruction (or edge map)"),
              "target": Port("real", ("B", "C", "H", "W"), doc="original (or edge map)")}
    params = {"inputs": Param(str, "images", "images (run Canny on both) or edges (binarise at 0.5)",
                              choices=("images", "edges")),
              "tolerance": Param(int, 1, "matching tolerance in pixels"),
              "sigma": Param(float, 1.0, "Canny sigma (inputs = images)"),
              "low": Param(float, 0.7, "Canny low threshold, a quantile (inputs = images)"),
              "high": Param(float, 0.9, "Canny high threshold, a quantile (inputs = images)")}
    unit = ""
    higher_is_better = True
    proportion = False

    def _edges(self, x):
        p = self.p
        if p.inputs == "edges":
            return x[:, 0] > 0.5
        return _canny.canny(_canny.luminance(x.clamp(0, 1).float()), p.sigma, p.low, p.high, True)

    def forward(self, pred, target):
        if pred.shape != target.shape:
            raise ValueError(f"sink.edge_f1: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        a, b = self._edges(pred), self._edges(target)
        r = self.p.tolerance
        na, nb = a.flatten(1).sum(1).float(), b.flatten(1).sum(1).float()
        prec = (a & _canny.dilate(b, r)).flatten(1).sum(1) / na.clamp_min(1)
        rec = (b & _canny.dilate(a, r)).flatten(1).sum(1) / nb.clamp_min(1)
        f1 = 2 * prec * rec / (prec + rec).clamp_min(1e-12)
        both_empty = (na == 0) & (nb == 0)
        return {"value": torch.where(both_empty, torch.ones_like(f1), f1)}


@register("sink.snr_error")
class SNRError(Sink):
    """Error of the pilot-free SNR estimate in dB per image (seed 004 SGD-JSCC, Sec. V-C, Fig. 9):
    |SNR_hat - SNR| with SNR = 10 log10((1-d)/d) of the genie level d averaged over the example
    (``combiner.vp_mmse.d``) and SNR_hat from ``estimator.snr_blind.snr_db``.
    ``signed: true`` reports SNR_hat - SNR instead (bias).

    Shapes: snr_db real (B,) estimate, d_ref real (B, ...) genie level -> value real (B,) in dB.
    """
    inputs = {"snr_db": Port("real", ("B",), doc="estimated SNR in dB"),
              "d_ref": Port("real", ("B", "..."), doc="genie noise level d per element")}
    params = {"signed": Param(bool, False, "report the signed error (bias) instead of |error|")}
    unit = "dB"
    higher_is_better = False

    def forward(self, snr_db, d_ref):
        true = S.snr_db_of_d(d_ref.reshape(d_ref.shape[0], -1).double().mean(1)).to(snr_db.dtype)
        err = snr_db - true
        return {"value": err if self.p.signed else err.abs()}
