"""Channel ModNet pair g_a / g_s (seed 000 Sec. III-C, after WITT).

WITT (Yang, Liu, Dai, Qin, Niu, Zhang; "WITT: A Wireless Image Transmission Transformer
for Semantic Communications", ICASSP 2023) modulates the Swin features with the channel
SNR: a chain of L linear layers whose hidden features are scaled, layer by layer, by an
SNR-conditioned gate b_l(SNR) = sigmoid(FC(ReLU(FC(ReLU(FC(SNR)))))); a last linear layer
and a sigmoid give a per-feature factor s(x, SNR) in (0, 1):

    t_1 = W_1 x (.) b_1(SNR),  t_l = W_l t_(l-1) (.) b_l(SNR),  s = sigmoid(W_(L+1) t_L)
    encoder g_a: y = Head(x (.) s)                 (B, N, C) -> (B, N, c_out)
    decoder g_s: x = Head(y); x <- x (.) s(x, SNR)  (B, N, c_out) -> (B, N, C)

WITT's reference code detaches x at the first layer; here gradients flow through both
paths. The SNR (dB) is a runtime param, so it can be redrawn per batch while training and
swept at evaluation; it enters the gates as the raw dB value, as in WITT.
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register



class AdaptiveModulator(nn.Module):
    """b(SNR) = sigmoid(FC(ReLU(FC(ReLU(FC(SNR)))))), (B, 1) -> (B, M) (WITT)."""

    def __init__(self, m: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, m), nn.ReLU(), nn.Linear(m, m), nn.ReLU(),
                                 nn.Linear(m, m), nn.Sigmoid())

    def forward(self, snr):
        return self.net(snr)


class ModNet(nn.Module):
    """The SNR-adaptive modulation s(x, SNR) in (0, 1)^C (module docstring); returns x (.) s."""

    def __init__(self, dim: int, layers: int, hidden: int):
        super().__init__()
        self.sm = nn.ModuleList([nn.Linear(dim, hidden)] +
                                [nn.Linear(hidden, hidden) for _ in range(layers - 1)] +
                                [nn.Linear(hidden, dim)])
        self.bm = nn.ModuleList(AdaptiveModulator(hidden) for _ in range(layers))

    def forward(self, x, snr_db: float):
        b = x.shape[0]
        snr = x.new_full((b, 1), float(snr_db))
        t = x
        for sm, bm in zip(self.sm[:-1], self.bm):
            t = sm(t) * bm(snr).unsqueeze(1)
        return x * torch.sigmoid(self.sm[-1](t))


_COMMON = {
    "dim": Param(int, 320, "width C of the semantic features (the Swin encoder's last embed dim)"),
    "c_out": Param(int, 96, "channel-codeword width per token: CL = N * c_out real values, "
                            "N * c_out / 2 complex channel uses"),
    "layers": Param(int, 7, "modulated layers L (WITT: 7)"),
    "hidden": Param(int, 0, "hidden width M; 0 = int(1.5 * dim) as in WITT"),
    "snr_db": Param(float, 10.0, "channel SNR in dB that conditions the modulation", runtime=True),
}


def _check(where, p):
    if p.dim < 1 or p.c_out < 1 or p.layers < 1 or p.hidden < 0:
        raise ValueError(f"{where}: dim, c_out, layers must be >= 1 and hidden >= 0")


@register("extractor.channel_modnet")
class ChannelModNetEncoder(Block):
    """Channel encoder g_a of seed 000 (eq. 2, Sec. III-C): WITT's Channel ModNet + head.

    y = Head(x (.) s(x, SNR)), Head = Linear(C -> c_out); s from the SNR-gated layer chain
    of the module docstring. The real output is the codeword before the MIMO reshape
    (``tensor.stream_map``) and power normalisation.

    Shapes: x real (B, N, C) -> z real (B, N, c_out).
    """
    inputs = {"x": Port("real", ("B", "N", "C"), doc="semantic features")}
    outputs = {"z": Port("real", ("B", "N", "K"), doc="codeword, K = c_out real values per token")}
    params = dict(_COMMON)

    @classmethod
    def bind_dims(cls, p):
        return {"C": p["dim"], "K": p["c_out"]}

    def __init__(self, **params):
        super().__init__(**params)
        _check(self.type_id, self.p)
        hidden = self.p.hidden or int(1.5 * self.p.dim)
        self.mod = ModNet(self.p.dim, self.p.layers, hidden)
        self.head = nn.Linear(self.p.dim, self.p.c_out)

    def forward(self, x):
        return {"z": self.head(self.mod(x, self.p.snr_db))}


@register("decoder.channel_modnet")
class ChannelModNetDecoder(Block):
    """Channel decoder g_s of seed 000 (eq. 4, Sec. III-C): head then WITT's Channel ModNet.

    x_hat = h (.) s(h, SNR), h = Head(z), Head = Linear(c_out -> C).

    Shapes: z real (B, N, c_out) -> x real (B, N, C).
    """
    inputs = {"z": Port("real", ("B", "N", "K"), doc="received codeword (after the MIMO combiner)")}
    outputs = {"x": Port("real", ("B", "N", "C"), doc="recovered semantic features x_hat")}
    params = dict(_COMMON)

    bind_dims = ChannelModNetEncoder.bind_dims

    def __init__(self, **params):
        super().__init__(**params)
        _check(self.type_id, self.p)
        hidden = self.p.hidden or int(1.5 * self.p.dim)
        self.head = nn.Linear(self.p.c_out, self.p.dim)
        self.mod = ModNet(self.p.dim, self.p.layers, hidden)

    def forward(self, z):
        return {"x": self.mod(self.head(z), self.p.snr_db)}
