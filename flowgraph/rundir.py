"""The run directory's log: progress lines on stderr, mirrored into log.txt; package versions."""
from __future__ import annotations

import platform
import sys
from pathlib import Path


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
