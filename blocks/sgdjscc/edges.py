"""Edge guidance of seed 004 (SGD-JSCC, Sec. IV-B, Fig. 2): a weights-free edge map and the
small edge JSCC that carries it over the channel.

The paper extracts a soft edge map with MuGE [36] (weights from a hub); here a batched torch
Canny (``_canny.py``, checked against ``skimage.feature.canny``) gives a binary map at one
sigma and a soft map averaged over several sigmas (a stand-in for MuGE's multi-granularity
mean). The edge JSCC follows the paper's description ("a much smaller embedding size",
SNR side information at the decoder, per-pixel foreground probability, BCE + Dice loss);
the CPU version is a conv codec with ADJSCC attention-feature modules at the decoder.
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from blocks.lcfsc.adjscc import AFModule

from . import _canny


def _canny_params(sigma_doc: str) -> dict:
    return {
        "sigma": Param(float, 1.0, sigma_doc),
        "low": Param(float, 0.7, "low hysteresis threshold (a quantile of the gradient magnitude "
                                 "when use_quantiles, else absolute on [0, 1] images)"),
        "high": Param(float, 0.9, "high hysteresis threshold (same convention)"),
        "use_quantiles": Param(bool, True, "thresholds are per-image quantiles (robust to contrast)"),
    }


@register("extractor.edge_map")
class EdgeMap(Block):
    """Weights-free edge extractor s = edge map of seed 004 (SGD-JSCC, Sec. IV-B; MuGE stand-in).

    Canny (skimage.feature.canny's algorithm, batched in torch) on the BT.709 luminance:
    ``edge`` = the binary map at ``sigma``; ``edge_soft`` = the mean of the binary maps over
    ``sigmas`` (MuGE's code averages 11 granularities; this averages scales), or the binary map
    itself when ``sigmas`` is empty (the default: no extra Canny runs when nothing reads it).
    No parameters, no gradient.

    Shapes: image real (B, 3, H, W) in [0, 1] -> edge real (B, 1, H, W) in {0, 1},
            edge_soft real (B, 1, H, W) in [0, 1].
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image")}
    outputs = {"edge": Port("real", ("B", 1, "H", "W"), doc="binary Canny edges"),
               "edge_soft": Port("real", ("B", 1, "H", "W"), doc="mean of Canny maps over sigmas")}
    params = {**_canny_params("Gaussian sigma of the binary map"),
              "sigmas": Param(list, [], "sigmas averaged into edge_soft, e.g. [0.5, 1, 1.5, 2, 2.5, 3]; "
                                        "[] = edge_soft is the binary map"),
              "cache_size": Param(int, 0, "remember the maps of up to this many distinct images (keyed by "
                                          "their pixels): a training set without augmentation is then "
                                          "edge-detected once; 0 = off")}

    def __init__(self, **params):
        super().__init__(**params)
        self._cache: dict = {}
        self._k = max(1, len(self.p.sigmas))

    def _maps(self, image):
        p = self.p
        gray = _canny.luminance(image.float())
        edge = _canny.canny(gray, p.sigma, p.low, p.high, p.use_quantiles)
        soft = torch.stack([_canny.canny(gray, float(s), p.low, p.high, p.use_quantiles)
                            for s in p.sigmas]).float().mean(0) if p.sigmas else edge.float()
        return edge.float(), soft

    @torch.no_grad()
    def forward(self, image):
        if self.p.cache_size <= 0:
            edge, soft = self._maps(image)
        else:
            keys = [hash(im.cpu().numpy().tobytes()) for im in image]
            todo = [i for i, k in enumerate(keys) if k not in self._cache]
            if todo:
                e, s = self._maps(image[todo])
                for j, i in enumerate(todo):
                    if len(self._cache) < self.p.cache_size:
                        # exact and small: the edge bits and the count of sigmas that fired
                        self._cache[keys[i]] = (e[j].to(torch.bool), (s[j] * self._k).round().to(torch.uint8))
                fresh = {i: (e[j], s[j]) for j, i in enumerate(todo)}
            else:
                fresh = {}
            pairs = [fresh[i] if i in fresh else (self._cache[k][0].float(), self._cache[k][1].float() / self._k)
                     for i, k in enumerate(keys)]
            edge = torch.stack([a for a, _ in pairs]).to(image.device)
            soft = torch.stack([b for _, b in pairs]).to(image.device)
        return {"edge": edge.unsqueeze(1).to(image.dtype), "edge_soft": soft.unsqueeze(1).to(image.dtype)}


_EDGE_PARAMS = {
    "channels": Param(int, 3, "feature maps sent: (H/2^stages)^2 * channels / 2 complex symbols "
                              "(32 px, 3 stages, 3 -> 24 symbols, CBR 1/128; 128 px, 4 stages, 13 -> "
                              "416 symbols, the code's 1/118)"),
    "filters": Param(int, 32, "width of the hidden conv layers (the first has half)"),
    "stages": Param(int, 3, "stride-2 layers: the map shrinks by 2^stages (>= 1)"),
}


def _check_stages(where, p):
    if p.stages < 1:
        raise ValueError(f"{where}: param 'stages' must be >= 1, got {p.stages}")


@register("extractor.edge_jscc")
class EdgeJSCCEncoder(Block):
    """Edge JSCC encoder H(s) of seed 004 (SGD-JSCC, eq. 4, Fig. 2), conv version.

    conv5x5/2 (in -> F/2), PReLU, then stages-1 times conv5x5/2 (-> F), PReLU, then conv3x3
    (F -> c): features (B, c, H/2^stages, W/2^stages) (3 stages: H/8), paired consecutively
    into complex symbols (the DeepJSCC convention). ``use_soft`` adds edge_soft as a second input channel (MuGE's
    two-channel input). No CSI at the transmitter (as in the paper). Power normalisation:
    ``channel.power_norm`` after it.

    Shapes: edge real (B, 1, H, W), soft real (B, 1, H, W) optional -> z complex (B, M),
            M = c H W / 2^(2 stages + 1) (3 stages: c H W / 128).
    """
    inputs = {"edge": Port("real", ("B", 1, "H", "W")),
              "soft": Port("real", ("B", 1, "H", "W"), optional=True, doc="soft edges (use_soft)")}
    outputs = {"z": Port("complex", ("B", "M"), tag="symbols", doc="edge symbols (not power-normalised)")}
    params = {**_EDGE_PARAMS,
              "use_soft": Param(bool, False, "feed edge_soft as a second channel (needs input soft)")}

    def __init__(self, **params):
        super().__init__(**params)
        f, c = self.p.filters, self.p.channels
        _check_stages("extractor.edge_jscc", self.p)
        cin = 2 if self.p.use_soft else 1
        layers, prev = [nn.Conv2d(cin, f // 2, 5, 2, 2), nn.PReLU(f // 2)], f // 2
        for _ in range(self.p.stages - 1):
            layers += [nn.Conv2d(prev, f, 5, 2, 2), nn.PReLU(f)]
            prev = f
        self.net = nn.Sequential(*layers, nn.Conv2d(prev, c, 3, 1, 1))

    def forward(self, edge, soft=None):
        k = 2 ** self.p.stages
        if edge.shape[-1] % k or edge.shape[-2] % k:
            raise ValueError(f"extractor.edge_jscc: H and W must be multiples of {k}, got {tuple(edge.shape[-2:])}")
        x = edge
        if self.p.use_soft:
            if soft is None:
                raise ValueError("extractor.edge_jscc: use_soft is on but input 'soft' is not connected")
            x = torch.cat((edge, soft), dim=1)
        v = self.net(x).reshape(edge.shape[0], -1)
        if v.shape[1] % 2:
            raise ValueError("extractor.edge_jscc: an odd number of real values; use an even 'channels' "
                             "or a larger image")
        return {"z": torch.view_as_complex(v.reshape(v.shape[0], -1, 2).contiguous())}


@register("decoder.edge_jscc")
class EdgeJSCCDecoder(Block):
    """Edge JSCC decoder G(o~) of seed 004 (SGD-JSCC, eq. 10, Fig. 2), CPU conv version.

    The received (VP-normalised) symbols are unpaired to (B, c, H/2^stages, W/2^stages), then
    conv3x3 (c -> F), stages-1 times tconv5x5/2 (-> F, the last -> F/2), tconv5x5/2 (F/2 -> 1),
    PReLU and an ADJSCC attention-feature module after each hidden layer, whose side information is the
    SNR (snr_db/20; "project the SNR values as side information ... at the decoder side"),
    then a sigmoid: the per-pixel edge probability.

    Post-processing of the released code (evaluation only, not in training): when the input
    SNR (the estimate, in the pilot-free graph) is at most ``threshold_below_db``,
    prob <- prob * (prob > th), th from ``threshold_table`` ([[snr_db, th], ...], nearest
    entry) else ``threshold``. ``postprocess: false`` turns it off (ablation).

    Shapes: z complex (B, M), snr_db real (B,) optional -> prob real (B, 1, H, W) in (0, 1),
            H = W = size, M = c (size / 2^stages)^2 / 2.
    """
    inputs = {"z": Port("complex", ("B", "M"), tag="symbols"),
              "snr_db": Port("real", ("B",), optional=True, doc="SNR side information (e.g. the estimate)")}
    outputs = {"prob": Port("real", ("B", 1, "H", "W"), doc="edge probability")}
    params = {**_EDGE_PARAMS,
              "size": Param(int, 32, "image side H = W"),
              "snr_db": Param(float, 10.0, "SNR side information when input snr_db is unconnected",
                              runtime=True),
              "postprocess": Param(bool, True, "the code's low-SNR threshold (evaluation only)"),
              "threshold": Param(float, 0.25, "edge threshold th (code: 0.25)"),
              "threshold_table": Param(list, [[-15.0, 0.35]], "[[snr_db, th], ...] overriding threshold "
                                       "at the nearest listed SNR within 2.5 dB (code: 0.35 at -15 dB)"),
              "threshold_below_db": Param(float, -5.0, "post-process only at or below this SNR (code: -5)")}

    @classmethod
    def bind_dims(cls, p):
        s, k = p["size"], 2 ** p.get("stages", 3)
        return {"H": s, "W": s, "M": p["channels"] * (s // k) * (s // k) // 2}

    def __init__(self, **params):
        super().__init__(**params)
        f, c = self.p.filters, self.p.channels
        _check_stages("decoder.edge_jscc", self.p)
        if self.p.size % 2 ** self.p.stages:
            raise ValueError(f"decoder.edge_jscc: size must be a multiple of {2 ** self.p.stages}, got {self.p.size}")
        layers, widths = [nn.Conv2d(c, f, 3, 1, 1)], [f]
        for i in range(self.p.stages - 1):
            out = f // 2 if i == self.p.stages - 2 else f
            layers.append(nn.ConvTranspose2d(widths[-1], out, 5, 2, 2, output_padding=1))
            widths.append(out)
        self.layers = nn.ModuleList(layers)
        self.acts = nn.ModuleList(nn.PReLU(w) for w in widths)
        self.afs = nn.ModuleList(AFModule(w, 1) for w in widths)
        self.last = nn.ConvTranspose2d(widths[-1], 1, 5, 2, 2, output_padding=1)

    def _threshold(self, snr):
        th = torch.full_like(snr, self.p.threshold)
        for s_db, t in self.p.threshold_table:
            th = torch.where((snr - float(s_db)).abs() <= 2.5, torch.full_like(snr, float(t)), th)
        return th

    def forward(self, z, snr_db=None):
        p = self.p
        s = p.size // 2 ** p.stages
        b = z.shape[0]
        if z.shape[1] * 2 != p.channels * s * s:
            raise ValueError(f"decoder.edge_jscc: got {z.shape[1]} symbols, expected {p.channels * s * s // 2}")
        x = torch.view_as_real(z).reshape(b, p.channels, s, s).float()
        snr = snr_db.float() if snr_db is not None else x.new_full((b,), float(p.snr_db))
        side = (snr / 20.0)[:, None]
        for layer, act, af in zip(self.layers, self.acts, self.afs):
            x = af(act(layer(x)), side)
        prob = torch.sigmoid(self.last(x))
        if p.postprocess and not self.training:
            th = self._threshold(snr).view(b, 1, 1, 1)
            low = (snr <= p.threshold_below_db).view(b, 1, 1, 1)
            prob = torch.where(low, prob * (prob > th), prob)
        return {"prob": prob}
