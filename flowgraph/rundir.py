"""The run directory: its log (progress on stderr, mirrored into log.txt), its record
(run.json: versions, git commit, graph file hashes, resumes), the self-contained graph.yaml,
the refusal to mix two runs in one directory, train.csv truncation on resume, and
stopping on SIGINT/SIGTERM with a checkpoint."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .errors import SemflowError


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


def _fmt_duration(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ---- run directories -------------------------------------------------------------------------
def prepare_run_dir(out: str | Path | None, default: Path, resume: bool) -> Path:
    """The run directory to use. An explicit ``--out`` that already holds files is refused
    unless resuming (two runs never mix in one directory); the default name gets a
    ``-2``, ``-3``... suffix when taken."""
    if out is None:
        path, k = default, 1
        while not resume and path.exists() and any(path.iterdir()):
            k += 1
            path = default.with_name(f"{default.name}-{k}")
        return path
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SemflowError(f"--out {path}: exists and is not a directory")
    if not resume and path.is_dir() and any(path.iterdir()):
        raise SemflowError(f"--out {path}: the directory already holds a run; pass --resume to continue it, "
                           f"or choose another --out")
    return path


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def subgraph_path(including: str | Path, rel: str) -> Path | None:
    """Where ``type: "graph:REL"`` in the file ``including`` points (the compiler's rule:
    relative to the including file, then to the working directory)."""
    return next((p for p in (Path(including).parent / rel, Path(rel)) if p.is_file()), None)


def graph_files(spec) -> dict:
    """{path: sha256} of the graph file and every sub-graph file it includes (recursively)."""
    from .graph import GRAPH_TYPE_PREFIX, load_graph
    out, stack = {}, [spec]
    if Path(spec.path).is_file():
        out[str(spec.path)] = file_sha256(spec.path)
    while stack:
        s = stack.pop()
        for b in s.blocks.values():
            if not b.type.startswith(GRAPH_TYPE_PREFIX):
                continue
            p = subgraph_path(s.path, b.type[len(GRAPH_TYPE_PREFIX):])
            if p is not None and str(p) not in out:
                out[str(p)] = file_sha256(p)
                stack.append(load_graph(p))
    return out


def write_self_contained(resolved: dict, spec, out: Path, header: str) -> list[Path]:
    """Write ``out/graph.yaml`` (the resolved graph) and a copy of every sub-graph it uses
    under ``out/subgraphs/``, with ``graph:`` types pointing at the copies, so that
    ``semflow eval RUN/graph.yaml`` works from any directory and after the originals change."""
    from .graph import GRAPH_TYPE_PREFIX, load_graph
    from .yamlio import dump_yaml
    copies: dict[str, str] = {}          # original path -> copy's file name
    written = []

    def rewrite(blocks: dict, including: str, prefix: str):
        for b in blocks.values():
            t = b.get("type", "") if isinstance(b, dict) else ""
            if not t.startswith(GRAPH_TYPE_PREFIX):
                continue
            src = subgraph_path(including, t[len(GRAPH_TYPE_PREFIX):])
            if src is None:
                continue            # validation reports the missing file
            key = str(src.resolve())
            if key not in copies:
                copies[key] = f"{src.stem}-{file_sha256(src)[:8]}.yaml"
                sub = load_graph(src).to_dict()
                rewrite(sub.get("blocks", {}), str(src), "")
                dest = out / "subgraphs" / copies[key]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(f"# copy of {src} (sha256 {file_sha256(src)})\n" + dump_yaml(sub))
                written.append(dest)
            b["type"] = f"{GRAPH_TYPE_PREFIX}{prefix}{copies[key]}"

    rewrite(resolved.get("blocks", {}), str(spec.path), "subgraphs/")
    (out / "graph.yaml").write_text(header + dump_yaml(resolved))
    return [out / "graph.yaml"] + written


def git_info(where: str | Path | None = None) -> dict | None:
    """The commit of the git repository holding ``where`` (default: the engine's own
    source), and whether tracked files differ from it; None outside a repository."""
    where = Path(where) if where else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def record_run(path: Path, info: dict, resume: bool) -> dict:
    """Write run.json. A resumed run keeps the original record (start time included) and
    appends one entry to ``resumes``."""
    if resume and path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if isinstance(old, dict):
            old.setdefault("resumes", []).append(
                {k: info[k] for k in ("started", "command", "git", "graph_files", "versions") if k in info})
            info = old
    else:
        info = {**info, "resumes": []}
    path.write_text(json.dumps(info, indent=2, default=str))
    return info


def truncate_train_csv(path: Path, stage_names: list, stage: int, step: int) -> int:
    """Drop the rows of train.csv written after the checkpoint (stage index, step) a run
    resumes from: they belong to steps that will be trained again. Returns rows dropped."""
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = list(reader)
    if header is None or "stage" not in header or "step" not in header:
        return 0
    si, pi = header.index("stage"), header.index("step")
    keep = 0
    for r in rows:
        name = r[si] if si < len(r) else None
        idx = stage_names.index(name) if name in stage_names else len(stage_names)
        try:
            s = int(float(r[pi]))
        except (ValueError, IndexError):
            break
        if (idx, s) > (stage, step):
            break
        keep += 1
    if keep == len(rows):
        return 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows[:keep])
    os.replace(tmp, path)
    return len(rows) - keep


@contextmanager
def stop_on_signals(runner):
    """SIGINT/SIGTERM ask the runner to stop: training writes a checkpoint at the next step
    and returns; a second signal stops at once. Yields the list of signals received.
    Only the main thread can install handlers; elsewhere this does nothing."""
    got: list = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum, frame):
        if got:
            raise KeyboardInterrupt
        got.append(signum)
        runner.stop_requested = True
        print(f"semflow: {signal.Signals(signum).name}: stopping after this step (with a checkpoint); "
              f"send it again to stop at once", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)
