"""Saving a graph file as a hand-written document: comments, key order, flow style and the
layout of untouched lines stay exactly as they were; only what was edited changes.

A graph file is read by the engine's safe loader (``flowgraph.yamlio``); the GUI writes
it back through ruamel.yaml's round-trip mode, which keeps comments:

1. the file's text is parsed into a ruamel tree;
2. the difference between the graph as it was loaded (``base``, ``GraphSpec.to_dict()``)
   and as it is now (``new``) is applied to that tree, node by node, so unchanged nodes
   are left alone;
3. ruamel's rendering of the tree is merged back into the original text line by line:
   a line ruamel did not change is copied from the original byte for byte (ruamel
   normalises spacing such as ``src:  {type: ...}`` column alignment), and a changed
   line keeps the original's spacing where the edit did not touch it.

The result is checked with the engine's loader: it must read back as ``new``; otherwise
(a YAML construct the merge cannot keep) the plain engine dump is written instead.
"""
from __future__ import annotations

import difflib
import io
import json
import re

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from flowgraph.graph import loads_graph
from flowgraph.yamlio import dump_yaml, plain


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096                      # never re-wrap a long flow mapping
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _key(v) -> str:
    return json.dumps(plain(v), sort_keys=True, default=str)


def _scalar(v):
    """A new scalar as ruamel should write it: strings the engine's YAML 1.1 loader would
    read as something else (``yes``, ``1e-3``, ``''``) are quoted."""
    if isinstance(v, str):
        try:
            same = yaml.safe_load(v) == v and v.strip() == v and v != ""
        except yaml.YAMLError:
            same = False
        return v if same else DoubleQuotedScalarString(v)
    return v


def _flow(node) -> bool:
    return isinstance(node, (CommentedMap, CommentedSeq)) and node.fa.flow_style()


def to_node(value, flow: bool | None = None):
    """Plain data -> ruamel nodes; ``flow`` forces flow style (as the node it replaces had)."""
    if isinstance(value, dict):
        m = CommentedMap((k, to_node(v, True if flow else None)) for k, v in value.items())
        if flow:
            m.fa.set_flow_style()
        return m
    if isinstance(value, (list, tuple)):
        s = CommentedSeq(to_node(v, True if flow else None) for v in value)
        if flow or (flow is None and len(s) <= 12 and all(not isinstance(v, (dict, list)) for v in value)):
            s.fa.set_flow_style()
        return s
    return _scalar(value)


def update(node, base, new):
    """``node`` (ruamel) was written from ``base``; make it say ``new``, touching only what changed."""
    if _key(base) == _key(new):
        return node
    if isinstance(node, CommentedMap) and isinstance(base, dict) and isinstance(new, dict):
        for k in [k for k in node if k in base and k not in new]:    # keys the loader drops
            del node[k]                                                # (``params: {}``) stay
        for i, (k, v) in enumerate(new.items()):
            if k in node and k in base:
                node[k] = update(node[k], base[k], v)
            elif k in node:
                node[k] = to_node(v, _flow(node[k]) or _flow(node))
            else:
                node.insert(min(i, len(node)), k, to_node(v, True if _flow(node) else None))
        return node
    if isinstance(node, CommentedSeq) and isinstance(base, list) and isinstance(new, list) \
            and len(node) == len(base):
        sm = difflib.SequenceMatcher(a=[_key(v) for v in base], b=[_key(v) for v in new], autojunk=False)
        for tag, i1, i2, j1, j2 in reversed(sm.get_opcodes()):     # from the end: indices stay valid
            if tag == "equal":
                continue
            if tag == "replace" and i2 - i1 == j2 - j1:
                for i, j in zip(range(i1, i2), range(j1, j2)):
                    node[i] = update(node[i], base[i], new[j])
                continue
            for i in range(i2 - 1, i1 - 1, -1):
                del node[i]
            for j in range(j2 - 1, j1 - 1, -1):
                node.insert(i1, to_node(new[j], True if _flow(node) else None))
        return node
    if isinstance(node, (CommentedMap, CommentedSeq)):
        return to_node(new, _flow(node))
    return to_node(new)


def _norm(line: str) -> str:
    return re.sub(r"\s+", " ", line.strip())


def merge_line(orig: str, old: str, new: str) -> str:
    """``old`` is ruamel's rendering of ``orig`` (same tokens, other spacing); ``new`` is
    ``old`` edited. Apply that edit to ``orig``, keeping its spacing elsewhere."""
    to_orig = difflib.SequenceMatcher(a=old, b=orig, autojunk=False)
    pos = {}                                  # old char index -> orig char index
    for a, b, n in to_orig.get_matching_blocks():
        for k in range(n):
            pos[a + k] = b + k
    out, o_at = [], 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        start = pos.get(i1)
        end = pos.get(i2 - 1, None) if i2 > i1 else start
        if start is None or (i2 > i1 and end is None):
            return new                        # cannot place the edit: take ruamel's line
        end = end + 1 if i2 > i1 else start
        out.append(orig[o_at:start])
        out.append(new[j1:j2])
        o_at = end
    out.append(orig[o_at:])
    merged = "".join(out)
    return merged if _norm(merged) == _norm(new) else new


def merge_text(original: str, rendered_old: str, rendered_new: str) -> str:
    """Lines ruamel left alone come from ``original`` verbatim; edited lines are merged."""
    orig_lines = original.splitlines(keepends=True)
    old_lines = rendered_old.splitlines(keepends=True)
    new_lines = rendered_new.splitlines(keepends=True)
    old_to_orig = {}
    sm = difflib.SequenceMatcher(a=[_norm(x) for x in old_lines], b=[_norm(x) for x in orig_lines],
                                 autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                old_to_orig[i1 + k] = j1 + k
    out = []
    used = set()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                o = old_to_orig.get(i1 + k)
                out.append(orig_lines[o] if o is not None else old_lines[i1 + k])
                used.add(o)
        elif tag == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                o = old_to_orig.get(i1 + k)
                if o is not None and _norm(orig_lines[o]) == _norm(old_lines[i1 + k]):
                    eol = orig_lines[o][len(orig_lines[o].rstrip("\r\n")):]
                    out.append(merge_line(orig_lines[o].rstrip("\r\n"), old_lines[i1 + k].rstrip("\r\n"),
                                          new_lines[j1 + k].rstrip("\r\n")) + (eol or "\n"))
                else:
                    out.append(new_lines[j1 + k])
        else:
            out.extend(new_lines[j1:j2])
    text = "".join(out)
    if original.endswith("\n") and not text.endswith("\n"):
        text += "\n"
    return text


def render(original: str | None, base: dict | None, new: dict, path: str = "<graph>") -> str:
    """The text to save for graph ``new`` (a ``GraphSpec.to_dict()``).

    ``original`` is the file's text and ``base`` the graph as loaded from it; without
    them (a new graph) the engine's plain dump is used.
    """
    if original is None or base is None:
        return dump_yaml(new)
    y = _yaml()
    try:
        tree = y.load(original)
        buf = io.StringIO()
        y.dump(tree, buf)
        rendered_old = buf.getvalue()
        tree = update(tree, base, new)
        buf = io.StringIO()
        y.dump(tree, buf)
        text = merge_text(original, rendered_old, buf.getvalue())
    except Exception:                 # ruamel cannot keep this file: write it plainly
        return dump_yaml(new)
    try:
        same = loads_graph(text, path).to_dict() == new
    except Exception:
        same = False
    return text if same else dump_yaml(new)
