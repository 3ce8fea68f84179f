"""Resource limits: how large a graph file, its expansion and its runs may get.

Graph files are shared data: a careless or hostile file must fail fast with one line,
never hang the validator or exhaust the machine. Every limit lives here with its
default (docs/robustness.md lists them). The file limits (size, nesting, aliases,
hierarchy) always hold; the run limits (sweep points, evaluated examples, memory of
the first frame) are lifted by ``--force`` (``Limits(force=True)``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

# ---- graph files (always enforced) ------------------------------------------------------
MAX_FILE_BYTES = 256 * 1024     # one graph YAML file (the largest shipped one is 7.6 KiB)
MAX_PATH_CHARS = 1024           # a sub-graph path as written in `type: "graph:..."`
MAX_YAML_DEPTH = 64             # nesting of lists/mappings in one file
MAX_YAML_ALIASES = 100          # `*alias` uses in one file
MAX_YAML_VALUES = 20_000        # values in one file after expanding aliases and merges (largest shipped: 678)
MAX_INT = 2 ** 63               # |integer literal| (larger ones overflow every consumer)
MAX_GRAPH_DEPTH = 16            # graph blocks nested inside graph blocks
MAX_BLOCKS = 5_000              # blocks after flattening every graph block

# ---- runs (lifted by --force) ------------------------------------------------------------
MAX_SWEEP_POINTS = 1_000        # points of one evaluation sweep (cartesian product)
MAX_EVAL_EXAMPLES = 10_000_000  # sweep points x held-out examples x repeats
MEMORY_FRACTION = 0.8           # share of available memory the first frame may take


@dataclass(frozen=True)
class Limits:
    """The run limits of one validation or run; ``force`` lifts them.

    ``allow_outside_paths`` lets graph blocks name files outside the graph's folder and
    project (absolute paths, ``..``), which is refused by default."""
    force: bool = False
    allow_outside_paths: bool = False
    max_sweep_points: int = MAX_SWEEP_POINTS
    max_eval_examples: int = MAX_EVAL_EXAMPLES
    memory_fraction: float = MEMORY_FRACTION


DEFAULT = Limits()


def available_memory() -> int | None:
    """Bytes of memory a new allocation can get now (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
