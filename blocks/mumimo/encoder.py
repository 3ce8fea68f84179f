"""The BS-side asymmetric semantic encoder of seed 003 (Sec. III-A, Table I, Fig. 3)."""
from __future__ import annotations

import math

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._layers import ResBlock, conv_bn_relu


def noise_var(snr_db: float) -> float:
    """sigma^2 = N0 = 10^(-SNR/10) (unit symbol energy; docs/conventions.md)."""
    return 10.0 ** (-float(snr_db) / 10.0)


class NoiseAdaptation(nn.Module):
    """Noise adaptation (seed 003, Table I "Dense+Sigmoid 128"): one scaling factor per feature
    channel from the noise variance, a = sigmoid(W sigma^2 + b). Shapes: () -> (channels,)."""

    def __init__(self, channels: int):
        super().__init__()
        self.dense = nn.Linear(1, channels)

    def forward(self, sigma2: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dense(sigma2.reshape(1, 1)))[0]


class ScenarioAdaptation(nn.Module):
    """Scenario adaptation (seed 003, Sec. III-A, Table I): a scaling factor per feature
    channel from the magnitude spectrum |H| of the user's channel.

    |h_k| (N, Nt, S, F) is averaged over the OFDM symbols to a spectrum (N, Nt, F) (Nt
    antennas as Conv1D channels, frequency as the Conv1D axis), then
    Conv1D+ReLU (w0, 5, 2) -> Conv1D+ReLU (w1, 5, 2) -> average pooling over frequency
    -> Dense+ReLU (hidden) -> Dense+Sigmoid (channels). Paper: w = (16, 32), hidden = 64.
    Shapes: |h| real (N, Nt, S, F) -> (N, channels) in (0, 1).
    """

    def __init__(self, n_tx: int, channels: int, widths=(16, 32), hidden: int = 64):
        super().__init__()
        w0, w1 = widths
        self.conv = nn.Sequential(
            nn.Conv1d(n_tx, w0, 5, stride=2, padding=2), nn.ReLU(inplace=True),
            nn.Conv1d(w0, w1, 5, stride=2, padding=2), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.dense = nn.Sequential(nn.Linear(w1, hidden), nn.ReLU(inplace=True),
                                   nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, h_abs: torch.Tensor) -> torch.Tensor:
        spectrum = h_abs.mean(dim=2)                                   # (N, Nt, F)
        return self.dense(self.conv(spectrum))


@register("extractor.asymmetric_encoder")
class AsymmetricEncoder(Block):
    """Asymmetric semantic encoder at the BS (seed 003, Sec. III-A, eq. 4, Table I, Fig. 3).

    Every user's image is encoded separately with shared weights (users folded into the
    batch), f_e(S; phi):

    1. Residual convolutional encoder (Table I): Conv2D+BN+ReLU (w0, 3, 1) stem ->
       ResBlock (w0, 3, 2) -> ResBlock (w1, 3, 2) -> ResBlock (w1, 3, 1): features
       (w1, H/4, W/4); paper widths (w0, w1) = (64, 128).
    2. Adaptation: the features are scaled per channel by a_noise * a_scenario ("the
       resulting CSI and SNR scaling factor are jointly applied to scale intermediate
       semantic features"):
       - noise adaptation: a_noise = sigmoid(Dense(sigma^2)), sigma^2 = 10^(-snr_db/10)
         (the transmitter knows the noise variance, Sec. III);
       - scenario adaptation: a_scenario = ScenarioAdaptation(|h_k|): Conv1D (16, 5, 2),
         Conv1D (32, 5, 2), average pooling, Dense 64, Dense+Sigmoid over the user's
         magnitude spectrum |H| (the CSI is known at the BS).
       ``noise_adaptation`` / ``scenario_adaptation`` false remove a module (factor 1):
       the ablations of Sec. IV ("Ours (RZF)" disables the adaptive module).
    3. Output mapping (Table I): Conv2D (C_e, 3, 1) with C_e = ceil(2 D / (H/4 * W/4))
       -> Flatten -> Dense + Tanh (2 D) -> S_en in R^{N_sf x N_st x 2} per user (eq. 4),
       paired into D = N_sf * N_st complex symbols: data[2i] + j data[2i+1] (the
       DeepJSCC convention of docs/conventions.md). At N_f = 128 this Dense is
       3072 x 3072 = 9.4 M of the paper's 10.13 M encoder parameters (Table III).

    Power normalization is not done here (``channel.power_norm`` follows, Sec. III-A).

    Shapes: image real (B, K, 3, H, W) in [0, 1], h complex (B, K, Nt, S, F) (optional when
            scenario_adaptation is false) -> data complex (B, K, D), |data| < sqrt(2),
            D = n_subcarriers * n_data_symbols, H = W = size.
    Taps: ``noise_scale`` (channels,), ``scenario_scale`` (B, K, channels).
    """
    inputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="one image per user"),
              "h": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", optional=True,
                        doc="CSI known at the BS (scenario adaptation)")}
    outputs = {"data": Port("complex", ("B", "K", "D"), tag="symbols",
                            doc="semantic symbols per user, D = N_sf * N_st")}
    params = {
        "size": Param(int, 32, "image side H = W (multiple of 4)"),
        "n_subcarriers": Param(int, 64, "N_sf = N_f subcarriers carrying data (seed 003: 32, 64, 128)"),
        "n_data_symbols": Param(int, 12, "N_st OFDM symbols carrying data (14 minus pilot symbols [2, 11])"),
        "n_tx": Param(int, 4, "BS antennas N_m = Nt (Conv1D input channels of the scenario adaptation)"),
        "widths": Param(list, [64, 128], "(w0, w1): residual encoder widths (Table I: 64, 128)"),
        "scenario_widths": Param(list, [16, 32], "Conv1D filters of the scenario adaptation (Table I: 16, 32)"),
        "scenario_hidden": Param(int, 64, "hidden Dense width of the scenario adaptation (Table I: 64)"),
        "noise_adaptation": Param(bool, True, "scale features by sigmoid(Dense(sigma^2)) (ablation switch)"),
        "scenario_adaptation": Param(bool, True, "scale features by the |H|-spectrum network (ablation switch)"),
        "snr_db": Param(float, 10.0, "SNR (dB) the BS assumes: sigma^2 = 10^(-snr_db/10)", runtime=True),
    }
    taps = {"noise_scale": "noise-adaptation factors (channels,)",
            "scenario_scale": "scenario-adaptation factors (B, K, channels)"}

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"], "F": p["n_subcarriers"], "Nt": p["n_tx"],
                "D": p["n_subcarriers"] * p["n_data_symbols"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if p.size < 4 or p.size % 4:
            raise ValueError(f"extractor.asymmetric_encoder: size must be a positive multiple of 4, got {p.size}")
        if len(p.widths) != 2 or len(p.scenario_widths) != 2:
            raise ValueError("extractor.asymmetric_encoder: widths and scenario_widths take two values each")
        w0, w1 = (int(w) for w in p.widths)
        self.d = p.n_subcarriers * p.n_data_symbols
        side = p.size // 4
        self.c_e = math.ceil(2 * self.d / (side * side))
        self.backbone = nn.Sequential(conv_bn_relu(3, w0), ResBlock(w0, w0, 2), ResBlock(w0, w1, 2),
                                      ResBlock(w1, w1, 1))
        self.noise = NoiseAdaptation(w1) if p.noise_adaptation else None
        self.scenario = (ScenarioAdaptation(p.n_tx, w1, [int(w) for w in p.scenario_widths],
                                            p.scenario_hidden) if p.scenario_adaptation else None)
        self.to_grid = nn.Conv2d(w1, self.c_e, 3, padding=1)
        self.dense = nn.Linear(self.c_e * side * side, 2 * self.d)

    def forward(self, image, h=None):
        b, k = image.shape[:2]
        feat = self.backbone(image.reshape(b * k, *image.shape[2:]))      # (BK, w1, H/4, W/4)
        scale = torch.ones(1, feat.shape[1], device=feat.device, dtype=feat.dtype)
        if self.noise is not None:
            sigma2 = torch.tensor(noise_var(self.p.snr_db), device=feat.device, dtype=feat.dtype)
            a_noise = self.noise(sigma2)
            self.publish("noise_scale", a_noise)
            scale = scale * a_noise
        if self.scenario is not None:
            if h is None:
                raise ValueError("extractor.asymmetric_encoder: scenario_adaptation needs the CSI input 'h'")
            h_abs = h.abs().to(feat.dtype).reshape(b * k, *h.shape[2:])  # |H|, (BK, Nt, S, F)
            a_scen = self.scenario(h_abs)
            self.publish("scenario_scale", a_scen.reshape(b, k, -1))
            scale = scale * a_scen
        feat = feat * scale[:, :, None, None]
        v = torch.tanh(self.dense(self.to_grid(feat).flatten(1)))        # (BK, 2D), S_en
        data = torch.view_as_complex(v.reshape(b * k, self.d, 2).contiguous())
        return {"data": data.reshape(b, k, self.d)}
