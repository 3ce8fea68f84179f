"""Parameter counts of graphs/jscbf.yaml beside the authors' model (seed 001 Deep JSCBF).

The paper gives no parameter counts; ../shared/specs/seed001.md Sec. 1.2 counts the classes of
the authors' notebook (100.98 M in all, the GMMV-LAMP not included). ``parameter_counts``
builds the graph in a preset and counts every trainable block (``dec_pre``, the pretraining
copy of ``dec``, is left out of the total).

    python -m blocks.jscbf.complexity [quick|paper]
"""
from __future__ import annotations

import sys
from pathlib import Path

#: the notebook's modules, millions of parameters (seed001.md Sec. 1.2), by semflow block
NOTEBOOK_MILLIONS = {"img": 9.38, "csi": 3.31, "fuse": 0.80, "dd": 0.82, "md": 0.81, "rx": 76.1, "dec": 9.61}
NOTEBOOK_TOTAL_MILLIONS = 100.98
GRAPH = Path(__file__).resolve().parents[2] / "graphs" / "jscbf.yaml"


def parameter_counts(preset: str = "quick") -> dict:
    """Parameters per trainable block of graphs/jscbf.yaml in ``preset``, plus 'total'."""
    from flowgraph.compile import compile_graph
    from flowgraph.graph import load_graph
    from flowgraph.scheduler import Scheduler

    # the paper preset reads ImageNet from a folder; the count does not depend on the data
    cg = compile_graph(load_graph(GRAPH), preset=preset, overrides={"dataset": "bundled"})
    if cg.problems:
        raise ValueError("; ".join(map(str, cg.problems)))
    sch = Scheduler(cg)
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in sch.modules_by_name().items()}
    counts = {n: c for n, c in counts.items() if c}
    counts["total"] = sum(c for n, c in counts.items() if n != "dec_pre")
    return counts


def format_counts(counts: dict) -> str:
    rows = ["block      semflow [M]  notebook [M]"]
    for n, c in counts.items():
        if n in ("total", "dec_pre"):
            continue
        ref = NOTEBOOK_MILLIONS.get(n)
        rows.append(f"{n:<10} {c / 1e6:11.3f}  {'' if ref is None else f'{ref:12.2f}'}")
    rows.append(f"{'total':<10} {counts['total'] / 1e6:11.3f}  {NOTEBOOK_TOTAL_MILLIONS:12.2f} (without LAMP)")
    return "\n".join(rows)


if __name__ == "__main__":
    print(format_counts(parameter_counts(sys.argv[1] if len(sys.argv) > 1 else "quick")))
