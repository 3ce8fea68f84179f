"""Compare runs (``semflow compare RUN_OR_STUDY... [--out DIR]``): curves overlaid, one table, one CSV.

Inputs are run directories (``LABEL=DIR`` names the series), or study directories (their
points, labelled by variant, with the study's matrix values as extra dimensions). Output:

- ``<metric>.png`` per metric column (and per combination of dimensions that are neither x,
  series nor panels): x = a sweep variable, one line per series (the run's label, or with
  ``series: DIM`` each value of a sweep or matrix dimension) with a 95% CI band, one panel
  per value of ``panels``; a series keeps its colour in every figure (``compare.colors`` fixes them).
- ``table.md``: per metric (and panel), rows = series, columns = x values, mean ± 95% CI
  (mean [lo, hi] for proportions and set-level values); the best value per column in bold.
- ``tidy.csv``: one row per run x point x metric.
- ``differences.md``: every series against the baseline (the first, or ``--baseline``) at
  every point: the difference and its 95% CI, and whether the CI excludes 0. Runs that
  evaluated the same examples (same source, split, count and passes) are compared per
  example (a paired CI); otherwise the two CIs are combined as independent.

Runs of one configuration that differ only in seed are pooled: the mean over seeds, and a
t interval across seeds (the per-example CIs of one run say nothing about seed variance).
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

from .errors import SemflowError
from .report import all_numeric, bounds, columns_of, data_label, draw_panels, fmt_pair, fmt_value, ordered
from .stats import across_seeds, paired_difference, unpaired_difference

#: matplotlib's default cycle: series i gets colour i everywhere
COLORS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9")


# ---- loading -------------------------------------------------------------------------------------
def _entries(inputs: list) -> tuple[list, dict]:
    """Runs to compare: [{label, dir, seed, dims, result}], and a compare config from a study."""
    entries, config = [], {}
    for item in inputs:
        label, _, path = item.partition("=") if "=" in item and not Path(item).exists() else ("", "", item)
        d = Path(path)
        if (d / "study.json").is_file():
            state = json.loads((d / "study.json").read_text())
            config = config or {"title": f"study {state['study']}", **(state.get("compare") or {})}
            for p in state["points"]:
                run = d / p["dir"]
                if p.get("compare", True) and p["status"] == "done" and (run / "metrics.json").is_file():
                    entries.append({"label": p["label"] or p["variant"], "dir": run, "seed": p["seed"],
                                    "dims": {k: v for k, v in p["dims"].items() if k in state.get("matrix", [])},
                                    "result": _load(run)})
        elif (d / "metrics.json").is_file():
            res = _load(d)
            entries.append({"label": label or d.name, "dir": d, "seed": res.get("seed", 0), "dims": {}, "result": res})
        else:
            raise SemflowError(f"{d}: is neither a run directory (metrics.json) nor a study (study.json)")
    if not entries:
        raise SemflowError("compare: no finished runs to compare")
    return entries, config


def _load(d: Path) -> dict:
    try:
        return json.loads((d / "metrics.json").read_text())
    except ValueError as exc:
        raise SemflowError(f"{d / 'metrics.json'}: not valid JSON ({exc})") from None


def _metric_specs(config_metrics, available: dict) -> dict:
    """{column: {factor, unit, label}} from compare.metrics (names or {metric, factor, unit, label})."""
    if not config_metrics:
        return {c: {"factor": 1.0} for c in available}
    out = {}
    for m in config_metrics:
        m = {"metric": m} if isinstance(m, str) else dict(m)
        name = m["metric"]
        if name not in available:
            raise SemflowError(f"compare: no run reports the metric '{name}' (columns: {', '.join(available)})")
        out[name] = {"factor": float(m.get("factor", 1.0)), "unit": m.get("unit"), "label": m.get("label")}
    return out


# ---- records ---------------------------------------------------------------------------------------
def records(entries: list, specs: dict) -> list:
    """One record per run x point x metric column (factor applied)."""
    out = []
    for e in entries:
        res = e["result"]
        cols = columns_of(res)
        fp = _fingerprint(res)
        for row in res["rows"]:
            point = {k: row[k] for k in res["sweep"]}
            key = ", ".join(f"{k}={v}" for k, v in point.items())
            for col, spec in specs.items():
                if col not in cols or col not in row:
                    continue
                f = spec["factor"]
                lo, hi = bounds(row, col)
                per = (res.get("per_example") or {}).get(key, {}).get(col)
                out.append({"label": e["label"], "seed": e["seed"], "run": str(e["dir"]), **e["dims"], **point,
                            "_dims": list(e["dims"]), "_point": list(point), "metric": col,
                            "mean": f * float(row[col]), "std": f * float(row.get(f"{col}_std") or 0.0),
                            "lo": f * lo, "hi": f * hi, "n": row.get("n"), "_meta": cols[col],
                            "_per": [f * v for v in per] if per else None, "_fp": fp, "_factor": f})
    return out


def _factor(r: dict) -> float:
    return r.get("_factor", 1.0)


def _fingerprint(res: dict):
    """Runs that evaluated the same examples in the same order (paired) share this."""
    d = res.get("data")
    if not d:
        return None
    ev = res.get("evaluation") or {}
    return json.dumps([d.get("type"), d.get("params"), d.get("split"), d.get("examples"), d.get("dataset"),
                       ev.get("repeats"), ev.get("until")], sort_keys=True, default=str)


def pool_seeds(recs: list) -> list:
    """Records of one configuration that differ in seed become one: the mean over seeds and a
    t interval across seeds, never narrower than the runs' own mean interval (seeds that
    agree by chance do not make the evaluation noise vanish); proportions stay in [0, 1]."""
    groups: dict = {}
    for r in recs:
        key = tuple((k, str(v)) for k, v in r.items() if not k.startswith("_") and k not in
                    ("seed", "run", "mean", "std", "lo", "hi", "n"))
        groups.setdefault(key, []).append(r)
    out = []
    for rs in groups.values():
        if len(rs) == 1:
            out.append({**rs[0], "seeds": [rs[0]["seed"]]})
            continue
        pooled = across_seeds([r["mean"] for r in rs])
        own = sum((r["hi"] - r["lo"]) / 2 for r in rs) / len(rs)
        half = max(pooled["ci95"], own) if math.isfinite(own) else pooled["ci95"]
        lo, hi = pooled["mean"] - half, pooled["mean"] + half
        if rs[0]["_meta"].get("proportion"):
            lo, hi = max(0.0, lo), min(_factor(rs[0]), hi)     # [0, 1] times the factor (100 for %)
        out.append({**rs[0], "mean": pooled["mean"], "lo": lo, "hi": hi,
                    "std": float("nan"), "n": sum(r["n"] or 0 for r in rs), "seeds": [r["seed"] for r in rs],
                    "run": ";".join(r["run"] for r in rs), "_per": None, "_by_seed": {r["seed"]: r for r in rs}})
    return out


def curves(inputs: list, metric: str) -> dict[str, list[tuple]]:
    """The curves ``semflow compare`` draws for one metric, for views that must show the same
    numbers (the GUI's run overlay): {series: [(x, mean, lo, hi), ...]}, x the first numeric
    sweep variable, one series per run label and value of the other sweep variables; seeds
    of one configuration pooled as in the figures. Inputs as for ``compare``."""
    entries, _ = _entries(inputs)
    available = {}
    for e in entries:
        available.update(columns_of(e["result"]))
    if metric not in available:
        return {}
    pooled = pool_seeds(records(entries, {metric: {"factor": 1.0}}))
    point_dims = ordered(d for r in pooled for d in r["_point"])
    x = next((d for d in point_dims if all_numeric([r.get(d) for r in pooled if d in r])), None)
    if x is None:
        return {}
    others = [d for d in point_dims if d != x]
    out: dict[str, list[tuple]] = {}
    for r in pooled:
        label = ", ".join([r["label"]] + [f"{d}={r[d]}" for d in others if d in r])
        out.setdefault(label, []).append((float(r[x]), r["mean"], r["lo"], r["hi"]))
    return {k: sorted(v) for k, v in out.items()}


# ---- the comparison --------------------------------------------------------------------------------
def compare(entries: list, out: Path, config: dict | None = None, metrics: list | None = None, x: str | None = None,
            panels: str | None = None, baseline: str | None = None, series: str | None = None, log=print) -> dict:
    config = dict(config or {})
    out.mkdir(parents=True, exist_ok=True)
    available = {}
    for e in entries:
        available.update(columns_of(e["result"]))
    specs = _metric_specs(metrics or config.get("metrics"), available)
    raw = records(entries, specs)
    pooled = pool_seeds(raw)
    # a line per series: the run's label (default), or the values of a dimension (per label)
    series = series or config.get("series") or "label"
    several = len(ordered(e["label"] for e in entries)) > 1
    for r in pooled:
        value = f"{series}={r.get(series)}"
        r["series"] = r["label"] if series == "label" else (f"{r['label']}, {value}" if several else value)
    labels = ordered(r["series"] for r in pooled)
    colors = {lab: (config.get("colors") or {}).get(lab, COLORS[i % len(COLORS)]) for i, lab in enumerate(labels)}
    point_dims = ordered(d for r in raw for d in r["_point"])
    run_dims = ordered(d for r in raw for d in r["_dims"])
    if series != "label" and series not in point_dims + run_dims:
        raise SemflowError(f"compare: series '{series}' is neither 'label' nor a dimension "
                           f"({', '.join(point_dims + run_dims)})")
    x = x or config.get("x") or (point_dims[0] if point_dims else None)
    varying = [d for d in run_dims + point_dims
               if d not in (x, series) and len(ordered(r.get(d) for r in raw if d in r)) > 1]
    panels = panels or config.get("panels") or (varying[0] if varying else None)
    rest = [d for d in varying if d != panels]
    base = baseline or config.get("baseline") or labels[0]
    if base not in labels:
        raise SemflowError(f"compare: baseline '{base}' is not among the series ({', '.join(labels)})")
    written = {"figures": [], "table": out / "table.md", "tidy": out / "tidy.csv", "differences": out / "differences.md"}
    _write_tidy(raw, written["tidy"], run_dims, point_dims)
    tables, diffs = [], []
    for col, spec in specs.items():
        recs = [r for r in pooled if r["metric"] == col]
        if not recs:
            continue
        meta = {**recs[0]["_meta"], "col": spec.get("label") or col}
        if spec.get("unit") is not None:
            meta["unit"] = spec["unit"]
        for combo in ordered(tuple(r.get(k) for k in rest) for r in recs):
            sel = [r for r in recs if tuple(r.get(k) for k in rest) == combo]
            fixed = ", ".join(f"{k} = {v}" for k, v in zip(rest, combo))
            pvals = ordered(r.get(panels) for r in sel) if panels else [None]
            if x is not None:
                curves = [{"label": lab, "color": colors[lab], "panel": pv,
                           "points": [(r[x], r["mean"], r["lo"], r["hi"]) for r in sel
                                      if r["series"] == lab and (panels is None or r.get(panels) == pv)]}
                          for lab in labels for pv in pvals]
                curves = [c for c in curves if c["points"]]
                seeds = ordered(len(r["seeds"]) for r in sel)
                note = "seeds pooled: t CI across seeds" if max(seeds) > 1 else ""
                name = f"{_file(col)}" + "".join(f"__{k}={_file(v)}" for k, v in zip(rest, combo)) + ".png"
                written["figures"].append(draw_panels(
                    curves, x, meta, out / name, title=config.get("title", "") + (f"  {fixed}" if fixed else ""),
                    panel_key=panels, panels=pvals if panels else None, series_key="series",
                    x_units=entries[0]["result"].get("axis_units"), bands=True, note=note))
            for pv in pvals:
                part = [r for r in sel if panels is None or r.get(panels) == pv]
                head = f"{meta['col']}" + (f" [{meta['unit']}]" if meta.get("unit") else "") + \
                    (f", {panels} = {pv}" if panels else "") + (f", {fixed}" if fixed else "")
                tables.append(_table(part, x, labels, head, meta))
                diffs += _differences(part, x, labels, base, meta, head)
    seeds_note = "Seeds of one configuration are pooled (mean over seeds; t interval across seeds)."
    # which images: one line per distinct test set (runs on different sets are named apart)
    sets = ordered(data_label(e["result"]) for e in entries if data_label(e["result"]))
    labels_by_set = {d: ordered(e["label"] for e in entries if data_label(e["result"]) == d) for d in sets}
    measured = "".join(f"\n{d[0].upper()}{d[1:]}" + (f" ({', '.join(labels_by_set[d])})" if len(sets) > 1 else "") + "."
                       for d in sets)
    written["table"].write_text("\n\n".join(tables) + f"\n\nmean ± 95% CI of the mean (mean [95% interval] for "
                                f"proportions and set-level values); **bold**: best per column. {seeds_note}\n"
                                + measured + ("\n" if measured else ""))
    written["differences"].write_text(_differences_md(diffs, base))
    log(f"compare: {len(entries)} run(s), {len(labels)} series -> {out}")
    for f in written["figures"]:
        log(f"  figure: {f}")
    log(f"  table: {written['table']}\n  tidy: {written['tidy']}\n  differences: {written['differences']}")
    for line in _summary(diffs, base):
        log("  " + line)
    return written


def _file(v) -> str:
    return "".join(ch if ch.isalnum() or ch in ".+-" else "_" for ch in str(v)).strip("_") or "x"


def _cell(r: dict, meta: dict) -> str:
    if meta.get("proportion") or meta.get("kind") == "set":
        return f"{fmt_value(r['mean'])} [{fmt_value(r['lo'], 3)}, {fmt_value(r['hi'], 3)}]"
    half = (r["hi"] - r["lo"]) / 2 if math.isfinite(r["hi"]) and math.isfinite(r["lo"]) else float("nan")
    return fmt_pair(r["mean"], half)


def _table(recs: list, x: str | None, labels: list, head: str, meta: dict) -> str:
    xs = ordered(r.get(x) for r in recs) if x else [None]
    better = max if meta.get("higher_is_better", True) else min
    best = {}
    for xv in xs:
        vals = [r["mean"] for r in recs if r.get(x) == xv and math.isfinite(r["mean"])]
        best[str(xv)] = better(vals) if vals else None
    lines = [f"**{head}**", "", "| series | " + " | ".join(f"{x} = {xv}" if x else "value" for xv in xs) + " |",
             "|---|" + "---|" * len(xs)]
    for lab in labels:
        cells = []
        for xv in xs:
            r = next((r for r in recs if r["series"] == lab and r.get(x) == xv), None)
            if r is None:
                cells.append("—")
                continue
            c = _cell(r, meta)
            cells.append(f"**{c}**" if best[str(xv)] is not None and r["mean"] == best[str(xv)] else c)
        if any(c != "—" for c in cells):
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _differences(recs: list, x, labels: list, base: str, meta: dict, head: str) -> list:
    out = []
    for lab in labels:
        if lab == base:
            continue
        for xv in ordered(r.get(x) for r in recs):
            a = next((r for r in recs if r["series"] == lab and r.get(x) == xv), None)
            b = next((r for r in recs if r["series"] == base and r.get(x) == xv), None)
            if a is None or b is None:
                continue
            d = _difference(a, b)
            if d is None:
                continue
            out.append({"head": head, "label": lab, "x": x, "xv": xv, **d, "unit": meta.get("unit") or "",
                        "outside": d["lo"] > 0 or d["hi"] < 0})
    return out


def _difference(a: dict, b: dict) -> dict | None:
    if a.get("_per") and b.get("_per") and a["_fp"] is not None and a["_fp"] == b["_fp"] \
            and len(a["_per"]) == len(b["_per"]):
        return paired_difference(a["_per"], b["_per"])
    sa, sb = a.get("_by_seed"), b.get("_by_seed")
    if sa and sb and set(sa) == set(sb):     # pooled seeds: differences of the seeds' means, t CI across seeds
        s = across_seeds([sa[k]["mean"] - sb[k]["mean"] for k in sa])
        return {"diff": s["mean"], "lo": s["lo"], "hi": s["hi"], "paired": True}
    if not all(math.isfinite(v) for v in (a["lo"], a["hi"], b["lo"], b["hi"])):
        return None
    return unpaired_difference({"mean": a["mean"], "ci95": (a["hi"] - a["lo"]) / 2},
                               {"mean": b["mean"], "ci95": (b["hi"] - b["lo"]) / 2})


def _summary(diffs: list, base: str) -> list:
    lines, groups = [], {}
    for d in diffs:
        groups.setdefault((d["head"], d["label"]), []).append(d)
    for (head, lab), ds in groups.items():
        out = [d for d in ds if d["outside"]]
        rng = (f" ({fmt_value(min(d['diff'] for d in out), 3)} … {fmt_value(max(d['diff'] for d in out), 3)}"
               f"{(' ' + ds[0]['unit']) if ds[0]['unit'] else ''})" if out else "")
        lines.append(f"{head}: {lab} − {base} lies outside the 95% CI at {len(out)} of {len(ds)} point(s){rng}")
    return lines


def _differences_md(diffs: list, base: str) -> str:
    parts = [f"# Differences against {base}", "",
             "Difference = series − baseline with its 95% CI; *paired*: per-example differences "
             "(both runs evaluated the same examples) or seeds' differences; otherwise the two CIs "
             "combined as independent. **outside**: the CI excludes 0.", ""]
    parts += ["- " + s for s in _summary(diffs, base)] + [""]
    heads = ordered(d["head"] for d in diffs)
    for h in heads:
        parts += [f"**{h}**", "", "| series | point | difference [95% CI] | paired | |", "|---|---|---|---|---|"]
        for d in (d for d in diffs if d["head"] == h):
            parts.append(f"| {d['label']} | {d['x']} = {d['xv']} | {fmt_value(d['diff'], 3)} "
                         f"[{fmt_value(d['lo'], 3)}, {fmt_value(d['hi'], 3)}] | {'yes' if d['paired'] else 'no'} | "
                         f"{'**outside**' if d['outside'] else 'inside'} |")
        parts.append("")
    return "\n".join(parts)


def _write_tidy(recs: list, path: Path, run_dims: list, point_dims: list):
    fields = ["label", "seed", "run"] + run_dims + [d for d in point_dims if d not in run_dims] + \
        ["metric", "mean", "std", "lo", "hi", "n"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fields, extrasaction="ignore")
        w.writeheader()
        for r in recs:
            w.writerow({k: r.get(k, "") for k in fields})


# ---- entry points ------------------------------------------------------------------------------------
def compare_study(study_dir: Path, log=None) -> dict:
    entries, config = _entries([str(study_dir)])
    return compare(entries, Path(study_dir) / "compare", config, log=log or _stderr)


def compare_main(inputs: list, out=None, metrics=None, x=None, panels=None, baseline=None, series=None) -> int:
    entries, config = _entries(inputs)
    if out is None:
        one_study = len(inputs) == 1 and (Path(inputs[0]) / "study.json").is_file()
        out = Path(inputs[0]) / "compare" if one_study else Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    compare(entries, Path(out), config, metrics=metrics.split(",") if metrics else None, x=x, panels=panels,
            baseline=baseline, series=series, log=_stderr)
    return 0


def _stderr(msg: str):
    import sys
    print(msg, file=sys.stderr, flush=True)
