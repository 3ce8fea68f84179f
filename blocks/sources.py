"""Source blocks: natural-image crops (bundled photos, a folder, CIFAR-10) and colour digits.

Nothing here downloads. ``source.images`` with ``dataset: bundled`` crops the colour
photos that ship inside installed packages (scikit-image, scikit-learn, matplotlib);
``source.digits`` is scikit-learn's 8x8 digits, upscaled and tinted. Train/eval splits
are fixed and documented in docs/datasets.md. Decoded data is cached per process, so
building a block twice costs nothing the second time.

Randomness: training batches draw only from ``self.generator`` (saved in checkpoints by
:class:`Source`); evaluation never touches it, so the held-out set is the same for every
seed and every call.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flowgraph.block import Param, Port, Source
from flowgraph.errors import SemflowError
from flowgraph.registry import register

#: Colour photos shipped inside installed packages: name -> (package, file inside it).
#: Files are read straight from the package folder, never through a fetcher, so a
#: version of a package that lacks a file can never trigger a download.
BUNDLED_PHOTOS = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),          # skimage.data.cat is the same photo
    "coffee": ("skimage", "data/coffee.png"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "immunohistochemistry": ("skimage", "data/ihc.png"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),  # the right view is a near-duplicate
    "retina": ("skimage", "data/retina.jpg"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
#: Held-out photos: evaluation crops come only from these, training never sees them.
TEST_PHOTOS = ("chelsea", "coffee")
#: A crop whose luminance std is below this (on [0, 1]) is "flat" (sky, black borders)
#: and is never used from bundled photos: it carries almost no structure to learn from.
FLAT_STD = 0.02
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"

_CACHE: dict = {}   # decoded data shared by every block of this process


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _package_file(package: str, rel: str) -> str | None:
    """Path of a data file inside an installed package (without importing it), or None."""
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            return path
    return None


def _read_image(path: str, short_side: int, min_side: int) -> torch.Tensor:
    """Decode an image to uint8 (3, H, W). A larger image is downscaled so min(H, W) =
    short_side (0: keep native); any image is upscaled so min(H, W) >= min_side (the crop)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        target = max(min(short_side or min(w, h), min(w, h)), min_side)
        if target != min(w, h):
            s = target / min(w, h)
            im = im.resize((max(target, round(w * s)), max(target, round(h * s))),
                           Image.Resampling.LANCZOS)
        arr = np.array(im, dtype=np.uint8)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _structured_positions(photo: torch.Tensor, size: int) -> torch.Tensor:
    """Top-left corners (flat index y*(W-size+1)+x) of every non-flat size x size crop."""
    lum = photo.numpy().mean(0) / 255.0          # float64; numpy: no thread-pool overhead
    n = size * size

    def box_sum(t):   # sum over every size x size window, via an integral image
        ii = np.zeros((t.shape[0] + 1, t.shape[1] + 1))
        ii[1:, 1:] = t.cumsum(0).cumsum(1)
        return ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]

    mean = box_sum(lum) / n
    var = np.maximum(box_sum(lum * lum) / n - mean * mean, 0.0)
    return torch.from_numpy(np.flatnonzero(np.sqrt(var) >= FLAT_STD).astype(np.int32))


def _grid_crops(photo: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping size x size crops on a grid centred in the photo, row-major,
    flat ones dropped: uint8 (N, 3, size, size)."""
    _, h, w = photo.shape
    ny, nx = h // size, w // size
    y0, x0 = (h - ny * size) // 2, (w - nx * size) // 2
    crops = (photo[:, y0:y0 + ny * size, x0:x0 + nx * size]
             .reshape(3, ny, size, nx, size).permute(1, 3, 0, 2, 4).reshape(-1, 3, size, size))
    std = crops.double().mean(1).flatten(1).std(1, unbiased=False) / 255.0
    return crops[std >= FLAT_STD]


def _center(photo: torch.Tensor, size: int) -> torch.Tensor:
    h, w = photo.shape[-2:]
    y, x = (h - size) // 2, (w - size) // 2
    return photo[..., y:y + size, x:x + size]


def _fit(x: torch.Tensor, size: int, crop: str, g: torch.Generator | None) -> torch.Tensor:
    """Equal-size uint8 images (N, 3, h, w) -> float (N, 3, size, size) in [0, 1]:
    cropped when larger (random or centred), bilinearly upscaled when smaller."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        return F.interpolate(x.float() / 255.0, size=(size, size), mode="bilinear",
                             align_corners=False).clamp_(0.0, 1.0)
    if (h, w) != (size, size):
        if crop == "random":
            u = torch.rand(len(x), 2, generator=g)
            ys = (u[:, 0] * (h - size + 1)).long().tolist()
            xs = (u[:, 1] * (w - size + 1)).long().tolist()
            x = torch.stack([im[:, y:y + size, xx:xx + size] for im, y, xx in zip(x, ys, xs)])
        else:
            x = _center(x, size)
    return x.float() / 255.0


def _even_subset(n: int, cap: int) -> torch.Tensor:
    """Indices of ``cap`` items spread evenly over n (all of them when cap is 0 or >= n)."""
    if cap <= 0 or cap >= n:
        return torch.arange(n)
    return torch.linspace(0, n - 1, cap).round().long()


class _Data:
    """One dataset split in memory.

    train: a list of uint8 photos (3, H, W), each at least size x size (bundled, folder),
           or one uint8 array (N, 3, h, w) of equal-size images (CIFAR-10).
    eval_x: uint8 (M, 3, h, w), already size x size except for CIFAR-10 (fitted per batch).
    positions: optional per-photo tables of non-flat crop corners (bundled photos).
    """

    def __init__(self, train, train_y, eval_x, eval_y, train_names, test_names, positions=None):
        self.train, self.train_y = train, train_y
        self.eval_x, self.eval_y = eval_x, eval_y
        self.train_names, self.test_names = list(train_names), list(test_names)
        self.positions = positions
        if positions is not None:
            self.pos_all = torch.cat(positions)
            self.pos_end = torch.tensor([len(p) for p in positions]).cumsum(0)

    def sample(self, n, size, crop, flip, g):
        """n training images float (n, 3, size, size) and labels (n,), drawn with g."""
        if isinstance(self.train, torch.Tensor):
            idx = torch.randint(len(self.train), (n,), generator=g)
            x, y = _fit(self.train[idx], size, crop, g), self.train_y[idx]
        else:
            if self.positions is not None and crop == "random":
                # uniform over every non-flat crop of every training photo
                k = torch.randint(len(self.pos_all), (n,), generator=g)
                which = torch.searchsorted(self.pos_end, k, right=True)
                flat = self.pos_all[k].long()
                widths = torch.tensor([p.shape[-1] - size + 1 for p in self.train])[which]
                corners = list(zip((flat // widths).tolist(), (flat % widths).tolist()))
            else:
                which = torch.randint(len(self.train), (n,), generator=g)
                u = torch.rand(n, 2, generator=g)
                corners = []
                for j, i in enumerate(which.tolist()):
                    h, w = self.train[i].shape[-2:]
                    if crop == "random":
                        corners.append((int(u[j, 0] * (h - size + 1)), int(u[j, 1] * (w - size + 1))))
                    else:
                        corners.append(((h - size) // 2, (w - size) // 2))
            x = torch.stack([self.train[i][:, cy:cy + size, cx:cx + size]
                             for i, (cy, cx) in zip(which.tolist(), corners)]).float() / 255.0
            y = self.train_y[which]
        if flip:
            f = (torch.rand(n, generator=g) < 0.5).view(-1, 1, 1, 1)
            x = torch.where(f, x.flip(-1), x)
        return x, y


# ----------------------------------------------------------------------------- loaders

def _load_bundled(short_side: int, size: int) -> _Data:
    def make():
        train, positions, train_names, eval_crops = [], [], [], []
        for name, (package, rel) in BUNDLED_PHOTOS.items():
            path = _package_file(package, rel)
            if path is None:
                if name in TEST_PHOTOS:
                    raise SemflowError(f"source.images: bundled test photo '{name}' ({package}/{rel}) "
                                       f"is not installed; install {package} or use dataset: folder")
                continue   # this package version lacks the photo: train on the others
            photo = _read_image(path, short_side, size)
            if name in TEST_PHOTOS:
                eval_crops.append(_grid_crops(photo, size))
            else:
                pos = _structured_positions(photo, size)
                if len(pos):
                    train.append(photo)
                    positions.append(pos)
                    train_names.append(name)
        eval_x = torch.cat(eval_crops)
        return _Data(train, torch.full((len(train),), -1, dtype=torch.long), eval_x,
                     torch.full((len(eval_x),), -1, dtype=torch.long),
                     train_names, list(TEST_PHOTOS), positions)
    return _cached(("bundled", short_side, size), make)


def _list_images(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")),
                  key=lambda p: p.relative_to(root).as_posix())


def _load_folder(path: str, short_side: int, size: int, test_every: int) -> _Data:
    where = f"source.images: param 'path' = '{path}'"
    root = Path(path).expanduser()
    if not path:
        raise SemflowError("source.images: dataset 'folder' needs param 'path' (a folder of images)")
    if not root.is_dir():
        raise SemflowError(f"{where}: no such folder")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_files, test_files = _list_images(root / "train"), _list_images(root / "test")
        for sub, files in (("train", train_files), ("test", test_files)):
            if not files:
                raise SemflowError(f"{where}: no images (png/jpg) in '{root / sub}'")
    else:
        files = _list_images(root)
        if len(files) < 2:
            raise SemflowError(f"{where}: found {len(files)} images (png/jpg); "
                               f"need at least 2 to split train/test")
        test_files = files[::test_every]     # files 0, test_every, 2*test_every, ... in sorted order
        train_files = [f for i, f in enumerate(files) if i % test_every]

    def decode(f: Path) -> torch.Tensor:
        st = f.stat()
        try:
            return _cached(("file", str(f.resolve()), st.st_mtime_ns, st.st_size, short_side, size),
                           lambda: _read_image(str(f), short_side, size))
        except Exception as exc:
            raise SemflowError(f"{where}: cannot read image '{f}': {type(exc).__name__}: {exc}") from None

    train = [decode(f) for f in train_files]
    eval_x = torch.stack([_center(decode(f), size) for f in test_files])
    rel = lambda fs: [f.relative_to(root).as_posix() for f in fs]   # noqa: E731
    return _Data(train, torch.full((len(train),), -1, dtype=torch.long), eval_x,
                 torch.full((len(eval_x),), -1, dtype=torch.long), rel(train_files), rel(test_files))


def _load_cifar10(path: str) -> _Data:
    if not path:
        raise SemflowError("source.images: dataset 'cifar10' needs param 'path' "
                           "(the 'cifar-10-batches-py' folder or its parent)")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SemflowError(f"source.images: param 'path' = '{path}': no such folder")
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    for name in CIFAR_TRAIN + (CIFAR_TEST,):
        if not (folder / name).is_file():
            raise SemflowError(f"source.images: CIFAR-10 file '{name}' not found in '{folder}' "
                               f"(param 'path' = '{path}')")

    def read(name):
        # the official python-pickle batches: {b"data": uint8 (N, 3072), b"labels": [int]}
        try:
            with open(folder / name, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            data = np.asarray(d.get(b"data", d.get("data")), dtype=np.uint8)
            labels = np.asarray(d.get(b"labels", d.get("labels")), dtype=np.int64)
            if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
                raise ValueError(f"data {data.shape}, {len(labels)} labels")
        except Exception as exc:
            raise SemflowError(f"source.images: '{folder / name}' is not a CIFAR-10 python batch: "
                               f"{type(exc).__name__}: {exc}") from None
        return torch.from_numpy(data).view(-1, 3, 32, 32), torch.from_numpy(labels)

    def make():
        parts = [read(n) for n in CIFAR_TRAIN]
        test_x, test_y = read(CIFAR_TEST)
        return _Data(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                     test_x, test_y, CIFAR_TRAIN, [CIFAR_TEST])
    key = tuple((folder / n).stat().st_mtime_ns for n in CIFAR_TRAIN + (CIFAR_TEST,))
    return _cached(("cifar10", str(folder.resolve()), key), make)


# ----------------------------------------------------------------------------- blocks

def _check_min(where: str, p, **minimums) -> None:
    for name, lo in minimums.items():
        if p[name] < lo:
            raise SemflowError(f"{where}: param '{name}' must be >= {lo}, got {p[name]}")


def _to_batches(x_of, y_of, n: int, batch: int, device):
    """Yield {"image", "label"} over items 0..n-1 in order, ``batch`` at a time."""
    for a in range(0, n, batch):
        b = min(a + batch, n)
        yield {"image": x_of(a, b).to(device), "label": y_of(a, b).to(device)}


_COMMON_PARAMS = {
    "size": Param(int, 32, "crop side: images are size x size (binds H = W = size)"),
    "batch": Param(int, 16, "training batch size B of forward()"),
    "eval_batch": Param(int, 0, "evaluation batch size; 0 = same as batch. A positive "
                                "batch_size passed to eval_batches() takes precedence"),
    "eval_images": Param(int, 0, "cap on the evaluation set size (0 = the whole held-out "
                                 "set); the kept examples are spread evenly over it"),
}


class _ImageSourceBase(Source):
    outputs = {
        "image": Port("real", ("B", 3, "H", "W"), tag="image", doc="images in [0, 1], float32"),
        "label": Port("int", ("B",), tag="label", doc="class index, -1 when unlabelled"),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"]}

    def eval_batch_size(self, requested: int = 0) -> int:
        return requested if requested and requested > 0 else (self.p.eval_batch or self.p.batch)


@register("source.images")
class ImageSource(_ImageSourceBase):
    """Natural-image crops: bundled photos (default, offline), a folder, or CIFAR-10.

    forward() -> image real (B, 3, H, W) float32 in [0, 1], H = W = size;
                 label int (B,) (CIFAR-10 class, or -1: bundled and folder are unlabelled).
    Training batches (B = batch) are crops drawn with ``self.generator``: random position
    (``crop: random``) or centred (``crop: center``), flipped left-right with probability
    1/2 when ``flip``. ``eval_batches(n)`` yields the fixed held-out set once, in order:

    * bundled: photos shipped in scikit-image / scikit-learn / matplotlib, resized to a
      short side of ``short_side`` px. Test photos (chelsea, coffee) are never trained on;
      eval = non-overlapping grid crops of them. Flat crops (luminance std < 0.02) are
      never used. 189 eval crops at size 32.
    * folder: images under ``path`` (recursive); ``train/`` + ``test/`` subfolders if both
      exist, else every ``test_every``-th file (sorted, starting with the first) is test.
      eval = one centre crop per test image.
    * cifar10: ``data_batch_1..5`` train, ``test_batch`` eval (10000); size < 32 crops,
      size > 32 upscales bilinearly.
    * digits: the labelled colour digits of ``source.digits`` (bundled, 359 eval images),
      so a chain built on ``source.images`` (e.g. the JPEG baselines) can be evaluated on
      the same images as the seed-003 graphs. crop, flip and short_side do not apply.

    See docs/datasets.md.
    """
    params = {
        "dataset": Param(str, "bundled", "bundled (photos shipped in installed packages, no "
                         "download), folder (images under path), cifar10 (python batches at path) or "
                         "digits (source.digits, labelled, bundled)",
                         choices=("bundled", "folder", "cifar10", "digits")),
        "path": Param(str, "", "folder of images (folder) or of the CIFAR-10 batches (cifar10)"),
        **_COMMON_PARAMS,
        "crop": Param(str, "random", "training crop position; evaluation always uses fixed crops",
                      choices=("random", "center")),
        "flip": Param(bool, True, "random left-right flip of training crops"),
        "short_side": Param(int, 256, "bundled/folder: downscale larger images so their shorter "
                            "side is this many px before cropping (0 = native); images smaller "
                            "than the crop are upscaled to size"),
        "test_every": Param(int, 10, "folder without train/ and test/: every test_every-th "
                            "file in sorted order is held out for evaluation"),
    }

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        _check_min("source.images", p, size=1, batch=1, eval_batch=0, eval_images=0,
                   short_side=0, test_every=2)
        self.digits = None
        if p.dataset == "digits":
            self.digits = DigitsSource(size=p.size, batch=p.batch, eval_batch=p.eval_batch,
                                       eval_images=p.eval_images)
            self.digits.generator = self.generator   # one RNG: seeded and checkpointed with this block
            self.train_names, self.test_names = ("digits train split",), ("digits test split",)
            return
        if p.dataset == "bundled":
            self.data = _load_bundled(p.short_side, p.size)
        elif p.dataset == "folder":
            self.data = _load_folder(p.path, p.short_side, p.size, p.test_every)
        else:
            self.data = _load_cifar10(p.path)
        #: names of the photos / files / batches each split comes from (disjoint)
        self.train_names, self.test_names = self.data.train_names, self.data.test_names
        self._eval_idx = _even_subset(len(self.data.eval_x), p.eval_images)

    def forward(self):
        if self.digits is not None:
            self.digits.device = self.device
            return self.digits()
        x, y = self.data.sample(self.p.batch, self.p.size, self.p.crop, self.p.flip, self.generator)
        return {"image": x.to(self.device), "label": y.to(self.device)}

    def num_eval_examples(self) -> int:
        if self.digits is not None:
            return self.digits.num_eval_examples()
        return len(self._eval_idx)

    def eval_batches(self, batch_size: int = 0):
        if self.digits is not None:
            self.digits.device = self.device
            return self.digits.eval_batches(self.eval_batch_size(batch_size))
        idx, d = self._eval_idx, self.data
        return _to_batches(lambda a, b: _fit(d.eval_x[idx[a:b]], self.p.size, "center", None),
                           lambda a, b: d.eval_y[idx[a:b]],
                           len(idx), self.eval_batch_size(batch_size), self.device)

    def source_values_per_example(self) -> int:
        return 3 * self.p.size * self.p.size


# ----------------------------------------------------------------------------- digits

#: seed of the fixed per-image colours of source.digits (independent of the block seed)
DIGIT_COLOUR_SEED = 1797


def _load_digits(size: int, test_fraction: float):
    def make():
        # The file behind sklearn.datasets.load_digits (bundled, no download), read directly
        # because importing sklearn.datasets costs seconds: rows of 64 pixels (0-16) + label.
        path = _package_file("sklearn", "datasets/data/digits.csv.gz")
        if path is not None:
            table = np.loadtxt(path, delimiter=",", dtype=np.float32)
            pixels, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
        else:
            from sklearn.datasets import load_digits
            d = load_digits()
            pixels, target = d.images.astype(np.float32), d.target.astype(np.int64)
        ink = torch.from_numpy(pixels).unsqueeze(1) / 16.0                    # (N, 1, 8, 8)
        ink = F.interpolate(ink, size=(size, size), mode="bilinear", align_corners=False)
        # Fixed colours per image: a dark background and a bright ink colour, swapped for
        # half the images, so the three channels differ but the digit stays legible.
        g = torch.Generator().manual_seed(DIGIT_COLOUR_SEED)
        n = len(ink)
        dark, bright = 0.35 * torch.rand(n, 3, generator=g), 0.65 + 0.35 * torch.rand(n, 3, generator=g)
        swap = (torch.rand(n, 1, generator=g) < 0.5)
        bg, fg = torch.where(swap, bright, dark), torch.where(swap, dark, bright)
        rgb = bg[:, :, None, None] + (fg - bg)[:, :, None, None] * ink
        rgb = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
        labels = torch.from_numpy(target)
        # Stratified split: the last test_fraction of each class (in file order) is test.
        test = torch.zeros(n, dtype=torch.bool)
        for c in range(10):
            members = (labels == c).nonzero().squeeze(1)
            k = int(round(test_fraction * len(members)))
            if k:
                test[members[len(members) - k:]] = True
        return rgb[~test], labels[~test], rgb[test], labels[test]
    return _cached(("digits", size, test_fraction), make)


@register("source.digits")
class DigitsSource(_ImageSourceBase):
    """Colour handwritten digits 0-9 (scikit-learn's 1797 8x8 digits), labelled, offline.

    forward() -> image real (B, 3, H, W) in [0, 1], label int (B,) in 0..9 (num_users = 1);
                 image (B, K, 3, H, W), label (B, K) with K = num_users > 1, the K images
                 of an example being K different images (one per user).
    Ports are declared (B, ..., 3, H, W) and (B, ...) to cover both. Each 8x8 digit is
    bilinearly upscaled to size x size and painted with a fixed random ink/background
    colour pair (seed 1797, independent of the block seed; dark-on-bright for half).
    Split: the last ``test_fraction`` of each class in file order is test (359 of 1797 at
    0.2). Eval examples group consecutive test images K at a time (floor(359/K) examples).
    No augmentation: a flipped digit is not the same digit.
    """
    outputs = {
        "image": Port("real", ("B", "...", 3, "H", "W"), tag="image",
                      doc="images in [0, 1]; (B, 3, H, W), or (B, K, 3, H, W) for K = num_users > 1"),
        "label": Port("int", ("B", "..."), tag="label", doc="digit 0-9; (B,) or (B, K)"),
    }
    params = {
        **_COMMON_PARAMS,
        "num_users": Param(int, 1, "K: images per example, one per user; > 1 adds a K axis "
                                   "after B"),
        "test_fraction": Param(float, 0.2, "fraction of each class held out for evaluation"),
    }

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        _check_min("source.digits", p, size=1, batch=1, eval_batch=0, eval_images=0, num_users=1)
        if not 0.0 < p.test_fraction < 1.0:
            raise SemflowError(f"source.digits: param 'test_fraction' must be in (0, 1), got {p.test_fraction}")
        self.train_x, self.train_y, self.test_x, self.test_y = _load_digits(p.size, p.test_fraction)
        k = p.num_users
        if k > len(self.test_x):
            raise SemflowError(f"source.digits: param 'num_users' = {k} exceeds the "
                               f"{len(self.test_x)} test images")
        self._eval_idx = _even_subset(len(self.test_x) // k, p.eval_images)

    def _shape(self, t):   # (B*K, ...) -> (B, ...) or (B, K, ...)
        k = self.p.num_users
        return t if k == 1 else t.view(-1, k, *t.shape[1:])

    def forward(self):
        # K distinct training images per example
        idx = torch.multinomial(torch.ones(self.p.batch, len(self.train_x)), self.p.num_users,
                                replacement=False, generator=self.generator).flatten()
        x = self.train_x[idx].float() / 255.0
        return {"image": self._shape(x).to(self.device), "label": self._shape(self.train_y[idx]).to(self.device)}

    def num_eval_examples(self) -> int:
        return len(self._eval_idx)

    def eval_batches(self, batch_size: int = 0):
        k = self.p.num_users
        # example e is the K consecutive test images e*K .. e*K+K-1
        items = lambda a, b: (self._eval_idx[a:b, None] * k + torch.arange(k)).flatten()  # noqa: E731
        return _to_batches(lambda a, b: self._shape(self.test_x[items(a, b)].float() / 255.0),
                           lambda a, b: self._shape(self.test_y[items(a, b)]),
                           len(self._eval_idx), self.eval_batch_size(batch_size), self.device)

    def source_values_per_example(self) -> int:
        """All source values of one example: 3*H*W per user, times K users."""
        return 3 * self.p.size * self.p.size * self.p.num_users
