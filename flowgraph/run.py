"""Runs: training stages, evaluation sweeps, and the run directory they leave behind.

A run directory holds::

    graph.yaml            the graph as run (preset and --set applied, variables resolved)
    run.json              command, seed, device, preset, overrides, package versions
    log.txt               everything the run printed
    train.csv             per-step loss, learning rate and metric means (a tap logger)
    metrics.json/.csv     evaluation: per sweep point, mean / std / 95% CI of every metric
    <metric>_vs_<var>.png one plot per metric against the first sweep variable
    checkpoints/last.pt   state_dicts, optimizer, RNG states (atomic: temp file + rename)

Resuming (``--resume``) loads ``checkpoints/last.pt`` and continues the same stage at
the same step with the same RNG states, so the parameters at the end equal those of
an uninterrupted run with the same seed.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from . import expr as E
from . import rng
from .block import Sink
from .compile import STAGE_KEYS, CompiledGraph, _eval_value, compile_graph, sweep_points
from .errors import NonFiniteError, SemflowError, ValidationError
from .graph import GraphSpec
from .losses import compile_loss
from .scheduler import Scheduler, sample_variables
from .taps import CsvTapLogger, TapHub
from .yamlio import dump_yaml


class Log:
    """Prints progress to stderr and mirrors every line into the run's log.txt."""

    def __init__(self, path: Path | None = None, quiet: bool = False):
        self.file = open(path, "a") if path else None
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._progress_open = False
        self.listeners: list = []     # callables(msg): e.g. a GUI log panel

    def _notify(self, msg: str):
        for fn in list(self.listeners):
            fn(msg)

    def __call__(self, msg: str = ""):
        if self._progress_open:
            sys.stderr.write("\n")
            self._progress_open = False
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)
        if self.file:
            self.file.write(msg + "\n")
            self.file.flush()
        self._notify(msg)

    def progress(self, msg: str, final: bool = False):
        """A progress line: rewritten in place on a terminal, printed as lines elsewhere."""
        if self.tty and not self.quiet:
            sys.stderr.write("\r" + msg.ljust(100)[:160])
            sys.stderr.flush()
            self._progress_open = True
            if final:
                sys.stderr.write("\n")
                self._progress_open = False
            if self.file and final:
                self.file.write(msg + "\n")
            self._notify(msg)
        else:
            self(msg)

    def close(self):
        if self.file:
            self.file.close()


def package_versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("semflow", "torch", "numpy", "scipy", "networkx", "PyYAML", "sionna-no-rt",
                "pytorch-msssim", "scikit-image", "scikit-learn", "matplotlib", "pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SemflowError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SemflowError(f"{path}: cannot load checkpoint: {type(exc).__name__}: {exc}") from None


def _fmt_duration(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Runner:
    """Builds a graph and runs its training stages and/or evaluation.

    ``Runner(spec, preset="smoke", overrides={"snr_db": 5}, out="runs/x", seed=0)``
    then ``.train()``, ``.evaluate()``, or ``.run()`` for both.
    """

    def __init__(self, spec: GraphSpec, preset: str | None = None, overrides: dict | None = None,
                 out: str | Path | None = None, device: str = "cpu", seed: int = 0,
                 taps: TapHub | None = None, quiet: bool = False, check_finite: bool = True,
                 command: list | None = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SemflowError(f"--device {device}: CUDA is not available on this machine")
        self.spec = spec
        self.graph: CompiledGraph = compile_graph(spec, preset=preset, overrides=overrides)
        if not self.graph.ok:
            raise ValidationError(self.graph.problems)
        self.preset, self.overrides, self.seed, self.device = preset, dict(overrides or {}), int(seed), device
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = Path(out) if out else Path("runs") / f"{spec.name}-{preset or 'default'}-{stamp}"
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = Log(self.out / "log.txt", quiet=quiet)
        self.taps = taps or TapHub()
        self.stop_requested = False        # set from another thread (GUI stop button)
        self.pause_requested = False
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        self.scheduler = Scheduler(self.graph, device=device, taps=self.taps, check_finite=check_finite)
        # libraries' own RNGs (registered by block packages); some reseed torch's too,
        # so the global torch seed is set again after them
        rng.seed_all(self.seed + 3)
        torch.manual_seed(self.seed)
        self.scheduler.seed_sources(self.seed + 2)
        self.var_generator = torch.Generator().manual_seed(self.seed + 1)
        self._write_run_info(command)

    # ---- run directory ---------------------------------------------------------------------
    def _write_run_info(self, command):
        resolved = self.spec.to_dict()
        resolved["variables"] = {k: (repr(v) if isinstance(v, E.Distribution) else v)
                                 for k, v in self.graph.root.values.items()}
        resolved.pop("presets", None)
        header = (f"# resolved by semflow from {self.spec.path}"
                  f" (preset: {self.preset or 'none'}, --set: {self.overrides or 'none'})\n")
        (self.out / "graph.yaml").write_text(header + dump_yaml(resolved))
        info = {"graph": self.spec.path, "name": self.spec.name, "preset": self.preset,
                "overrides": self.overrides, "seed": self.seed, "device": self.device,
                "command": command or sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "seeds": {"torch": self.seed, "variables": self.seed + 1, "sources": self.seed + 2},
                "versions": package_versions()}
        (self.out / "run.json").write_text(json.dumps(info, indent=2, default=str))

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def _save_checkpoint(self, stage_idx: int, step: int, opt=None, sched=None, done=False):
        atomic_torch_save({
            "format": 1, "graph": self.spec.name, "stage": stage_idx, "step": step, "done": done,
            "blocks": self.scheduler.state_dict(),
            "optimizer": opt.state_dict() if opt is not None else None,
            "lr_scheduler": sched.state_dict() if sched is not None else None,
            "rng": {"torch": torch.get_rng_state(), "variables": self.var_generator.get_state(),
                    "external": rng.get_states()},
            "seed": self.seed,
        }, self.checkpoint_path)

    def load_weights(self, path: str | Path) -> dict:
        ckpt = load_checkpoint(path)
        state = ckpt.get("blocks", ckpt)
        missing, unexpected = self.scheduler.load_state_dict(state, strict=False)
        if unexpected:
            raise SemflowError(f"{path}: checkpoint has entries this graph lacks: {', '.join(unexpected[:5])}")
        if missing:
            self.log(f"note: {path}: blocks without saved state keep their initial weights: "
                     f"{', '.join(sorted({m.split('.')[0] for m in missing}))}")
        return ckpt

    # ---- training --------------------------------------------------------------------------
    def stage_settings(self, i: int) -> dict:
        st = self.spec.train[i]
        values = self.graph.root.values
        ev = lambda v: _eval_value(v, values)  # noqa: E731
        vars_ = {k: ev(v) for k, v in st.items() if k not in STAGE_KEYS}
        vars_.update({k: ev(v) for k, v in (st.get("variables") or {}).items()})
        # a variable that is itself a distribution is redrawn in every stage
        for k, v in values.items():
            if isinstance(v, E.Distribution) and k not in vars_:
                vars_[k] = v
        # ...but when a stage setting names it (snr_db: $train_snr_db), the setting carries its
        # own draw, so the variable's draw is not logged (it would look like a second SNR)
        raw = [v for k, v in st.items() if k not in STAGE_KEYS] + list((st.get("variables") or {}).values())
        named = set().union(*(E.names_used(str(v)) for v in raw if E.is_expression(v))) if raw else set()
        unlogged = {k for k in named if isinstance(values.get(k), E.Distribution)}
        return {
            "name": str(st.get("stage", f"stage{i + 1}")), "trainable": list(st.get("trainable") or []),
            "loss": compile_loss(st["loss"]), "optimizer": ev(dict(st.get("optimizer") or {"type": "adam"})),
            "schedule": ev(dict(st.get("schedule") or {"type": "constant"})), "steps": int(ev(st.get("steps", 0))),
            "grad_clip": ev(st.get("grad_clip", 0)) or 0, "log_every": int(ev(st.get("log_every", 0)) or 0),
            "checkpoint_every": int(ev(st.get("checkpoint_every", 0)) or 0), "variables": vars_,
            "copy_weights": dict(st.get("copy_weights") or {}),
            "unlogged": unlogged,
        }

    def _optimizer(self, cfg: dict, params):
        cfg = dict(cfg)
        kind = cfg.pop("type", "adam")
        lr = float(cfg.pop("lr", 1e-3))
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
               "rmsprop": torch.optim.RMSprop}[kind]
        try:
            return cls(params, lr=lr, **cfg)
        except TypeError as exc:
            raise SemflowError(f"optimizer {kind}: {exc}") from None

    @staticmethod
    def _lr_schedule(cfg: dict, opt, steps: int):
        cfg = dict(cfg)
        kind = cfg.pop("type", "constant")
        warmup = int(cfg.pop("warmup", 0))

        def factor(step):
            w = min(1.0, (step + 1) / warmup) if warmup else 1.0
            if kind == "cosine":
                floor = float(cfg.get("min_factor", 0.0))
                return w * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / max(1, steps))))
            if kind == "step":
                return w * float(cfg.get("gamma", 0.1)) ** (step // int(cfg.get("step_size", max(1, steps // 3))))
            if kind == "multistep":
                ms = [int(m * steps) if isinstance(m, float) and m < 1 else int(m) for m in cfg.get("milestones", [])]
                return w * float(cfg.get("gamma", 0.1)) ** sum(step >= m for m in ms)
            if kind == "exponential":
                return w * float(cfg.get("gamma", 0.999)) ** step
            return w
        return torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def train(self, resume: bool = False, stop_after: int | None = None) -> bool:
        """Run every training stage. Returns False if stopped early (``stop_after`` steps
        in total, or a stop request), True when all stages finished."""
        start_stage, start_step, ckpt = 0, 0, None
        if resume:
            if not self.checkpoint_path.is_file():
                raise SemflowError(f"--resume: no checkpoint at {self.checkpoint_path}")
            ckpt = load_checkpoint(self.checkpoint_path)
            self.scheduler.load_state_dict(ckpt["blocks"])
            start_stage, start_step = int(ckpt["stage"]), int(ckpt["step"])
            if ckpt.get("done"):
                start_stage, start_step = len(self.spec.train), 0
            torch.set_rng_state(ckpt["rng"]["torch"])
            self.var_generator.set_state(ckpt["rng"]["variables"])
            rng.set_states(ckpt["rng"].get("external", {}))
            self.log(f"resumed from {self.checkpoint_path}: stage {start_stage + 1}, step {start_step}")
        budget = stop_after
        csv_log = CsvTapLogger(self.taps, self.out / "train.csv", ["train.step"], append=resume)
        try:
            for i in range(start_stage, len(self.spec.train)):
                s = self.stage_settings(i)
                done = self._train_stage(i, s, start_step if i == start_stage else 0,
                                         ckpt if i == start_stage else None, budget)
                if done is not True:
                    return False
                if budget is not None:
                    budget -= s["steps"] - (start_step if i == start_stage else 0)
            self._save_checkpoint(len(self.spec.train), 0, done=True)
        finally:
            csv_log.close()
        return True

    def _train_stage(self, idx: int, s: dict, start: int, ckpt, budget):
        sch, name, steps = self.scheduler, s["name"], s["steps"]
        if start == 0:
            self._copy_weights(name, s["copy_weights"])
        trainable = set(s["trainable"])
        params = []
        for bname, module in sch.modules_by_name().items():
            top = bname.split("/", 1)[0]
            on = top in trainable
            module.requires_grad_(on)
            module.train(on)
            if on:
                params += [p for p in module.parameters()]
        if not params:
            raise SemflowError(f"train stage '{name}': trainable blocks {sorted(trainable)} have no parameters")
        sch.train(True)
        for bname, module in sch.modules_by_name().items():
            module.train(bname.split("/", 1)[0] in trainable)
        opt = self._optimizer(s["optimizer"], params)
        lr_sched = self._lr_schedule(s["schedule"], opt, steps)
        if ckpt is not None and ckpt.get("optimizer") is not None:
            opt.load_state_dict(ckpt["optimizer"])
            lr_sched.load_state_dict(ckpt["lr_scheduler"])
        dists = s["variables"]
        fixed_vars = {k: v for k, v in dists.items() if not isinstance(v, E.Distribution)}
        sch.reset_variables(fixed_vars)
        redraw = {k: v for k, v in dists.items() if isinstance(v, E.Distribution)}
        logged = [k for k in redraw if k not in s["unlogged"]]
        loss_fn = s["loss"]
        keys = [f"{b}.{p}" for b, p in loss_fn.ports]
        plan = sch.subplan(keys)
        in_plan = {st.name for st in plan}
        sinks = sorted(n for n in sch.graph.order
                       if isinstance(sch.block(n), Sink) and sch.block(n).log_in_training)
        # the cheap metric sinks (and what feeds them) run on log steps, off the gradient path
        rest = [st for st in sch.subplan([f"{k}.value" for k in sinks]) if st.name not in in_plan]
        # metrics every log_every steps (deterministic); the progress line at most every 2 s
        log_every = s["log_every"] or max(1, min(100, steps // 20))
        ckpt_every = s["checkpoint_every"]      # 0: every 2 minutes of wall time, and at stage end
        self.log(f"[{name}] training {sorted(trainable)} for {steps} steps "
                 f"({sum(p.numel() for p in params):,} parameters); loss = {loss_fn.text}"
                 + (f"; redrawn per batch: {', '.join(f'{k}~{redraw[k]!r}' for k in logged)}" if logged else ""))
        t0 = last_print = last_ckpt = time.monotonic()
        last_loss = float("nan")
        stage_vars = dict(self.scheduler.variables)
        for step in range(start, steps):
            if self.stop_requested or (budget is not None and step - start >= budget):
                self._save_checkpoint(idx, step, opt, lr_sched)
                self.log(f"[{name}] stopped at step {step}; checkpoint {self.checkpoint_path}")
                return False
            while self.pause_requested and not self.stop_requested:
                time.sleep(0.05)
            if redraw:
                drawn = sample_variables(redraw, self.var_generator)
                sch.set_variables(drawn)
                stage_vars.update(drawn)
            self.taps.info = {"stage": name, "step": step + 1, "where": f"stage '{name}', step {step + 1}"}
            values = sch(plan=plan)
            loss = loss_fn(values, stage_vars)
            if not torch.is_tensor(loss) or loss.dim() != 0:
                raise SemflowError(f"train stage '{name}': loss '{loss_fn.text}' must be a scalar tensor")
            if self.scheduler.check_finite and not torch.isfinite(loss):
                where = f"stage '{name}', step {step + 1}"
                culprit = sch.first_non_finite(values)
                if culprit:
                    raise NonFiniteError(*culprit, where)
                raise NonFiniteError("loss", loss_fn.text, where)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            self._check_grads(name, step, params)
            if s["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(params, float(s["grad_clip"]))
            opt.step()
            lr_sched.step()
            now = time.monotonic()
            if (step + 1) % log_every == 0 or step + 1 == steps:
                last_loss = float(loss.detach())
                with torch.no_grad():
                    sch(plan=rest, values=values)
                row = {"stage": name, "step": step + 1, "loss": last_loss, "lr": opt.param_groups[0]["lr"]}
                for k in sinks:
                    row[k] = float(values[f"{k}.value"].detach().float().mean())
                row.update({k: stage_vars[k] for k in logged})
                self.taps.publish("train.step", row)
                self.taps.publish("train.loss", torch.tensor(last_loss))
                if now - last_print >= 2.0 or step + 1 == steps:
                    last_print = now
                    rate = (step + 1 - start) / max(now - t0, 1e-9)
                    extra = "".join(f"  {k} {row[k]:.3f}" for k in sinks)
                    self.log.progress(f"[{name}] step {step + 1}/{steps}  loss {last_loss:.5f}{extra}  "
                                      f"{rate:.1f} it/s  eta {_fmt_duration((steps - step - 1) / max(rate, 1e-9))}",
                                      final=step + 1 == steps)
            if step + 1 < steps and ((ckpt_every and (step + 1) % ckpt_every == 0)
                                     or (not ckpt_every and now - last_ckpt >= 120)):
                self._save_checkpoint(idx, step + 1, opt, lr_sched)
                last_ckpt = now
        self._save_checkpoint(idx + 1, 0)
        self.log(f"[{name}] done in {_fmt_duration(time.monotonic() - t0)}, final loss {last_loss:.5f}")
        return True

    def _copy_weights(self, stage: str, copies: dict):
        """Stage start: load block ``src``'s weights into ``dst`` (e.g. a proxy encoder
        that must equal the latest trained encoder, seed 000 eq. 13)."""
        names = self.scheduler.modules_by_name()
        for dst, src in copies.items():
            pairs = [(n, src + n[len(dst):]) for n in names if n == dst or n.startswith(dst + "/")]
            for d, s_ in pairs:
                names[d].load_state_dict(names[s_].state_dict())
            self.log(f"[{stage}] copied weights {src} -> {dst}")

    def _check_grads(self, stage: str, step: int, params: list):
        """One fused norm over all gradients per step; the per-block scan only on failure."""
        if not self.scheduler.check_finite:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads or torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            return
        for bname, module in self.scheduler.modules_by_name().items():
            for pname, p in module.named_parameters():
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    raise NonFiniteError(bname, f"gradient of parameter '{pname}'", f"stage '{stage}', step {step + 1}")

    # ---- evaluation ------------------------------------------------------------------------
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

    def run(self, resume: bool = False, stop_after: int | None = None) -> dict | None:
        finished = self.train(resume=resume, stop_after=stop_after) if self.spec.train else True
        if not finished:
            return None
        result = self.evaluate() if (self.spec.evaluate or {}).get("metrics") or self._has_sinks() else None
        self.log(f"run directory: {self.out}")
        return result

    def _has_sinks(self) -> bool:
        return any(isinstance(self.scheduler.block(n), Sink) for n in self.graph.order)

    def close(self):
        self.log.close()


def _batch_len(data: dict) -> int:
    return int(next(iter(data.values())).shape[0])


def _point_key(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


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
