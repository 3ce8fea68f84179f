"""Seed 002 (CSC-SA-Net) reference: the mIoU of a constant prediction on source.rgbt's test split.

A trained segmentation must beat the best single class predicted everywhere; on the
procedural scenes most pixels are unlabelled (class 0), so that floor is not zero.

    .venv/bin/python scripts/csc_constant_miou.py --num-eval 192
"""
from __future__ import annotations

import argparse

import torch

import blocks  # noqa: F401  (registers the library)
from flowgraph import registry


def constant_miou(height: int, width: int, num_eval: int, n_classes: int = 9) -> dict:
    """Best constant class and its dataset / per-image mIoU for each sink.miou convention."""
    src = registry.get("source.rgbt")(height=height, width=width, num_train=1, num_val=1, num_eval=num_eval)
    labels = torch.cat([b["label"] for b in src.eval_batches(64, split="test")])
    out = {"class_frequency": [float((labels == c).float().mean()) for c in range(n_classes)]}
    for convention in ("mfnet", "standard"):
        sink = registry.get("sink.miou")(n_classes=n_classes, convention=convention)
        best = None
        for c in range(n_classes):
            logits = torch.full((labels.shape[0], n_classes, height, width), -1.0)
            logits[:, c] = 1.0
            o = sink(logits=logits, label=labels)
            row = {"class": c, "dataset": float(sink.reduce_stats(o["stats"])), "per_image": float(o["value"].mean())}
            if best is None or row["dataset"] > best["dataset"]:
                best = row
        out[convention] = best
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--num-eval", type=int, default=192)
    a = ap.parse_args()
    torch.set_num_threads(1)
    r = constant_miou(a.height, a.width, a.num_eval)
    print("class frequency:", " ".join(f"{f:.3f}" for f in r["class_frequency"]))
    for conv in ("mfnet", "standard"):
        b = r[conv]
        print(f"{conv:8s} best constant class {b['class']}: dataset mIoU {b['dataset']:.4f}, "
              f"per-image mean {b['per_image']:.4f}")


if __name__ == "__main__":
    main()
