"""Small blocks used only by the engine tests (registered under the 'testing' stage)."""
import time

import torch
from torch import nn

from flowgraph import Block, Param, Port, SemflowError, Sink, Source, register


@register("testing.vectors")
class Vectors(Source):
    """Random real vectors (B, N); held-out splits of fixed vectors: test (10, the default)
    and val (6, disjoint draws), the latter only when ``val`` is true. With
    ``sequential``, training row i is always the same vector (seeded by i), so two batches
    of 5 hold the same rows as one batch of 10."""
    outputs = {"x": Port("real", ("B", "N"))}
    params = {"n": Param(int, 4), "batch": Param(int, 5), "val": Param(bool, True),
              "sequential": Param(bool, False)}

    def __init__(self, **p):
        super().__init__(**p)
        self.rows = 0

    @classmethod
    def bind_dims(cls, p):
        return {"N": p["n"]}

    def forward(self):
        if self.p.sequential:
            x = torch.stack([torch.randn(self.p.n, generator=torch.Generator().manual_seed(1000 + self.rows + i))
                             for i in range(self.p.batch)])
            self.rows += self.p.batch
            return {"x": x.to(self.device)}
        return {"x": torch.randn(self.p.batch, self.p.n, generator=self.generator).to(self.device)}

    #: held-out splits: fixed vectors (seed, count); "val" (disjoint draws) only when ``val``
    SPLITS = {"test": (123, 10), "val": (456, 6)}
    dataset_info = {"name": "gaussian vectors", "splits": {"test": 10, "val": 6}}

    def _split(self, split):
        if split in self.SPLITS and (split != "val" or self.p.val):
            return self.SPLITS[split]
        raise SemflowError(f"source '{self.name}' (testing.vectors) has no '{split}' split")

    def eval_batches(self, batch_size, split="test"):
        seed, n = self._split(split)
        data = torch.randn(n, self.p.n, generator=torch.Generator().manual_seed(seed))
        for i in range(0, n, batch_size):
            yield {"x": data[i:i + batch_size]}

    def num_eval_examples(self, split="test"):
        return self._split(split)[1]

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


@register("testing.error_flag")
class ErrorFlag(Sink):
    """1 where an example's MSE exceeds ``threshold``, else 0: a per-example error event
    (like a block error), so a proportion shown on a log axis.

    Shapes: pred real (B, N), target real (B, N) -> value real (B,) in {0, 1}."""
    inputs = {"pred": Port("real", ("B", "N")), "target": Port("real", ("B", "N"))}
    params = {"threshold": Param(float, 0.5, "MSE above which an example counts as an error")}
    higher_is_better = False
    scale = "log"
    proportion = True

    def forward(self, pred, target):
        return {"value": (((pred - target) ** 2).mean(1) > self.p.threshold).float()}


@register("testing.set_nmse")
class SetNMSE(Sink):
    """A set-level metric: NMSE of the whole set, sum ||pred - target||^2 / sum ||target||^2,
    from additive per-example stats (B, 2); ``value`` is the per-example ratio, whose mean differs.

    Shapes: pred real (B, N), target real (B, N) -> value real (B,), stats real (B, 2)."""
    inputs = {"pred": Port("real", ("B", "N")), "target": Port("real", ("B", "N"))}
    outputs = {"value": Port("real", ("B",)), "stats": Port("real", ("B", 2))}
    higher_is_better = False
    set_suffix = "of_set"

    def forward(self, pred, target):
        err, ref = ((pred - target) ** 2).sum(1), (target ** 2).sum(1)
        return {"value": err / ref, "stats": torch.stack([err, ref], dim=1)}

    def reduce_stats(self, stats):
        return float(stats[:, 0].sum() / stats[:, 1].sum())


@register("testing.sleep")
class Sleep(Block):
    """Passes x through after sleeping ``delay`` seconds (to interrupt a run mid-training).

    Shapes: x real (B, N) -> x real (B, N)."""
    inputs = {"x": Port("real", ("B", "N"))}
    outputs = {"x": Port("real", ("B", "N"))}
    params = {"delay": Param(float, 0.0, "seconds per call", runtime=True)}

    def forward(self, x):
        if self.p.delay > 0:
            time.sleep(self.p.delay)
        return {"x": x}


@register("testing.images")
class Images(Source):
    """Random RGB images (B, 3, 8, 8) in [0, 1]; the held-out split is 6 fixed images.

    Shapes: -> image real (B, 3, 8, 8)."""
    outputs = {"image": Port("real", ("B", 3, 8, 8), tag="image")}
    params = {"batch": Param(int, 4)}

    def forward(self):
        return {"image": torch.rand(self.p.batch, 3, 8, 8, generator=self.generator).to(self.device)}

    def eval_batches(self, batch_size):
        data = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(5))
        for i in range(0, 6, batch_size):
            yield {"image": data[i:i + batch_size]}

    def num_eval_examples(self):
        return 6

    def source_values_per_example(self):
        return 3 * 8 * 8


@register("testing.image_noise")
class ImageNoise(Block):
    """image + sigma * N(0, 1) through a trainable 1x1 convolution.

    Shapes: image real (B, 3, H, W) -> image real (B, 3, H, W)."""
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image")}
    outputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image")}
    params = {"sigma": Param(float, 0.1, runtime=True)}

    def __init__(self, **p):
        super().__init__(**p)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, image):
        return {"image": self.conv(image + self.p.sigma * torch.randn_like(image))}
class _Width(Block):
    """Blocks whose vectors have n entries (port symbol N)."""
    params = {"n": Param(int, 4)}

    @classmethod
    def bind_dims(cls, p):
        return {"N": p["n"]}


@register("testing.branch")
class Branch(_Width):
    """y = base(x) + control(x), two same-shaped linear maps (B, N) -> (B, N): a frozen base
    with a trainable branch, as in ControlNet-style fine-tuning."""
    inputs = {"x": Port("real", ("B", "N"))}
    outputs = {"y": Port("real", ("B", "N"))}

    def __init__(self, **p):
        super().__init__(**p)
        self.base = nn.Linear(self.p.n, self.p.n)
        self.control = nn.Linear(self.p.n, self.p.n)

    def forward(self, x):
        return {"y": self.base(x) + self.control(x)}


@register("testing.critic")
class Critic(_Width):
    """A discriminator: one linear score per example for real and for fake inputs, same
    weights for both: real (B, N), fake (B, N) -> real (B,), fake (B,). Counts training calls."""
    inputs = {"real": Port("real", ("B", "N")), "fake": Port("real", ("B", "N"))}
    outputs = {"real": Port("real", ("B",)), "fake": Port("real", ("B",))}

    def __init__(self, **p):
        super().__init__(**p)
        self.score = nn.Linear(self.p.n, 1)
        self.calls = 0

    def forward(self, real, fake):
        self.calls += self.training
        return {"real": self.score(real).squeeze(1), "fake": self.score(fake).squeeze(1)}
