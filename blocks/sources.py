"""Source blocks: natural images (bundled photos, a folder or .tar, CIFAR-10), colour digits,
procedural labelled shapes, and the seeded-random-source base class.

Nothing here downloads. ``source.images`` with ``dataset: bundled`` crops the colour
photos that ship inside installed packages (scikit-image, scikit-learn, matplotlib);
``dataset: folder`` reads a folder or an uncompressed .tar in place (class folders give
labels); ``source.digits`` is scikit-learn's 8x8 digits, upscaled and tinted;
``source.shapes`` draws labelled shapes for segmentation. Train/held-out splits are fixed
and documented in docs/datasets.md. Decoded data is cached per process, so building a
block twice costs nothing the second time.

Held-out splits (the source contract): ``eval_batches(batch, split)`` and
``num_eval_examples(split)`` serve split "test", and "val" (disjoint from train and test)
where the dataset has one; any other split, or a missing val split, is a one-line
SemflowError naming the block. ``dataset_info`` says what the numbers are measured on.

Randomness: training batches draw only from ``self.generator`` (saved in checkpoints by
:class:`Source`); evaluation never touches it, so the held-out set is the same for every
seed and every call.
"""
from __future__ import annotations

import importlib.util
import io
import mmap
import os
import pickle
import tarfile
import weakref
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flowgraph.block import Param, Port, Source
from flowgraph.errors import SemflowError
from flowgraph.registry import register

#: Natural photos shipped inside installed packages: name -> (package, file inside it).
#: Files are read straight from the package folder, never through a fetcher, so a
#: version of a package that lacks a file can never trigger a download. Greyscale photos
#: are read as three equal channels. Licences and sizes: docs/datasets.md.
BUNDLED_PHOTOS = {
    # colour
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
    # greyscale
    "brick": ("skimage", "data/brick.png"),
    "camera": ("skimage", "data/camera.png"),
    "cell": ("skimage", "data/cell.png"),
    "clock": ("skimage", "data/clock_motion.png"),
    "coins": ("skimage", "data/coins.png"),
    "grass": ("skimage", "data/grass.png"),
    "gravel": ("skimage", "data/gravel.png"),
    "microaneurysms": ("skimage", "data/microaneurysms.png"),
    "moon": ("skimage", "data/moon.png"),
    "page": ("skimage", "data/page.png"),
    "text": ("skimage", "data/text.png"),
}
#: Held-out photos: evaluation crops come only from these, training never sees them. Fixed
#: before any number was measured on them, to span the kinds of content in the set: a
#: portrait, an animal, a still life, a landscape, microscopy (colour), and a portrait and
#: a texture in greyscale; each kind also has training photos.
TEST_PHOTOS = ("astronaut", "camera", "chelsea", "china", "coffee", "gravel", "immunohistochemistry")
#: A crop whose luminance std is below this (on [0, 1]) is "flat" (sky, black borders)
#: and is never used from bundled photos: it carries almost no structure to learn from.
FLAT_STD = 0.02
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

PACKAGE_NAMES = {"skimage": "scikit-image", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}


def _words(names) -> str:
    """'a', 'a and b', 'a, b and c'."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _bundled_photo_words(names) -> str:
    """Bundled photos by the package that ships them: 'a, b (scikit-image) and c (scikit-learn)'."""
    by_package: dict = {}
    for n in names:
        by_package.setdefault(PACKAGE_NAMES.get(BUNDLED_PHOTOS[n][0], BUNDLED_PHOTOS[n][0]), []).append(n)
    return "; ".join(f"{_words(ns)} ({pkg})" for pkg, ns in by_package.items())


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


def _read_image(path, short_side: int, min_side: int) -> torch.Tensor:
    """Decode an image (a path or a file object) to uint8 (3, H, W). A larger image is
    downscaled so min(H, W) = short_side (0: keep native); any image is upscaled so
    min(H, W) >= min_side (the crop)."""
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


# ----------------------------------------------------------------------------- splits

#: the held-out splits a source may serve (contract 2): test, and a validation split
#: disjoint from train and test where the dataset has one
EVAL_SPLITS = ("test", "val")


def split_error(block, split: str, reason: str) -> SemflowError:
    """The one-line error for a held-out split a source does not have (or an unknown one)."""
    if split not in EVAL_SPLITS:
        reason = f"unknown split (splits: {', '.join(EVAL_SPLITS)})"
    return SemflowError(f"block '{block.name}' ({block.type_id}): no '{split}' split: {reason}")


def _center_multiple(photo: torch.Tensor, m: int) -> torch.Tensor:
    """The largest centred crop of a (3, H, W) image whose sides are multiples of m."""
    h, w = photo.shape[-2:]
    if h < m or w < m:
        raise SemflowError(f"source.images: a {h}x{w} held-out image is smaller than eval_multiple = {m}")
    y, x = (h % m) // 2, (w % m) // 2
    return photo[..., y:y + h - h % m, x:x + w - w % m]


class _Split:
    """One held-out split: uint8 images (a tensor (M, 3, h, w) of equal-size images or a lazy
    sequence of (3, H, W) images), labels (M,) and the names of what they come from."""

    def __init__(self, images, labels, names):
        self.images, self.labels, self.names = images, labels, list(names)

    def whole(self, i: int, multiple: int) -> torch.Tensor:
        """Image i whole, uint8 (3, H, W), centre-cropped to sides that are multiples of ``multiple``."""
        return _center_multiple(self.images[i], multiple)

    def __len__(self):
        return len(self.labels)

    def batch(self, idx: torch.Tensor, size: int) -> torch.Tensor:
        """Images ``idx`` as float (n, 3, size, size): centre crops (fitted per batch)."""
        if isinstance(self.images, torch.Tensor):
            return _fit(self.images[idx], size, "center", None)
        return torch.stack([_center(self.images[i], size) for i in idx.tolist()]).float() / 255.0


class _Data:
    """A dataset in memory (or decoded on demand): the training images and the held-out splits.

    train: a list-like of uint8 photos (3, H, W), each at least size x size (bundled, folder),
           or one uint8 array (N, 3, h, w) of equal-size images (CIFAR-10 batches).
    splits: {"test": _Split, "val": _Split or None}.
    whole: {split: _Split of whole images} where ``splits`` holds crops of them (bundled photos);
           elsewhere the splits' images are whole already.
    positions: optional per-photo tables of non-flat crop corners (bundled photos).
    info: what ``dataset_info`` reports beside the counts (classes, how the split was made).
    """

    def __init__(self, train, train_y, train_names, splits, positions=None, info=None, whole=None):
        self.train, self.train_y, self.train_names = train, train_y, list(train_names)
        self.splits = splits
        #: the held-out splits as whole images where ``splits`` holds crops of them (bundled)
        self.whole = dict(whole or {})
        self.info = dict(info or {})
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


# ----------------------------------------------------------------------------- files: folders and tars

#: split folder names (any case); ``train/`` + ``test/`` or ``training/`` + ``testing/``, ...
SPLIT_DIRS = {"train": ("train", "training"), "test": ("test", "testing"), "val": ("val", "valid", "validation")}
#: datasets with at most this many files are decoded when the block is built (a bad file is
#: reported at once); larger ones are decoded on first use and then kept in memory
EAGER_DECODE = 2000


_IMAGE_SUFFIXES = tuple(IMAGE_EXTS)


def _is_image(rel: str) -> bool:
    """An image file name, not hidden nor in a hidden folder (``._x.png``, ``.ipynb_checkpoints/``,
    ``__MACOSX/``). Plain string tests: pathlib costs seconds on 50,000 names."""
    return rel.lower().endswith(_IMAGE_SUFFIXES) and "/." not in "/" + rel and "__MACOSX/" not in rel


def _stem(rel: str) -> str:
    """The file name without its extension."""
    name = rel[rel.rfind("/") + 1:]
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


class _NeedTarfile(Exception):
    """The fast tar scan met a header it does not read: let tarfile read the archive."""


def _scan_tar(path: str) -> dict[str, tuple[int, int]]:
    """name -> (data offset, size) of every regular file of a plain ustar/GNU tar, reading
    only the 512-byte headers (tarfile parses 50,000 headers several times slower). Anything
    unusual (pax per-file headers, GNU long names, links, a bad checksum, an empty or
    truncated file) raises _NeedTarfile."""
    members, heads, checksums = {}, [], []
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 1024:
            raise _NeedTarfile
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos = 0
            while True:
                h = mm[pos:pos + 512]
                if len(h) < 512:
                    raise _NeedTarfile
                if h.count(0) == 512:                              # end-of-archive block
                    break
                try:
                    checksums.append(int(h[148:156].strip(b" \0") or b"0", 8))
                    size = int(h[124:136].strip(b" \0") or b"0", 8)
                except ValueError:
                    raise _NeedTarfile from None
                heads.append(h)
                kind, name = h[156:157], h[:100].split(b"\0", 1)[0]
                if h[257:263] == b"ustar\0":                       # POSIX: a prefix holds long paths
                    prefix = h[345:500].split(b"\0", 1)[0]
                    if prefix:
                        name = prefix + b"/" + name
                data = pos + 512
                if kind in (b"0", b"\0", b"7"):
                    members[name.decode("utf-8", "surrogateescape")] = (data, size)
                elif kind == b"g":                                 # pax global header (git archive)
                    records = mm[data:data + size].split(b"\n")
                    if any(r.split(b" ", 1)[1].split(b"=", 1)[0] != b"comment" for r in records if b" " in r):
                        raise _NeedTarfile
                elif kind not in (b"5", b"3", b"4", b"6"):         # not a dir, device or fifo
                    raise _NeedTarfile
                pos = data + (size + 511) // 512 * 512
    # every header's checksum at once: its byte sum with the 8 chksum bytes counted as spaces
    block = np.frombuffer(b"".join(heads), dtype=np.uint8).reshape(-1, 512)
    sums = block.sum(1, dtype=np.int64) - block[:, 148:156].sum(1, dtype=np.int64) + 8 * 32
    if not np.array_equal(sums, np.asarray(checksums, dtype=np.int64)):
        raise _NeedTarfile
    return members


def _tar_index(path: str, where: str) -> dict[str, tuple[int, int]]:
    st = os.stat(path)

    def make():
        try:
            return _scan_tar(path)
        except _NeedTarfile:
            pass
        try:
            with tarfile.open(path, "r:") as tf:
                return {m.name: (m.offset_data, m.size) for m in tf if m.isfile()}
        except tarfile.ReadError as exc:
            raise SemflowError(f"{where}: not an uncompressed .tar archive ({exc}); a compressed "
                               f"archive cannot be read in place: unpack it or decompress it to .tar") from None
    return _cached(("tar", os.path.realpath(path), st.st_mtime_ns, st.st_size), make)


class _FileTree:
    """The image files of a folder (recursive) or of an uncompressed .tar read in place.

    files: relative posix paths (tar member names), sorted; ``open(rel)`` gives what Pillow
    reads; ``key(rel)`` identifies the file's content for the decode cache."""

    def __init__(self, path: str, where: str):
        self.path, self.where = path, where
        root = Path(path).expanduser()
        if root.is_dir():
            self.tar = None
            self.root = root
            self.files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                                if p.is_file() and _is_image(p.relative_to(root).as_posix()))
        elif root.is_file():
            self.tar = os.path.realpath(root)
            self.members = _tar_index(self.tar, where)
            self.tar_stamp = os.stat(self.tar).st_mtime_ns
            self.files = sorted(n for n in self.members if _is_image(n))
        else:
            raise SemflowError(f"{where}: no such folder or .tar file")

    def open(self, rel: str):
        if self.tar is None:
            return str(self.root / rel)
        offset, size = self.members[rel]
        with open(self.tar, "rb") as fh:
            fh.seek(offset)
            return io.BytesIO(fh.read(size))

    def key(self, rel: str):
        if self.tar is None:
            st = (self.root / rel).stat()
            return ("file", str((self.root / rel).resolve()), st.st_mtime_ns, st.st_size)
        return ("tar", self.tar, self.tar_stamp, rel)


#: decoded images alive in this process that a streaming source read (``stream: true``):
#: "live" now, "peak" so far, "decoded" in total; kept by weakref finalizers, so a test can
#: check that streaming holds a bounded number of decoded images
STREAM_DECODED = {"live": 0, "peak": 0, "decoded": 0}


def _count_decoded(img: torch.Tensor) -> torch.Tensor:
    STREAM_DECODED["live"] += 1
    STREAM_DECODED["decoded"] += 1
    STREAM_DECODED["peak"] = max(STREAM_DECODED["peak"], STREAM_DECODED["live"])
    weakref.finalize(img, _forget_decoded)
    return img


def _forget_decoded():
    STREAM_DECODED["live"] -= 1


class _LazyImages:
    """A sequence of uint8 images (3, H, W) decoded on first access and cached per process
    (``cache=False``, streaming: decoded on every access and never kept)."""

    def __init__(self, tree: _FileTree, files: list[str], short_side: int, min_side: int, cache: bool = True):
        self.tree, self.files, self.short_side, self.min_side = tree, files, short_side, min_side
        self.cache = cache

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        rel = self.files[i]          # IndexError past the end ends iteration
        try:
            if not self.cache:
                return _count_decoded(_read_image(self.tree.open(rel), self.short_side, self.min_side))
            return _cached((self.tree.key(rel), self.short_side, self.min_side),
                           lambda: _read_image(self.tree.open(rel), self.short_side, self.min_side))
        except Exception as exc:
            raise SemflowError(f"{self.tree.where}: cannot read image '{rel}': "
                               f"{type(exc).__name__}: {exc}") from None


def _split_dirs(files: list[str], where: str) -> tuple[str, dict[str, str]]:
    """(prefix, {split: folder}) of the split folders at the top of the tree, or one folder
    below a single wrapper folder (an archive of ``mydata/train/...``)."""
    def found(names):
        out = {}
        for split, options in SPLIT_DIRS.items():
            hits = sorted(n for n in names if n.lower() in options)
            if len(hits) > 1:
                raise SemflowError(f"{where}: both {' and '.join(h + '/' for h in hits)} hold the {split} split")
            if hits:
                out[split] = hits[0]
        return out

    top = found({f.split("/", 1)[0] for f in files if "/" in f})
    if top:
        return "", top
    firsts = {f.split("/", 1)[0] for f in files}
    if len(firsts) == 1 and all(f.count("/") >= 2 for f in files):
        wrapper = firsts.pop()
        inner = found({f.split("/", 2)[1] for f in files})
        if inner:
            return wrapper + "/", inner
    return "", {}


def _layout(tree: _FileTree, labels: str, test_every: int, test_per_class: int, val_per_class: int) -> dict:
    """Which file goes to which split, and its label (see docs/datasets.md, "dataset: folder").

    Returns {"train"/"test"/"val": [relative paths] (val: None when there is none),
    "classes": [names] or None, "label": {path: index}, "held_out": how test/val were made}."""
    where = tree.where
    prefix, dirs = _split_dirs(tree.files, where)
    if dirs and "train" not in dirs:
        raise SemflowError(f"{where}: has {'/, '.join(dirs.values())}/ but no train/ (or training/) folder")
    # files of each split folder, as paths below it (files outside the split folders are not used)
    parts = {s: [f for f in tree.files if f.startswith(f"{prefix}{d}/")] for s, d in dirs.items()} \
        if dirs else {"train": list(tree.files)}
    below = {f: f[len(prefix) + len(dirs[s]) + 1:] if dirs else f for s, fs in parts.items() for f in fs}
    for s, fs in parts.items():
        if not fs:
            raise SemflowError(f"{where}: no images ({', '.join(sorted(IMAGE_EXTS))}) in "
                               f"'{prefix}{dirs.get(s, '')}'")
    one_level = all(b.count("/") == 1 for b in below.values())
    if labels == "folders" and not one_level:
        bad = next(f for f, b in below.items() if b.count("/") != 1)
        raise SemflowError(f"{where}: labels: folders needs every image in a class folder directly below "
                           f"{'the split folder' if dirs else 'path'}; '{bad}' is not")
    names = sorted({b.split("/", 1)[0] for b in below.values()}) if one_level else []
    use_folders = labels == "folders" or (labels == "auto" and bool(dirs) and one_level and len(names) >= 2)
    classes = names if use_folders else None
    cls_of = (lambda f: below[f].split("/", 1)[0]) if classes else (lambda f: "")  # noqa: E731

    # class -> groups of files sharing a stem (views of one scene), in index order: the
    # order of each group's first file (dict insertion order over the sorted files)
    grouped: dict = {}
    for f in parts["train"]:                                 # tree.files is sorted
        grouped.setdefault((cls_of(f), _stem(f)), []).append(f)
    by_class: dict = {}
    for (c, _), members in grouped.items():
        by_class.setdefault(c, []).append(members)

    def hold_last(n, what):
        """Move the last n groups of every class out of by_class; return their files."""
        held = []
        for c, groups in by_class.items():
            if len(groups) <= n:
                label = f"class '{c}'" if classes else "the dataset"
                raise SemflowError(f"{where}: {what} = {n} leaves no training images in {label} "
                                   f"({len(groups)} images)")
            held += [f for g in groups[len(groups) - n:] for f in g]
            del groups[len(groups) - n:]
        return held

    def every_th():
        nonlocal by_class
        if sum(len(gs) for gs in by_class.values()) < 2:
            raise SemflowError(f"{where}: found 1 image; need at least 2 to split train/test")
        held = [f for gs in by_class.values() for g in gs[::test_every] for f in g]
        by_class = {c: [g for i, g in enumerate(gs) if i % test_every] for c, gs in by_class.items()}
        return held, f"every {test_every}th image{' per class' if classes else ''} by index, starting with the first"

    def held_out_split(split, per_class, param, otherwise):
        """(files, how they were chosen) of split 'test' or 'val': the dataset's own folder,
        else the last ``per_class`` groups of every class, else ``otherwise()``."""
        if split in dirs:
            if per_class:
                raise SemflowError(f"{where}: param '{param}' is for datasets without a {split} split, "
                                   f"and this one has {prefix}{dirs[split]}/")
            return parts[split], f"the {prefix}{dirs[split]}/ folder"
        if per_class:
            return hold_last(per_class, param), (f"the last {per_class} {'training ' if split == 'val' else ''}"
                                                 f"images per {'class' if classes else 'dataset'} by index")
        return otherwise()

    test, held_out = held_out_split("test", test_per_class, "test_per_class", every_th)
    val, val_from = held_out_split("val", val_per_class, "val_per_class", lambda: (None, None))
    train = [f for gs in by_class.values() for g in gs for f in g]
    index = {c: i for i, c in enumerate(classes or [])}
    label = {f: index[cls_of(f)] for f in below} if classes else dict.fromkeys(below, -1)
    return {"train": sorted(train), "test": sorted(test), "val": None if val is None else sorted(val),
            "classes": classes, "label": label, "held_out": held_out, "val_from": val_from,
            "layout": "class folders" if classes else "unlabelled files"}


# ----------------------------------------------------------------------------- loaders

def _load_bundled(short_side: int, size: int) -> _Data:
    def make():
        train, positions, train_names, eval_crops, test_photos = [], [], [], {}, {}
        for name, (package, rel) in BUNDLED_PHOTOS.items():
            path = _package_file(package, rel)
            if path is None:
                if name in TEST_PHOTOS:
                    raise SemflowError(f"source.images: bundled test photo '{name}' ({package}/{rel}) "
                                       f"is not installed; install {package} or use dataset: folder")
                continue   # this package version lacks the photo: train on the others
            photo = _read_image(path, short_side, size)
            if name in TEST_PHOTOS:
                eval_crops[name] = _grid_crops(photo, size)
                test_photos[name] = photo
            else:
                pos = _structured_positions(photo, size)
                if len(pos):
                    train.append(photo)
                    positions.append(pos)
                    train_names.append(name)
        eval_x = torch.cat([eval_crops[n] for n in TEST_PHOTOS])     # in TEST_PHOTOS order
        test = _Split(eval_x, torch.full((len(eval_x),), -1, dtype=torch.long), TEST_PHOTOS)
        whole = _Split([test_photos[n] for n in TEST_PHOTOS], torch.full((len(test_photos),), -1, dtype=torch.long),
                       TEST_PHOTOS)
        return _Data(train, torch.full((len(train),), -1, dtype=torch.long), train_names,
                     {"test": test, "val": None}, positions,
                     info={"held_out": f"grid crops of the held-out photos {', '.join(TEST_PHOTOS)}",
                           "crops_per_photo": {n: len(eval_crops[n]) for n in TEST_PHOTOS}},
                     whole={"test": whole})
    return _cached(("bundled", short_side, size), make)


def _load_folder(path: str, short_side: int, size: int, test_every: int, labels: str,
                 test_per_class: int, val_per_class: int, stream: bool = False) -> _Data:
    where = f"source.images: param 'path' = '{path}'"
    if not path:
        raise SemflowError("source.images: dataset 'folder' needs param 'path' (a folder of images "
                           "or an uncompressed .tar of one)")
    tree = _FileTree(path, where)
    if not tree.files:
        raise SemflowError(f"{where}: no images ({', '.join(sorted(IMAGE_EXTS))}) found")

    def make():
        lay = _layout(tree, labels, test_every, test_per_class, val_per_class)
        lab = lambda fs: torch.tensor([lay["label"][f] for f in fs], dtype=torch.long)  # noqa: E731
        images = {s: None if lay[s] is None else _LazyImages(tree, lay[s], short_side, size, cache=not stream)
                  for s in ("train", "test", "val")}
        if not stream and sum(len(v) for v in images.values() if v is not None) <= EAGER_DECODE:
            for seq in filter(None, images.values()):   # small sets: any unreadable file fails now
                for i in range(len(seq)):
                    seq[i]
        splits = {s: None if lay[s] is None else _Split(images[s], lab(lay[s]), lay[s]) for s in EVAL_SPLITS}
        info = {k: lay[k] for k in ("classes", "held_out", "val_from", "layout")}
        info["archive"] = tree.tar is not None
        return _Data(images["train"], lab(lay["train"]), lay["train"], splits, info=info)
    if tree.tar is None:     # a folder is listed afresh every time (its files may change)
        return make()
    return _cached(("tar-data", tree.tar, tree.tar_stamp, short_side, size, test_every, labels,
                    test_per_class, val_per_class, stream), make)


def _load_cifar10(path: str, val_per_class: int) -> _Data:
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
        x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        val = None
        if val_per_class:       # the last val_per_class training images of each class, file order
            held = torch.zeros(len(y), dtype=torch.bool)
            for c in range(10):
                members = (y == c).nonzero().squeeze(1)
                if len(members) <= val_per_class:
                    raise SemflowError(f"source.images: val_per_class = {val_per_class} leaves no training "
                                       f"images of CIFAR-10 class {c} ({len(members)} images)")
                held[members[len(members) - val_per_class:]] = True
            val = _Split(x[held], y[held], [f"last {val_per_class} per class of data_batch_1..5"])
            x, y = x[~held], y[~held]
        test_x, test_y = read(CIFAR_TEST)
        return _Data(x, y, CIFAR_TRAIN, {"test": _Split(test_x, test_y, [CIFAR_TEST]), "val": val},
                     info={"classes": list(CIFAR_CLASSES), "held_out": "test_batch",
                           "val_from": val.names[0] if val is not None else None})
    key = tuple((folder / n).stat().st_mtime_ns for n in CIFAR_TRAIN + (CIFAR_TEST,))
    return _cached(("cifar10", str(folder.resolve()), key, val_per_class), make)


# ----------------------------------------------------------------------------- streaming

#: epoch e of a streaming source visits the training files in the order
#: randperm(N, seed + STREAM_EPOCH_STRIDE * (e + 1)); crop t uses the seed seed + t
STREAM_EPOCH_STRIDE = 7_368_787


class _StreamCrops(torch.utils.data.Dataset):
    """Training crop number ``t`` of a streaming source (``stream: true``): the file at
    position ``t mod N`` of epoch ``t // N``'s seeded permutation, decoded now (never kept),
    cropped and flipped with a generator seeded by ``t``. Any number of workers, any split
    over ranks, and a resume at position t give the same crops."""

    def __init__(self, images: _LazyImages, labels: torch.Tensor, size: int, crop: str, flip: bool, seed: int):
        self.images, self.labels = images, labels
        self.size, self.crop, self.flip, self.seed = size, crop, flip, int(seed)
        self._epoch, self._perm = None, None

    def file_of(self, t: int) -> int:
        epoch, i = divmod(int(t), len(self.images))
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed + STREAM_EPOCH_STRIDE * (epoch + 1))
            self._epoch, self._perm = epoch, torch.randperm(len(self.images), generator=g)
        return int(self._perm[i])

    def __getitem__(self, t: int):
        f = self.file_of(t)
        img = self.images[f]
        g = torch.Generator().manual_seed(self.seed + int(t))
        h, w = img.shape[-2:]
        if self.crop == "random":
            cy, cx = (int(torch.randint(h - self.size + 1, (1,), generator=g)),
                      int(torch.randint(w - self.size + 1, (1,), generator=g)))
        else:
            cy, cx = (h - self.size) // 2, (w - self.size) // 2
        x = img[:, cy:cy + self.size, cx:cx + self.size].float() / 255.0   # a copy: img is freed here
        if self.flip and float(torch.rand(1, generator=g)) < 0.5:
            x = x.flip(-1)
        return x, self.labels[f]


class _StepBatches(torch.utils.data.Sampler):
    """Crop positions of each training step from ``start`` on, this rank's contiguous share
    of every global batch of ``batch`` (rank r of N: positions r*b .. (r+1)*b - 1, b = batch / N)."""

    def __init__(self, start: int, batch: int, rank: int, world: int):
        self.start, self.batch, self.rank, self.share = int(start), int(batch), int(rank), int(batch) // int(world)

    def __iter__(self):
        t = self.start
        while True:
            a = t + self.rank * self.share
            yield list(range(a, a + self.share))
            t += self.batch


def _collate(items):
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys)


# ----------------------------------------------------------------------------- blocks

def _check_min(where: str, p, **minimums) -> None:
    for name, lo in minimums.items():
        if p[name] < lo:
            raise SemflowError(f"{where}: param '{name}' must be >= {lo}, got {p[name]}")


_COMMON_PARAMS = {
    "size": Param(int, 32, "crop side: images are size x size (binds H = W = size)"),
    "batch": Param(int, 16, "training batch size B of forward()"),
    "eval_batch": Param(int, 0, "evaluation batch size; 0 = same as batch. A positive "
                                "batch_size passed to eval_batches() takes precedence"),
    "eval_images": Param(int, 0, "cap on the evaluation set size (0 = the whole held-out "
                                 "set); the kept examples are spread evenly over it"),
    "eval_repeats": Param(int, 1, "R: evaluation passes over the held-out examples (R > 1 with "
                                  "random channels gives fresh channel and noise draws per pass)"),
    "val_per_class": Param(int, 0, "validation split: the last N training images of each class "
                                   "(by index) are held out for split 'val' (0 = no val split, unless "
                                   "the dataset ships one)"),
}


class _ImageSourceBase(Source):
    """Held-out plumbing shared by the image sources: splits, the eval_images cap, repeats."""
    outputs = {
        "image": Port("real", ("B", 3, "H", "W"), tag="image", doc="images in [0, 1], float32"),
        "label": Port("int", ("B",), tag="label", doc="class index, -1 when unlabelled"),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"]}

    def eval_batch_size(self, requested: int = 0) -> int:
        return requested if requested and requested > 0 else (self.p.eval_batch or self.p.batch)

    # subclasses: _split(split) -> _Split (or raise split_error); _items(split, ids) -> (x, y)
    group = 1      # images per evaluation example (source.digits with num_users)

    def __init__(self, **params):
        super().__init__(**params)
        self._ids: dict[str, torch.Tensor] = {}     # split -> the examples kept (eval_images cap)

    def _eval_ids(self, split: str) -> torch.Tensor:
        if split not in self._ids:
            self._ids[split] = _even_subset(len(self._split(split)) // self.group, self.p.eval_images)
        return self._ids[split]

    def num_eval_examples(self, split: str = "test") -> int:
        return len(self._eval_ids(split)) * self.p.eval_repeats

    def eval_batches(self, batch_size: int = 0, split: str = "test"):
        """The held-out split in a fixed order, ``eval_repeats`` times over (a missing split
        raises here, not when the batches are first read)."""
        ids, sp, bs = self._eval_ids(split), self._split(split), self.eval_batch_size(batch_size)
        return self._batches(ids, sp, bs)

    def _batches(self, ids, sp, bs):
        for _ in range(self.p.eval_repeats):
            for a in range(0, len(ids), bs):
                x, y = self._items(sp, ids[a:a + bs])
                yield {"image": x.to(self.device), "label": y.to(self.device)}

    def source_values_in(self, data: dict) -> int:
        """3*H*W (times K users) of this batch's images: whole held-out images differ in size."""
        return int(data["image"][0].numel())

    def _info(self, dataset: str, path: str, extra: dict) -> dict:
        splits = {}
        for s in EVAL_SPLITS:
            try:
                splits[s] = self.num_eval_examples(s)
            except SemflowError:
                splits[s] = None
        return {"dataset": dataset, "path": path, "split": "test", "count": splits["test"],
                "splits": {"train": self.num_train_images(), **splits},
                "eval_images": self.p.eval_images, "eval_repeats": self.p.eval_repeats, **extra}


@register("source.images")
class ImageSource(_ImageSourceBase):
    """Natural-image crops: bundled photos (default, offline), a folder or .tar, or CIFAR-10.

    forward() -> image real (B, 3, H, W) float32 in [0, 1], H = W = size;
                 label int (B,) (class index, or -1 when unlabelled).
    Training batches (B = batch) are crops drawn with ``self.generator``: random position
    (``crop: random``) or centred (``crop: center``), flipped left-right with probability
    1/2 when ``flip``. ``eval_batches(n, split)`` yields a fixed held-out split ("test", or
    "val" where the dataset has one) once per ``eval_repeats``, in order:

    * bundled: the 22 natural photos (11 colour, 11 greyscale) shipped in scikit-image /
      scikit-learn / matplotlib, resized to a short side of ``short_side`` px. The 7 test
      photos (``TEST_PHOTOS``) are never trained on; eval = non-overlapping grid crops of
      them. Flat crops (luminance std < 0.02) are never used. 503 eval crops at size 32.
      No val split.
    * folder: images under ``path``, a folder (recursive) or an uncompressed .tar read in
      place; ``train/`` + ``test/`` (or ``training/`` + ``testing/``, and ``val/``)
      subfolders are the splits; without a test folder, ``test_per_class`` (the last N per
      class by index) or every ``test_every``-th image is held out; files sharing a stem
      stay in one split. Class folders (``train/<class>/*.jpg``) give labels, in sorted
      order (``labels``). eval = one centre crop per held-out image.
    * cifar10: ``data_batch_1..5`` train, ``test_batch`` eval (10000); size < 32 crops,
      size > 32 upscales bilinearly.
    * digits: the labelled colour digits of ``source.digits`` (bundled, 359 eval images),
      so a chain built on ``source.images`` (e.g. the JPEG baselines) can be evaluated on
      the same images as the seed-003 graphs. crop, flip and short_side do not apply.

    ``val_per_class`` carves a validation split out of the training images (folder,
    cifar10, digits). See docs/datasets.md.

    Whole images (``eval_whole``, bundled / folder / cifar10): evaluation yields every
    held-out image whole instead of crops (the bundled test photos, resized to
    ``short_side`` unless it is 0), each centre-cropped to sides that are multiples of
    ``eval_multiple`` (the codec's stride; dropping fewer than that many rows/columns).
    A batch holds consecutive held-out images of one size (batch 1 when sizes alternate),
    so the example order is the file order. The CBR is counted per image. Training still
    draws size x size crops. Validation refuses blocks built for one size downstream.
    ``stream`` (folder): training crops are decoded on use through a DataLoader with
    ``workers`` processes and never kept (docs/scale-out.md).
    """
    params = {
        "dataset": Param(str, "bundled", "bundled (photos shipped in installed packages, no "
                         "download), folder (images under path: a folder or an uncompressed .tar), "
                         "cifar10 (python batches at path) or digits (source.digits, labelled, bundled)",
                         choices=("bundled", "folder", "cifar10", "digits")),
        "path": Param(str, "", "folder or .tar of images (folder), or folder of the CIFAR-10 batches (cifar10)"),
        **_COMMON_PARAMS,
        "crop": Param(str, "random", "training crop position; evaluation always uses fixed crops",
                      choices=("random", "center")),
        "flip": Param(bool, True, "random left-right flip of training crops"),
        "short_side": Param(int, 256, "bundled/folder: downscale larger images so their shorter "
                            "side is this many px before cropping (0 = native); images smaller "
                            "than the crop are upscaled to size"),
        "test_every": Param(int, 10, "folder without a test split and test_per_class = 0: every "
                            "test_every-th image (per class, by index) is held out for evaluation"),
        "test_per_class": Param(int, 0, "folder without a test split: the last N images of each "
                                "class (of the whole set when unlabelled), by index, are the test split"),
        "labels": Param(str, "auto", "folder: class labels from folder names (folders), none (-1), or "
                        "auto = folders when every image sits in a class folder right below train/",
                        choices=("auto", "folders", "none")),
        "eval_whole": Param(bool, False, "evaluate on whole held-out images (each at its own size, no crop) "
                            "instead of size x size crops; bundled, folder, cifar10"),
        "eval_multiple": Param(int, 1, "eval_whole: centre-crop each image to the largest H, W that are "
                               "multiples of this (the codec's total stride, e.g. 4 for DeepJSCC)"),
        "stream": Param(bool, False, "folder: read training images lazily through a torch DataLoader, "
                        "decoding each crop's file when it is used and keeping nothing (for sets larger "
                        "than memory); a seeded permutation per epoch; data-parallel ranks read disjoint shares"),
        "workers": Param(int, 0, "stream: DataLoader worker processes decoding ahead (0 = in this process)"),
    }

    @classmethod
    def eval_whole_images(cls, p):
        return int(p["eval_multiple"]) if p.get("eval_whole") else None

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        _check_min("source.images", p, size=1, batch=1, eval_batch=0, eval_images=0, eval_repeats=1,
                   short_side=0, test_every=2, test_per_class=0, val_per_class=0, eval_multiple=1, workers=0)
        if p.eval_whole and p.dataset == "digits":
            raise SemflowError("source.images: param 'eval_whole' applies to datasets bundled, folder and "
                               "cifar10 (the digits are 8x8 images upscaled to size)")
        if p.stream and p.dataset != "folder":
            raise SemflowError(f"source.images: param 'stream' applies to dataset 'folder' only "
                               f"('{p.dataset}' is read into memory)")
        self._stream_seed, self._stream_pos, self._stream_iter = 0, 0, None
        #: a streaming source serves only this rank's share (the scheduler does not slice it)
        self.shards_itself = bool(p.stream)
        if p.test_per_class and p.dataset != "folder":
            raise SemflowError(f"source.images: param 'test_per_class' applies to dataset 'folder' only; "
                               f"'{p.dataset}' has a fixed test split")
        self.digits = None
        if p.dataset == "digits":
            self.digits = DigitsSource(size=p.size, batch=p.batch, eval_batch=p.eval_batch,
                                       eval_images=p.eval_images, eval_repeats=p.eval_repeats,
                                       val_per_class=p.val_per_class)
            self.digits.generator = self.generator   # one RNG: seeded and checkpointed with this block
            self.train_names, self.test_names = ("digits train split",), ("digits test split",)
            self.val_names = ("digits val split",) if p.val_per_class else ()
            return
        if p.dataset == "bundled":
            if p.val_per_class:
                raise SemflowError("source.images: the bundled photos have no validation split "
                                   "(param 'val_per_class' applies to folder, cifar10 and digits)")
            self.data = _load_bundled(p.short_side, p.size)
        elif p.dataset == "folder":
            self.data = _load_folder(p.path, p.short_side, p.size, p.test_every, p.labels,
                                     p.test_per_class, p.val_per_class, stream=p.stream)
        else:
            self.data = _load_cifar10(p.path, p.val_per_class)
        #: names of the photos / files / batches each split comes from (disjoint)
        self.train_names, self.test_names = self.data.train_names, self.data.splits["test"].names
        val = self.data.splits["val"]
        self.val_names = val.names if val is not None else ()

    def forward(self):
        if self.digits is not None:
            self.digits.device = self.device
            return self.digits()
        if self.p.stream:
            return self._stream_batch()
        x, y = self.data.sample(self.p.batch, self.p.size, self.p.crop, self.p.flip, self.generator)
        return {"image": x.to(self.device), "label": y.to(self.device)}

    # ---- streaming (stream: true) ------------------------------------------------------------
    def seed(self, seed: int) -> None:
        super().seed(seed)
        self._stream_seed, self._stream_pos, self._stream_iter = int(seed), 0, None

    def _stream_batch(self) -> dict:
        """This rank's share of the next global batch, from the DataLoader (built again when
        the batch size or the position changes: a stage's batch, a resume)."""
        batch, (rank, world) = self.p.batch, getattr(self, "shard", (0, 1))
        if batch % world:
            raise SemflowError(f"block '{self.name}' (source.images): batch {batch} does not split over "
                               f"{world} processes (the batch is the global batch: use a multiple of {world})")
        key = (batch, rank, world, self._stream_seed)
        if self._stream_iter is None or self._stream_key != key:
            crops = _StreamCrops(self.data.train, self.data.train_y, self.p.size, self.p.crop, self.p.flip,
                                 self._stream_seed)
            loader = torch.utils.data.DataLoader(
                crops, batch_sampler=_StepBatches(self._stream_pos, batch, rank, world),
                num_workers=self.p.workers, collate_fn=_collate, pin_memory=self.device.type == "cuda")
            self._stream_iter, self._stream_key = iter(loader), key
        x, y = next(self._stream_iter)
        self._stream_pos += batch
        return {"image": x.to(self.device, non_blocking=True), "label": y.to(self.device)}

    def get_extra_state(self):
        state = super().get_extra_state()
        if self.p.stream:      # where the stream is: a resumed run reads on from there
            state["stream"] = [self._stream_seed, self._stream_pos]
        return state

    def set_extra_state(self, state):
        super().set_extra_state(state)
        if state and "stream" in state:
            self._stream_seed, self._stream_pos = (int(v) for v in state["stream"])
            self._stream_iter = None

    def _split(self, split: str) -> _Split:
        sp = self.data.splits.get(split) if split in EVAL_SPLITS else None
        if sp is None:
            raise split_error(self, split, self._no_val_reason())
        return self.data.whole.get(split, sp) if self.p.eval_whole else sp

    def _batches(self, ids, sp, bs):
        if not self.p.eval_whole:
            yield from super()._batches(ids, sp, bs)
            return
        for _ in range(self.p.eval_repeats):     # runs of consecutive images of one size
            run, labels = [], []
            for i in ids.tolist():
                img = sp.whole(i, self.p.eval_multiple)
                if run and (img.shape != run[0].shape or len(run) == bs):
                    yield self._whole_batch(run, labels)
                    run, labels = [], []
                run.append(img)
                labels.append(sp.labels[i])
            if run:
                yield self._whole_batch(run, labels)

    def _whole_batch(self, images: list, labels: list) -> dict:
        return {"image": (torch.stack(images).float() / 255.0).to(self.device),
                "label": torch.stack(labels).to(self.device)}

    def _no_val_reason(self) -> str:
        if self.p.dataset == "bundled":
            return "the bundled photos have none (use dataset folder, cifar10 or digits with val_per_class)"
        return "the dataset ships no val/ folder and param 'val_per_class' is 0"

    def _items(self, split: _Split, ids: torch.Tensor):
        return split.batch(ids, self.p.size), split.labels[ids]

    def num_eval_examples(self, split: str = "test") -> int:
        if self.digits is not None:
            self.digits.name = self.name           # errors name this block
            return self.digits.num_eval_examples(split)
        return super().num_eval_examples(split)

    def eval_batches(self, batch_size: int = 0, split: str = "test"):
        if self.digits is not None:
            self.digits.device, self.digits.name = self.device, self.name
            return self.digits.eval_batches(self.eval_batch_size(batch_size), split)
        return super().eval_batches(batch_size, split)

    def num_train_images(self) -> int:
        return self.digits.num_train_images() if self.digits is not None else len(self.data.train_y)

    @property
    def dataset_info(self) -> dict:
        """What the held-out numbers are measured on: dataset, path, split, count, per-split
        sizes, and how the split was made (recorded in metrics.json)."""
        if self.digits is not None:
            return {**self.digits.dataset_info, "dataset": "digits"}
        path = self.p.path if self.p.dataset != "bundled" else \
            "photos shipped in scikit-image, scikit-learn and matplotlib"
        info = {**self.data.info, "name": self.test_set_name(), "eval_whole": self.p.eval_whole}
        if self.p.eval_whole and self.p.dataset == "bundled":
            info["held_out"] = f"the held-out photos {', '.join(TEST_PHOTOS)}, whole"
        return self._info(self.p.dataset, path, info)

    def test_set_name(self) -> str:
        """The held-out images in words, for the line under every results table."""
        p = self.p
        if p.dataset == "bundled":
            what = f"the bundled photos {_bundled_photo_words(self.test_names)}"
        elif p.dataset == "cifar10":
            what = f"CIFAR-10 ({p.path})"
        else:
            what = f"the images of {p.path} (held out: {self.data.info.get('held_out')})"
        resized = f"short side {p.short_side} px" if p.short_side and p.dataset != "cifar10" else "native size"
        if p.eval_whole:
            return what + f", whole images ({resized}" + \
                (f", sides cropped to multiples of {p.eval_multiple})" if p.eval_multiple > 1 else ")")
        crops = "grid crops" if p.dataset == "bundled" else "centre crops"
        if p.dataset == "cifar10":
            return what + (f", {crops} of {p.size}×{p.size}" if p.size < 32 else
                           f", upscaled to {p.size}×{p.size}" if p.size > 32 else ", 32×32")
        return what + f", {p.size}×{p.size} {crops} ({resized})"

    def source_values_per_example(self) -> int:
        """3*size*size: the training crops (``source_values_in`` counts whole held-out images)."""
        return 3 * self.p.size * self.p.size


# ----------------------------------------------------------------------------- digits

#: seed of the fixed per-image colours of source.digits (independent of the block seed)
DIGIT_COLOUR_SEED = 1797


def _load_digits(size: int, test_fraction: float, val_per_class: int):
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
        # Stratified split: the last test_fraction of each class (in file order) is test,
        # the val_per_class images before those are val.
        test = torch.zeros(n, dtype=torch.bool)
        val = torch.zeros(n, dtype=torch.bool)
        for c in range(10):
            members = (labels == c).nonzero().squeeze(1)
            k = int(round(test_fraction * len(members)))
            if k + val_per_class >= len(members):
                raise SemflowError(f"source.digits: val_per_class = {val_per_class} leaves no training "
                                   f"images of digit {c} ({len(members)} images, {k} of them test)")
            test[members[len(members) - k:]] = True
            val[members[len(members) - k - val_per_class:len(members) - k]] = True
        train = ~(test | val)
        return rgb[train], labels[train], rgb[test], labels[test], rgb[val], labels[val]
    return _cached(("digits", size, test_fraction, val_per_class), make)


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
    0.2); ``val_per_class`` > 0 holds out the N images of each class before those as the
    'val' split. Eval examples group consecutive held-out images K at a time
    (floor(359/K) test examples). No augmentation: a flipped digit is not the same digit.
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
        _check_min("source.digits", p, size=1, batch=1, eval_batch=0, eval_images=0, num_users=1,
                   eval_repeats=1, val_per_class=0)
        if not 0.0 < p.test_fraction < 1.0:
            raise SemflowError(f"source.digits: param 'test_fraction' must be in (0, 1), got {p.test_fraction}")
        (self.train_x, self.train_y, self.test_x, self.test_y,
         val_x, val_y) = _load_digits(p.size, p.test_fraction, p.val_per_class)
        self.splits = {"test": _Split(self.test_x, self.test_y, ["digits test split"]),
                       "val": _Split(val_x, val_y, ["digits val split"]) if p.val_per_class else None}
        self.group = k = p.num_users
        if k > len(self.test_x):
            raise SemflowError(f"source.digits: param 'num_users' = {k} exceeds the "
                               f"{len(self.test_x)} test images")

    def _shape(self, t):   # (B*K, ...) -> (B, ...) or (B, K, ...)
        k = self.p.num_users
        return t if k == 1 else t.view(-1, k, *t.shape[1:])

    def forward(self):
        # K distinct training images per example
        idx = torch.multinomial(torch.ones(self.p.batch, len(self.train_x)), self.p.num_users,
                                replacement=False, generator=self.generator).flatten()
        x = self.train_x[idx].float() / 255.0
        return {"image": self._shape(x).to(self.device), "label": self._shape(self.train_y[idx]).to(self.device)}

    def _split(self, split: str) -> _Split:
        sp = self.splits.get(split) if split in EVAL_SPLITS else None
        if sp is None:
            raise split_error(self, split, "param 'val_per_class' is 0")
        return sp

    def _items(self, split: _Split, ids: torch.Tensor):
        # example e is the K consecutive held-out images e*K .. e*K+K-1
        items = (ids[:, None] * self.group + torch.arange(self.group)).flatten()
        return self._shape(split.images[items].float() / 255.0), self._shape(split.labels[items])

    def num_train_images(self) -> int:
        return len(self.train_x)

    @property
    def dataset_info(self) -> dict:
        return self._info("digits", "scikit-learn digits (bundled)",
                          {"name": f"the scikit-learn digits (8×8, upscaled to {self.p.size}×{self.p.size} and tinted)",
                           "classes": [str(c) for c in range(10)], "num_users": self.p.num_users,
                           "held_out": f"the last {self.p.test_fraction:g} of each class in file order",
                           "val_from": f"the {self.p.val_per_class} images per class before the test ones"
                           if self.p.val_per_class else None})

    def source_values_per_example(self) -> int:
        """All source values of one example: 3*H*W per user, times K users."""
        return 3 * self.p.size * self.p.size * self.p.num_users


# ----------------------------------------------------------------------------- seeded random sources

#: examples per independently seeded chunk of a random source's held-out split
EVAL_CHUNK = 256
#: added to the chunk seeds of the 'val' split, so it is drawn independently of 'test'
VAL_SEED_OFFSET = 500_009


class SeededRandomSource(Source):
    """A source of random examples (bits, symbols, procedural scenes).

    Training batches draw only from ``self.generator`` (seeded by the run, saved in
    checkpoints). A held-out split is ``num_eval_examples`` examples drawn in chunks of
    ``EVAL_CHUNK``: chunk c of split 'test' from a generator seeded with
    eval_seed * 1000003 + c, of split 'val' with VAL_SEED_OFFSET added. So example i is the
    same for every run seed and every batch size, and 'val' is an independent draw (disjoint
    from 'test' and training but for chance coincidences of discrete draws). Subclasses
    declare the params ``batch``, ``num_eval_examples`` and ``eval_seed`` and implement
    ``draw(n, generator) -> {port: tensor (n, ...)}``.
    """

    def draw(self, n: int, g: torch.Generator) -> dict:
        raise NotImplementedError

    def forward(self):
        return {k: v.to(self.device) for k, v in self.draw(self.p.batch, self.generator).items()}

    def num_eval_examples(self, split: str = "test") -> int:
        if split not in EVAL_SPLITS:
            raise split_error(self, split, "")
        return int(self.p.num_eval_examples)

    def _chunk(self, c: int, split: str) -> dict:
        n = min(EVAL_CHUNK, self.num_eval_examples(split) - c * EVAL_CHUNK)
        seed = int(self.p.eval_seed) * 1_000_003 + c + (VAL_SEED_OFFSET if split == "val" else 0)
        return self.draw(n, torch.Generator().manual_seed(seed))

    def eval_batches(self, batch_size: int = 0, split: str = "test"):
        n = self.num_eval_examples(split)          # an unknown split raises here
        return self._batches(batch_size if batch_size and batch_size > 0 else self.p.batch, n, split)

    def _batches(self, bs: int, n: int, split: str):
        cache: dict[int, dict] = {}
        for a in range(0, n, bs):
            b = min(a + bs, n)
            parts = []
            for c in range(a // EVAL_CHUNK, (b - 1) // EVAL_CHUNK + 1):
                if c not in cache:
                    cache.clear()
                    cache[c] = self._chunk(c, split)
                lo, hi = max(a, c * EVAL_CHUNK) - c * EVAL_CHUNK, min(b, (c + 1) * EVAL_CHUNK) - c * EVAL_CHUNK
                parts.append({k: v[lo:hi] for k, v in cache[c].items()})
            yield {k: torch.cat([p[k] for p in parts]).to(self.device) for k in parts[0]}

    @property
    def dataset_info(self) -> dict:
        return {"dataset": f"{self.type_id} (random draws)", "path": "", "split": "test",
                "count": self.num_eval_examples("test"), "eval_seed": int(self.p.eval_seed),
                "splits": {"train": None, "test": self.num_eval_examples("test"),
                           "val": self.num_eval_examples("val")}}


# ----------------------------------------------------------------------------- shapes

#: classes of source.shapes, by label value
SHAPE_CLASSES = ("background", "square", "disc", "triangle")


@register("source.shapes")
class ShapesSource(SeededRandomSource):
    """Procedural labelled shapes: a small offline segmentation task (graphs/examples/segmentation_toy.yaml).

    Each image is a dark background (a random colour per image, channels in [0, 0.4]) with
    1..``max_shapes`` shapes drawn in order, later ones on top: axis-aligned squares
    (half-side r), discs (radius r) and upward triangles (base and height 2r), with r
    uniform in [min_radius, max_radius] x size and the centre uniform over the image. Every
    shape gets a random bright colour (channels in [0.5, 1]) from one distribution for all
    classes, so only geometry tells the classes apart. Gaussian pixel noise (std ``noise``)
    is added and the image clipped to [0, 1]. The label of a pixel is the class of the
    topmost shape covering it: 0 background, 1 square, 2 disc, 3 triangle (``SHAPE_CLASSES``).
    For the dense cross-entropy loss and ``sink.miou`` (seed 002 CSC-SA-Net's task and
    metric, eq. 29, on a toy). Splits as every seeded random source: training draws from
    the block generator, 'test' and 'val' are fixed independent draws (``eval_seed``).

    forward() -> image real (B, 3, H, W) in [0, 1], label int (B, H, W) in 0..3, H = W = size.
    """
    outputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="images in [0, 1]"),
               "label": Port("int", ("B", "H", "W"), tag="label",
                             doc="class per pixel: 0 background, 1 square, 2 disc, 3 triangle")}
    params = {"size": Param(int, 32, "image side H = W"),
              "batch": Param(int, 16, "training batch size B of forward()"),
              "max_shapes": Param(int, 3, "shapes per image: uniform in 1..max_shapes"),
              "min_radius": Param(float, 0.12, "smallest shape radius r, as a fraction of size"),
              "max_radius": Param(float, 0.3, "largest shape radius r, as a fraction of size"),
              "noise": Param(float, 0.05, "std of the Gaussian pixel noise"),
              "num_eval_examples": Param(int, 512, "images in each held-out split (test, val)"),
              "eval_seed": Param(int, 2024, "seed of the held-out splits (independent of the run seed)")}

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        _check_min("source.shapes", p, size=4, batch=1, max_shapes=1, num_eval_examples=1)
        if not 0.0 < p.min_radius <= p.max_radius or p.noise < 0:
            raise SemflowError(f"source.shapes: need 0 < min_radius <= max_radius and noise >= 0, got "
                               f"{p.min_radius}, {p.max_radius}, {p.noise}")

    def draw(self, n: int, g: torch.Generator) -> dict:
        s, k, p = self.p.size, self.p.max_shapes, self.p
        count = torch.randint(1, k + 1, (n,), generator=g)
        cls = torch.randint(1, len(SHAPE_CLASSES), (n, k), generator=g)
        r = (p.min_radius + (p.max_radius - p.min_radius) * torch.rand(n, k, generator=g)) * s
        cy, cx = torch.rand(n, k, generator=g) * s, torch.rand(n, k, generator=g) * s
        colour = 0.5 + 0.5 * torch.rand(n, k, 3, generator=g)
        image = (0.4 * torch.rand(n, 3, 1, 1, generator=g)).expand(n, 3, s, s).clone()
        label = torch.zeros(n, s, s, dtype=torch.long)
        yy = (torch.arange(s, dtype=torch.float32) + 0.5).view(1, s, 1)      # pixel centres
        xx = (torch.arange(s, dtype=torch.float32) + 0.5).view(1, 1, s)
        for j in range(k):
            dy, dx, rj = yy - cy[:, j, None, None], xx - cx[:, j, None, None], r[:, j, None, None]
            square = (dy.abs() <= rj) & (dx.abs() <= rj)
            disc = dy ** 2 + dx ** 2 <= rj ** 2
            triangle = (dy.abs() <= rj) & (dx.abs() <= (dy + rj) / 2)          # apex up, base 2r
            c = cls[:, j, None, None]
            mask = torch.where(c == 1, square, torch.where(c == 2, disc, triangle)) & (j < count).view(n, 1, 1)
            image = torch.where(mask.unsqueeze(1), colour[:, j, :, None, None], image)
            label = torch.where(mask, c, label)
        image = (image + p.noise * torch.randn(n, 3, s, s, generator=g)).clamp(0.0, 1.0)
        return {"image": image, "label": label}

    @property
    def dataset_info(self) -> dict:
        return {**super().dataset_info, "dataset": "shapes (procedural)", "classes": list(SHAPE_CLASSES)}

    def source_values_per_example(self) -> int:
        return 3 * self.p.size * self.p.size
