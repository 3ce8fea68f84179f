"""RGB-thermal segmentation data for seed 002 (CSC-SA-Net, Sec. IV-B-b): procedural street
scenes or the real MFNet set read from a folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from flowgraph.block import Param, Port, Source
from flowgraph.errors import SemflowError
from flowgraph.registry import register

from . import _scenes

SPLITS = ("train", "val", "test")
_CACHE: dict = {}


def _synthetic(h: int, w: int, seed: int, sizes: dict) -> dict:
    """Every split of the generator as uint8 tensors, cached per process."""
    out = {}
    for i, split in enumerate(SPLITS):
        key = ("synthetic", _scenes.VERSION, h, w, seed, split, sizes[split])
        if key not in _CACHE:
            rgb, th, lab, night = _scenes.render_split(h, w, seed * 10 + i, sizes[split])
            _CACHE[key] = tuple(torch.from_numpy(a) for a in (rgb, th, lab, night))
        out[split] = _CACHE[key]
    return out


def _read_list(root: Path, split: str) -> list[str]:
    f = root / f"{split}.txt"
    if not f.is_file():
        raise SemflowError(f"source.rgbt: dataset mfnet: no split list {f}")
    return [line.strip().rsplit(".", 1)[0] if line.strip().endswith(".png") else line.strip()
            for line in f.read_text().splitlines() if line.strip()]


def _mfnet(path: str, h: int, w: int) -> dict:
    """MFNet's ir_seg_dataset layout: images/<name>.png (RGB + thermal as a 4th channel, uint8),
    labels/<name>.png (uint8 0..8), train.txt / val.txt / test.txt; names ending in N are night."""
    from PIL import Image

    root = Path(path).expanduser()
    if not path or not (root / "images").is_dir() or not (root / "labels").is_dir():
        raise SemflowError(f"source.rgbt: dataset mfnet needs 'path' with images/ and labels/ "
                           f"folders (MFNet's ir_seg_dataset), got {path!r}")
    out = {}
    for split in SPLITS:
        key = ("mfnet", str(root.resolve()), h, w, split)
        if key not in _CACHE:
            names = _read_list(root, split)
            rgb = np.empty((len(names), 3, h, w), np.uint8)
            th = np.empty((len(names), 1, h, w), np.uint8)
            lab = np.empty((len(names), h, w), np.uint8)
            for i, name in enumerate(names):
                img_f, lab_f = root / "images" / f"{name}.png", root / "labels" / f"{name}.png"
                if not img_f.is_file() or not lab_f.is_file():
                    raise SemflowError(f"source.rgbt: {split}.txt names {name!r}, but {img_f} or "
                                       f"{lab_f} is missing")
                with Image.open(img_f) as im:
                    if len(im.getbands()) != 4:
                        raise SemflowError(f"source.rgbt: {img_f} has {len(im.getbands())} channels; "
                                           f"MFNet images are RGB + thermal (4)")
                    a = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR))
                with Image.open(lab_f) as im:
                    lab[i] = np.asarray(im.convert("L").resize((w, h), Image.Resampling.NEAREST))
                rgb[i], th[i, 0] = a[..., :3].transpose(2, 0, 1), a[..., 3]
            night = np.array([n.endswith("N") for n in names], bool)
            _CACHE[key] = tuple(torch.from_numpy(x) for x in (rgb, th, lab, night))
        out[split] = _CACHE[key]
    return out


@register("source.rgbt")
class RGBTSource(Source):
    """Aligned RGB and thermal images with 9-class segmentation labels (seed 002, Sec. IV-B-b).

    dataset = "synthetic": procedural street scenes (``blocks/cscsanet/_scenes.py``) with
              MFNet's classes (0 unlabelled, 1 car, 2 person, 3 bike, 4 curve, 5 car_stop,
              6 guardrail, 7 color_cone, 8 bump), half of them at night; hot classes (car,
              person) stand out in thermal, cold classes (4-8) do not, and RGB is nearly
              dark at night. Fixed splits: ``num_train`` / ``num_val`` / ``num_eval`` scenes
              from three seeds derived from ``dataset_seed``, the same in every run.
    dataset = "mfnet":    MFNet's RGB-thermal set (Ha et al. 2017, ref. [51]) at ``path``
              (``images/``, ``labels/``, ``train.txt`` / ``val.txt`` / ``test.txt``), resized
              to height x width (bilinear images, nearest labels).

    Training batches draw scenes of the train split with ``self.generator`` (random
    left-right flips when ``flip``: "data augmentation by random image flipping", Sec. IV-C).
    ``eval_batches(split="test")`` streams the test split, ``split="val"`` the validation split
    (model selection by validation mIoU, Sec. III-H). The code's 5 test passes with fresh
    channel draws are the graph's ``evaluate.repeats``.

    forward() -> rgb real (B, 3, H, W) in [0, 1], thermal real (B, 1, H, W) in [0, 1],
                 label int (B, H, W) in 0..8, night bool (B,).
    """
    outputs = {"rgb": Port("real", ("B", 3, "H", "W"), tag="image", doc="RGB image (UE 1)"),
               "thermal": Port("real", ("B", 1, "H", "W"), tag="image", doc="thermal image (UE 2)"),
               "label": Port("int", ("B", "H", "W"), tag="label", doc="class per pixel (0 = unlabelled)"),
               "night": Port("bool", ("B",), doc="night scene")}
    params = {
        "dataset": Param(str, "synthetic", "synthetic (procedural scenes) or mfnet (the real set at path)",
                         choices=("synthetic", "mfnet")),
        "path": Param(str, "", "mfnet: the ir_seg_dataset folder"),
        "height": Param(int, 64, "image height H (MFNet: 480)"),
        "width": Param(int, 64, "image width W (MFNet: 640)"),
        "batch": Param(int, 16, "training batch (seed 002: 16 in Stages I and III)"),
        "flip": Param(bool, True, "random left-right flips of training images"),
        "num_train": Param(int, 2000, "synthetic: training scenes (MFNet has 784)"),
        "num_val": Param(int, 256, "synthetic: validation scenes (MFNet has 392)"),
        "num_eval": Param(int, 512, "synthetic: test scenes (MFNet has 393)"),
        "dataset_seed": Param(int, 2002, "synthetic: seed of the three splits"),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["height"], "W": p["width"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        for k in ("height", "width", "batch", "num_train", "num_val", "num_eval"):
            if p[k] < 1:
                raise SemflowError(f"source.rgbt: param '{k}' must be >= 1, got {p[k]}")
        if p.dataset == "synthetic":
            self.data = _synthetic(p.height, p.width, p.dataset_seed,
                                   {"train": p.num_train, "val": p.num_val, "test": p.num_eval})
        else:
            self.data = _mfnet(p.path, p.height, p.width)
        for split in SPLITS:
            if len(self.data[split][0]) == 0:
                raise SemflowError(f"source.rgbt: the {split} split is empty")

    def _batch(self, split: str, idx: torch.Tensor, flip: torch.Tensor | None = None) -> dict:
        rgb, th, lab, night = (t[idx] for t in self.data[split])
        rgb, th = rgb.float() / 255.0, th.float() / 255.0
        lab = lab.long()
        if flip is not None and flip.any():
            rgb[flip], th[flip], lab[flip] = rgb[flip].flip(-1), th[flip].flip(-1), lab[flip].flip(-1)
        return {k: v.to(self.device) for k, v in
                {"rgb": rgb, "thermal": th, "label": lab, "night": night.bool()}.items()}

    def forward(self):
        n = len(self.data["train"][0])
        idx = torch.randint(n, (int(self.p.batch),), generator=self.generator)
        flip = torch.rand(int(self.p.batch), generator=self.generator) < 0.5 if self.p.flip else None
        return self._batch("train", idx, flip)

    def _split(self, split: str) -> str:
        if split not in ("test", "val"):
            raise SemflowError(f"source.rgbt: unknown evaluation split {split!r} (test or val)")
        return split

    def num_eval_examples(self, split: str = "test") -> int:
        return len(self.data[self._split(split)][0])

    def eval_batches(self, batch_size: int = 0, split: str = "test"):
        split = self._split(split)
        bs = batch_size if batch_size and batch_size > 0 else int(self.p.batch)
        n = len(self.data[split][0])
        for a in range(0, n, bs):
            yield self._batch(split, torch.arange(a, min(a + bs, n)))

    def dataset_info(self) -> dict:
        p = self.p
        info = {"dataset": f"source.rgbt {p.dataset}", "path": p.path if p.dataset == "mfnet" else "",
                "split": "test", "count": self.num_eval_examples(), "size": [p.height, p.width],
                "train": len(self.data["train"][0]), "val": len(self.data["val"][0])}
        if p.dataset == "synthetic":
            info["generator"] = {"version": _scenes.VERSION, "dataset_seed": p.dataset_seed}
        return info

    def source_values_per_example(self) -> int:
        """RGB + thermal values of one example: 4 H W (seed 002: 4 x 480 x 640)."""
        return 4 * int(self.p.height) * int(self.p.width)
