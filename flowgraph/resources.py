"""Resource sanity before a run: refuse what cannot fit instead of grinding or crashing.

Two estimates, both lower bounds, checked against the memory available now
(:func:`flowgraph.limits.available_memory`) before any real tensor is allocated:

- the blocks' parameters and buffers, measured by building every non-source block on
  torch's ``meta`` device (shapes without storage; a block that cannot be built there
  is skipped and counted as unknown);
- the outputs of the first frame: batch x port shape x dtype size for every output
  port whose shape the graph fixes (``B`` is the larger of the source's ``batch`` and
  ``evaluate.batch``). Activations inside blocks are not counted.

Training needs about four times the parameters (weights, gradients, two Adam moments)
and twice the outputs (their gradients). A refusal names the variables to lower; the
evaluation length (sweep points x examples) is capped too. ``--force`` lifts both.
"""
from __future__ import annotations

import math
import random
import warnings

import numpy as np
import torch

from . import expr as E
from .block import Source
from .errors import SemflowError
from .limits import Limits, available_memory, fmt_bytes

_BYTES = {"real": 4, "complex": 8, "int": 8, "bool": 1, "any": 4}


def batch_size(graph) -> int | None:
    """The largest batch a frame of this graph sees (training batch or evaluate.batch)."""
    sizes = []
    for rb in graph.blocks.values():
        if issubclass(rb.cls, Source) and isinstance(rb.params.get("batch"), int):
            sizes.append(rb.params["batch"])
    ev = graph.spec.evaluate or {}
    try:
        b = E.resolve_value(ev.get("batch"), graph.root.values) if ev.get("batch") is not None else None
    except Exception:   # reported by validation
        b = None
    if isinstance(b, int) and not isinstance(b, bool):
        sizes.append(b)
    return max(sizes) if sizes else None


def output_bytes(graph) -> tuple[int, tuple | None]:
    """Bytes of the first frame's outputs whose shapes are known, and the largest
    ``(block, port, shape, bytes)``."""
    batch = batch_size(graph)
    total, largest = 0, None
    for name, rb in graph.blocks.items():
        for port, spec in rb.cls.outputs.items():
            dims = graph.resolved_dims(name, port, output=True)
            if dims is None:
                continue
            shape = []
            for d in dims:
                if isinstance(d, int):
                    shape.append(d)
                elif d == "B" and batch is not None:
                    shape.append(batch)
                else:
                    shape = None
                    break
            if shape is None:
                continue
            n = math.prod(shape) * _BYTES.get(spec.kind, 4)
            total += n
            if largest is None or n > largest[3]:
                largest = (name, port, tuple(shape), n)
    return total, largest


def parameter_bytes(graph) -> tuple[int, tuple | None]:
    """Bytes of parameters and buffers, by building each non-source block on the meta
    device, and the largest ``(block, bytes)``. Global RNG states are kept as they were,
    so the real build draws the same initial weights."""
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    total, largest = 0, None
    try:
        for name, rb in graph.blocks.items():
            if issubclass(rb.cls, Source):
                continue
            try:
                with torch.device("meta"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")      # e.g. a warm start loading weights into meta tensors
                    module = rb.cls(**rb.params)
            except Exception:    # a block that needs real data to build: unknown here
                continue
            n = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
            total += n
            if largest is None or n > largest[1]:
                largest = (name, n)
    finally:
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])
    return total, largest


def device_memory(device: str = "cpu") -> int | None:
    """Free memory of ``device``: the GPU's own for cuda, else the host's."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, ValueError):
            return None
    return available_memory()


def check_memory(graph, limits: Limits, training: bool, device: str = "cpu") -> None:
    """Refuse a run whose parameters and first-frame outputs exceed the memory available
    (times ``limits.memory_fraction``), naming what to lower. No-op under ``--force``."""
    if limits.force:
        return
    available = device_memory(device)
    if available is None:
        return
    budget = available * limits.memory_fraction
    # outputs first: they are free to estimate, and a huge batch should not build anything
    out, largest_out = output_bytes(graph)
    if out * (2 if training else 1) > budget:
        name, port, shape, n = largest_out
        raise SemflowError(
            f"the first frame needs at least {fmt_bytes(out * (2 if training else 1))} for the blocks' outputs "
            f"({name}.{port} {shape} alone {fmt_bytes(n)}), {fmt_bytes(available)} are available: lower "
            f"{_what_to_lower(graph, name, shape)}, or pass --force")
    par, largest_par = parameter_bytes(graph)
    need = par * (4 if training else 1) + out * (2 if training else 1)
    if need > budget:
        name, n = largest_par
        raise SemflowError(
            f"the blocks need at least {fmt_bytes(need)} ({fmt_bytes(par)} of parameters"
            f"{', x4 for training' if training else ''}; block '{name}' alone {fmt_bytes(n)}), "
            f"{fmt_bytes(available)} are available: lower {_what_to_lower(graph, name, None)}, or pass --force")


def _what_to_lower(graph, block: str, shape: tuple | None) -> str:
    """The variables (or block.param) behind a large port or block: the batch when the
    shape has it, and the block's integer params whose values appear in the shape (or,
    for parameters, its largest integer params)."""
    rb = graph.blocks[block]
    batch = batch_size(graph)
    picks = []
    if shape is not None and batch is not None and batch in shape:
        for name, src in graph.blocks.items():
            if issubclass(src.cls, Source) and src.params.get("batch") == batch:
                picks.append((name, "batch"))
    ints = {p: v for p, v in rb.params.items() if isinstance(v, int) and not isinstance(v, bool) and v > 1}
    if shape is not None:
        picks += [(block, p) for p, v in ints.items() if v in shape[1:]]
    elif ints:
        top = max(ints.values())
        picks += [(block, p) for p, v in ints.items() if v == top]
    names = []
    for b, p in picks or [(block, "params")]:
        raw = _raw_param(graph, b, p)
        used = sorted(E.names_used(raw)) if E.is_expression(raw) else []
        for n in used or [f"{b}.{p}"]:
            if n not in names:
                names.append(n)
    return " or ".join(names)


def _raw_param(graph, block: str, param: str):
    spec = graph.spec.blocks.get(block)
    return spec.params.get(param) if spec is not None else None


def check_eval_length(points: int, examples: int, limits: Limits, repeats: int = 1) -> None:
    """Refuse an evaluation of more than ``limits.max_eval_examples`` examples in all."""
    total = points * examples * repeats
    if total > limits.max_eval_examples and not limits.force:
        raise SemflowError(f"evaluation would run {total} examples ({points} sweep point(s) x {examples} "
                           f"examples" + (f" x {repeats} repeats" if repeats > 1 else "")
                           + f"; limit {limits.max_eval_examples}): lower evaluate.images or the sweep, "
                             "or pass --force")
