"""The scheduler: builds block modules from a compiled graph and executes frames.

One frame = one batch through every block in topological order, tensors routed by
port. The plan is precomputed (tuples of bindings), so per-frame overhead is a few
dict operations per block. On the first frame of each mode every output is checked
against its declared port (kind and symbolic shape). When a training loss turns
NaN/Inf, :meth:`first_non_finite` scans the frame's values in execution order, so the
first block that produced one is named without a per-block check on every step.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from . import expr as E
from .block import Sink, Source, tensor_kind
from .compile import CompiledGraph, _eval_value, fixed
from .errors import BlockError, NonFiniteError, SemflowError, ValidationError, brief
from .imagesize import image_size_symbols
from .precision import ComplexFromFp32, is_half_codec, keeps_fp32, to_fp32
from .shapes import match_shape
from .taps import TapHub


@dataclass
class _Step:
    name: str
    module: nn.Module
    bindings: tuple      # ((arg, key or None), ...)
    outputs: tuple       # ((port, key), ...)
    is_source: bool


class Scheduler(nn.Module):
    """Runs a compiled graph. ``blocks`` is an nn.ModuleDict, so ``state_dict`` covers all."""

    def __init__(self, graph: CompiledGraph, device: str | torch.device = "cpu", taps: TapHub | None = None,
                 check_finite: bool = True):
        super().__init__()
        if not graph.ok:
            raise ValidationError(graph.problems)
        self.graph = graph
        self.device = torch.device(device)
        self.taps = taps or TapHub()
        self.check_finite = check_finite
        self.blocks = nn.ModuleDict()
        self._checked_modes: set = set()
        self.frame = 0              # frames run so far; taps carry it as info["frame"]
        self.variables: dict = dict(graph.root.values) if graph.root else {}
        self._var_overrides: dict = {}
        #: data-parallel training (flowgraph/distributed.py): (rank, world size), and the
        #: DistributedDataParallel wrappers of the blocks training now (a plain dict: the
        #: wrappers are not sub-modules, so state_dict keys stay those of the blocks)
        self.shard = (0, 1)
        self.ddp: dict = {}
        self.compiled: dict = {}           # --compile: block name -> torch.compile'd module
        self.compile_warn = print
        # blocks with a complex port stay fp32 under --amp (flowgraph/precision.py)
        self._fp32 = {name for name, rb in graph.blocks.items() if keeps_fp32(rb.cls, rb.type_id)}
        self._half_codecs = {name for name, rb in graph.blocks.items() if is_half_codec(rb.cls, rb.type_id)}
        for name, rb in graph.blocks.items():
            try:
                module = rb.cls(**rb.params)
            except SemflowError:
                raise
            except Exception as exc:
                raise SemflowError(f"{rb.file}:{rb.line}: block '{name}' ({rb.type_id}) failed to build: "
                                   f"{type(exc).__name__}: {exc}") from exc
            module.name = name
            self.blocks[_key(name)] = module
        self.to(self.device)
        for m in self.modules_by_name().values():
            if isinstance(m, Source):
                m.device = self.device
        self._build_plan()
        self._wire_publishers()

    # ---- construction ------------------------------------------------------------------
    def modules_by_name(self) -> dict:
        return {name: self.blocks[_key(name)] for name in self.graph.order}

    def block(self, name: str) -> nn.Module:
        return self.blocks[_key(name)]

    def _build_plan(self):
        feeds = {(d, dp): f"{s}.{sp}" for s, sp, d, dp in self.graph.edges}
        plan = []
        for name in self.graph.order:
            rb = self.graph.blocks[name]
            bindings = tuple((arg, feeds.get((name, arg))) for arg in rb.cls.inputs)
            outputs = tuple((p, f"{name}.{p}") for p in rb.cls.outputs)
            plan.append(_Step(name, self.block(name), bindings, outputs, isinstance(self.block(name), Source)))
        self.plan = plan
        # source ports that are batch-first: sliced per rank in data-parallel training
        self._batch_ports = {s.name: tuple(p for p, spec in self.graph.blocks[s.name].cls.outputs.items()
                                           if spec.shape and spec.shape[0] == "B")
                             for s in plan if s.is_source}
        self._edges_into = {}
        self._port_feeds = {}
        for src, _, dst, dp in self.graph.edges:
            self._edges_into.setdefault(dst, set()).add(src)
            self._port_feeds.setdefault(dst, []).append((dp, src))
        self.sources = [s.name for s in plan if s.is_source]
        # runtime params bound to expressions: re-evaluated when variables change
        self._runtime = [(name, p, raw, rb.scope) for name, rb in self.graph.blocks.items()
                         for p, raw in rb.runtime_exprs.items()]

    def subplan(self, keys) -> list:
        """The steps needed to produce ``keys`` ("block.port"): the blocks upstream of them.

        Training runs only what the loss needs (metric sinks cost time and add nothing to
        the gradient); anything a tap subscriber watches is kept too. Only the inputs a block
        reads with its current params count (``Block.needed_inputs``); the others get None.
        """
        need = {k.split(".", 1)[0] for k in keys} | set(self.taps.blocks)
        stack = list(need)
        while stack:
            name = stack.pop()
            if name not in self.graph.blocks:       # engine taps (train.step) are not blocks
                continue
            wanted = self.block(name).needed_inputs()
            for port, src in self._port_feeds.get(name, ()):
                if (wanted is None or port in wanted) and src not in need:
                    need.add(src)
                    stack.append(src)
        steps = []
        for s in self.plan:
            if s.name not in need:
                continue
            wanted = s.module.needed_inputs()
            if wanted is not None:
                s = replace(s, bindings=tuple((a, k if a in wanted else None) for a, k in s.bindings))
            steps.append(s)
        return steps

    def _wire_publishers(self):
        for m in self.modules_by_name().values():
            m._publish = self._publish_internal

    def _publish_internal(self, block: str, tap: str, tensor):
        self.taps.publish(f"{block}.{tap}", tensor)

    # ---- variables -----------------------------------------------------------------------
    def set_variables(self, values: dict) -> None:
        """Change root variables between frames; runtime params that use them follow.

        Distributions are sampled by the caller; here every value is concrete.
        """
        self._var_overrides.update(values)
        self._apply_variables(values)

    def reset_variables(self, values: dict | None = None) -> None:
        self._var_overrides = dict(values or {})
        self._apply_variables(values or {})

    @property
    def variable_overrides(self) -> dict:
        """The values set with set_variables/reset_variables (to restore them later)."""
        return dict(self._var_overrides)

    def _apply_variables(self, changed: dict):
        """Re-evaluate variables and runtime params. A value a param refuses (a NaN
        drawn or set per batch) is one line naming the block, the param and the values."""
        g = self.graph
        overrides = dict(g.overrides)
        overrides.update(self._var_overrides)
        for scope in g.scopes:
            scope.compute(overrides if scope.parent is None else None)
        self.variables = dict(g.root.values)
        for name, p, raw, scope in self._runtime:
            try:
                val = fixed(_eval_value(raw, scope.values))
                self.block(name).set_runtime(p, val)
            except (ValueError, SemflowError) as exc:
                rb = self.graph.blocks[name]
                setting = ", ".join(f"{k}={brief(v)}" for k, v in changed.items())
                where = self.taps.info.get("where", "")
                raise SemflowError(f"{rb.file}:{rb.line}: {exc}" + (f" (with {setting})" if setting else "")
                                   + (f" ({where})" if where else "")) from None

    def check_finite_values(self, values: dict, keys, where: str = "") -> None:
        """Raise NonFiniteError naming the first block whose output is NaN/Inf when any of
        ``keys`` (e.g. the metric values of an evaluation frame) is not finite because of
        something upstream. A NaN that a sink makes itself from finite inputs is its
        documented "undefined" (the per-image mIoU of an image without counted pixels) and
        is left to the statistics."""
        if not self.check_finite:
            return
        for key in keys:
            t = values.get(key)
            if t is not None and (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
                found = self.first_non_finite(values, sinks=False)
                if found is not None:
                    raise NonFiniteError(*found, where)

    # ---- execution -------------------------------------------------------------------------
    def forward(self, inject: dict | None = None, plan: list | None = None, values: dict | None = None) -> dict:
        """Run one frame. ``inject`` maps source block name -> its output dict (evaluation);
        ``plan`` restricts the frame to a :meth:`subplan`; ``values`` continues a frame
        whose earlier steps already ran (e.g. metric sinks after the loss)."""
        values = {} if values is None else values
        if plan is None or values == {}:      # a new frame (not the tail of one)
            self.frame += 1
            self.taps.info["frame"] = self.frame
        mode = "train" if self.training else "eval"
        first = mode not in self._checked_modes
        tap_blocks = self.taps.blocks
        for step in (self.plan if plan is None else plan):
            if inject is not None and step.name in inject:
                out = inject[step.name]
            else:
                kwargs = {arg: (values[key] if key is not None else None) for arg, key in step.bindings}
                # the DDP wrapper only where gradients flow (its forward may sync buffers:
                # a collective that sharded evaluation, with its uneven batches, must not run)
                module = self.ddp.get(step.name, step.module) if self.ddp and torch.is_grad_enabled() \
                    else self.compiled.get(step.name, step.module)
                try:
                    try:
                        out = self._call(step.name, module, kwargs)
                    except SemflowError:
                        raise
                    except Exception as exc:
                        if module is step.module or module is self.ddp.get(step.name):
                            raise
                        # --compile: this block cannot be compiled; it runs eagerly from now on
                        del self.compiled[step.name]
                        self.compile_warn(f"warning: --compile: block '{step.name}' "
                                          f"({self.graph.blocks[step.name].type_id}) runs eagerly: "
                                          f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}")
                        out = self._call(step.name, step.module, kwargs)
                except SemflowError:
                    raise
                except Exception as exc:   # name the block: a bare traceback three blocks later helps nobody
                    raise BlockError(step.name, self.graph.blocks[step.name].type_id, exc,
                                     self.taps.info.get("where", "")) from exc
                if step.is_source and self.shard[1] > 1 and not getattr(step.module, "shards_itself", False):
                    out = self._rank_slice(step.name, out)
            for port, key in step.outputs:
                values[key] = out[port]
            if first:
                self._check_outputs(step, out)
            if step.name in tap_blocks:
                for port, key in step.outputs:
                    self.taps.publish(key, values[key])
        if first:
            self._checked_modes.add(mode)
        return values

    def _call(self, name: str, module, kwargs: dict) -> dict:
        if (name in self._fp32 or name in self._half_codecs) and torch.is_autocast_enabled(self.device.type):
            if name in self._half_codecs:
                with ComplexFromFp32():
                    return module(**kwargs)
            with torch.autocast(self.device.type, enabled=False):
                return module(**to_fp32(kwargs))
        return module(**kwargs)

    def compile_blocks(self, warn=print) -> list:
        """``--compile``: ``torch.compile`` each non-source block (compiled on its first frame).
        A block that fails to compile runs eagerly, with one ``warn`` line. Per block, not the
        whole frame: Python between blocks (routing, taps, checks) stays as it is, and a block
        that cannot compile (complex dtypes, Sionna, Pillow) costs only its own speed-up."""
        self.compile_warn = warn
        self.compiled = {name: torch.compile(self.block(name)) for name in self.graph.order
                         if not isinstance(self.block(name), Source)}
        return list(self.compiled)

    def set_shard(self, rank: int, world: int) -> None:
        """Data-parallel: this process is ``rank`` of ``world``. Sources see it as ``.shard``
        (one that reads only its share sets ``shards_itself``; the others are sliced)."""
        self.shard = (int(rank), int(world))
        for name in self.sources:
            self.block(name).shard = self.shard

    def _rank_slice(self, name: str, out: dict) -> dict:
        """This rank's contiguous share of a source's global batch."""
        rank, world = self.shard
        out = dict(out)
        for port in self._batch_ports[name]:
            t = out[port]
            n = t.shape[0]
            if n % world:
                raise SemflowError(f"block '{name}' ({self.graph.blocks[name].type_id}): batch {n} does not "
                                   f"split over {world} processes (the batch is the global batch: use a multiple "
                                   f"of {world})")
            k = n // world
            out[port] = t[rank * k:(rank + 1) * k]
        return out

    def first_non_finite(self, values: dict, sinks: bool = True):
        """(block, port) of the first NaN/Inf output of a frame, in execution order, or None
        (``sinks=False``: among the blocks that are not metric sinks)."""
        for step in self.plan:
            if not sinks and isinstance(self.block(step.name), Sink):
                continue
            for port, key in step.outputs:
                t = values.get(key)
                if t is not None and (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
                    return step.name, port
        return None

    def _check_outputs(self, step: _Step, out):
        rb = self.graph.blocks[step.name]
        if not isinstance(out, dict):
            raise SemflowError(f"block '{step.name}' ({rb.type_id}) returned {type(out).__name__}, "
                               f"expected a dict of port -> tensor")
        bindings = dict(rb.cls.bind_dims(rb.params))
        if step.is_source and not self.training and rb.cls.eval_whole_images(rb.params) is not None:
            for sym in image_size_symbols(rb.cls):     # whole held-out images: H, W bind the training crops
                bindings.pop(sym, None)
        for port, spec in rb.cls.outputs.items():
            if port not in out:
                raise SemflowError(f"block '{step.name}' ({rb.type_id}) did not return output '{port}'")
            t = out[port]
            if not torch.is_tensor(t):
                raise SemflowError(f"block '{step.name}' ({rb.type_id}) output '{port}' is "
                                   f"{type(t).__name__}, not a tensor")
            if spec.kind != "any" and tensor_kind(t) != spec.kind:
                raise SemflowError(f"block '{step.name}' ({rb.type_id}) output '{port}' is {tensor_kind(t)} "
                                   f"but the port declares {spec.kind}")
            reason = match_shape(spec.shape, tuple(t.shape), bindings)
            if reason:
                raise SemflowError(f"block '{step.name}' ({rb.type_id}) output '{port}' has shape "
                                   f"{tuple(t.shape)} but declares {spec.shape_str()}: {reason}")

    # ---- data -----------------------------------------------------------------------------
    def source(self) -> Source:
        """The data source that drives evaluation epochs (the first Source in the graph)."""
        if not self.sources:
            raise SemflowError("the graph has no source block (a block with no inputs that yields data)")
        return self.block(self.sources[0])

    def seed_sources(self, seed: int) -> None:
        for i, name in enumerate(self.sources):
            self.block(name).seed(seed + 1000 * i)


def _key(name: str) -> str:
    # ModuleDict keys may not contain '.'; '/' from graph blocks is fine but keep it uniform
    return name.replace("/", "__")


def sample_variables(dists: dict, generator: torch.Generator) -> dict:
    """Draw concrete values for per-batch redrawn variables."""
    return {k: (v.sample(generator) if isinstance(v, E.Distribution) else v) for k, v in dists.items()}
