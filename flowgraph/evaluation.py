"""Evaluation sweeps: the part of :class:`flowgraph.run.Runner` that measures.

The held-out split streams through the graph at every sweep point; metric sinks give
per-example values, reduced to mean, std and a 95% CI (``flowgraph/stats.py``). The CBR
is counted from the tensors that actually enter channel blocks.

**Paired points.** Before pass r over the held-out examples, torch's generator and every
registered library RNG are seeded from the run seed and r alone, never from the point's
position: every point sees the same examples, channel draws and noise realisations (scaled
by its own setting), so adding or reordering points changes nothing else, and differences
between points are paired. Evaluation saves and restores every RNG, the modules' train/eval
flags and the graph variables, so evaluating in the middle of training changes nothing there.

**Monte Carlo.** ``evaluate.repeats: N`` makes N passes per point with fresh draws (pass r
uses the same draws at every point); ``evaluate.until: {metric, errors, max_examples}``
keeps passing until ``errors`` values of the metric are non-zero (erroneous codewords,
frames or images: for 0/1 values such as a one-block-per-example BLER, the error count) or
``max_examples`` source examples were fed, checked after every batch. Per-example values, mean,
std and CI cover every pass; the CI treats the passes over one example as one cluster.

**Set-level metrics.** A sink with a ``stats`` port (``flowgraph.block.Sink``) has its
stats concatenated over every example of a point (all batches and passes) and reduced by
``reduce_stats`` to the column ``<name>_<set_suffix>``, with a seeded bootstrap 95% CI over
examples (``evaluate.bootstrap`` resamples, default 200; 0 turns it off).
"""
from __future__ import annotations

import csv
import inspect
import json
import time
from contextlib import contextmanager
from fractions import Fraction

import torch

from . import rng
from .block import Sink
from .compile import _eval_value, sweep_points
from .limits import DEFAULT as DEFAULT_LIMITS
from .resources import check_eval_length
from .errors import SemflowError
from .report import fmt_value, format_table, plot_metrics, save_image_grid, to_image_batch
from .stats import bootstrap_interval, summarize

#: seeds of pass r: run seed + EVAL_SEED_STRIDE * (r + 1) (torch) and + 3 more (library RNGs)
EVAL_SEED_STRIDE = 7919
BOOTSTRAP_DRAWS = 200


def draw_seed(seed: int, repeat: int) -> int:
    """The seed of evaluation pass ``repeat``: a function of the run seed and the pass only."""
    return int(seed) + EVAL_SEED_STRIDE * (int(repeat) + 1)


class EvaluationMixin:
    """Evaluation for :class:`flowgraph.run.Runner` (uses its scheduler, log, taps, out)."""

    def evaluate(self, metrics: list | None = None, batch: int | None = None, images: int | None = None,
                 points: list | None = None, write: bool = True, split: str = "test") -> dict:
        """Stream the held-out ``split`` of the source through the graph at every sweep point.

        ``points`` replaces the graph's sweep; ``write=False`` skips the files and plots
        (validation during training uses ``split="val", write=False``). Named ``metrics``
        with ``write=False`` run only the blocks those sinks need (a validation pass on PSNR
        does not compute MS-SSIM)."""
        sch, ev = self.scheduler, dict(self.spec.evaluate or {})
        plan = sch.subplan([f"{m}.value" for m in metrics]) if metrics and not write else None
        values = self.graph.root.values
        ev_ = lambda v: _eval_value(v, values)  # noqa: E731
        metrics = metrics or list(ev.get("metrics") or [n for n in sch.graph.order if isinstance(sch.block(n), Sink)])
        batch = int(batch or ev_(ev.get("batch", 32)))
        limit = images if images is not None else ev.get("images")
        limit = int(ev_(limit)) if limit is not None else None
        points = points if points is not None else sweep_points(self.spec)
        mc = _MonteCarlo(ev_(ev.get("repeats", 1)), ev_(ev.get("until")))
        draws = int(ev_(ev.get("bootstrap", BOOTSTRAP_DRAWS)))
        grid = _ImageGrid.from_spec(ev_(ev.get("image_grid")), self.graph)
        src = sch.source()
        available = _source_call(src, "num_eval_examples", split)
        per_pass = available if limit is None else min(limit, available)
        check_eval_length(len(points), mc.max_examples if mc.until else per_pass,
                          getattr(self, "limits", DEFAULT_LIMITS), 1 if mc.until else mc.repeats)
        blocks = {m: sch.block(m) for m in metrics}
        cbr = None
        rows, per_example = [], {}
        self.log(f"[eval] {len(points)} sweep point(s) x {per_pass} held-out examples ({split})"
                 + (f" x {mc.describe()}" if mc.active else "") + f"; metrics: {', '.join(metrics)}")
        t0 = time.monotonic()
        with _isolated(sch, self.taps), torch.inference_mode():
            sch.eval()
            for pi, point in enumerate(points):
                sch.reset_variables(point)
                self.taps.info = {"stage": "eval", "point": point, "where": f"evaluation at {point or 'defaults'}"}
                acc = _PointValues(blocks, mc)
                last_note = time.monotonic()
                for r in mc.passes():
                    # library RNGs first: seeding Sionna's also reseeds torch's (when Sionna is loaded)
                    rng.seed_all(draw_seed(self.seed, r) + 3)
                    torch.manual_seed(draw_seed(self.seed, r))
                    seen = 0
                    for data in _source_call(src, "eval_batches", split, batch):
                        while self.pause_requested and not self.stop_requested:
                            time.sleep(0.05)
                        if self.stop_requested or (limit is not None and seen >= limit):
                            break
                        if limit is not None and seen + _batch_len(data) > limit:
                            data = {k: v[: limit - seen] for k, v in data.items()}
                        data = {k: v.to(sch.device) for k, v in data.items()}
                        out = sch(inject={src.name: data}, plan=plan)
                        sch.check_finite_values(out, [f"{m}.value" for m in metrics], self.taps.info["where"])
                        if cbr is None and ev.get("cbr", True) is not False:
                            cbr = self._cbr(out, src, ev.get("cbr"))
                        if r == 0 and seen == 0:
                            grid.capture(point, out)
                        acc.add(out, seen, _batch_len(data))
                        seen += _batch_len(data)
                        if mc.finished(acc):
                            break
                        if time.monotonic() - last_note >= 2.0:
                            last_note = time.monotonic()
                            self.log.progress(f"[eval] {pi + 1}/{len(points)} {_point_key(point) or 'defaults'}: "
                                              f"{acc.count} examples" + (f", {acc.errors} errors" if mc.metric else ""))
                    if self.stop_requested or seen == 0 or mc.finished(acc):
                        break
                row = acc.row(point, self.seed, draws)
                per_example[_point_key(point)] = acc.per_example()
                rows.append(row)
                self.taps.publish("eval.point", dict(row))
                if self.stop_requested:
                    self.log(f"[eval] stopped after {pi + 1} of {len(points)} sweep point(s)")
                    break
                self.log.progress(f"[eval] {pi + 1}/{len(points)} {_point_key(point) or 'defaults'}: "
                                  + "  ".join(f"{c} {fmt_value(row[c])}" for c in acc.columns),
                                  final=pi + 1 == len(points))
        result = {"graph": self.spec.name, "preset": self.preset, "seed": self.seed, "cbr": cbr,
                  "metrics": metrics, "sweep": list(points[0]) if points and points[0] else [],
                  "columns": _columns(blocks), "rows": rows, "per_example": per_example,
                  "units": {m: getattr(type(b), "unit", "") for m, b in blocks.items()},
                  "axis_units": dict(ev.get("units") or {}),
                  "data": _data_info(src, split, per_pass),
                  "evaluation": {"draw_seeds": "run seed + 7919 * (pass + 1), the same at every point",
                                 "repeats": mc.repeats, "until": mc.until, "bootstrap": draws},
                  "stopped": bool(self.stop_requested), "seconds": time.monotonic() - t0}
        if write:
            self._write_metrics(result)
            grid.write(self.out, self.log)
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
        (self.out / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
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


class _MonteCarlo:
    """How many passes over the held-out examples one point takes (repeats or until)."""

    def __init__(self, repeats, until):
        self.repeats = int(repeats or 1)
        self.until = dict(until) if isinstance(until, dict) else None
        self.metric = self.until["metric"] if self.until else None
        self.errors = int(self.until.get("errors", 100)) if self.until else 0
        self.max_examples = int(self.until.get("max_examples", 100_000)) if self.until else 0

    @property
    def active(self) -> bool:
        return self.repeats > 1 or self.until is not None

    def describe(self) -> str:
        if self.until:
            return f"passes until {self.errors} examples with {self.metric} > 0 or {self.max_examples} values"
        return f"{self.repeats} passes"

    def passes(self):
        r = 0
        while self.until is not None or r < self.repeats:
            yield r
            r += 1

    def finished(self, acc: "_PointValues") -> bool:
        return self.until is not None and (acc.errors >= self.errors or acc.count >= self.max_examples)


class _PointValues:
    """Per-example values (and set-level stats) of one sweep point, over all passes."""

    def __init__(self, blocks: dict, mc: _MonteCarlo):
        self.blocks, self.mc = blocks, mc
        self.values = {m: [] for m in blocks}
        self.stats = {m: [] for m, b in blocks.items() if type(b).has_set_metric()}
        self.ids = {m: [] for m in blocks}          # example (cluster) id of every value
        self.stat_ids = {m: [] for m in self.stats}
        self._pos: dict = {}    # values of each port so far in the current pass
        self.count = 0          # source examples fed so far (examples x passes)
        self.errors = 0         # values of the until-metric that are non-zero
        self.passes = 0
        self.columns = list(_columns(blocks))

    def _cluster(self, key: str, first: int, batch: int, k: int) -> torch.Tensor:
        """Ids of ``k`` values from a batch of ``batch`` source examples starting at ``first``:
        the source example when each example gives the same number of values (users of a
        frame, say), else the value's position in the pass. The same in every pass."""
        pos = 0 if first == 0 else self._pos.get(key, 0)
        self._pos[key] = pos + k
        if batch and k % batch == 0:
            return first + torch.arange(k) // (k // batch)
        return pos + torch.arange(k)

    def add(self, out: dict, first_index: int, batch: int):
        if first_index == 0:
            self.passes += 1
        for m in self.blocks:
            v = out[f"{m}.value"].detach().float().cpu().reshape(-1)
            self.values[m].append(v)
            self.ids[m].append(self._cluster(m, first_index, batch, v.numel()))
            if m in self.stats:
                st = out[f"{m}.stats"].detach().cpu()
                self.stats[m].append(st)
                self.stat_ids[m].append(self._cluster(m + ".stats", first_index, batch, st.shape[0]))
            if m == self.mc.metric:
                self.errors += int((v != 0).sum())
        self.count += batch

    def per_example(self) -> dict:
        return {m: torch.cat(v).tolist() if v else [] for m, v in self.values.items()
                if type(self.blocks[m]).per_example}

    def row(self, point: dict, seed: int, draws: int) -> dict:
        row = dict(point)

        def cat(parts, dtype=None):
            return torch.cat(parts) if parts else torch.empty(0, dtype=dtype)
        for m, block in self.blocks.items():
            cls = type(block)
            if cls.per_example:
                v = cat(self.values[m])
                s = summarize(v, cat(self.ids[m], torch.long), proportion=cls.proportion)
                row[m], row[f"{m}_std"], row[f"{m}_ci95"] = s["mean"], s["std"], s["ci95"]
                row[f"{m}_lo"], row[f"{m}_hi"] = s["lo"], s["hi"]
            if m in self.stats:
                col = f"{m}_{cls.set_suffix}"
                stats = torch.cat(self.stats[m]) if self.stats[m] else torch.empty(0)
                row[col] = float(block.reduce_stats(stats)) if stats.numel() else float("nan")
                lo = hi = float("nan")
                if cls.set_bootstrap and draws and stats.numel():
                    lo, hi = bootstrap_interval(lambda idx: block.reduce_stats(stats[idx]),
                                                cat(self.stat_ids[m], torch.long), draws, seed + 5,
                                                batched=lambda index: block.reduce_stats_resampled(stats, index))
                row[f"{col}_ci95"], row[f"{col}_lo"], row[f"{col}_hi"] = (hi - lo) / 2, lo, hi
        row["n"] = self.count
        if self.mc.active:
            row["passes"] = self.passes
        return row


def _columns(blocks: dict) -> dict:
    """The reported quantities: a mean column per per-example sink, a set column per set-level one."""
    cols = {}
    for m, b in blocks.items():
        cls = type(b)
        meta = {"metric": m, "unit": cls.unit, "higher_is_better": cls.higher_is_better,
                "scale": cls.scale, "proportion": cls.proportion}
        if cls.per_example:
            cols[m] = {**meta, "kind": "mean"}
        if cls.has_set_metric():
            cols[f"{m}_{cls.set_suffix}"] = {**meta, "kind": "set"}
    return cols


class _ImageGrid:
    """``evaluate.image_grid``: the first n examples of chosen ports at chosen sweep points, as a PNG."""

    def __init__(self, at, n: int, ports: list):
        self.at, self.n, self.ports = at, n, ports
        self.rows: list = []          # (label, (N, C, H, W) tensor)

    @classmethod
    def from_spec(cls, cfg, graph) -> "_ImageGrid":
        if not cfg:
            return cls(None, 0, [])
        cfg = {} if cfg is True else dict(cfg)
        ports = list(cfg.get("ports") or default_image_ports(graph))
        return cls(cfg.get("at"), int(cfg.get("n", 8)), ports)

    def wants(self, point: dict) -> bool:
        if not self.n or not self.ports:
            return False
        return self.at is None or any(all(point.get(k) == v for k, v in a.items()) for a in self.at)

    def capture(self, point: dict, out: dict):
        if not self.wants(point):
            return
        first, *rest = self.ports
        if not self.rows and first in out:        # every point sees the same examples: show them once
            self.rows.append((first, to_image_batch(out[first])[: self.n]))
        for p in rest:
            if p in out:
                self.rows.append((f"{p} at {_point_key(point) or 'defaults'}", to_image_batch(out[p])[: self.n]))

    def write(self, out_dir, log):
        if self.rows:
            path = save_image_grid(self.rows, out_dir / "images.png")
            log(f"images: {path}")


def default_image_ports(graph) -> list:
    """[target, reconstruction] feeds of the first sink whose target and pred ports are images."""
    for name, rb in graph.blocks.items():
        ins = rb.cls.inputs
        if issubclass(rb.cls, Sink) and ins.get("target") is not None and ins.get("pred") is not None \
                and ins["target"].tag == "image":
            feeds = {dp: f"{s}.{sp}" for s, sp, d, dp in graph.edges if d == name}
            if "target" in feeds and "pred" in feeds:
                return [feeds["target"], feeds["pred"]]
    return []


@contextmanager
def _isolated(sch, taps):
    """Run evaluation without touching the training state: RNGs, train/eval flags, variables."""
    torch_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    external = rng.get_states()
    generators = {n: sch.block(n).generator.get_state() for n in sch.sources}
    modes = [(m, m.training) for m in sch.modules()]
    variables, info = sch.variable_overrides, dict(taps.info)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        rng.set_states(external)
        for n, state in generators.items():
            sch.block(n).generator.set_state(state)
        for m, flag in modes:
            m.training = flag
        sch.reset_variables(variables)
        taps.info = info


def _source_call(src, method: str, split: str, *args):
    """``src.eval_batches(..., split=)`` / ``num_eval_examples(split=)``; sources that
    predate splits serve the test split only."""
    fn = getattr(src, method)
    try:
        takes_split = "split" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_split = False
    if takes_split:
        return fn(*args, split=split)
    if split != "test":
        raise SemflowError(f"block '{src.name}' ({src.type_id}) has no '{split}' split")
    return fn(*args)


def _data_info(src, split: str, examples: int) -> dict:
    """What was evaluated: the source, split, example count, and what the source says about its data."""
    info = getattr(src, "dataset_info", None)
    if callable(info):
        info = info()
    params = {k: v for k, v in src.p.items() if k != "batch"}
    return {"source": src.name, "type": src.type_id, "params": params, "split": split,
            "examples": examples, "dataset": info if isinstance(info, dict) else None}


def _batch_len(data: dict) -> int:
    return int(next(iter(data.values())).shape[0])


def _point_key(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())
