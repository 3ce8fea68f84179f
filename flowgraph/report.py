"""Tables and plots of evaluation results (plain text, markdown and PNG), shared by runs and compare.

Plots show every dimension of a sweep: the first variable on the x axis, one line per
value of the second, one panel (small multiple) per value of the third, one file per
combination of any further ones, never merged. A categorical axis keeps the sweep order.
Error rates and NMSE (``Sink.scale = "log"``) get a log axis; a point with mean 0 there is
drawn as a downward triangle at the upper end of its interval. Error bars and bands are 95%
intervals (Wilson for proportions, bootstrap for set-level values), and say so on the figure.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

#: units guessed from a variable's name when the graph does not give one (evaluate.units)
_UNIT_SUFFIXES = (("_dbm", "dBm"), ("_db", "dB"), ("_hz", "Hz"), ("_khz", "kHz"), ("_mhz", "MHz"),
                  ("_ghz", "GHz"), ("_ns", "ns"), ("_ms", "ms"), ("_m", "m"), ("_deg", "°"))


# ---- numbers ---------------------------------------------------------------------------------
def _decimals(v: float, significant: int) -> int:
    return max(0, min(8, significant - 1 - math.floor(math.log10(abs(v)))))


def fmt_value(v, significant: int = 4) -> str:
    """A number with enough significant digits: 28.50, 0.7104, 1.234e-04 (never 0.000 for 1e-4)."""
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    v = float(v)
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if v == 0:
        return "0"
    if abs(v) < 1e-3 or abs(v) >= 1e6:
        return f"{v:.{significant - 1}e}"
    return f"{v:.{_decimals(v, significant)}f}"


def fmt_pair(mean, spread, sep: str = " ± ") -> str:
    """mean ± spread, both with the decimals of 4 significant digits of the mean or 2 of
    the spread, whichever needs more (28.50 ± 3.92, 0.000 ± 0.012); scientific when the mean
    is tiny or huge (1.234e-04 ± 5.0e-05)."""
    if mean is None or not math.isfinite(float(mean)):
        return fmt_value(mean)
    mean = float(mean)
    spread = float(spread) if spread is not None and math.isfinite(float(spread)) else 0.0
    if mean != 0 and (abs(mean) < 1e-3 or abs(mean) >= 1e6):
        return f"{mean:.3e}{sep}{spread:.1e}"
    d = max(_decimals(mean, 4) if mean else 0, _decimals(spread, 2) if spread > 0 else 0)
    return f"{mean:.{d}f}{sep}{spread:.{d}f}"


def fmt_interval(lo, hi) -> str:
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return ""
    return f"[{fmt_value(lo, 3)}, {fmt_value(hi, 3)}]"


# ---- result metadata -------------------------------------------------------------------------
def columns_of(result: dict) -> dict:
    """The reported columns of an evaluation result (older metrics.json files: from metrics/units)."""
    if result.get("columns"):
        return result["columns"]
    units = result.get("units", {})
    return {m: {"metric": m, "unit": units.get(m, ""), "higher_is_better": True, "scale": "linear",
                "proportion": False, "kind": "mean"} for m in result.get("metrics", [])}


def bounds(row: dict, col: str) -> tuple[float, float]:
    """The 95% interval of a column in a row (lo/hi, or mean ± ci95 in older files)."""
    if f"{col}_lo" in row and row[f"{col}_lo"] not in (None, ""):
        return float(row[f"{col}_lo"]), float(row[f"{col}_hi"])
    m, h = float(row[col]), float(row.get(f"{col}_ci95") or 0.0)
    return m - h, m + h


def axis_label(name: str, units: dict | None = None) -> str:
    """``snr_db [dB]``: the variable's name and its unit (given in evaluate.units, or from its suffix)."""
    unit = (units or {}).get(name)
    if unit is None:
        unit = next((u for suffix, u in _UNIT_SUFFIXES if name.lower().endswith(suffix)), "")
    return f"{name} [{unit}]" if unit else name


def metric_label(col: str, meta: dict) -> str:
    return f"{col} [{meta['unit']}]" if meta.get("unit") else col


def interval_name(meta: dict) -> str:
    if meta.get("kind") == "set":
        return "95% bootstrap CI"
    return "95% Wilson CI" if meta.get("proportion") else "95% CI of the mean"


# ---- tables ----------------------------------------------------------------------------------
def format_table(result: dict) -> str:
    """A plain-text table: one row per sweep point; mean ± std (over examples) per metric,
    the value and its 95% bootstrap CI per set-level metric."""
    sweep, rows, cols = result["sweep"], result["rows"], columns_of(result)
    head = list(sweep)
    for c, meta in cols.items():
        head.append(metric_label(c, meta) + (" mean ± std" if meta["kind"] == "mean" else " [95% CI]"))
    head.append("n")
    body = []
    for r in rows:
        cells = [f"{r[k]}" for k in sweep]
        for c, meta in cols.items():
            if meta["kind"] == "mean":
                cells.append(fmt_pair(r.get(c), r.get(f"{c}_std")))
            else:
                lo, hi = bounds(r, c)
                cells.append(f"{fmt_value(r.get(c))} {fmt_interval(lo, hi)}".strip())
        cells.append(str(r["n"]))
        body.append(cells)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


# ---- figures ---------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def all_numeric(values) -> bool:
    """True when every value is a number (bool excluded): a numeric axis, not a categorical one."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def ordered(values) -> list:
    """Distinct values in order of first appearance (sweep order)."""
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def draw_panels(curves: list, x: str, meta: dict, path: Path, *, title: str = "", panel_key: str | None = None,
                panels: list | None = None, series_key: str | None = None, x_units: dict | None = None,
                bands: bool = False, note: str = "") -> Path:
    """One PNG: a panel per value in ``panels`` (or one), a line per curve.

    ``curves``: dicts with ``label``, ``color`` (or None), ``panel`` (value of panel_key or
    None), ``points``: [(x, mean, lo, hi)] in the order the x values should appear."""
    plt = _plt()
    panels = panels if panels else [None]
    xs = ordered(p[0] for c in curves for p in c["points"])
    categorical = not all_numeric(xs)
    pos = {v: i for i, v in enumerate(xs)} if categorical else None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.6, 3.7), dpi=110, squeeze=False,
                             sharey=True)
    log = meta.get("scale") == "log"
    zero_drawn = False
    for ax, pv in zip(axes[0], panels):
        for c in curves:
            if c.get("panel") != pv:
                continue
            pts = c["points"] if categorical else sorted(c["points"], key=lambda p: p[0])
            X = [pos[p[0]] if categorical else p[0] for p in pts]
            Y = [p[1] for p in pts]
            lo = [p[2] for p in pts]
            hi = [p[3] for p in pts]
            if log:   # 0 cannot be drawn on a log axis: mark the upper end of its interval instead
                zero = [i for i, y in enumerate(Y) if not (y > 0)]
                if zero:
                    zero_drawn = True
                    ax.scatter([X[i] for i in zero], [hi[i] for i in zero], marker="v", color=c.get("color"),
                               zorder=3, label=None)
                keep = [i for i in range(len(Y)) if Y[i] > 0]
                X, Y, lo, hi = ([s[i] for i in keep] for s in (X, Y, lo, hi))
            if bands and not categorical:
                line, = ax.plot(X, Y, marker="o", ms=3.5, color=c.get("color"), label=c["label"])
                ax.fill_between(X, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
            else:
                err = [[max(0.0, y - a) for y, a in zip(Y, lo)], [max(0.0, b - y) for y, b in zip(Y, hi)]]
                if log:
                    err[0] = [min(e, y * 0.999) for e, y in zip(err[0], Y)]
                ax.errorbar(X, Y, yerr=err, marker="o", ms=3.5, capsize=3, color=c.get("color"), label=c["label"])
        if log:
            ax.set_yscale("log")
        if categorical:
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels([str(v) for v in xs])
        ax.set_xlabel(axis_label(x, x_units))
        if pv is not None:
            ax.set_title(f"{panel_key} = {pv}", fontsize=9)
        ax.grid(alpha=0.3, which="both" if log else "major")
    axes[0][0].set_ylabel(metric_label(meta.get("col", meta["metric"]), meta))
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if any(labels):
        axes[0][-1].legend(handles, labels, fontsize=8, title=series_key, title_fontsize=8)
    sub = ("bands" if bands else "bars") + f": {interval_name(meta)}" + (f"; {note}" if note else "") \
        + ("; ▼ mean 0, drawn at the upper end of its interval" if zero_drawn else "")
    fig.suptitle((title + "\n" if title else "") + sub, fontsize=8.5)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Lay out, write and close a figure (tests wrap this to inspect the figure's artists)."""
    fig.tight_layout()
    fig.savefig(path)
    _plt().close(fig)
    return path


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_") or "x"


def plot_metrics(result: dict, out: Path) -> list[Path]:
    """One PNG per metric column (and per combination of the 4th+ sweep variables): x = the
    first sweep variable, lines = the second, panels = the third."""
    sweep = list(result["sweep"])
    if not sweep or not result["rows"]:
        return []
    rows, cols = result["rows"], columns_of(result)
    x, series, panel, rest = sweep[0], (sweep[1:2] or [None])[0], (sweep[2:3] or [None])[0], sweep[3:]
    panels = ordered(r[panel] for r in rows) if panel else None
    groups = ordered(tuple(r[k] for k in rest) for r in rows)
    cbr = result.get("cbr")
    paths = []
    for col, meta in cols.items():
        meta = {**meta, "col": col}
        for combo in groups:
            sel = [r for r in rows if tuple(r[k] for k in rest) == combo]
            curves = []
            for sv in (ordered(r[series] for r in sel) if series else [None]):
                for pv in (panels or [None]):
                    pts = [(r[x], float(r[col]), *bounds(r, col)) for r in sel
                           if (series is None or r[series] == sv) and (panel is None or r[panel] == pv)]
                    if pts:
                        curves.append({"label": f"{series}={sv}" if series else None, "color": None,
                                       "panel": pv, "points": pts})
            fixed = ", ".join(f"{k}={v}" for k, v in zip(rest, combo))
            title = result["graph"] + (f"  (CBR {cbr['fraction']})" if cbr else "") + (f"  {fixed}" if fixed else "")
            n = ordered(r["n"] for r in sel)
            name = f"{col}_vs_{x}" + "".join(f"__{k}={_slug(v)}" for k, v in zip(rest, combo)) + ".png"
            paths.append(draw_panels(curves, x, meta, out / name, title=title, panel_key=panel, panels=panels,
                                     series_key=series, x_units=result.get("axis_units"),
                                     note="n = " + "/".join(map(str, n))))
    return paths


def plot_training(csv_path: Path, png: Path, metrics: list | None = None) -> Path | None:
    """The training curve from train.csv: loss (and each logged metric) against the step
    counted over all stages, stage boundaries dashed."""
    if not Path(csv_path).is_file():
        return None
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows = [r for r in rows if r.get("step") not in (None, "") and r.get("loss") not in (None, "")]
    if not rows:
        return None
    plt = _plt()
    steps, starts, offset, stage, last = [], [], 0, None, 0
    for r in rows:
        s = int(float(r["step"]))
        if r.get("stage") != stage:
            offset += last
            starts.append((offset, r.get("stage")))
            stage = r.get("stage")
        last = s
        steps.append(offset + s)
    panels = ["loss"] + [m for m in (metrics or []) if m in rows[0] and any(r.get(m) for r in rows)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(6, 2.3 * len(panels) + 0.4), dpi=110, sharex=True,
                             squeeze=False)
    for ax, col in zip(axes[:, 0], panels):
        ys = [float(r[col]) if r.get(col) not in (None, "") else float("nan") for r in rows]
        ax.plot(steps, ys, lw=1.2)
        pos = [y for y in ys if y > 0]
        if col == "loss" and pos and len(pos) == len(ys) and max(pos) / min(pos) > 20:
            ax.set_yscale("log")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
        for x0, name in starts[1:]:
            ax.axvline(x0, ls="--", color="0.5", lw=0.8)
        for x0, name in starts if len(starts) > 1 else []:
            ax.annotate(str(name), (x0, 1.0), xycoords=("data", "axes fraction"), fontsize=7, va="top",
                        xytext=(3, -3), textcoords="offset points", color="0.35", annotation_clip=True)
    axes[-1, 0].set_xlabel("step (all stages)")
    fig.suptitle("training (values at log steps)", fontsize=9)
    return _save(fig, png)


# ---- images ----------------------------------------------------------------------------------
def to_image_batch(t):
    """(B, C, H, W) or (B, K, C, H, W) image tensors as (N, C, H, W) float in [0, 1] on CPU."""
    t = t.detach().float().cpu()
    if t.dim() < 4:
        raise ValueError(f"image grid: expected (B, C, H, W) or (B, K, C, H, W), got {tuple(t.shape)}")
    return t.reshape(-1, *t.shape[-3:]).clamp(0, 1)


def save_image_grid(rows: list, path: Path) -> Path:
    """One row of images per (label, (N, C, H, W)) entry; 1- or 3-channel images."""
    plt = _plt()
    n = max(r[1].shape[0] for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.6, 1.2 * len(rows) + 0.2), dpi=110,
                             squeeze=False)
    for i, (label, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < imgs.shape[0]:
                im = imgs[j]
                if im.shape[0] == 1:
                    ax.imshow(im[0].numpy(), cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(im[:3].permute(1, 2, 0).numpy())
            else:
                ax.axis("off")
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    return _save(fig, path)
