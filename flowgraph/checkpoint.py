"""Checkpoint files: what they record, how they are written, and what loading verifies.

A checkpoint (format 2) is a dict loadable with ``torch.load(weights_only=True)``::

    format        2
    graph         the graph's name
    graph_hash    sha256 of what determines the trained model: variables, blocks,
                  connections, train stages, ports, and every sub-graph file's content
    preset        the --preset of the run (None)
    overrides     the --set values (plain data)
    resolved      the overrides in effect (preset then --set)
    params        build-time params of every block, as resolved ({block: {param: value}})
    stage, step   where training stands (stage == number of stages and done: finished)
    done          training finished
    blocks        the scheduler's state_dict
    optimizer, lr_scheduler, rng, seed, ...   what resuming needs (others may add keys)
    content_hash  sha256 over every other entry, tensors by their bytes

Writing is atomic (a unique temp file, then a rename); a failed write removes its temp
file and says why in one line. Loading checks, in this order, and reports the first
problem in one line: the file can be read as a checkpoint, the format is known, the
content hash matches (a flipped bit is caught), the entries have the right types.
:func:`check_resume` and :func:`check_for_eval` then compare it with the run at hand.
Format-1 checkpoints (no metadata) still load for evaluation, with a note.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import SemflowError, brief
from .yamlio import plain

FORMAT = 2
_MAX_INDEX = 2 ** 31          # stages and steps beyond this are not counts but corruption
_IDENTITY_KEYS = ("variables", "blocks", "connections", "train", "ports")


# --------------------------------------------------------------------------------------
# What a checkpoint records about its run
# --------------------------------------------------------------------------------------

def graph_hash(spec, subgraphs: dict | None = None) -> str:
    """sha256 of the parts of a graph that determine the trained model (not its name,
    description, evaluate section, presets or layout), sub-graph files included."""
    sem = spec.semantic()
    content = {k: sem.get(k) for k in _IDENTITY_KEYS}
    content["subgraphs"] = sorted(_json_hash({k: sub.semantic().get(k) for k in _IDENTITY_KEYS})
                                  for sub in (subgraphs or {}).values())
    return _json_hash(content)


def _json_hash(obj) -> str:
    text = json.dumps(plain(obj), sort_keys=True, default=repr, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def run_metadata(spec, graph, preset: str | None, overrides: dict | None) -> dict:
    """The entries that identify a run: graph, graph hash, preset, --set values, the
    overrides in effect and every block's resolved build-time params."""
    params = {}
    for name, rb in graph.blocks.items():
        params[name] = {k: plain(v) for k, v in rb.params.items()
                        if k in rb.cls.params and not rb.cls.params[k].runtime}
    return {"graph": spec.name, "graph_hash": graph_hash(spec, getattr(graph, "subgraphs", {})),
            "preset": preset, "overrides": plain(dict(overrides or {})),
            "resolved": plain(dict(graph.overrides or {})), "params": params}


def content_hash(ckpt: dict) -> str:
    """sha256 over every entry except ``content_hash``: tensors by dtype, shape and bytes."""
    h = hashlib.sha256()
    _digest(h, {k: v for k, v in ckpt.items() if k != "content_hash"})
    return h.hexdigest()


def _digest(h, obj) -> None:
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}:".encode())
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode() + b"=")
            _digest(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}:".encode())
        for v in obj:
            _digest(h, v)
    elif hasattr(obj, "tobytes") and hasattr(obj, "dtype"):    # a numpy array (external RNG states)
        h.update(f"A{obj.dtype}{getattr(obj, 'shape', ())}:".encode() + obj.tobytes())
    else:
        h.update(f"V{type(obj).__name__}:{obj!r};".encode())


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def atomic_torch_save(obj, path: Path) -> None:
    """Write ``obj`` to ``path`` through a unique temp file and a rename: a reader sees the
    old file or the new one, never half of one; two writers never share a temp file. A
    failed write (disk full) removes its temp file and raises a one-line SemflowError."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()     # serialised first: torch's zip writer hides the errno of a failed write
        torch.save(obj, buffer)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise SemflowError(f"{path}: cannot write checkpoint: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def save_checkpoint(state: dict, path: Path, meta: dict) -> None:
    """Write a format-2 checkpoint: ``meta`` (run_metadata), ``state``, and their content hash."""
    ckpt = {"format": FORMAT, **meta, **state}
    ckpt["content_hash"] = content_hash(ckpt)
    atomic_torch_save(ckpt, path)


# --------------------------------------------------------------------------------------
# Reading and verifying
# --------------------------------------------------------------------------------------

def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint as weights only and verify it; one-line SemflowError on the first
    problem. A bare state_dict (format 0) and format 1 (no metadata) are accepted."""
    path = Path(path)
    if not path.is_file():
        raise SemflowError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise SemflowError(f"{path}: empty file, not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # torch raises many types here; none should escape as a traceback
        raise SemflowError(f"{path}: not a readable checkpoint ({_load_reason(exc)})") from None
    if not isinstance(ckpt, dict):
        raise SemflowError(f"{path}: not a semflow checkpoint (it holds a {type(ckpt).__name__}, not a mapping)")
    fmt = ckpt.get("format", 0 if _is_state_dict(ckpt) else None)
    if fmt is None:
        raise SemflowError(f"{path}: not a semflow checkpoint (no 'format' entry; "
                           f"entries: {', '.join(map(str, list(ckpt)[:6]))})")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 0:
        raise SemflowError(f"{path}: checkpoint format {brief(fmt)} is not a version number")
    if fmt > FORMAT:
        raise SemflowError(f"{path}: checkpoint format {fmt} was written by a newer semflow "
                           f"(this one reads formats 0 to {FORMAT})")
    if fmt == 0:
        return {"format": 0, "blocks": ckpt}
    if fmt >= 2:
        stored = ckpt.get("content_hash")
        if not isinstance(stored, str):
            raise SemflowError(f"{path}: checkpoint has no content hash (format 2 always has one): "
                               "the file is damaged")
        if content_hash(ckpt) != stored:
            raise SemflowError(f"{path}: checkpoint content does not match its hash: the file was changed "
                               "or damaged after it was written")
    if not isinstance(ckpt.get("blocks"), dict):
        raise SemflowError(f"{path}: checkpoint has no 'blocks' entry (the blocks' weights)"
                           if "blocks" not in ckpt else f"{path}: checkpoint 'blocks' entry is not a mapping")
    for key in ("stage", "step"):
        if key in ckpt:
            v = ckpt[key]
            if not isinstance(v, int) or isinstance(v, bool):
                raise SemflowError(f"{path}: checkpoint {key} {brief(v)} is not an integer")
            if not 0 <= v < _MAX_INDEX:
                raise SemflowError(f"{path}: checkpoint {key} {v} is out of range")
    return ckpt


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) for k in obj) and any(torch.is_tensor(v) for v in obj.values())


def _first_line(exc) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split())[:200] if text else type(exc).__name__


def _load_reason(exc: Exception) -> str:
    """torch.load's reason in one line, without its advice about weights_only."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].strip().splitlines()[0].split(". ")[0]
        return f"it holds something other than tensors and plain data: {' '.join(reason.split())[:160]}"
    if isinstance(exc, (KeyError, IndexError, EOFError)) or "pickle" in text.lower() or "zip" in text.lower():
        return f"{type(exc).__name__}: {_first_line(exc)}; truncated, damaged, or not a torch file"
    return f"{type(exc).__name__}: {_first_line(exc)}"


# --------------------------------------------------------------------------------------
# Does it fit the run at hand?
# --------------------------------------------------------------------------------------

def check_resume(ckpt: dict, runner) -> dict:
    """Refuse a checkpoint that cannot continue ``runner``'s training exactly: another
    graph, another preset or --set values, other architecture, a stage or step that the
    graph does not have, no RNG state. Returns ``ckpt``."""
    path = runner.checkpoint_path
    if ckpt.get("format", 0) >= 2:
        meta = run_metadata(runner.spec, runner.graph, runner.preset, runner.overrides)
        if ckpt.get("graph") != meta["graph"]:
            raise SemflowError(f"--resume: {path} is from graph '{ckpt.get('graph')}', this is '{meta['graph']}'")
        if ckpt.get("graph_hash") != meta["graph_hash"]:
            raise SemflowError(f"--resume: the graph changed since {path} was written (its variables, blocks, "
                               "connections, train stages, ports or sub-graphs): start a new run with --out")
        if ckpt.get("preset") != meta["preset"]:
            raise SemflowError(f"--resume: {path} was written with --preset {ckpt.get('preset') or '(none)'}, "
                               f"this run has --preset {meta['preset'] or '(none)'}")
        diff = _differences(ckpt.get("overrides") or {}, meta["overrides"])
        if diff:
            raise SemflowError(f"--resume: {path} was written with other --set values: {diff}")
        diff = _differences(ckpt.get("resolved") or {}, meta["resolved"])
        if diff:
            raise SemflowError(f"--resume: the preset '{meta['preset']}' changed since {path} was written: {diff}")
    else:
        runner.log(f"note: {path}: format-{ckpt.get('format', 0)} checkpoint without metadata: graph, preset and "
                   "--set are not verified")
    for key in ("stage", "step"):
        if key not in ckpt:
            raise SemflowError(f"--resume: {path} has no '{key}' entry")
    rng_state = ckpt.get("rng")
    if not isinstance(rng_state, dict) or not torch.is_tensor(rng_state.get("torch")) \
            or not torch.is_tensor(rng_state.get("variables")):
        raise SemflowError(f"--resume: {path} has no RNG state ('rng' entry), so the run cannot continue exactly")
    n_stages, stage, step = len(runner.spec.train), ckpt["stage"], ckpt["step"]
    if stage > n_stages:
        raise SemflowError(f"--resume: {path} is at stage {stage + 1}, but this graph has {n_stages} train stage(s)")
    if stage < n_stages and not ckpt.get("done"):
        steps = runner.stage_settings(stage)["steps"]
        if step > steps:
            raise SemflowError(f"--resume: {path} is at step {step} of stage {stage + 1}, which has {steps} steps")
    check_architecture(ckpt, runner, strict=True)
    return ckpt


def check_for_eval(ckpt: dict, runner, allow_other_graph: bool = False) -> list:
    """Refuse a checkpoint of another graph (unless allowed) or of other architecture;
    return notes worth logging (old format, build-time params that differ harmlessly)."""
    notes = []
    name = ckpt.get("graph")
    if ckpt.get("format", 0) < 2:
        notes.append(f"format-{ckpt.get('format', 0)} checkpoint without metadata: graph, preset and --set are "
                     "not verified")
    if name is not None and name != runner.spec.name and not allow_other_graph:
        raise SemflowError(f"checkpoint is from graph '{name}', this is '{runner.spec.name}': pass "
                           f"--allow-other-graph to load it anyway")
    check_architecture(ckpt, runner, strict=False)
    diffs = _param_differences(ckpt, runner.graph)
    if diffs:
        notes.append(f"checkpoint was trained with {diffs[0][0]}.{diffs[0][1]}={brief(diffs[0][2])}, this graph "
                     f"has {brief(diffs[0][3])}" + (f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""))
    return notes


def check_architecture(ckpt: dict, runner, strict: bool) -> None:
    """Shapes of every saved tensor against this graph's; one line naming block and param.

    ``strict``: the saved entries must be exactly this graph's (resuming)."""
    own = runner.scheduler.state_dict()
    saved = ckpt["blocks"]
    names = {_key(n): n for n in runner.graph.order}
    for key, value in saved.items():
        mine = own.get(key)
        if not (torch.is_tensor(value) and torch.is_tensor(mine)) or value.shape == mine.shape:
            continue
        block = _block_of(key, names)
        diffs = [d for d in _param_differences(ckpt, runner.graph) if d[0] == block]
        if diffs:
            b, p, was, now = diffs[0]
            raise SemflowError(f"checkpoint was trained with {b}.{p}={brief(was)}, this graph has {brief(now)}: "
                               "pass the same --preset/--set")
        inner = key.split(".", 2)[-1]
        raise SemflowError(f"checkpoint block '{block}': '{inner}' has shape {tuple(value.shape)}, this graph's "
                           f"has {tuple(mine.shape)}: pass the same --preset/--set")
    if strict:
        missing = sorted(set(own) - set(saved))
        unexpected = sorted(set(saved) - set(own))
        if missing or unexpected:
            what = (f"lacks {', '.join(missing[:3])}" if missing else f"has entries this graph lacks: "
                    f"{', '.join(unexpected[:3])}")
            raise SemflowError(f"--resume: {runner.checkpoint_path} {what}")


def _param_differences(ckpt: dict, graph) -> list:
    """(block, param, in the checkpoint, in this graph) for every differing build-time param."""
    saved = ckpt.get("params")
    if not isinstance(saved, dict):
        return []
    out = []
    for block, params in saved.items():
        rb = graph.blocks.get(block)
        if rb is None or not isinstance(params, dict):
            continue
        for p, was in params.items():
            if p in rb.params and plain(rb.params[p]) != was:
                out.append((block, p, was, plain(rb.params[p])))
    return out


def _differences(was: dict, now: dict) -> str:
    keys = [k for k in sorted(set(was) | set(now), key=str) if was.get(k, _MISSING) != now.get(k, _MISSING)]
    return ", ".join(f"{k}={_show(was.get(k, _MISSING))} then, {_show(now.get(k, _MISSING))} now" for k in keys[:3])


class _Missing:
    def __repr__(self):
        return "(unset)"


_MISSING = _Missing()


def _show(v) -> str:
    return repr(v) if v is _MISSING else brief(v, 40)


def _key(name: str) -> str:
    return name.replace("/", "__")      # the scheduler's ModuleDict key of a block


def _block_of(key: str, names: dict) -> str:
    """'blocks.codec__dec.conv.weight' -> 'codec/dec'."""
    part = key.split(".", 2)[1] if key.count(".") >= 1 else key
    return names.get(part, part.replace("__", "/"))
