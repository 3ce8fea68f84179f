"""Training stages: the part of :class:`flowgraph.run.Runner` that trains.

Each stage names its trainable blocks (the rest frozen and in eval mode), a loss
expression over ports, an optimizer, an LR schedule and per-batch redrawn variables.
Checkpoints are written by time and at stage ends; resuming restores the step, the
optimizer and every RNG, so a resumed run ends with the same parameters.
"""
from __future__ import annotations

import math
import time

import torch

from . import expr as E
from . import rng
from .block import Sink
from .checkpoint import load_checkpoint
from .compile import STAGE_KEYS, _eval_value
from .errors import NonFiniteError, SemflowError
from .losses import compile_loss, output_shapes
from .rundir import _fmt_duration, truncate_train_csv
from .scheduler import sample_variables
from .taps import CsvTapLogger


#: time-based checkpoints (stages without checkpoint_every): the first after this many
#: seconds of a stage, then every CHECKPOINT_EVERY_S
FIRST_CHECKPOINT_S = 10.0
CHECKPOINT_EVERY_S = 120.0


class TrainingMixin:
    """Training for :class:`flowgraph.run.Runner` (uses its scheduler, log, taps, RNGs)."""

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
        shapes = output_shapes({n: rb.cls for n, rb in self.graph.blocks.items()})   # named loss axes
        return {
            "name": str(st.get("stage", f"stage{i + 1}")), "trainable": list(st.get("trainable") or []),
            "loss": compile_loss(st["loss"], port_shape=shapes), "optimizer": ev(dict(st.get("optimizer") or {"type": "adam"})),
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
        if resume:   # rows after the checkpoint belong to steps that are trained again
            names = [self.stage_settings(i)["name"] for i in range(len(self.spec.train))]
            truncate_train_csv(self.out / "train.csv", names, start_stage, start_step)
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
        ckpt_every = s["checkpoint_every"]      # 0: after 10 s, then every 2 minutes of wall time, and at stage end
        ckpt_wait = FIRST_CHECKPOINT_S           # a kill in the first minutes must not lose everything
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
                                     or (not ckpt_every and now - last_ckpt >= ckpt_wait)):
                self._save_checkpoint(idx, step + 1, opt, lr_sched)
                last_ckpt, ckpt_wait = now, CHECKPOINT_EVERY_S
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
