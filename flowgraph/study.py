"""Studies: many runs, one comparison (``semflow study STUDY.yaml``; format in docs/studies.md).

A study is a matrix of graphs x presets x ``set:`` values (build-time settings included:
antenna counts, pilot lengths, bypass flags) x seeds, optionally crossed with a list of
labelled variants. Every point is one ordinary ``semflow run`` in its own run directory
under the study directory, started as a child process (``--jobs N`` in parallel, each
``--threads 1`` by default), so a failing point is one line and the others go on. A rerun
skips finished points (metrics.json written and not stopped), resumes unfinished ones from
their checkpoint, and refuses a point whose settings changed. A ``set`` value may name another
variant's run directory as ``{run:ID}`` (a warm start from it); that point then runs after it.
At the end the study writes its comparison (``flowgraph/compare.py``) to ``STUDY_DIR/compare``.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GraphError, SemflowError, ValidationError, did_you_mean
from .rundir import _fmt_duration, file_sha256
from .yamlio import load_yaml

STUDY_FORMAT = 1
TOP_KEYS = ("study", "name", "description", "graph", "preset", "seeds", "threads", "device", "set", "set_for_preset",
            "sweep", "matrix", "variants", "compare")
VARIANT_KEYS = ("id", "label", "graph", "preset", "set", "set_for_preset", "sweep", "compare")
COMPARE_KEYS = ("metrics", "x", "series", "panels", "baseline", "colors", "title")
_RUN_REF = re.compile(r"\{run:([A-Za-z_][\w-]*)\}")


@dataclass
class Point:
    """One run of the study."""
    vid: str                    # variant id
    label: str                  # variant label (the series in the comparison)
    graph: str
    preset: str | None
    set: dict
    sweep: dict | None
    seed: int
    dims: dict                  # matrix values of this point (e.g. {"nt": 2})
    compare: bool = True
    line: int = 0               # the variant's line in the study file
    set_line: int = 0           # where its set: is (problems with --set values point here)
    needs: list = field(default_factory=list)   # indices of points whose run directory it uses
    dir: Path | None = None
    status: str = "pending"
    error: str = ""
    seconds: float = 0.0

    @property
    def name(self) -> str:
        parts = [_slug(self.label)] + [f"{k}={_slug(v)}" for k, v in self.dims.items()] + [f"seed{self.seed}"]
        return "__".join(parts)

    def describe(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        return f"{self.label}" + (f" ({dims})" if dims else "") + f", seed {self.seed}"


def _slug(v) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(v)).strip("-").lower() or "x"


# ---- reading and validating the study file --------------------------------------------------------
def load_study(path: str | Path, preset: str | None = None, overrides: dict | None = None) -> tuple[dict, list]:
    """Read a study file; return (study dict, points). Raises ValidationError with file:line problems."""
    path = Path(path)
    data = load_yaml(path)
    problems: list[str] = []

    def P(line, msg):
        problems.append(f"{path}:{line}: {msg}")

    if not isinstance(data, dict):
        raise SemflowError(f"{path}:1: a study file is a mapping with 'study: {STUDY_FORMAT}' and 'name:'")
    if data.get("study") != STUDY_FORMAT:
        P(data.line_of("study"), f"'study: {STUDY_FORMAT}' is required (the study file format version)")
    for k in data:
        if k not in TOP_KEYS:
            P(data.line_of(k), f"unknown key '{k}'" + (did_you_mean(k, TOP_KEYS) or f" (known: {', '.join(TOP_KEYS)})"))
    seeds = data.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        seeds = list(range(seeds))
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        P(data.line_of("seeds"), "seeds must be a list of integers or a count, e.g. seeds: [0, 1, 2] or seeds: 3")
        seeds = [0]
    for key in ("set", "set_for_preset", "sweep", "matrix", "compare"):
        if key in data and not isinstance(data[key], dict):
            P(data.line_of(key), f"'{key}' must be a mapping")
    matrix = data.get("matrix") if isinstance(data.get("matrix"), dict) else {}
    for k, vals in matrix.items():
        if not isinstance(vals, list) or not vals:
            P(matrix.line_of(k), f"matrix.{k} must be a non-empty list of values")
    matrix = {k: v for k, v in matrix.items() if isinstance(v, list) and v}
    for k, vals in (data.get("sweep") or {}).items() if isinstance(data.get("sweep"), dict) else []:
        if not isinstance(vals, list) or not vals:
            P(data["sweep"].line_of(k), f"sweep.{k} must be a non-empty list")
    compare = data.get("compare") if isinstance(data.get("compare"), dict) else {}
    for k in compare:
        if k not in COMPARE_KEYS:
            P(compare.line_of(k), f"compare: unknown key '{k}'" + (did_you_mean(k, COMPARE_KEYS) or
                                                                   f" (known: {', '.join(COMPARE_KEYS)})"))
    variants = data.get("variants")
    if variants is None:
        variants = [{"label": "", "id": "main"}]
        vlines = [data.line_of("matrix") or 1]
    elif not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        P(data.line_of("variants"), "variants must be a list of mappings with label:, graph:, set:")
        variants, vlines = [], []
    else:
        vlines = [variants.line_of(i) for i in range(len(variants))]
    ids: dict = {}
    for v, line in zip(variants, vlines):
        for k in v:
            if k not in VARIANT_KEYS:
                P(getattr(v, "line_of", lambda _k: line)(k), f"variant: unknown key '{k}'"
                  + (did_you_mean(k, VARIANT_KEYS) or f" (known: {', '.join(VARIANT_KEYS)})"))
        vid = str(v.get("id") or _slug(v.get("label") or "main"))
        for owner, where in ((v, getattr(v, "line_of", lambda _k: line)("set_for_preset")),
                             (data, data.line_of("set_for_preset"))):
            sfp = owner.get("set_for_preset")
            if sfp is not None and not (isinstance(sfp, dict) and all(isinstance(x, dict) for x in sfp.values())):
                P(where, "set_for_preset maps a preset to settings, e.g. {smoke: {eval_images: 4}}")
        if vid in ids:
            P(line, f"variant '{vid}' appears twice (give each an id: or a distinct label:)")
        ids[vid] = v
    if problems:
        raise ValidationError(problems)

    study = {"path": str(path), "name": str(data.get("name") or path.stem), "description": data.get("description", ""),
             "seeds": seeds, "threads": data.get("threads", 1), "device": data.get("device", "cpu"),
             "compare": dict(compare), "matrix": {k: v for k, v in matrix.items()}, "sha256": file_sha256(path)}
    base_set = dict(data.get("set") or {})
    base_set.update(overrides or {})
    mkeys = list(matrix)
    points: list[Point] = []
    for v, line in zip(variants, vlines):
        vid = str(v.get("id") or _slug(v.get("label") or "main"))
        for combo in itertools.product(*(matrix[k] for k in mkeys)):
            dims = dict(zip(mkeys, combo))
            graph = dims.get("graph", v.get("graph", data.get("graph")))
            pre = preset or dims.get("preset", v.get("preset", data.get("preset")))
            settings = {**base_set, **{k: x for k, x in dims.items() if k not in ("graph", "preset")},
                        **dict(v.get("set") or {})}
            # settings for one preset only (a smoke run of a study should stay small)
            for owner in (data, v):
                settings.update(((owner.get("set_for_preset") or {}).get(pre) or {}))
            if overrides:
                settings.update(overrides)
            sweep = v.get("sweep", data.get("sweep"))
            if not graph:
                P(line, f"variant '{vid}': no graph (give graph: in the variant, the study or the matrix)")
                continue
            label = str(v.get("label") or ("" if len(variants) > 1 else Path(str(graph)).stem) or vid)
            set_line = v.line_of("set") if "set" in v and hasattr(v, "line_of") else data.line_of("set") or line
            for seed in seeds:
                points.append(Point(vid, label, str(graph), pre, settings, sweep, int(seed),
                                    {k: x for k, x in dims.items() if k != "preset" or preset is None},
                                    bool(v.get("compare", True)), line, set_line))
    _link(points, ids, path, vlines, variants, problems)
    if problems:
        raise ValidationError(problems)
    return study, points


def _link(points: list, ids: dict, path: Path, vlines, variants, problems):
    """Resolve ``{run:ID}`` references: the same matrix combination and seed of variant ID."""
    index = {(p.vid, tuple(sorted((k, str(x)) for k, x in p.dims.items())), p.seed): i for i, p in enumerate(points)}
    for i, p in enumerate(points):
        for k, val in p.set.items():
            for ref in _RUN_REF.findall(str(val)) if isinstance(val, str) else []:
                if ref not in ids:
                    problems.append(f"{path}:{p.line}: variant '{p.vid}': set.{k} refers to unknown variant "
                                    f"'{ref}'" + did_you_mean(ref, ids))
                    continue
                if ref == p.vid:
                    problems.append(f"{path}:{p.line}: variant '{p.vid}': set.{k} refers to itself")
                    continue
                j = index.get((ref, tuple(sorted((a, str(b)) for a, b in p.dims.items())), p.seed))
                if j is None:
                    problems.append(f"{path}:{p.line}: variant '{p.vid}': set.{k}: variant '{ref}' has no point "
                                    f"with the same matrix values and seed")
                elif j not in p.needs:
                    p.needs.append(j)


def _resolved_set(p: Point, points: list) -> dict:
    out = {}
    for k, v in p.set.items():
        if isinstance(v, str):
            v = _RUN_REF.sub(lambda m: str(next(points[j].dir for j in p.needs if points[j].vid == m.group(1))), v)
        out[k] = v
    return out


def _check_points(study: dict, points: list) -> list[str]:
    """Compile every distinct point configuration; problems as file:line lines."""
    from .compile import compile_graph
    from .graph import load_graph
    problems, seen = [], set()
    for p in points:
        key = (p.graph, p.preset, json.dumps(p.set, sort_keys=True, default=str), json.dumps(p.sweep, default=str))
        if key in seen:
            continue
        seen.add(key)
        where = f"{study['path']}:{p.line}: variant '{p.vid}'"
        set_where = f"{study['path']}:{p.set_line}: variant '{p.vid}'"
        try:
            spec = load_graph(p.graph)
            if p.sweep:
                spec.evaluate = {**(spec.evaluate or {}), "sweep": p.sweep}
            settings = {k: (str(v) if isinstance(v, str) else v) for k, v in p.set.items()}
            cg = compile_graph(spec, preset=p.preset, overrides=settings)
        except GraphError as exc:
            problems.append(f"{where}: {exc}")
            continue
        for prob in cg.problems:
            text = str(prob)
            problems.append(f"{set_where}: {prob.message}" if prob.message.startswith("--set") else f"{where}: {text}")
    return problems


# ---- running -------------------------------------------------------------------------------------
def _command(p: Point, points: list, threads, device, resume: bool) -> list:
    cmd = [sys.executable, "-m", "flowgraph", "run", p.graph, "--out", str(p.dir), "--seed", str(p.seed),
           "--threads", str(threads), "--device", str(device), "--quiet"]
    if p.preset:
        cmd += ["--preset", str(p.preset)]
    for k, v in _resolved_set(p, points).items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    for k, vals in (p.sweep or {}).items():
        cmd += ["--sweep", f"{k}={json.dumps(vals)}"]
    return cmd + (["--resume"] if resume else [])


def _finished(d: Path) -> bool:
    m = d / "metrics.json"
    if not m.is_file():
        return False
    try:
        return not json.loads(m.read_text()).get("stopped", False)
    except ValueError:
        return False


def _write_status(out: Path, study: dict, points: list):
    state = {"study": study["name"], "file": study["path"], "sha256": study["sha256"],
             "compare": study["compare"], "matrix": list(study["matrix"]),
             "points": [{"variant": p.vid, "label": p.label, "graph": p.graph, "preset": p.preset, "set": p.set,
                         "sweep": p.sweep, "seed": p.seed, "dims": p.dims, "compare": p.compare,
                         "dir": p.name, "status": p.status, "error": p.error, "seconds": round(p.seconds, 1)}
                        for p in points]}
    tmp = out / "study.json.tmp"
    tmp.write_text(json.dumps(state, indent=2, default=str))
    os.replace(tmp, out / "study.json")


def _say(msg: str):
    print(msg, file=sys.stderr, flush=True)


def run_study(path, out=None, jobs: int = 1, preset=None, overrides=None, threads=None, dry_run=False,
              device=None) -> int:
    study, points = load_study(path, preset=preset, overrides=overrides)
    problems = _check_points(study, points)
    if problems:
        raise ValidationError(problems)
    out = Path(out) if out else Path("runs") / "studies" / (study["name"] + (f"-{preset}" if preset else ""))
    threads = threads or study["threads"] or 1
    device = device or study["device"] or "cpu"
    for p in points:
        p.dir = (out / p.name).resolve()
    order = _topological(points)
    _say(f"[study] {study['name']}: {len(points)} point(s) in {out}" + (f" (preset {preset} for all)" if preset else ""))
    if dry_run:
        for i in order:
            p = points[i]
            state = "done" if _finished(p.dir) else ("resume" if (p.dir / "checkpoints" / "last.pt").is_file() else "new")
            print(f"{state:6s} {p.describe():50s} {' '.join(_command(p, points, threads, device, False)[3:])}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / ".points").mkdir(exist_ok=True)
    shutil.copy(study["path"], out / "study.yaml")
    running: dict = {}            # index -> (Popen, start time, stderr file)
    pending = list(order)
    t0, last_status = time.monotonic(), 0.0
    while pending or running:
        for i in list(pending):
            if len(running) >= max(1, jobs):
                break
            p = points[i]
            if any(points[j].status in ("failed", "skipped") for j in p.needs):
                p.status, p.error = "skipped", "needs " + ", ".join(points[j].describe() for j in p.needs
                                                                   if points[j].status != "done")
                pending.remove(i)
                _say(f"[study] skipped {p.describe()}: {p.error}")
                continue
            if any(points[j].status != "done" for j in p.needs):
                continue
            pending.remove(i)
            started = _start(p, points, out, threads, device)
            if started is not None:
                running[i] = started
        for i, (proc, start, err) in list(running.items()):
            if proc.poll() is None:
                continue
            p = points[i]
            p.seconds = time.monotonic() - start
            err.close()
            if proc.returncode == 0 and _finished(p.dir):
                p.status = "done"
                _say(f"[study] done {p.describe()} in {_fmt_duration(p.seconds)}")
            else:
                p.status = "failed"
                lines = Path(err.name).read_text().strip().splitlines()
                p.error = next((ln for ln in reversed(lines) if ln.startswith("semflow:")), lines[-1] if lines else
                               f"exit {proc.returncode}")
                _say(f"[study] FAILED {p.describe()}: {p.error} (log: {p.dir / 'log.txt'})")
            del running[i]
            _write_status(out, study, points)
        now = time.monotonic()
        if running and now - last_status >= 30:
            last_status = now
            done = sum(p.status == "done" for p in points)
            _say(f"[study] {done}/{len(points)} done, {len(running)} running, {len(pending)} waiting "
                 f"({_fmt_duration(now - t0)}): " + "; ".join(f"{points[i].describe()}: {_last_line(points[i].dir)}"
                                                            for i in running))
        time.sleep(0.2 if running else 0)
    _write_status(out, study, points)
    failed = [p for p in points if p.status != "done"]
    _say(f"[study] {len(points) - len(failed)}/{len(points)} point(s) finished in {_fmt_duration(time.monotonic() - t0)}"
         + (f"; {len(failed)} did not: " + ", ".join(p.describe() for p in failed) if failed else ""))
    if any(p.status == "done" and p.compare for p in points):
        from .compare import compare_study
        try:
            compare_study(out)
        except SemflowError as exc:
            _say(f"[study] comparison failed: {exc}")
            return 1
    return 1 if failed else 0


def _start(p: Point, points: list, out: Path, threads, device):
    """Start one point's run (or mark it done/failed without starting)."""
    record = out / ".points" / f"{p.name}.json"
    cmd = _command(p, points, threads, device, resume=False)
    if record.is_file() and p.dir.exists():
        old = json.loads(record.read_text()).get("command")
        if old and old[1:] != cmd[1:]:
            p.status = "failed"
            p.error = (f"the settings changed since {p.dir} was run; delete that directory "
                       f"(or give the variant another label) to run it again")
            _say(f"[study] FAILED {p.describe()}: {p.error}")
            return None
    if _finished(p.dir):
        p.status = "done"
        _say(f"[study] finished earlier: {p.describe()}")
        return None
    resume = (p.dir / "checkpoints" / "last.pt").is_file()
    if p.dir.exists() and not resume:
        shutil.rmtree(p.dir)          # failed before its first checkpoint: nothing to keep (stderr is kept)
    record.write_text(json.dumps({"command": cmd}, indent=2))
    err = open(out / ".points" / f"{p.name}.stderr", "a")
    p.status = "running"
    _say(f"[study] {'resume' if resume else 'start'} {p.describe()} -> {p.dir}")
    full = _command(p, points, threads, device, resume=resume)
    env = dict(os.environ)
    return subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=err, env=env), time.monotonic(), err


def _last_line(d: Path) -> str:
    try:
        lines = (d / "log.txt").read_text().strip().splitlines()
        return lines[-1][:90] if lines else "starting"
    except OSError:
        return "starting"


def _topological(points: list) -> list:
    order, seen = [], set()

    def visit(i, stack=()):
        if i in seen:
            return
        if i in stack:
            raise SemflowError(f"study: points refer to each other in a cycle ({points[i].describe()})")
        for j in points[i].needs:
            visit(j, stack + (i,))
        seen.add(i)
        order.append(i)
    for i in range(len(points)):
        visit(i)
    return order
