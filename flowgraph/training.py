"""Training stages: the part of :class:`flowgraph.run.Runner` that trains.

Each stage names what trains (blocks, or parameter patterns inside a block; the rest is
frozen and, where nothing in a block trains, in eval mode), a loss expression over ports,
an optimizer (optionally with per-block learning rates), an LR schedule and per-batch
redrawn variables. Optional per stage: ``enabled`` (skip it, e.g. in an ablation), a
training ``batch``, gradient accumulation, an EMA of the weights, initialisation from
another run's checkpoint (``init``) or from blocks of this graph (``copy_weights``),
validation with a kept best checkpoint, and an alternating ``discriminator`` (GAN) part.

Checkpoints are written by time and at stage ends; resuming restores the step, the
optimizers, the EMA, the best validation so far and every RNG, so a resumed run ends with
the same parameters. Validation saves and restores the RNG states, so it does not change
what is trained.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from . import expr as E
from . import rng
from .block import Sink
from .checkpoint import check_resume, load_checkpoint
from .compile import STAGE_KEYS, Scope, _eval_value, resolve_checkpoint_path
from .distributed import wrap_trained
from .ema import EMA
from .precision import autocast, grad_scaler
from .errors import NonFiniteError, SemflowError, ValidationError
from .losses import compile_loss
from .rundir import Log, _fmt_duration, truncate_train_csv
from .scheduler import _key, sample_variables
from .selectors import (SelectorError, check_fit, checkpoint_state, load_into, pairs, select_parameters,
                        submodule)
from .taps import CsvTapLogger


#: time-based checkpoints (stages without checkpoint_every): the first after this many
#: seconds of a stage, then every CHECKPOINT_EVERY_S
FIRST_CHECKPOINT_S = 10.0
CHECKPOINT_EVERY_S = 120.0


@dataclass
class _Part:
    """What one optimizer trains: the generator side of a stage, or its discriminator."""
    named: list                     # [(block:param name, parameter)] in graph order
    blocks: set                     # blocks with at least one trained parameter
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    loss_fn: object
    plan: list
    grad_clip: float = 0.0
    steps: int = 1                  # discriminator: its steps per generator step
    params: list = field(default_factory=list)

    def __post_init__(self):
        self.params = [p for _, p in self.named]     # built once: the step loop uses it every step


@dataclass
class _Validator:
    """A stage's ``validate:``: when to evaluate, which value counts as better, the best so far."""
    every: int
    metric: str
    column: str                     # the result column compared (set-level when the sink has one)
    mode: str
    split: str = "val"
    keep: str = "best"
    at: dict = field(default_factory=dict)
    images: int | None = None
    batch: int | None = None
    restore_best: bool = False
    best: float | None = None
    best_step: int | None = None

    def due(self, step: int, steps: int) -> bool:
        return step % self.every == 0 or step == steps

    def better(self, value: float) -> bool:
        if value != value:          # NaN is never best
            return False
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def state(self) -> dict:
        return {"metric": self.metric, "best": self.best, "step": self.best_step}


class TrainingMixin:
    """Training for :class:`flowgraph.run.Runner` (uses its scheduler, log, taps, RNGs)."""

    # ---- stage settings ------------------------------------------------------------------
    def graph_values(self) -> dict:
        """The graph's variables as built (preset and --set applied), computed afresh. Stage
        settings are evaluated against these, never against the scheduler's current values:
        those hold the last per-batch draws and sweep points (a stage once trained at the
        previous stage's last draw of train_snr_db instead of redrawing it)."""
        if getattr(self, "_built_values", None) is None:
            self._built_values = Scope(self.spec).compute(self.graph.overrides)
        return self._built_values

    def _loss_shapes(self) -> dict:
        """Declared output shapes of the graph's blocks: named axes in loss reductions."""
        return self.graph.port_shapes()

    def stage_settings(self, i: int) -> dict:
        st = self.spec.train[i]
        values = self.graph_values()
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
        flags = self.graph.stages_enabled
        enabled = flags[i] if i < len(flags) else True
        return {
            "name": str(st.get("stage", f"stage{i + 1}")), "enabled": enabled,
            "trainable": list(st.get("trainable") or []),
            "loss": self.graph.resolve_loss(compile_loss(st["loss"], port_shape=self._loss_shapes())), "optimizer": ev(dict(st.get("optimizer") or {"type": "adam"})),
            "schedule": ev(dict(st.get("schedule") or {"type": "constant"})),
            "steps": int(ev(st.get("steps", 0))) if enabled else 0,
            "grad_clip": ev(st.get("grad_clip", 0)) or 0, "log_every": int(ev(st.get("log_every", 0)) or 0),
            "checkpoint_every": int(ev(st.get("checkpoint_every", 0)) or 0), "variables": vars_,
            "copy_weights": dict(st.get("copy_weights") or {}),
            "unlogged": unlogged,
            "batch": int(ev(st["batch"])) if "batch" in st else None,
            "accumulate": int(ev(st.get("accumulate", 1))),
            "ema": float(ev(st["ema"])) if "ema" in st else None,
            "init": self._init_settings(st.get("init"), ev),
            "validate": ev(dict(st["validate"])) if "validate" in st else None,
            "discriminator": self._discriminator_settings(st.get("discriminator"), ev),
        }

    @staticmethod
    def _init_settings(init, ev) -> dict | None:
        if not init:
            return None
        blocks = init.get("blocks") or {}
        if isinstance(blocks, list):
            blocks = {b: b for b in blocks}
        return {"checkpoint": str(ev(init.get("checkpoint", "")) or ""), "blocks": dict(blocks)}

    def _discriminator_settings(self, d, ev) -> dict | None:
        if not d:
            return None
        return {"trainable": list(d.get("trainable") or []), "loss": self.graph.resolve_loss(compile_loss(d["loss"], port_shape=self._loss_shapes())),
                "optimizer": ev(dict(d.get("optimizer") or {"type": "adam"})),
                "schedule": ev(dict(d.get("schedule") or {"type": "constant"})),
                "steps": int(ev(d.get("steps", 1))), "grad_clip": ev(d.get("grad_clip", 0)) or 0}

    @staticmethod
    def _logged_vars(s: dict) -> list:
        return [k for k, v in s["variables"].items() if isinstance(v, E.Distribution) and k not in s["unlogged"]]

    # ---- checks that need the built blocks ------------------------------------------------
    def check_stages(self) -> list:
        """Checks before the first training step, one located problem each: what
        ``trainable`` and ``lr_by_block`` select (parameter names exist only once blocks are
        built), sub-module paths in ``copy_weights``, and whether ``init`` checkpoints fit
        the blocks they initialise. :meth:`train` raises them as a ValidationError."""
        problems = []
        modules = self.scheduler.modules_by_name()
        for i in range(len(self.spec.train)):
            s = self.stage_settings(i)
            if not s["enabled"]:
                continue

            def P(keys, msg, _i=i, _name=s["name"]):
                problems.append(self.spec.problem(self.spec.line_of("train", _i, *keys), f"train stage '{_name}': {msg}"))

            parts = [((), s["trainable"], s["optimizer"])]
            if s["discriminator"]:
                d = s["discriminator"]
                parts.append((("discriminator",), d["trainable"], d["optimizer"]))
            for prefix, selectors, opt in parts:
                chosen, empty = set(), []
                for sel in selectors:
                    try:
                        hit = select_parameters(modules, sel, allow_empty=True)
                    except SelectorError as exc:
                        P(prefix + ("trainable",), f"trainable {exc}")
                        continue
                    chosen |= {id(p) for _, _, p in hit}
                    empty += [] if hit else [sel]
                if empty and not chosen:
                    P(prefix + ("trainable",), f"trainable blocks {', '.join(empty)} have no parameters: nothing "
                                               f"to train (disable the stage with enabled: ... in this configuration)")
                for sel in opt.get("lr_by_block") or {}:
                    try:
                        hit = [p for _, _, p in select_parameters(modules, sel) if id(p) in chosen]
                    except SelectorError as exc:
                        P(prefix + ("optimizer", "lr_by_block"), f"lr_by_block {exc}")
                        continue
                    if not hit:
                        P(prefix + ("optimizer", "lr_by_block"), f"lr_by_block '{sel}' selects no parameter "
                                                                 f"that this stage trains")
            for dst, src in s["copy_weights"].items():
                try:
                    for d, s_ in pairs(modules, dst, src):
                        check_fit(submodule(modules, d)[1], submodule(modules, s_)[1].state_dict(),
                                  f"copy_weights {d} <- {s_}")
                except SelectorError as exc:
                    P(("copy_weights",), str(exc))
            if s["init"] and s["init"]["checkpoint"]:
                try:
                    self._apply_init(s["init"], modules, load=False)
                except SemflowError as exc:
                    P(("init",), f"init: {exc}")
        return problems

    # ---- the run's stages -------------------------------------------------------------------
    def train(self, resume: bool = False, stop_after: int | None = None) -> bool:
        """Run every enabled training stage. Returns False if stopped early (``stop_after``
        steps in total, or a stop request), True when all stages finished."""
        problems = self.check_stages()       # what only the built blocks can tell
        if problems:
            raise ValidationError(problems)
        start_stage, start_step, ckpt = 0, 0, None
        if resume:
            if not self.checkpoint_path.is_file():
                raise SemflowError(f"--resume: no checkpoint at {self.checkpoint_path}")
            ckpt = check_resume(load_checkpoint(self.checkpoint_path), self)
            saved_world = int(ckpt.get("world_size") or 1)
            if saved_world != self.world.size:
                raise SemflowError(f"--resume: {self.checkpoint_path} was written by {saved_world} process(es), "
                                   f"this run has {self.world.size}; resume with --nproc {saved_world}")
            self.scheduler.load_state_dict(ckpt["blocks"])
            start_stage, start_step = int(ckpt["stage"]), int(ckpt["step"])
            if ckpt.get("done"):
                start_stage, start_step = len(self.spec.train), 0
            own = (ckpt.get("rank_rng") or [ckpt["rng"]])[self.world.rank]   # each rank its own noise
            torch.set_rng_state(own["torch"])
            self.var_generator.set_state(ckpt["rng"]["variables"])
            rng.set_states(own.get("external", {}))
            self.log(f"resumed from {self.checkpoint_path}: stage {start_stage + 1}, step {start_step}")
        budget = stop_after
        settings = [self.stage_settings(i) for i in range(len(self.spec.train))]
        if resume and self.world.main:   # rows after the checkpoint belong to steps that are trained again
            truncate_train_csv(self.out / "train.csv", [st["name"] for st in settings], start_stage, start_step)
        csv_log = CsvTapLogger(self.taps, self.out / "train.csv", ["train.step"], append=resume,
                               fields=self._csv_fields(settings)) if self.world.main else None
        try:
            for i in range(start_stage, len(self.spec.train)):
                s = self.stage_settings(i)
                if not s["enabled"]:
                    self.log(f"[{s['name']}] disabled (enabled: {self.spec.train[i].get('enabled')!r}); skipped")
                    continue
                first = start_step if i == start_stage else 0
                done = self._train_stage(i, s, first, ckpt if i == start_stage else None, budget)
                if done is not True:
                    return False
                if budget is not None:
                    budget -= s["steps"] - first
            self._save_checkpoint(len(self.spec.train), 0, done=True)
        finally:
            if csv_log is not None:
                csv_log.close()
        return True

    def _csv_fields(self, settings: list) -> list:
        """train.csv's header: every column any stage logs (stages may log different ones)."""
        cols = ["stage", "step", "loss", "lr"] + self._training_sinks()
        for s in settings:
            if s["enabled"]:
                cols += self._logged_vars(s)
                cols += ["d_loss"] if s["discriminator"] else []
                cols += [f"val_{s['validate']['metric']}"] if s["validate"] else []
        return list(dict.fromkeys(cols))

    def _training_sinks(self) -> list:
        sch = self.scheduler
        return sorted(n for n in sch.graph.order if isinstance(sch.block(n), Sink) and sch.block(n).log_in_training)

    def _train_stage(self, idx: int, s: dict, start: int, ckpt, budget):
        sch, name, steps = self.scheduler, s["name"], s["steps"]
        modules = sch.modules_by_name()
        if start == 0:
            if s["init"] and s["init"]["checkpoint"]:
                self._apply_init(s["init"], modules, stage=name)
            self._copy_weights(name, s["copy_weights"])
        # the stage's variables first: what a block reads can depend on them (Block.needed_inputs)
        dists = s["variables"]
        fixed_vars = {k: v for k, v in dists.items() if not isinstance(v, E.Distribution)}
        sch.reset_variables(fixed_vars)
        gen = self._part(s, modules, steps)
        d = s["discriminator"]
        if d and self.world.active:
            raise SemflowError(f"train stage '{name}': a discriminator stage does not run data-parallel yet "
                               f"(run it in one process)")
        disc = self._part(d, modules, steps * d["steps"], d["steps"]) if d else None
        train_blocks = gen.blocks | (disc.blocks if disc else set())
        for module in modules.values():
            module.requires_grad_(False)
        for p in gen.params:
            p.requires_grad_(True)
        self._set_modes(train_blocks)
        if self.world.active:     # after requires_grad is set: DDP syncs exactly what trains
            sch.ddp = wrap_trained(modules, sorted(gen.blocks), sch.device)
        ema = EMA(gen.named, s["ema"]) if s["ema"] is not None else None
        scaler = grad_scaler(self.amp, sch.device)        # fp16 only
        val = self._validator(s)
        if ckpt is not None and ckpt.get("optimizer") is not None:
            gen.opt.load_state_dict(ckpt["optimizer"])
            gen.sched.load_state_dict(ckpt["lr_scheduler"])
            if disc is not None:
                disc.opt.load_state_dict(ckpt["disc_optimizer"])
                disc.sched.load_state_dict(ckpt["disc_lr_scheduler"])
            if ema is not None:
                ema.load_state_dict(ckpt["ema"])
            if scaler is not None and ckpt.get("grad_scaler"):
                scaler.load_state_dict(ckpt["grad_scaler"])
            if val is not None and ckpt.get("validation"):
                val.best, val.best_step = ckpt["validation"]["best"], ckpt["validation"]["step"]
        redraw = {k: v for k, v in dists.items() if isinstance(v, E.Distribution)}
        logged = self._logged_vars(s)
        sinks = self._training_sinks()
        in_plan = {st.name for st in gen.plan}
        # the cheap metric sinks (and what feeds them) run on log steps, off the gradient path
        rest = [st for st in sch.subplan([f"{k}.value" for k in sinks]) if st.name not in in_plan]
        # metrics every log_every steps (deterministic); the progress line at most every 2 s
        log_every = s["log_every"] or max(1, min(100, steps // 20))
        ckpt_every = s["checkpoint_every"]      # 0: after 10 s, then every 2 minutes of wall time, and at stage end
        ckpt_wait = FIRST_CHECKPOINT_S           # a kill in the first minutes must not lose everything
        accum = s["accumulate"]
        if s["batch"] is not None:
            self._set_batch(s["batch"])

        def save(step_no):
            extra = {"ema": ema.state_dict() if ema else None,
                     "grad_scaler": scaler.state_dict() if scaler else None,
                     "validation": val.state() if val else None}
            if disc is not None:
                extra.update(disc_optimizer=disc.opt.state_dict(), disc_lr_scheduler=disc.sched.state_dict())
            self._save_checkpoint(idx, step_no, gen.opt, gen.sched, extra=extra)

        self.log(f"[{name}] training {', '.join(s['trainable'])} for {steps} steps "
                 f"({sum(p.numel() for p in gen.params):,} parameters); loss = {gen.loss_fn.text}"
                 + (f"; discriminator {', '.join(s['discriminator']['trainable'])} ({disc.steps} step(s) per step, "
                    f"{sum(p.numel() for p in disc.params):,} parameters); loss = {disc.loss_fn.text}" if disc else "")
                 + (f"; batch {s['batch']}" if s["batch"] is not None else "")
                 + (f"; {accum} micro-batches per step" if accum > 1 else "")
                 + (f"; EMA {s['ema']}" if ema else "")
                 + (f"; redrawn per batch: {', '.join(f'{k}~{redraw[k]!r}' for k in logged)}" if logged else ""))
        t0 = last_print = last_ckpt = time.monotonic()
        last_loss = float("nan")
        d_loss = None
        stage_vars = dict(self.scheduler.variables)
        drawn: dict = {}
        try:
            for step in range(start, steps):
                if self.stop_requested or (budget is not None and step - start >= budget):
                    save(step)
                    self.log(f"[{name}] stopped at step {step}; checkpoint {self.checkpoint_path}")
                    return False
                while self.pause_requested and not self.stop_requested:
                    time.sleep(0.05)
                if disc is not None:
                    d_loss = self._discriminator_steps(name, step, disc, gen, redraw, stage_vars, drawn)
                gen.opt.zero_grad(set_to_none=True)
                total = None                  # accumulate > 1: the sum of the micro-batch losses
                for _ in range(accum):
                    if redraw:
                        drawn = sample_variables(redraw, self.var_generator)
                        sch.set_variables(drawn)
                        stage_vars.update(drawn)
                    self.taps.info = {"stage": name, "step": step + 1, "where": f"stage '{name}', step {step + 1}"}
                    with autocast(self.amp, sch.device):
                        values = sch(plan=gen.plan)
                        loss = self._checked_loss(name, step, gen.loss_fn, values, stage_vars).float()
                    part = loss / accum if accum > 1 else loss
                    (scaler.scale(part) if scaler is not None else part).backward()
                    if accum > 1:
                        total = loss.detach() if total is None else total + loss.detach()
                if scaler is not None:       # overflowing fp16 steps are the scaler's to skip
                    scaler.unscale_(gen.opt)
                else:
                    self._check_grads(name, step, gen.params)
                if gen.grad_clip:
                    torch.nn.utils.clip_grad_norm_(gen.params, float(gen.grad_clip))
                if scaler is not None:
                    scaler.step(gen.opt)
                    scaler.update()
                else:
                    gen.opt.step()
                if ema is not None:
                    ema.update()
                gen.sched.step()
                now = time.monotonic()
                validate_now = val is not None and val.due(step + 1, steps)
                if (step + 1) % log_every == 0 or step + 1 == steps or validate_now:
                    last_loss = float(total / accum) if accum > 1 else float(loss.detach())
                    with torch.no_grad(), autocast(self.amp, sch.device):
                        sch(plan=rest, values=values)
                    means = self.world.mean([last_loss] + [float(values[f"{k}.value"].detach().float().mean())
                                                           for k in sinks])      # over the global batch
                    last_loss = means[0]
                    row = {"stage": name, "step": step + 1, "loss": last_loss, "lr": gen.opt.param_groups[0]["lr"]}
                    for k, v in zip(sinks, means[1:]):
                        row[k] = v
                    row.update({k: stage_vars[k] for k in logged})
                    if d_loss is not None:
                        row["d_loss"] = float(d_loss)
                    if validate_now:
                        row[f"val_{val.metric}"] = self._validate(idx, name, step + 1, val, ema, train_blocks,
                                                                  fixed_vars, drawn)
                    self.taps.publish("train.step", row)
                    self.taps.publish("train.loss", torch.tensor(last_loss))
                    if now - last_print >= 2.0 or step + 1 == steps:
                        last_print = now
                        rate = (step + 1 - start) / max(now - t0, 1e-9)
                        extra = "".join(f"  {k} {row[k]:.3f}" for k in sinks)
                        extra += f"  d_loss {row['d_loss']:.4f}" if "d_loss" in row else ""
                        self.log.progress(f"[{name}] step {step + 1}/{steps}  loss {last_loss:.5f}{extra}  "
                                          f"{rate:.1f} it/s  eta {_fmt_duration((steps - step - 1) / max(rate, 1e-9))}",
                                          final=step + 1 == steps)
                if step + 1 < steps and ((ckpt_every and (step + 1) % ckpt_every == 0)
                                         or (not ckpt_every and self.world.agree(now - last_ckpt >= ckpt_wait))):
                    save(step + 1)
                    last_ckpt, ckpt_wait = now, CHECKPOINT_EVERY_S
            self._finish_stage(name, s, ema, val, train_blocks)
        finally:
            sch.ddp = {}
            if s["batch"] is not None:
                self._set_batch(None)
        self._save_checkpoint(idx + 1, 0)
        self.log(f"[{name}] done in {_fmt_duration(time.monotonic() - t0)}, final loss {last_loss:.5f}")
        return True

    def _finish_stage(self, name: str, s: dict, ema, val, train_blocks: set):
        """The stage's final weights: the EMA's, or the best validated ones (restore_best)."""
        if ema is not None:
            ema.copy_to_weights()
            self.log(f"[{name}] EMA weights (decay {s['ema']}) replace the trained ones")
        if val is not None and val.restore_best and val.best_step is not None:
            best = load_checkpoint(self.best_checkpoint_path)["blocks"]
            keep = tuple(f"blocks.{_key(b)}." for b in train_blocks)
            self.scheduler.load_state_dict({k: v for k, v in best.items() if k.startswith(keep)}, strict=False)
            self.log(f"[{name}] restored the best validated weights (step {val.best_step}, "
                     f"{val.column} {val.best:.4f})")

    # ---- pieces of a stage ------------------------------------------------------------------
    def _part(self, s: dict, modules: dict, schedule_steps: int, per_step: int = 1) -> _Part:
        """Select the parameters a (generator or discriminator) part trains and build its optimizer."""
        chosen = {}
        for sel in s["trainable"]:
            hit = select_parameters(modules, sel, allow_empty=True)
            if not hit:
                self.log(f"note: trainable block '{sel}' has no parameters in this configuration")
            for _, _, p in hit:
                chosen[id(p)] = p
        named, blocks = [], set()
        for bname, module in modules.items():         # graph order, then the module's own order
            for pname, p in module.named_parameters():
                if id(p) in chosen:
                    named.append((f"{bname}:{pname}", p))
                    blocks.add(bname)
        opt = self._optimizer(s["optimizer"], named, modules)
        sched = self._lr_schedule(s["schedule"], opt, schedule_steps)
        loss_fn = s["loss"]
        plan = self.scheduler.subplan([f"{b}.{p}" for b, p in loss_fn.ports])
        return _Part(named, blocks, opt, sched, loss_fn, plan, s["grad_clip"], per_step)

    def _optimizer(self, cfg: dict, named: list, modules: dict):
        cfg = dict(cfg)
        kind = cfg.pop("type", "adam")
        lr = float(cfg.pop("lr", 1e-3))
        lr_by_block = cfg.pop("lr_by_block", None) or {}
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
               "rmsprop": torch.optim.RMSprop}[kind]
        params = [p for _, p in named]
        if lr_by_block:
            # a parameter takes the rate of the first lr_by_block entry that selects it
            taken, groups = set(), []
            for sel, block_lr in lr_by_block.items():
                ids = {id(p) for _, _, p in select_parameters(modules, sel)} - taken
                group = [p for p in params if id(p) in ids]
                taken |= ids
                if group:
                    groups.append({"params": group, "lr": float(block_lr)})
            rest = [p for p in params if id(p) not in taken]
            params = ([{"params": rest}] if rest else []) + groups
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

    def _set_modes(self, train_blocks: set):
        """Blocks that train are in train mode, all others in eval mode (dropout off, BN frozen)."""
        self.scheduler.train(True)
        for bname, module in self.scheduler.modules_by_name().items():
            module.train(bname in train_blocks)

    def _set_batch(self, n: int | None):
        """A stage's ``batch:`` on every source that has one; None restores the graph's value."""
        for sname in self.scheduler.sources:
            src = self.scheduler.block(sname)
            if "batch" in src.params:
                src.set_batch(n if n is not None else self.graph.blocks[sname].params["batch"])

    def _checked_loss(self, name: str, step: int, loss_fn, values: dict, stage_vars: dict):
        loss = loss_fn(values, stage_vars)
        if not torch.is_tensor(loss) or loss.dim() != 0:
            raise SemflowError(f"train stage '{name}': loss '{loss_fn.text}' must be a scalar tensor")
        if self.scheduler.check_finite and not torch.isfinite(loss):
            where = f"stage '{name}', step {step + 1}"
            culprit = self.scheduler.first_non_finite(values)
            if culprit:
                raise NonFiniteError(*culprit, where)
            raise NonFiniteError("loss", loss_fn.text, where)
        return loss

    def _discriminator_steps(self, name, step, disc: _Part, gen: _Part, redraw, stage_vars, drawn):
        """Seed 004 eq. 13's adversarial term, alternating: ``disc.steps`` discriminator updates
        (generator frozen, so no gradient reaches it) before each generator update
        (discriminator frozen). Each update draws its own batch."""
        sch = self.scheduler
        for p in gen.params:
            p.requires_grad_(False)
        for p in disc.params:
            p.requires_grad_(True)
        try:
            for k in range(disc.steps):
                if redraw:
                    drawn.update(sample_variables(redraw, self.var_generator))
                    sch.set_variables(drawn)
                    stage_vars.update(drawn)
                self.taps.info = {"stage": name, "step": step + 1,
                                  "where": f"stage '{name}', step {step + 1}, discriminator step {k + 1}"}
                values = sch(plan=disc.plan)
                loss = self._checked_loss(name, step, disc.loss_fn, values, stage_vars)
                disc.opt.zero_grad(set_to_none=True)
                loss.backward()
                self._check_grads(name, step, disc.params)
                if disc.grad_clip:
                    torch.nn.utils.clip_grad_norm_(disc.params, float(disc.grad_clip))
                disc.opt.step()
                disc.sched.step()
        finally:
            for p in disc.params:
                p.requires_grad_(False)
            for p in gen.params:
                p.requires_grad_(True)
        return loss.detach()

    # ---- weights from elsewhere ---------------------------------------------------------------
    def _apply_init(self, init: dict, modules: dict, stage: str = "", load: bool = True):
        """``init:``: blocks (or sub-modules) start from another run's checkpoint. With
        ``load=False`` only check that every state exists and fits (run start)."""
        path = resolve_checkpoint_path(init["checkpoint"], self.spec)
        if path is None:
            raise SemflowError(f"checkpoint '{init['checkpoint']}' not found (looked beside {self.spec.path}, "
                               f"then in the working directory)")
        state = load_checkpoint(path)
        state = state.get("blocks", state)
        for dst, src in init["blocks"].items():
            for d, s_ in pairs(modules, dst, src):
                module = submodule(modules, d)[1]
                if not module.state_dict():
                    continue          # nothing to load (e.g. a parameterless block inside a graph block)
                what = f"{d} <- {path}:{s_}"
                sub = checkpoint_state(state, s_)
                load_into(module, sub, what) if load else check_fit(module, sub, what)
        if load:
            self.log(f"[{stage}] initialised {', '.join(f'{d} <- {s_}' for d, s_ in init['blocks'].items())} "
                     f"from {path}")

    def _copy_weights(self, stage: str, copies: dict):
        """Stage start: load ``src``'s weights into ``dst`` (blocks or sub-modules, e.g. a proxy
        encoder that must equal the latest trained encoder, seed 000 eq. 13)."""
        modules = self.scheduler.modules_by_name()
        for dst, src in copies.items():
            for d, s_ in pairs(modules, dst, src):
                load_into(submodule(modules, d)[1], submodule(modules, s_)[1].state_dict(), f"copy_weights {d} <- {s_}")
            self.log(f"[{stage}] copied weights {src} -> {dst}")

    # ---- validation during training -------------------------------------------------------------
    @property
    def best_checkpoint_path(self):
        return self.checkpoint_path.with_name("best.pt")

    def _validator(self, s: dict) -> _Validator | None:
        v = s["validate"]
        if not v:
            return None
        metric = v["metric"]
        cls = type(self.scheduler.block(metric))
        # a set-level metric (dataset mIoU, FID) is selected on its set value, when it has one
        column = f"{metric}_{cls.set_suffix}" if cls.has_set_metric() else metric
        mode = v.get("mode") or ("max" if cls.higher_is_better else "min")
        return _Validator(every=int(v["every"]), metric=metric, column=column, mode=mode,
                          split=v.get("split", "val"), keep=v.get("keep", "best"), at=dict(v.get("at") or {}),
                          images=v.get("images"), batch=v.get("batch"), restore_best=bool(v.get("restore_best")))

    def _validate(self, idx: int, name: str, step: int, val: _Validator, ema, train_blocks: set,
                  fixed_vars: dict, drawn: dict) -> float:
        """Evaluate on the validation split (EMA weights when the stage keeps one), keep
        best.pt, and put training back exactly as it was (RNGs, variables, modes)."""
        sch = self.scheduler
        snap = self._rng_snapshot()
        log, info = self.log, dict(self.taps.info)
        self.log = Log(None, quiet=True)          # one [validate] line instead of evaluation's own
        try:
            with ema.applied() if ema is not None else nullcontext():
                res = self.evaluate(metrics=[val.metric], batch=val.batch, images=val.images,
                                    points=[dict(val.at)], write=False, split=val.split)
                row = res["rows"][0]
                value = float(row[val.column] if val.column in row else row[val.metric])
                improved = val.better(value)
                if improved:
                    val.best, val.best_step = value, step
                    if val.keep == "best":
                        self._save_checkpoint(idx, step, extra={"validation": val.state()},
                                              path=self.best_checkpoint_path)
        finally:
            self.log, self.taps.info = log, info
            self._rng_restore(snap)
            sch.reset_variables(fixed_vars)
            if drawn:
                sch.set_variables(drawn)
            self._set_modes(train_blocks)
        self.log(f"[{name}] step {step}: validation ({val.split}) {val.column} {value:.4f}"
                 + (f" (best; {self.best_checkpoint_path.name} saved)" if improved and val.keep == "best" else
                    f" (best so far {val.best:.4f} at step {val.best_step})" if val.best is not None else ""))
        self.taps.publish("train.validate", {"stage": name, "step": step, "metric": val.column, "value": value,
                                             "best": val.best, "best_step": val.best_step})
        return value

    def _rng_snapshot(self):
        sources = [self.scheduler.block(n) for n in self.scheduler.sources]
        return (torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
                rng.get_states(), [s.generator.get_state() for s in sources], self.var_generator.get_state())

    def _rng_restore(self, snap):
        cpu, cuda, external, gens, variables = snap
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        rng.set_states(external)
        for name, state in zip(self.scheduler.sources, gens):
            self.scheduler.block(name).generator.set_state(state)
        self.var_generator.set_state(variables)

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
