"""Tables and plots of evaluation results (plain text and PNG)."""
from __future__ import annotations

from pathlib import Path


def format_table(result: dict) -> str:
    """A plain-text table: one row per sweep point, mean ± std per metric."""
    sweep, metrics, rows = result["sweep"], result["metrics"], result["rows"]
    units = result.get("units", {})
    head = sweep + [f"{m}" + (f" [{units[m]}]" if units.get(m) else "") for m in metrics] + ["n"]
    body = []
    for r in rows:
        body.append([f"{r[k]}" for k in sweep] + [f"{r[m]:.3f} ± {r[f'{m}_std']:.3f}" for m in metrics] + [str(r["n"])])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def plot_metrics(result: dict, out: Path) -> list[Path]:
    """One PNG per metric against the first sweep variable (lines per value of the second)."""
    if not result["sweep"]:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x, rows, paths = result["sweep"][0], result["rows"], []
    second = result["sweep"][1] if len(result["sweep"]) > 1 else None
    groups = {}
    for r in rows:
        groups.setdefault(r[second] if second else None, []).append(r)
    for m in result["metrics"]:
        fig, ax = plt.subplots(figsize=(5, 3.6), dpi=110)
        for g, rs in groups.items():
            rs = sorted(rs, key=lambda r: r[x])
            ax.errorbar([r[x] for r in rs], [r[m] for r in rs], yerr=[r[f"{m}_ci95"] for r in rs],
                        marker="o", capsize=3, label=f"{second}={g}" if second else None)
        unit = result.get("units", {}).get(m, "")
        ax.set_xlabel(x)
        ax.set_ylabel(f"{m}" + (f" [{unit}]" if unit else ""))
        cbr = result.get("cbr")
        ax.set_title(f"{result['graph']}" + (f"  (CBR {cbr['fraction']})" if cbr else ""), fontsize=9)
        ax.grid(alpha=0.3)
        if second:
            ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / f"{m}_vs_{x}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths
