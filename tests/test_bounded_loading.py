"""Bounded loading (issue 18.1): hostile YAML fails fast with one located line.

No wall-time assertions: a case that hung would hit pytest's own patience; the budgets
make each of these a few milliseconds.
"""
import pytest

from flowgraph import limits
from flowgraph.errors import GraphError
from flowgraph.graph import load_graph, loads_graph
from flowgraph.yamlio import load_yaml, loads_yaml


def _laughs(levels=6, width=9):
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,line,message", [
    ("a: " + "[" * 5000 + "]" * 5000, 1, f"nested deeper than {limits.MAX_YAML_DEPTH} levels"),
    ("a: " + "[" * 50000 + "]" * 50000, 1, f"nested deeper than {limits.MAX_YAML_DEPTH} levels"),
    ("".join("  " * i + f"k{i}:\n" for i in range(100)), limits.MAX_YAML_DEPTH, "nested deeper than"),
    (_laughs(), 5, f"expands to more than {limits.MAX_YAML_VALUES} values"),
    ("x: &x [1, *x]\n", 1, "alias *x refers to a value that contains it"),
    ("a: &a 1\n" + "".join(f"b{i}: *a\n" for i in range(limits.MAX_YAML_ALIASES + 1)),
     limits.MAX_YAML_ALIASES + 2, f"more than {limits.MAX_YAML_ALIASES} aliases"),
    ("a: 1\nb: " + "9" * 5000 + "\n", 2, "integer literal of 5000 characters is too large"),
    ("a: 99999999999999999999\n", 1, "integer 99999999999999999999 is too large"),
    ("a: !!binary aGVsbG8=\n", 1, "YAML tag !!binary is not allowed"),
    ("a: !!set {x, y}\n", 1, "YAML tag !!set is not allowed"),
    ("a: !!python/object/apply:os.system ['true']\n", 1, "could not determine a constructor"),
    ("a: !!int notanint\n", 1, "!!int cannot be made from 'notanint'"),
    ("a: !!bool maybe\n", 1, "!!bool cannot be made from 'maybe'"),
    ("a: [1, !!float x]\n", 1, "!!float cannot be made from 'x'"),
    ("a: !!map [1, 2]\n", 1, "tag !!map needs a mapping"),
    ("a: !!seq {b: 1}\n", 1, "tag !!seq needs a list"),
    ("a: [" + ", ".join(["0"] * 30_000) + "]\n", 1, f"the file expands to more than {limits.MAX_YAML_VALUES} values"),
    ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
    ("? [1, 2]\n: 3\n", 1, "a mapping key must be a plain value"),
])
def test_hostile_yaml_is_one_located_line(text, line, message):
    with pytest.raises(GraphError) as exc:
        loads_yaml(text, "g.yaml")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"g.yaml:{line}: invalid YAML: ") and message in msg, msg


def test_merges_and_dates_still_load():
    data = loads_yaml("base: &b {x: 1}\nderived: {<<: *b, y: 2}\nwhen: 2024-01-01\n")
    assert data["derived"] == {"x": 1, "y": 2}
    assert data["when"] == "2024-01-01"          # a date stays text


def test_file_limits(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("format: 1\n#" + "x" * limits.MAX_FILE_BYTES + "\n")
    with pytest.raises(GraphError, match=r"big.yaml: file is \d+ bytes, larger than a graph file may be"):
        load_yaml(big)
    with pytest.raises(GraphError, match="is a directory"):
        load_yaml(tmp_path)
    with pytest.raises(GraphError, match="not a regular file"):
        load_yaml("/dev/zero")
    long = "x" * 4000 + ".yaml"
    with pytest.raises(GraphError) as exc:
        load_yaml(long)
    assert "path is 4005 characters long" in str(exc.value) and len(str(exc.value)) < 200
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\x80\x81\x00")
    with pytest.raises(GraphError, match="not UTF-8 text"):
        load_yaml(binary)


def test_error_messages_do_not_echo_huge_values():
    """A 100,000-character value is echoed as a prefix with its length (issue 19.8)."""
    from flowgraph.compile import compile_graph
    huge = "y" * 100_000
    for text in (f"format: 1\nname: g\nblocks: {{a: {{type: testing.vectors, params: {{n: '{huge}'}}}}}}\n",
                 f"format: 1\nname: g\nblocks: {{a: {huge}}}\n",
                 f"format: 1\nname: g\nblocks: {{a: {{type: testing.vectors}}}}\nconnections: ['{huge}']\n",
                 f"format: 1\nname: g\n'{huge[:900]}': 1\n"):   # a YAML key may have 1024 characters
        [p] = compile_graph(loads_graph(text, "g.yaml")).problems
        assert len(str(p)) < 300 and "characters)" in str(p), str(p)[:300]


def test_hierarchy_bomb_and_depth(tmp_path):
    """22 levels, each including the next twice (2^22 leaves): refused by the block budget."""
    from flowgraph.compile import compile_graph
    for i in range(22):
        inner = (f'  a: {{type: "graph:l{i + 1}.yaml"}}\n  b: {{type: "graph:l{i + 1}.yaml"}}\n'
                 if i < 21 else "  a: {type: testing.vectors}\n")
        (tmp_path / f"l{i}.yaml").write_text(f"format: 1\nname: l{i}\nblocks:\n{inner}")
    cg = compile_graph(load_graph(tmp_path / "l0.yaml"))
    msgs = [str(p) for p in cg.problems]
    assert any("blocks" in m and str(limits.MAX_BLOCKS) in m for m in msgs), msgs
    assert all("\n" not in m for m in msgs) and len(msgs) < 20
    # a chain deeper than MAX_GRAPH_DEPTH
    for i in range(limits.MAX_GRAPH_DEPTH + 2):
        (tmp_path / f"c{i}.yaml").write_text(f'format: 1\nname: c{i}\nblocks:\n  a: {{type: "graph:c{i + 1}.yaml"}}\n')
    cg = compile_graph(load_graph(tmp_path / "c0.yaml"))
    assert any(f"nested deeper than {limits.MAX_GRAPH_DEPTH}" in str(p) for p in cg.problems), cg.problems


def _codec(tmp, rel):
    p = tmp / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("format: 1\nname: c\nports: {inputs: {x: a.x}, outputs: {y: a.y}}\n"
                 "blocks:\n  a: {type: testing.affine}\n")
    return p


def _top(tmp, rel, name="top.yaml"):
    p = tmp / "proj" / "graphs" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    (tmp / "proj" / "pyproject.toml").write_text("")
    p.write_text(f"format: 1\nname: t\nblocks:\n  src: {{type: testing.vectors}}\n"
                 f"  c: {{type: 'graph:{rel}'}}\nconnections:\n  - src.x -> c.x\n")
    return p


def test_subgraph_paths_stay_in_the_project(tmp_path, monkeypatch):
    from flowgraph.compile import compile_graph
    from flowgraph.limits import Limits
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    _codec(tmp_path, "proj/parts/codec.yaml")
    outside = _codec(tmp_path, "elsewhere/codec.yaml")
    # inside the project through '..': fine
    ok = compile_graph(load_graph(_top(tmp_path, "../parts/codec.yaml")))
    assert ok.problems == [] and "c/a" in ok.blocks
    # '..' leaving the project, and an absolute path: refused, one line each
    for rel, why in (("../../elsewhere/codec.yaml", "leads outside the graph's folder and project"),
                     (str(outside), "is absolute")):
        cg = compile_graph(load_graph(_top(tmp_path, rel)))
        [p] = cg.problems
        assert f"top.yaml:5: block 'c': graph path" in str(p) and why in str(p) and "--allow-outside-paths" in str(p)
        allowed = compile_graph(load_graph(_top(tmp_path, rel)), limits=Limits(allow_outside_paths=True))
        assert allowed.problems == []
    # a symlink inside the project that points outside is judged by its target
    link = tmp_path / "proj" / "graphs" / "link.yaml"
    link.symlink_to(outside)
    [p] = compile_graph(load_graph(_top(tmp_path, "link.yaml"))).problems
    assert "leads outside" in str(p)
    for rel, why in (("x" * 4000 + ".yaml", "graph path is 4005 characters long"),
                     ("nope.yaml", "graph file 'nope.yaml' not found"),
                     ("/dev/zero", "is absolute")):
        [p] = compile_graph(load_graph(_top(tmp_path, rel))).problems
        assert why in str(p) and len(str(p)) < 300, str(p)[:300]


def test_cli_allows_outside_paths_only_when_asked(tmp_path, monkeypatch, capsys):
    from flowgraph.cli import main
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    _codec(tmp_path, "elsewhere/codec.yaml")
    top = _top(tmp_path, "../../elsewhere/codec.yaml")
    assert main(["validate", str(top)]) == 1
    assert "--allow-outside-paths" in capsys.readouterr().out
    assert main(["validate", "--allow-outside-paths", str(top)]) == 0
