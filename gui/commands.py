"""Undoable edits of a GraphSpec, one QUndoCommand per kind of edit.

Commands refer to blocks by name and keep copies of what they replace, never live
objects: the model may swap its GraphSpec for a freshly loaded one after a save (to
refresh line numbers), and the undo history must stay valid across that.
"""
from __future__ import annotations

import copy

from PySide6.QtGui import QUndoCommand

from flowgraph.graph import Connection

UNSET = object()     # "no entry": a param at its default, a variable that does not exist


def _conn_key(c: Connection) -> tuple:
    return (c.src, c.src_port, c.dst, c.dst_port)


def _reorder(d: dict, items: list) -> None:
    """Rewrite ``d`` in place with ``items`` (keeps LineDict line info, which compile uses)."""
    d.clear()
    for k, v in items:
        d[k] = v


class _Cmd(QUndoCommand):
    what = "structure"    # which part of the graph changed, for the model's signal

    def __init__(self, model, text: str):
        super().__init__(text)
        self.m = model

    @property
    def spec(self):
        return self.m.spec

    def redo(self):
        self.apply()
        self.m._edited(self.what)

    def undo(self):
        self.revert()
        self.m._edited(self.what)


class AddBlock(_Cmd):
    def __init__(self, model, name: str, type_id: str, params: dict, pos, enabled=True, bypass=False, doc=""):
        super().__init__(model, f"add {name}")
        self.name, self.type_id, self.params = name, type_id, dict(params or {})
        self.pos, self.enabled, self.bypass, self.doc = pos, enabled, bypass, doc

    def apply(self):
        b = self.spec.add_block(self.name, self.type_id, copy.deepcopy(self.params))
        b.enabled, b.bypass, b.doc = self.enabled, self.bypass, self.doc
        if self.pos is not None:
            self.m.positions()[self.name] = [round(self.pos[0]), round(self.pos[1])]

    def revert(self):
        self.spec.remove_block(self.name)


class DeleteBlock(_Cmd):
    def __init__(self, model, name: str):
        super().__init__(model, f"delete {name}")
        self.name = name

    def apply(self):
        spec = self.spec
        self.index = list(spec.blocks).index(self.name)
        self.block = copy.deepcopy(spec.blocks[self.name])
        self.conns = [(i, _conn_key(c)) for i, c in enumerate(spec.connections) if self.name in (c.src, c.dst)]
        self.pos = self.m.positions().get(self.name)
        spec.remove_block(self.name)

    def revert(self):
        spec = self.spec
        items = list(spec.blocks.items())
        items.insert(self.index, (self.name, copy.deepcopy(self.block)))
        _reorder(spec.blocks, items)
        for i, key in self.conns:                       # ascending indices: original order back
            spec.connections.insert(i, Connection(*key))
        if self.pos is not None:
            self.m.positions()[self.name] = list(self.pos)


class MoveBlocks(_Cmd):
    what = "positions"

    def __init__(self, model, new: dict):
        super().__init__(model, "move " + ", ".join(sorted(new)))
        pos = model.positions()
        self.new = {n: [round(x), round(y)] for n, (x, y) in new.items()}   # ints read well in YAML
        self.old = {n: (list(pos[n]) if n in pos else None) for n in new}

    def apply(self):
        self.m.positions().update(copy.deepcopy(self.new))

    def revert(self):
        pos = self.m.positions()
        for n, p in self.old.items():
            if p is None:
                pos.pop(n, None)
            else:
                pos[n] = list(p)


class Connect(_Cmd):
    def __init__(self, model, key: tuple):
        super().__init__(model, "connect {}.{} -> {}.{}".format(*key))
        self.key = key

    def apply(self):
        self.spec.connect(*self.key)

    def revert(self):
        self.spec.disconnect(*self.key)


class Disconnect(_Cmd):
    def __init__(self, model, key: tuple):
        super().__init__(model, "disconnect {}.{} -> {}.{}".format(*key))
        self.key = key

    def apply(self):
        keys = [_conn_key(c) for c in self.spec.connections]
        self.index = keys.index(self.key)
        self.spec.connections.pop(self.index)

    def revert(self):
        self.spec.connections.insert(self.index, Connection(*self.key))


class SetParam(_Cmd):
    """Set (or, with UNSET, remove) one param. Consecutive edits of one param merge,
    so dragging a spin box is one undo step."""
    ID = 1001

    def __init__(self, model, block: str, key: str, value):
        super().__init__(model, f"set {block}.{key}")
        self.what = f"block:{block}"
        self.block, self.key, self.new = block, key, value
        self.old = model.spec.blocks[block].params.get(key, UNSET)

    def id(self):
        return self.ID

    def mergeWith(self, other):
        if not isinstance(other, SetParam) or (other.block, other.key) != (self.block, self.key):
            return False
        self.new = other.new
        return True

    def _set(self, value):
        params = self.spec.blocks[self.block].params
        if value is UNSET:
            params.pop(self.key, None)
        else:
            params[self.key] = copy.deepcopy(value)

    def apply(self):
        self._set(self.new)

    def revert(self):
        self._set(self.old)


class SetState(_Cmd):
    """enabled / bypass (GNU Radio's block states)."""

    def __init__(self, model, block: str, field: str, value: bool):
        super().__init__(model, f"{'enable' if value else 'disable'} {block}" if field == "enabled"
                         else f"{'bypass' if value else 'un-bypass'} {block}")
        self.what = f"block:{block}"
        self.block, self.field, self.new = block, field, bool(value)
        self.old = getattr(model.spec.blocks[block], field)

    def apply(self):
        setattr(self.spec.blocks[self.block], self.field, self.new)

    def revert(self):
        setattr(self.spec.blocks[self.block], self.field, self.old)


class SetVariable(_Cmd):
    """Add, change or (with UNSET) remove a graph variable, keeping the file's order."""
    what = "variables"
    ID = 1002

    def __init__(self, model, name: str, value):
        super().__init__(model, f"set variable {name}")
        self.name, self.new = name, value
        variables = model.spec.variables
        self.old = variables.get(name, UNSET)
        self.index = list(variables).index(name) if name in variables else len(variables)

    def id(self):
        return self.ID

    def mergeWith(self, other):
        if not isinstance(other, SetVariable) or other.name != self.name or UNSET in (self.old, other.new):
            return False
        self.new = other.new
        return True

    def _set(self, value):
        variables = self.spec.variables
        items = [(k, v) for k, v in variables.items() if k != self.name]
        if value is not UNSET:
            items.insert(min(self.index, len(items)), (self.name, copy.deepcopy(value)))
        _reorder(variables, items)

    def apply(self):
        self._set(self.new)

    def revert(self):
        self._set(self.old)




class SetType(_Cmd):
    """Change a block's type (an unknown type to a suggested one); params and wires stay."""

    def __init__(self, model, block: str, type_id: str):
        super().__init__(model, f"retype {block} to {type_id}")
        self.block, self.new = block, type_id
        self.old = model.spec.blocks[block].type

    def apply(self):
        self.spec.blocks[self.block].type = self.new

    def revert(self):
        self.spec.blocks[self.block].type = self.old


class SetSection(_Cmd):
    """Replace a whole top-level section (``train``, ``evaluate``, ``presets``, a ``gui`` key)
    with an edited copy: what the stage / sweep / preset / control editors write."""

    def __init__(self, model, key: str, value, text: str | None = None):
        super().__init__(model, text or f"edit {key}")
        self.key, self.new = key, copy.deepcopy(value)
        self.old = copy.deepcopy(self._get())
        self.what = "gui" if key.startswith("gui.") else "structure"

    def _get(self):
        if self.key.startswith("gui."):
            return self.m.spec.gui.get(self.key[4:], UNSET)
        return getattr(self.m.spec, self.key)

    def _set(self, value):
        if self.key.startswith("gui."):
            if value is UNSET:
                self.m.spec.gui.pop(self.key[4:], None)
            else:
                self.m.spec.gui[self.key[4:]] = copy.deepcopy(value)
        else:
            setattr(self.m.spec, self.key, copy.deepcopy(value))

    def apply(self):
        self._set(self.new)

    def revert(self):
        self._set(self.old)
