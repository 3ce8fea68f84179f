"""Symbolic shapes: matching concrete tensors against declared ports, and dim unification.

A declared shape is a tuple of symbols (str), integers and at most one "...".
Matching binds symbols to sizes; a symbol bound twice to different sizes is a mismatch.
"""
from __future__ import annotations

from .block import ELLIPSIS


def align(decl: tuple, ndim: int):
    """Pair each declared dim with a concrete axis index; "..." absorbs the extra axes.

    Returns a list of (decl_dim, axis) or None when the rank cannot fit.
    """
    if ELLIPSIS in decl:
        i = decl.index(ELLIPSIS)
        head, tail = decl[:i], decl[i + 1:]
        if ndim < len(head) + len(tail):
            return None
        return [(d, k) for k, d in enumerate(head)] + \
               [(d, ndim - len(tail) + k) for k, d in enumerate(tail)]
    if ndim != len(decl):
        return None
    return list(zip(decl, range(ndim)))


def match_shape(decl: tuple | None, shape: tuple, bindings: dict) -> str | None:
    """Check a concrete ``shape`` against ``decl``; extend ``bindings``. Return a reason or None."""
    if decl is None:
        return None
    pairs = align(decl, len(shape))
    if pairs is None:
        return f"rank {len(shape)} does not fit {fmt(decl)}"
    for d, axis in pairs:
        size = int(shape[axis])
        if isinstance(d, int):
            if d != size:
                return f"dim {axis} is {size}, expected {d}"
        elif d in bindings and bindings[d] != size:
            return f"{d}={bindings[d]} but dim {axis} is {size}"
        else:
            bindings[d] = size
    return None


def fmt(decl: tuple | None) -> str:
    if decl is None:
        return "(*)"
    return "(" + ",".join(str(d) for d in decl) + ")"


class DimUnifier:
    """Union-find over scoped symbolic dims ``(block, symbol)`` with optional known sizes."""

    def __init__(self):
        self.parent: dict = {}
        self.value: dict = {}
        self.origin: dict = {}   # root -> human-readable where the value came from

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def bind(self, x, size: int, origin: str = "") -> tuple | None:
        """Fix the size of x. Returns (old_size, old_origin) on conflict, else None."""
        r = self.find(x)
        if r in self.value and self.value[r] != size:
            return self.value[r], self.origin.get(r, "")
        self.value[r] = size
        self.origin.setdefault(r, origin)
        return None

    def union(self, a, b) -> tuple | None:
        """Merge a and b. Returns (size_a, size_b) on conflict, else None."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        va, vb = self.value.get(ra), self.value.get(rb)
        if va is not None and vb is not None and va != vb:
            return va, vb
        self.parent[rb] = ra
        if va is None and vb is not None:
            self.value[ra] = vb
            self.origin[ra] = self.origin.get(rb, "")
        return None

    def size(self, x):
        return self.value.get(self.find(x))
