"""Evaluation sweeps: the part of :class:`flowgraph.run.Runner` that measures.

The held-out split streams through the graph at every sweep point; metric sinks give
per-example values, reduced to mean, std and a 95% CI. The CBR is counted from the
tensors that actually enter channel blocks.
"""
from __future__ import annotations

import csv
import json
import math
import time
from fractions import Fraction

import torch

from . import rng
from .block import Sink
from .compile import _eval_value, sweep_points
from .limits import DEFAULT as DEFAULT_LIMITS
from .resources import check_eval_length
from .report import format_table, plot_metrics


class EvaluationMixin:
    """Evaluation for :class:`flowgraph.run.Runner` (uses its scheduler, log, taps, out)."""

    def evaluate(self, metrics: list | None = None, batch: int | None = None, images: int | None = None,
                 points: list | None = None, write: bool = True) -> dict:
        """Stream the held-out split through the graph at every sweep point.

        ``points`` replaces the graph's sweep; ``write=False`` skips the files and plots."""
        sch, ev = self.scheduler, dict(self.spec.evaluate or {})
        values = self.graph.root.values
        metrics = metrics or list(ev.get("metrics") or [n for n in sch.graph.order if isinstance(sch.block(n), Sink)])
        batch = int(batch or _eval_value(ev.get("batch", 32), values))
        limit = images if images is not None else ev.get("images")
        limit = int(_eval_value(limit, values)) if limit is not None else None
        points = points if points is not None else sweep_points(self.spec)
        src = sch.source()
        n_total = src.num_eval_examples() if limit is None else min(limit, src.num_eval_examples())
        check_eval_length(len(points), n_total, getattr(self, "limits", DEFAULT_LIMITS))
        sch.eval()
        cbr = None
        rows, per_example = [], {}
        self.log(f"[eval] {len(points)} sweep point(s) x {n_total} held-out examples; metrics: {', '.join(metrics)}")
        t0 = time.monotonic()
        with torch.inference_mode():
            for pi, point in enumerate(points):
                sch.reset_variables(point)
                # every sweep point sees the same noise and channel draws (paired comparison)
                rng.seed_all(self.seed + 3 + 7919 * (pi + 1))
                torch.manual_seed(self.seed + 7919 * (pi + 1))
                self.taps.info = {"stage": "eval", "point": point, "where": f"evaluation at {point or 'defaults'}"}
                collected = {m: [] for m in metrics}
                seen = 0
                for data in src.eval_batches(batch):
                    while self.pause_requested and not self.stop_requested:
                        time.sleep(0.05)
                    if self.stop_requested or (limit is not None and seen >= limit):
                        break
                    if limit is not None and seen + _batch_len(data) > limit:
                        data = {k: v[: limit - seen] for k, v in data.items()}
                    data = {k: v.to(sch.device) for k, v in data.items()}
                    out = sch(inject={src.name: data})
                    sch.check_finite_values(out, [f"{m}.value" for m in metrics], self.taps.info["where"])
                    if cbr is None and ev.get("cbr", True) is not False:
                        cbr = self._cbr(out, src, ev.get("cbr"))
                    for m in metrics:
                        collected[m].append(out[f"{m}.value"].detach().float().cpu())
                    seen += _batch_len(data)
                row = dict(point)
                for m in metrics:
                    v = torch.cat(collected[m]) if collected[m] else torch.empty(0)
                    per_example.setdefault(_point_key(point), {})[m] = v.tolist()
                    n = v.numel()
                    mean = float(v.mean()) if n else float("nan")
                    std = float(v.std(unbiased=True)) if n > 1 else 0.0
                    row[m] = mean
                    row[f"{m}_std"] = std
                    row[f"{m}_ci95"] = 1.96 * std / math.sqrt(n) if n > 1 else 0.0
                row["n"] = seen
                rows.append(row)
                self.taps.publish("eval.point", dict(row))
                if self.stop_requested:
                    self.log(f"[eval] stopped after {pi + 1} of {len(points)} sweep point(s)")
                    break
                self.log.progress(f"[eval] {pi + 1}/{len(points)} {_point_key(point) or 'defaults'}: "
                                  + "  ".join(f"{m} {row[m]:.3f}" for m in metrics),
                                  final=pi + 1 == len(points))
        result = {"graph": self.spec.name, "preset": self.preset, "seed": self.seed,
                  "cbr": cbr, "metrics": metrics, "sweep": list(points[0]) if points and points[0] else [],
                  "rows": rows, "per_example": per_example,
                  "units": {m: getattr(type(sch.block(m)), "unit", "") for m in metrics},
                  "seconds": time.monotonic() - t0}
        if write:
            self._write_metrics(result)
        return result

    def _cbr(self, out: dict, src, ports=None) -> dict | None:
        """Channel uses per example over real source values (DESIGN.md): reported, not assumed.

        Counts the tensors entering every block that declares ``channel_input``, or the
        ports listed in ``evaluate.cbr`` (e.g. ``[ch.x]``) when a graph needs to say which
        (draw-only channel blocks, user grouping); ``evaluate.cbr: false`` turns it off."""
        per_example = src.source_values_per_example()
        uses = 0
        if isinstance(ports, list):
            feeds = [f"{s}.{sp}" for s, sp, d, dp in self.graph.edges if f"{d}.{dp}" in ports]
        else:
            feeds = []
            for name, rb in self.graph.blocks.items():
                port = rb.cls.channel_input
                if port is not None:
                    feeds += [f"{s}.{sp}" for s, sp, d, dp in self.graph.edges if d == name and dp == port]
        for feed in feeds:
            if feed not in out:
                continue
            t = out[feed]
            per = t[0].numel() if t.dim() > 0 else 1
            uses += per if t.is_complex() else per / 2
        if not uses or not per_example:
            return None
        ratio = uses / per_example
        return {"channel_uses": uses, "source_values": per_example, "cbr": ratio,
                "fraction": str(Fraction(ratio).limit_denominator(1000))}

    def _write_metrics(self, result: dict):
        (self.out / "metrics.json").write_text(json.dumps(result, indent=2))
        rows = result["rows"]
        if rows:
            with open(self.out / "metrics.csv", "w", newline="") as f:
                w = csv.DictWriter(f, list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        self.log(format_table(result))
        if result["cbr"]:
            c = result["cbr"]
            self.log(f"CBR = {c['channel_uses']:.0f} complex channel uses / {c['source_values']} source values "
                     f"= {c['cbr']:.4f} ({c['fraction']})")
        try:
            for p in plot_metrics(result, self.out):
                self.log(f"plot: {p}")
        except Exception as exc:  # plotting must never lose the numbers
            self.log(f"note: plotting failed ({type(exc).__name__}: {exc}); metrics are in metrics.csv")


def _batch_len(data: dict) -> int:
    return int(next(iter(data.values())).shape[0])


def _point_key(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())
