"""The tables of docs/results/fullres.md from the run directories of scripts/fullres_runs.sh.

Usage: .venv/bin/python scripts/fullres_table.py [runs/fullres]
Prints, per evaluation variant, the test set it names (metrics.json data), its CBR, and per
SNR both PSNR conventions: psnr (per-image mean ± 95% CI) and psnr_of_mse (dataset level,
[bootstrap 95% interval]); then the tiled-minus-whole differences.
"""
import json
import sys
from pathlib import Path

VARIANTS = [("crops256", "32×32 grid crops, short side 256"),
            ("whole256", "whole images, short side 256"),
            ("tiles256", "the same whole images as 32×32 tiles"),
            ("whole256_uint8", "whole images, short side 256, uint8 scoring"),
            ("crops_native", "32×32 grid crops, native size"),
            ("whole_native", "whole images, native size"),
            ("tiles_native", "the same whole images as 32×32 tiles")]


def load(root: Path, name: str):
    f = root / name / "metrics.json"
    return json.loads(f.read_text()) if f.exists() else None


def main(root: Path):
    res = {n: load(root, n) for n, _ in VARIANTS}
    for name, what in VARIANTS:
        r = res[name]
        if r is None:
            print(f"\n{name}: not run\n")
            continue
        d = r["data"]
        c = r["cbr"] or {}
        sizes = ", ".join(f"{e['shape']} ×{e['examples']}" for e in c.get("images", [])) or "one size"
        print(f"\n**{what}** (`{name}`): {d['examples']} examples; measured on: {d['dataset'].get('name')}; "
              f"CBR {c.get('fraction')} ({sizes})\n")
        print("| SNR [dB] | psnr [dB] (per-image mean ± 95% CI) | psnr_of_mse [dB] [95% bootstrap] | MS-SSIM |")
        print("|---:|---:|---:|---:|")
        for row in r["rows"]:
            print(f"| {row['snr_db']:g} | {row['psnr']:.2f} ± {row['psnr_ci95']:.2f} | {row['psnr_of_mse']:.2f} "
                  f"[{row['psnr_of_mse_lo']:.2f}, {row['psnr_of_mse_hi']:.2f}] | {row['msssim']:.3f} |")
    for scale in ("256", "_native"):
        whole, tiles = res.get(f"whole{scale}"), res.get(f"tiles{scale}")
        if whole and tiles:
            print(f"\nTiles minus whole ({scale.strip('_')}), per SNR: psnr "
                  + ", ".join(f"{t['psnr'] - w['psnr']:+.2f}" for w, t in zip(whole["rows"], tiles["rows"]))
                  + "; psnr_of_mse "
                  + ", ".join(f"{t['psnr_of_mse'] - w['psnr_of_mse']:+.2f}" for w, t in zip(whole["rows"], tiles["rows"])))
    q, w = res.get("whole256_uint8"), res.get("whole256")
    if q and w:
        print("\nuint8 minus float scoring (whole, 256), per SNR: psnr "
              + ", ".join(f"{a['psnr'] - b['psnr']:+.4f}" for b, a in zip(w["rows"], q["rows"])))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/fullres"))
