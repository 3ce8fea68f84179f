"""Loading time of a dataset read in place: the CIFAR-10 JPEG tar by default.

    .venv/bin/python bench/dataset_loading.py [PATH] [--test-per-class 500] [--val-per-class 500]

Each figure is measured in this one process, cold first (nothing of the dataset cached in
the process; the operating system's file cache is whatever it is, the tar is read once
before timing so a first disk read does not dominate):

  build          source.images block construction: tar index + split layout
  first eval     one pass over the test split: every held-out image decoded (then cached)
  second eval    the same pass again (decoded images from the cache)
  training       100 training batches of 16 (decoding training images on first use)
  rebuild        a second block on the same tar (index and layout cached)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import blocks  # noqa: E402,F401
from flowgraph.testing import build  # noqa: E402

DEFAULT = next((b / "shared/data/cifar10-train-jpeg.tar" for b in (ROOT.parent, ROOT.parent.parent)
                if (b / "shared/data/cifar10-train-jpeg.tar").is_file()), None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT) if DEFAULT else None)
    ap.add_argument("--test-per-class", type=int, default=500)
    ap.add_argument("--val-per-class", type=int, default=500)
    args = ap.parse_args(argv)
    if not args.path:
        ap.error("no dataset path given and ../shared/data/cifar10-train-jpeg.tar not found")
    torch.set_num_threads(1)
    with open(args.path, "rb") as fh:           # warm the OS file cache: time the reader, not the disk
        while fh.read(1 << 24):
            pass
    params = {"dataset": "folder", "path": args.path, "test_per_class": args.test_per_class,
              "val_per_class": args.val_per_class, "batch": 16}
    rows = []

    t = time.perf_counter()
    block = build("source.images", params)
    rows.append(("build (index + layout)", time.perf_counter() - t, ""))
    info = block.dataset_info
    for label in ("first eval", "second eval"):
        t = time.perf_counter()
        n = sum(len(b["image"]) for b in block.eval_batches(250))
        rows.append((f"{label} pass", time.perf_counter() - t, f"{n} images"))
    block.seed(0)
    t = time.perf_counter()
    for _ in range(100):
        block()
    rows.append(("100 training batches of 16", time.perf_counter() - t, ""))
    t = time.perf_counter()
    build("source.images", params)
    rows.append(("rebuild (cached)", time.perf_counter() - t, ""))

    print(f"{args.path}: {info['splits']} ({info['held_out']}; val: {info['val_from']})")
    for name, sec, note in rows:
        print(f"  {name:<28} {sec:7.2f} s  {note}")


if __name__ == "__main__":
    main()
