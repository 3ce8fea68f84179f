"""Multi-user image source for seed 003: K different images per example (one per UE)."""
from __future__ import annotations

from flowgraph.block import Param, Port, Source
from flowgraph.registry import register

from ..sources import DigitsSource, ImageSource, _check_min


@register("source.multiuser")
class MultiUserSource(Source):
    """K images per example, one per user (seed 003 MU-MIMO OFDM, Sec. IV: CIFAR-10, N_k = 4).

    dataset = "digits": scikit-learn's 8x8 digits (ships with scikit-learn, no download),
              upscaled to size x size and tinted (``source.digits``; 1438 train / 359 test
              images, 10 classes). The offline default.
    dataset = "cifar10": CIFAR-10 python batches at ``path`` (50000 train, 10000 test).
    dataset = "folder": a folder or uncompressed .tar at ``path``, read by ``source.images``
              (class folders give labels, e.g. the CIFAR-10 JPEG tar with
              ``test_per_class: 500``; photos without labels give label -1).
    dataset = "bundled": the photos shipped in installed packages (``source.images``),
              unlabelled (-1): for systems whose loss needs no labels (seed 001's MSE/MS-SSIM).
    Training: K independent random images per example (random crops and left-right flips
    for the photo and CIFAR sets when ``flip``). Evaluation example e holds the K consecutive
    held-out images e*K .. e*K+K-1 (the last incomplete group is dropped); ``eval_images``
    caps the number of examples, ``eval_repeats`` = R passes over them (fresh channel
    draws per pass), ``val_per_class`` gives a 'val' split (see ``source.images``).

    forward() -> image real (B, K, 3, H, W) in [0, 1], label int (B, K) (-1: unlabelled).
    """
    outputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="one image per user"),
               "label": Port("int", ("B", "K"), tag="label", doc="class of each user's image, -1 if none")}
    params = {
        "dataset": Param(str, "digits", "digits (bundled, labelled), cifar10 (python batches at path), "
                         "folder (a folder or .tar at path) or bundled (photos, unlabelled)",
                         choices=("digits", "cifar10", "folder", "bundled")),
        "path": Param(str, "", "cifar10: the 'cifar-10-batches-py' folder or its parent; folder: the "
                               "folder or .tar of images"),
        "num_users": Param(int, 4, "K = N_k images per example (seed 003: 4)"),
        "size": Param(int, 32, "image side H = W (CIFAR-10: 32)"),
        "batch": Param(int, 16, "training batch B (examples, i.e. B*K images)"),
        "eval_batch": Param(int, 0, "evaluation batch in examples; 0 = batch"),
        "eval_images": Param(int, 0, "cap on evaluation examples (0 = all)"),
        "eval_repeats": Param(int, 1, "R: passes over the held-out examples in one evaluation"),
        "flip": Param(bool, True, "cifar10/folder/bundled: random left-right flips of training images"),
        "test_per_class": Param(int, 0, "folder without a test split: the last N images per class "
                                        "by index are the test split (see source.images)"),
        "val_per_class": Param(int, 0, "the last N training images per class are the 'val' split"),
        "labels": Param(str, "auto", "folder: class labels from folder names (see source.images)",
                        choices=("auto", "folders", "none")),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"], "K": p["num_users"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        _check_min("source.multiuser", p, num_users=1, batch=1, eval_batch=0, eval_images=0,
                   eval_repeats=1, test_per_class=0, val_per_class=0)
        k = p.num_users
        if p.dataset == "digits":
            self.inner = DigitsSource(size=p.size, batch=p.batch, eval_batch=p.eval_batch,
                                      eval_images=p.eval_images, num_users=k, val_per_class=p.val_per_class)
        else:   # repeats stay here, so that the grouping into K is the same in every pass
            extra = {} if p.dataset == "cifar10" else {"test_per_class": p.test_per_class, "labels": p.labels}
            self.inner = ImageSource(dataset=p.dataset, path=p.path, size=p.size, batch=p.batch * k,
                                     eval_batch=(p.eval_batch or p.batch) * k, eval_images=p.eval_images * k,
                                     flip=p.flip, val_per_class=p.val_per_class, **extra)

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

    def num_eval_examples(self, split: str = "test") -> int:
        self.inner.name = self.name
        n = self.inner.num_eval_examples(split)
        return (n if self.p.dataset == "digits" else n // self.p.num_users) * self.p.eval_repeats

    def eval_batches(self, batch_size: int = 0, split: str = "test"):
        self.inner.device, self.inner.name = self.device, self.name
        per = batch_size or self.p.eval_batch or self.p.batch
        per = per if self.p.dataset == "digits" else per * self.p.num_users
        self.inner.num_eval_examples(split)            # a missing split raises now
        return self._batches(per, split)

    def _batches(self, per: int, split: str):
        for _ in range(self.p.eval_repeats):
            for data in self.inner.eval_batches(per, split):
                out = self._group(data)
                if out["image"].shape[0]:
                    yield out

    @property
    def dataset_info(self) -> dict:
        info = self.inner.dataset_info
        splits = {s: None if n is None else (n if self.p.dataset == "digits" else n // self.p.num_users)
                  * self.p.eval_repeats for s, n in info["splits"].items() if s != "train"}
        return {**info, "count": splits["test"], "splits": {**info["splits"], **splits},
                "num_users": self.p.num_users, "eval_repeats": self.p.eval_repeats,
                "unit": f"examples of {self.p.num_users} images"}

    def source_values_per_example(self) -> int:
        """All source values of one example: 3*H*W per user, times K users."""
        return 3 * self.p.size * self.p.size * self.p.num_users
