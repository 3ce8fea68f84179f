"""Labelled multi-user image source for seed 003: K different images per example (one per UE)."""
from __future__ import annotations

from flowgraph.block import Param, Port, Source
from flowgraph.errors import SemflowError
from flowgraph.registry import register

from ..sources import DigitsSource, ImageSource


@register("source.multiuser")
class MultiUserSource(Source):
    """K labelled images per example, one per user (seed 003, Sec. IV: CIFAR-10, N_k = 4).

    dataset = "digits": scikit-learn's 8x8 digits (ships with scikit-learn, no download),
              upscaled to size x size and tinted (``source.digits``; 1438 train / 359 test
              images, 10 classes). The offline default.
    dataset = "cifar10": CIFAR-10 python batches at ``path`` (``source.images``; 50000 train,
              10000 test, 10 classes), the paper's dataset. Training: K independent random
              images per example (random crops when size < 32, left-right flips when ``flip``).
    The seed-003 loss needs labels (MSE + cross-entropy), so unlabelled sets are not offered.
    Evaluation example e holds the K consecutive held-out images e*K .. e*K+K-1 (the last
    incomplete group is dropped); ``eval_images`` caps the number of examples.

    forward() -> image real (B, K, 3, H, W) in [0, 1], label int (B, K).
    """
    outputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="one image per user"),
               "label": Port("int", ("B", "K"), tag="label", doc="class of each user's image")}
    params = {
        "dataset": Param(str, "digits", "digits (bundled, offline) or cifar10 (python batches at path)",
                         choices=("digits", "cifar10")),
        "path": Param(str, "", "cifar10: the 'cifar-10-batches-py' folder or its parent"),
        "num_users": Param(int, 4, "K = N_k images per example (seed 003: 4)"),
        "size": Param(int, 32, "image side H = W (CIFAR-10: 32)"),
        "batch": Param(int, 16, "training batch B (examples, i.e. B*K images)"),
        "eval_batch": Param(int, 0, "evaluation batch in examples; 0 = batch"),
        "eval_images": Param(int, 0, "cap on evaluation examples (0 = all)"),
        "flip": Param(bool, True, "cifar10: random left-right flips of training images"),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"], "K": p["num_users"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if p.num_users < 1 or p.batch < 1:
            raise SemflowError("source.multiuser: num_users and batch must be >= 1")
        k = p.num_users
        if p.dataset == "digits":
            self.inner = DigitsSource(size=p.size, batch=p.batch, eval_batch=p.eval_batch,
                                      eval_images=p.eval_images, num_users=k)
        else:
            self.inner = ImageSource(dataset="cifar10", path=p.path, size=p.size, batch=p.batch * k,
                                     eval_batch=(p.eval_batch or p.batch) * k,
                                     eval_images=p.eval_images * k, flip=p.flip)

    def seed(self, seed: int) -> None:
        super().seed(seed)
        self.inner.seed(seed)

    def _group(self, out: dict) -> dict:
        """Any (N, 3, H, W) / (B, K, 3, H, W) images and their labels -> (N // K, K, ...)."""
        k = self.p.num_users
        img = out["image"].reshape(-1, *out["image"].shape[-3:])       # every image of the batch
        lab = out["label"].reshape(-1)
        n = img.shape[0] - img.shape[0] % k                            # whole groups of K only
        return {"image": img[:n].reshape(-1, k, *img.shape[1:]).to(self.device),
                "label": lab[:n].reshape(-1, k).to(self.device)}

    def forward(self):
        self.inner.device = self.device
        return self._group(self.inner())

    def num_eval_examples(self) -> int:
        n = self.inner.num_eval_examples()
        return n if self.p.dataset == "digits" else n // self.p.num_users

    def eval_batches(self, batch_size: int = 0):
        self.inner.device = self.device
        k = self.p.num_users
        per = batch_size or self.p.eval_batch or self.p.batch
        if self.p.dataset == "digits":
            batches = self.inner.eval_batches(per)
        else:
            batches = self.inner.eval_batches(per * k)
        for data in batches:
            out = self._group(data)
            if out["image"].shape[0]:
                yield out

    def source_values_per_example(self) -> int:
        """All source values of one example: 3*H*W per user, times K users."""
        return 3 * self.p.size * self.p.size * self.p.num_users
