"""Small blocks used only by the engine tests (registered under the 'testing' stage)."""
import torch
from torch import nn

from flowgraph import Block, Param, Port, Sink, Source, register


@register("testing.vectors")
class Vectors(Source):
    """Random real vectors (B, N); each held-out split (test, val) is 10 fixed vectors."""
    outputs = {"x": Port("real", ("B", "N"))}
    params = {"n": Param(int, 4), "batch": Param(int, 5)}

    @classmethod
    def bind_dims(cls, p):
        return {"N": p["n"]}

    def forward(self):
        return {"x": torch.randn(self.p.batch, self.p.n, generator=self.generator).to(self.device)}

    def eval_batches(self, batch_size, split="test"):
        g = torch.Generator().manual_seed(123 if split == "test" else 321)
        data = torch.randn(10, self.p.n, generator=g)
        for i in range(0, 10, batch_size):
            yield {"x": data[i:i + batch_size]}

    def num_eval_examples(self, split="test"):
        return 10

    def source_values_per_example(self):
        return self.p.n


@register("testing.affine")
class Affine(Block):
    """y = W x + b: (B, N) -> (B, M)."""
    inputs = {"x": Port("real", ("B", "N"))}
    outputs = {"y": Port("real", ("B", "M"))}
    params = {"n": Param(int, 4), "m": Param(int, 4)}

    @classmethod
    def bind_dims(cls, p):
        return {"N": p["n"], "M": p["m"]}

    def __init__(self, **p):
        super().__init__(**p)
        self.lin = nn.Linear(self.p.n, self.p.m)

    def forward(self, x):
        return {"y": self.lin(x)}


@register("testing.to_complex")
class ToComplex(Block):
    """(B, N) real -> (B, N/2) complex, pairing neighbours."""
    inputs = {"x": Port("real", ("B", "N"))}
    outputs = {"z": Port("complex", ("B", "...")), "tap_me": Port("real", ("B", "N"))}
    taps = {"energy": "per-example energy"}

    def forward(self, x):
        z = torch.view_as_complex(x.reshape(x.shape[0], -1, 2).contiguous())
        self.publish("energy", (z.abs() ** 2).sum(1))
        return {"z": z, "tap_me": x}


@register("testing.noise")
class Noise(Block):
    """Adds CN(0, sigma^2); sigma is a runtime param."""
    inputs = {"z": Port("complex", ("B", "..."))}
    outputs = {"z": Port("complex", ("B", "..."))}
    params = {"sigma": Param(float, 0.1, runtime=True)}
    channel_input = "z"

    def forward(self, z):
        return {"z": z + self.p.sigma * torch.randn_like(z)}


@register("testing.to_real")
class ToReal(Block):
    """(B, K) complex -> (B, 2K) real."""
    inputs = {"z": Port("complex", ("B", "..."))}
    outputs = {"x": Port("real", ("B", "N"))}

    def forward(self, z):
        return {"x": torch.view_as_real(z).reshape(z.shape[0], -1)}


@register("testing.nan_after")
class NanAfter(Block):
    """Passes x through, but returns NaN from call number ``at`` on (0 = never)."""
    inputs = {"x": Port("real", ("B", "N"))}
    outputs = {"x": Port("real", ("B", "N"))}
    params = {"at": Param(int, 0)}

    def __init__(self, **p):
        super().__init__(**p)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.p.at and self.calls >= self.p.at:
            x = x * float("nan")
        return {"x": x}


@register("testing.mse")
class MSE(Sink):
    """Per-example MSE."""
    inputs = {"pred": Port("real", ("B", "N")), "target": Port("real", ("B", "N"))}
    higher_is_better = False

    def forward(self, pred, target):
        return {"value": ((pred - target) ** 2).mean(1)}


@register("testing.two_in")
class TwoIn(Block):
    """a + b, with b optional."""
    inputs = {"a": Port("real", ("B", "N")), "b": Port("real", ("B", "N"), optional=True)}
    outputs = {"y": Port("real", ("B", "N"))}

    def forward(self, a, b=None):
        return {"y": a if b is None else a + b}
