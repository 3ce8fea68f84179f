import csv, sys
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
R = "runs/lcfsc_results"
def load(name):
    with open(f"{R}/{name}/metrics.csv") as f:
        return list(csv.DictReader(f))
def fmt(row, k, d):
    return f"{float(row[k]):.{d}f} ± {float(row[k+'_std']):.{d}f}"
names = sys.argv[1].split(",")
labels = sys.argv[2].split(",")
data = {n: load(n) for n in names}
for metric, d in (("psnr", 2), ("msssim", 3)):
    print(f"\n{metric}:\n")
    print("| SNR (dB) | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for i, row in enumerate(data[names[0]]):
        print(f"| {row['snr_db']} | " + " | ".join(fmt(data[n][i], metric, d) for n in names) + " |")
    print(f"\nn = {data[names[0]][0]['n']} held-out crops per SNR point.")
if len(sys.argv) > 3:
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    for n, l in zip(names, labels):
        s = [float(r["snr_db"]) for r in data[n]]
        for a, m in zip(ax, ("psnr", "msssim")):
            a.errorbar(s, [float(r[m]) for r in data[n]], yerr=[float(r[m + "_ci95"]) for r in data[n]], marker="o", capsize=2, label=l)
    ax[0].set_ylabel("PSNR (dB)"); ax[1].set_ylabel("MS-SSIM (3-scale, 32 px)")
    for a in ax: a.set_xlabel("SNR (dB)"); a.grid(alpha=.3)
    ax[0].legend(); fig.suptitle(sys.argv[4] if len(sys.argv) > 4 else "")
    fig.tight_layout(); fig.savefig(sys.argv[3], dpi=80)
