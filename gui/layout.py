"""Auto-layout: topological layers left to right (signal flow), blocks spread vertically."""
from __future__ import annotations

import networkx as nx

DX, DY = 220.0, 110.0


def layers(spec) -> list[list[str]]:
    """Blocks grouped by longest distance from a source (cycles fall back to file order)."""
    g = nx.DiGraph()
    g.add_nodes_from(spec.blocks)
    g.add_edges_from((c.src, c.dst) for c in spec.connections if c.src in spec.blocks and c.dst in spec.blocks)
    if not nx.is_directed_acyclic_graph(g):
        return [[n] for n in spec.blocks]
    depth: dict[str, int] = {}
    for n in nx.topological_sort(g):
        depth[n] = max((depth[p] + 1 for p in g.predecessors(n)), default=0)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    order = {n: i for i, n in enumerate(spec.blocks)}       # file order within a layer
    for n in sorted(depth, key=order.get):
        out[depth[n]].append(n)
    return out


def auto_layout(spec, positions: dict | None = None) -> dict:
    """Positions for blocks that have none (all of them when ``positions`` is empty).

    Placed blocks stay; new ones go to their layer's column, below what is there.
    """
    positions = dict(positions or {})
    placed_any = bool(positions)
    result = {}
    for i, layer in enumerate(layers(spec)):
        todo = [n for n in layer if n not in positions]
        if not todo:
            continue
        if placed_any:
            x = i * DX
            col = [p[1] for p in positions.values() if abs(p[0] - x) < DX / 2]
            y0 = (max(col) + DY) if col else 0.0
        else:
            x, y0 = i * DX, -(len(todo) - 1) * DY / 2
        for j, n in enumerate(todo):
            result[n] = [round(x), round(y0 + j * DY)]
    return result
