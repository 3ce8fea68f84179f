"""Auto-layout: a layered (Sugiyama-style) drawing, signal flowing left to right.

1. layers: a block's column is its longest distance from a source; a block without
   inputs (a pilot or CSI generator) moves right to just before its first consumer;
2. order within a column: barycentre sweeps (the mean row of the neighbours in the
   adjacent column), which removes most wire crossings;
3. rows: each block is pulled towards the mean height of the ports it connects to, then
   pushed apart so that no two blocks in a column overlap (sizes are the drawn ones);
4. everything snaps to the canvas grid.

``block_size`` is the one place that knows how big a block is drawn, so the layout and
the canvas agree.
"""
from __future__ import annotations

import networkx as nx

GRID = 20.0
HEADER_H, PORT_DY, MIN_W = 38.0, 20.0, 150.0
GAP_X, GAP_Y = 100.0, 40.0


def block_size(name: str, type_id: str, ins, outs) -> tuple[float, float]:
    """Width and height of a block as the canvas draws it (title, type line, port labels)."""
    from PySide6.QtGui import QFont, QFontMetricsF
    fm_bold, fm_small = QFontMetricsF(QFont("Sans", 9, QFont.Bold)), QFontMetricsF(QFont("Sans", 8))
    label_w = max(fm_bold.horizontalAdvance(name), QFontMetricsF(QFont("Sans", 7)).horizontalAdvance(type_id)) + 24
    widest = lambda ports: max([fm_small.horizontalAdvance(p) for p in ports] + [0])  # noqa: E731
    port_w = widest(ins) + widest(outs) + 44
    w = max(MIN_W, label_w, port_w)
    h = HEADER_H + max(len(ins), len(outs), 1) * PORT_DY + 6
    return w, h


def port_y(index: int) -> float:
    """Vertical offset of a block's ``index``-th port from its top edge."""
    return HEADER_H + (index + 0.5) * PORT_DY


def _graph(spec) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(spec.blocks)
    g.add_edges_from((c.src, c.dst) for c in spec.connections if c.src in spec.blocks and c.dst in spec.blocks)
    if not nx.is_directed_acyclic_graph(g):         # an invalid graph: drop back edges so layers exist
        dag = nx.DiGraph()
        dag.add_nodes_from(g)
        for u, v in g.edges:
            dag.add_edge(u, v)
            if not nx.is_directed_acyclic_graph(dag):
                dag.remove_edge(u, v)
        g = dag
    return g


def layers(spec) -> list[list[str]]:
    """Blocks grouped by column, in file order within a column."""
    g = _graph(spec)
    depth: dict[str, int] = {}
    for n in nx.topological_sort(g):
        depth[n] = max((depth[p] + 1 for p in g.predecessors(n)), default=0)
    for n in reversed(list(nx.topological_sort(g))):          # generators sit next to their consumer
        if g.in_degree(n) == 0 and g.out_degree(n) > 0:
            depth[n] = max(depth[n], min(depth[s] for s in g.successors(n)) - 1)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    order = {n: i for i, n in enumerate(spec.blocks)}
    for n in sorted(depth, key=order.get):
        out[depth[n]].append(n)
    return [layer for layer in out if layer]


def _order(spec, cols: list[list[str]], sweeps: int = 6) -> list[list[str]]:
    g = _graph(spec).to_undirected()
    col_of = {n: i for i, col in enumerate(cols) for n in col}
    cols = [list(c) for c in cols]
    for sweep in range(sweeps):
        rng = range(1, len(cols)) if sweep % 2 == 0 else range(len(cols) - 2, -1, -1)
        for i in rng:
            ref = i - 1 if sweep % 2 == 0 else i + 1
            rank = {n: k for k, n in enumerate(cols[ref])}
            bary = {}
            for k, n in enumerate(cols[i]):
                nb = [rank[m] for m in g.neighbors(n) if col_of.get(m) == ref]
                bary[n] = (sum(nb) / len(nb) if nb else k, k)
            cols[i].sort(key=bary.get)
    return cols


def layered_layout(spec, sizes: dict, port_index=None) -> dict:
    """Positions (top-left corners) for every block of ``spec``.

    ``sizes``: name -> (w, h) as drawn; ``port_index(block, port, output)`` gives a port's
    row on its block (straighter wires when given).
    """
    cols = _order(spec, layers(spec))
    xs, x = [], 0.0
    for col in cols:
        xs.append(x)
        x += max(sizes[n][0] for n in col) + GAP_X
    y: dict[str, float] = {}
    for col in cols:                                      # first guess: stacked, centred on 0
        total = sum(sizes[n][1] for n in col) + GAP_Y * (len(col) - 1)
        t = -total / 2
        for n in col:
            y[n] = t
            t += sizes[n][1] + GAP_Y

    def port_off(block, port, output):
        return port_y(port_index(block, port, output)) if port_index else sizes[block][1] / 2

    def pull(col, left: bool):
        want = {}
        for n in col:
            ends = []
            for c in spec.connections:
                if c.dst == n and c.src in y and (not left or c.src not in col):
                    ends.append(y[c.src] + port_off(c.src, c.src_port, True) - port_off(n, c.dst_port, False))
                if c.src == n and c.dst in y and (left or c.dst not in col):
                    ends.append(y[c.dst] + port_off(c.dst, c.dst_port, False) - port_off(n, c.src_port, True))
            want[n] = sum(ends) / len(ends) if ends else y[n]
        t = -1e18                                         # keep order, push apart downwards
        for n in col:
            y[n] = max(want[n], t)
            t = y[n] + sizes[n][1] + GAP_Y
        over = sum(y[n] - want[n] for n in col) / len(col)   # then shift the column back up
        for n in col:
            y[n] -= over
        for a, b in zip(col, col[1:]):                    # the shift must not re-create overlaps
            y[b] = max(y[b], y[a] + sizes[a][1] + GAP_Y)

    for _ in range(4):
        for col in cols[1:]:
            pull(col, left=True)
        for col in reversed(cols[:-1]):
            pull(col, left=False)
    snap = lambda v: round(v / GRID) * GRID  # noqa: E731
    out = {}
    for i, col in enumerate(cols):
        last = -1e18
        for n in col:
            top = max(snap(y[n]), last)
            out[n] = [int(snap(xs[i])), int(top)]
            last = top + snap(sizes[n][1] + GAP_Y / 2 + GRID / 2)
    return out


def auto_layout(spec, positions: dict | None = None, sizes: dict | None = None, port_index=None) -> dict:
    """Positions for blocks that have none (all of them when ``positions`` is empty).

    With no positions at all, the layered layout. Otherwise placed blocks stay and a new
    block goes right of its feeders (or of everything), below what is already there.
    """
    positions = dict(positions or {})
    sizes = sizes or {n: (MIN_W, HEADER_H + PORT_DY + 6) for n in spec.blocks}
    if not positions:
        return layered_layout(spec, sizes, port_index)
    result = {}
    for layer in layers(spec):
        for n in layer:
            if n in positions:
                continue
            feeders = [positions.get(c.src) or result.get(c.src) for c in spec.connections if c.dst == n]
            feeders = [p for p in feeders if p]
            placed = list(positions.values()) + list(result.values())
            if feeders:
                x = max(p[0] for p in feeders) + MIN_W + GAP_X
            else:
                x = min((p[0] for p in placed), default=0.0)
            col = [p[1] for p in placed if abs(p[0] - x) < MIN_W]
            yv = (max(col) + 2 * GAP_Y + HEADER_H + PORT_DY) if col else 0.0
            result[n] = [int(round(x / GRID) * GRID), int(round(yv / GRID) * GRID)]
    return result
