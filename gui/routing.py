"""Orthogonal wire routing around blocks (pure geometry, no Qt).

A wire leaves an output port to the right and enters an input port from the left. The
router tries, in order:

1. three segments: right, vertical in a free channel between the two ports, right;
2. five segments: out of the source, along a free horizontal corridor (above or below the
   blocks in the way), into the destination (also what a backward wire needs);

keeping every segment clear of every block (inflated by ``MARGIN``). When nothing is
clear (a crowded hand-made layout) it falls back to the three-segment route through the
middle.
"""
from __future__ import annotations

MARGIN, STUB = 8.0, 24.0
Rect = tuple  # (x0, y0, x1, y1)


def _hits(p, q, rects) -> bool:
    (x1, y1), (x2, y2) = p, q
    lo_x, hi_x, lo_y, hi_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    for x0, y0, xr, yb in rects:
        if lo_x < xr and hi_x > x0 and lo_y < yb and hi_y > y0:
            return True
    return False


def _clear(points, rects) -> bool:
    return not any(_hits(p, q, rects) for p, q in zip(points, points[1:]))


def route(a, b, blocks: list[Rect], lane: float = 0.0) -> list[tuple[float, float]]:
    """Points from output port ``a`` to input port ``b`` avoiding ``blocks``."""
    rects = [(x0 - MARGIN, y0 - MARGIN, x1 + MARGIN, y1 + MARGIN) for x0, y0, x1, y1 in blocks]
    (ax, ay), (bx, by) = a, b
    sa, sb = (ax + STUB, ay), (bx - STUB, by)
    if abs(ay - by) < 0.5 and sa[0] <= sb[0] and _clear([sa, sb], rects):
        return [a, b]
    if sa[0] <= sb[0]:
        mid = (sa[0] + sb[0]) / 2 + lane
        xs = {mid, sa[0] + lane, sb[0] - lane}
        for x0, _y0, x1, _y1 in rects:
            xs.update((x0 - 2 - abs(lane), x1 + 2 + abs(lane)))
        for xm in sorted((x for x in xs if sa[0] <= x <= sb[0]), key=lambda x: abs(x - mid)):
            pts = [sa, (xm, ay), (xm, by), sb]
            if _clear(pts, rects):
                return [a] + pts + [b]
    x1, x2 = sa[0] + lane, sb[0] - lane
    ys = {ay, by}
    for _x0, y0, _x1, y1 in rects:
        ys.update((y0 - 2 - abs(lane), y1 + 2 + abs(lane)))
    for yc in sorted(ys, key=lambda y: abs(y - ay) + abs(y - by)):
        pts = [sa, (x1, ay), (x1, yc), (x2, yc), (x2, by), sb]
        if _clear(pts, rects):
            return [a] + pts + [b]
    xm = (sa[0] + sb[0]) / 2
    return [a, sa, (xm, ay), (xm, by), sb, b]


def crossings(points, blocks: list[Rect]) -> int:
    """How many segments of a route pass through a block (not inflated): 0 for a clean wire."""
    return sum(_hits(p, q, blocks) for p, q in zip(points[1:-1], points[2:-1]))
