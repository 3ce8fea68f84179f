"""Tables of docs/results/jscbf.md from the run directories of scripts/jscbf_runs.sh.

    python scripts/jscbf_tables.py runs/jscbf_L4_s0 [more run roots...] [--png docs/img/jscbf_quick.png]

Each root holds jscbf/, md_only/ and djscc/ (metrics.json with per-example values). Prints,
per root: PSNR and MS-SSIM (dB) per SNR with 95 % CIs for the three systems; the JSCBF minus
MD-only difference per SNR, paired (the two graphs have the same blocks, so the same images
see the same channel and noise draws), and JSCBF minus DJSCC (a different graph: different
draws, an unpaired Welch interval); the LAMP NMSE; per-image PSNR quantiles (Fig. 12 analogue);
the sum rates of the learned beamformer against RZF and Algorithm 1 (WMMSE).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

SYSTEMS = {"jscbf": "Deep JSCBF", "md_only": "JSCBF, model-driven only", "djscc": "Deep JSCC + RZF"}


def load(root: Path) -> dict:
    out = {}
    for name in SYSTEMS:
        f = root / name / "metrics.json"
        if f.is_file():
            out[name] = json.loads(f.read_text())
    return out


def values(result: dict, point: str, metric: str) -> list[float]:
    return result["per_example"][point][metric]


def mean_ci(v: list[float]) -> tuple[float, float]:
    n = len(v)
    m = sum(v) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
    return m, 1.96 * sd / math.sqrt(n)


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    return mean_ci([x - y for x, y in zip(a, b)])


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    (ma, ca), (mb, cb) = mean_ci(a), mean_ci(b)
    return ma - mb, math.sqrt(ca ** 2 + cb ** 2)


def quantile(v: list[float], q: float) -> float:
    s = sorted(v)
    i = q * (len(s) - 1)
    lo = int(math.floor(i))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (i - lo)


def report(root: Path) -> str:
    res = load(root)
    if "jscbf" not in res:
        return f"{root}: no jscbf/metrics.json"
    points = list(res["jscbf"]["per_example"])
    lines = [f"### {root.name}", "", "| SNR [dB] | " + " | ".join(
        f"{SYSTEMS[s]} PSNR [dB] | MS-SSIM [dB]" for s in res) + " |",
             "|---|" + "---|---|" * len(res)]
    for pt in points:
        cells = []
        for s, r in res.items():
            for m in ("psnr", "ms_db"):
                mu, ci = mean_ci(values(r, pt, m))
                cells.append(f"{mu:.2f} ± {ci:.2f}")
        lines.append(f"| {pt.split('=')[-1]} | " + " | ".join(cells) + " |")
    lines += ["", "| SNR [dB] | JSCBF − MD-only PSNR (paired) | JSCBF − DJSCC PSNR (Welch) | "
              "MD-only − DJSCC PSNR (Welch) | JSCBF − DJSCC MS-SSIM dB (Welch) |", "|---|---|---|---|---|"]
    for pt in points:
        row = [pt.split("=")[-1]]
        j = values(res["jscbf"], pt, "psnr")
        row.append("{:+.2f} ± {:.2f}".format(*paired(j, values(res["md_only"], pt, "psnr")))
                   if "md_only" in res else "")
        row.append("{:+.2f} ± {:.2f}".format(*welch(j, values(res["djscc"], pt, "psnr"))) if "djscc" in res else "")
        row.append("{:+.2f} ± {:.2f}".format(*welch(values(res["md_only"], pt, "psnr"), values(res["djscc"], pt, "psnr")))
                   if "md_only" in res and "djscc" in res else "")
        row.append("{:+.2f} ± {:.2f}".format(*welch(values(res["jscbf"], pt, "ms_db"), values(res["djscc"], pt, "ms_db")))
                   if "djscc" in res else "")
        lines.append("| " + " | ".join(row) + " |")
    pt20 = next((p for p in points if p.endswith("=20")), points[-1])
    lines += ["", f"LAMP NMSE at {pt20}: " + ", ".join(
        f"{SYSTEMS[s]} {mean_ci(values(r, pt20, 'nmse'))[0]:.3f}" for s, r in res.items()), ""]
    lines += [f"Per-image PSNR at {pt20} (Fig. 12 analogue): quantiles 10 / 20 / 50 / 80 %", "",
              "| system | 10 % | 20 % | 50 % | 80 % |", "|---|---|---|---|---|"]
    for s, r in res.items():
        v = values(r, pt20, "psnr_img")
        lines.append(f"| {SYSTEMS[s]} | " + " | ".join(f"{quantile(v, q):.2f}" for q in (0.1, 0.2, 0.5, 0.8)) + " |")
    lines += ["", "Sum rate [bit/s/Hz] on the true channel (learned F_BB / RZF / WMMSE, all from the LAMP CSI):", "",
              "| SNR [dB] | system | learned F_BB | RZF | WMMSE (Alg. 1) |", "|---|---|---|---|---|"]
    for pt in points:
        for s in ("jscbf", "md_only"):
            if s in res:
                cells = [f"{mean_ci(values(res[s], pt, m))[0]:.2f}" for m in ("rate_md", "rate_rzf", "rate_wmmse")]
                lines.append(f"| {pt.split('=')[-1]} | {SYSTEMS[s]} | " + " | ".join(cells) + " |")
    betas = []
    for s in ("jscbf", "md_only"):
        ck = root / s / "checkpoints" / "last.pt"
        if ck.is_file():
            import torch
            beta = torch.load(ck, map_location="cpu", weights_only=False)["blocks"].get("blocks.comb.beta")
            if beta is not None:
                betas.append(f"{SYSTEMS[s]}: beta_d = {float(beta[0]):.3f}, beta_m = {float(beta[1]):.3f}")
    if betas:
        lines += ["", "Learned betas (eq. 28) after training: " + "; ".join(betas)]
    return "\n".join(lines)


def plot(roots: list[Path], png: Path) -> None:
    """PSNR and MS-SSIM (dB) against SNR with 95 % CIs, one line per system and root."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    colours = {"jscbf": "tab:red", "md_only": "tab:orange", "djscc": "tab:blue"}
    for root in roots:
        for s, r in load(root).items():
            pts = list(r["per_example"])
            snr = [float(p.split("=")[-1]) for p in pts]
            for ax, m, lab in zip(axes, ("psnr", "ms_db"), ("PSNR [dB]", "MS-SSIM [dB]")):
                mc = [mean_ci(values(r, p, m)) for p in pts]
                ax.errorbar(snr, [a for a, _ in mc], yerr=[c for _, c in mc], capsize=2, color=colours[s],
                            label=f"{SYSTEMS[s]} ({root.name})")
                ax.set_xlabel("SNR [dB]")
                ax.set_ylabel(lab)
                ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    args = sys.argv[1:]
    png = None
    if "--png" in args:
        i = args.index("--png")
        png = Path(args[i + 1])
        del args[i:i + 2]
    for arg in args:
        print(report(Path(arg)))
        print()
    if png:
        plot([Path(a) for a in args], png)
