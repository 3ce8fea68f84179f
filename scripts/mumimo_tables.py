"""Seed-003 results: markdown tables and one figure from the metrics.csv of several runs.

    .venv/bin/python scripts/mumimo_tables.py "Ours (Full)=runs/mumimo/full" \
        "Ours (w/o Pilot)=runs/mumimo/wo_pilot" ... --png docs/img/mumimo_quick.png

Each run must have swept ``snr_db`` and ``scenario`` (the seed-003 graphs do). Prints,
per scenario, PSNR and accuracy (mean ± 95 % CI of the mean) against SNR, one column per
run; a run without a metric (the JPEG chain has no classifier) shows "—". The figure has
PSNR (top) and accuracy (bottom) against SNR, one column per scenario.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

SCENARIOS = ("umi", "uma", "rma")
METRICS = (("psnr", "PSNR (dB)", 2, 1.0), ("acc", "accuracy (%)", 1, 100.0))
#: one colour per system across figures (matched by a part of the label)
COLOURS = (("Full", "C0"), ("w/o Pilot", "C1"), ("RZF", "C2"), ("DJSCC", "C3"), ("JPEG", "C4"))


def colour(label: str):
    return next((c for key, c in COLOURS if key in label), None)


def load(run: str) -> dict:
    """(scenario, snr) -> row of the run's metrics.csv."""
    with open(Path(run) / "metrics.csv") as f:
        return {(r["scenario"], float(r["snr_db"])): r for r in csv.DictReader(f)}


def cell(row, metric, digits, scale) -> str:
    if row is None or metric not in row or row[metric] == "":
        return "—"
    return f"{scale * float(row[metric]):.{digits}f} ± {scale * float(row[metric + '_ci95']):.{digits}f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    ap.add_argument("--png", help="write the figure here")
    args = ap.parse_args(argv)
    runs = [r.split("=", 1) for r in args.runs]
    data = {label: load(path) for label, path in runs}
    snrs = sorted({snr for d in data.values() for (_, snr) in d})
    for metric, name, digits, scale in METRICS:
        for sc in SCENARIOS:
            print(f"\n{name}, {sc.upper()} (mean ± 95 % CI of the mean):\n")
            print("| SNR (dB) | " + " | ".join(label for label, _ in runs) + " |")
            print("|---|" + "---|" * len(runs))
            for snr in snrs:
                print(f"| {snr:g} | " + " | ".join(cell(data[label].get((sc, snr)), metric, digits, scale)
                                                for label, _ in runs) + " |")
    ns = {label: sorted({r["n"] for r in d.values()}) for label, d in data.items()}
    print("\nexamples per point: " + ", ".join(f"{label} {'/'.join(n)}" for label, n in ns.items()))
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(2, len(SCENARIOS), figsize=(12, 6.4), sharex=True)
        for row, (metric, name, _, scale) in enumerate(METRICS):
            for col, sc in enumerate(SCENARIOS):
                ax = axes[row, col]
                for label, _ in runs:
                    pts = [(snr, data[label].get((sc, snr))) for snr in snrs]
                    pts = [(s, r) for s, r in pts if r is not None and r.get(metric, "") != ""]
                    if pts:
                        ax.errorbar([s for s, _ in pts], [scale * float(r[metric]) for _, r in pts],
                                    yerr=[scale * float(r[metric + "_ci95"]) for _, r in pts],
                                    marker="o", capsize=2, label=label, color=colour(label))
                ax.set_title(f"{sc.upper()}", fontsize=10)
                ax.grid(alpha=0.3)
                if col == 0:
                    ax.set_ylabel(name)
                if row == len(METRICS) - 1:
                    ax.set_xlabel("SNR (dB)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
        fig.tight_layout(rect=(0, 0.06, 1, 1))   # room for the shared legend below
        fig.savefig(args.png, dpi=90)
        print(f"\nfigure: {args.png}")


if __name__ == "__main__":
    main()
