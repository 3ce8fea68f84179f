"""The structure schema (issue 18.2): every wrong type of every section is one line
``file:line: <section>.<key>: expected ..., got ...``, and nothing after it crashes."""
import pytest

from flowgraph import schema
from flowgraph.compile import compile_graph
from flowgraph.graph import loads_graph
from flowgraph.yamlio import dump_yaml, loads_yaml

# every section, every key the tables know for it, in block style (one key per line)
RICH = """\
format: 1
name: rich
description: every section of a graph file
variables:
  n: 4
  hidden: 8
  sigma: 0.1
  lr: 0.01
  steps: 2
ports:
  inputs:
    x: enc.x
  outputs:
    y: dec.y
blocks:
  src:
    type: testing.vectors
    params:
      n: $n
  enc:
    type: testing.affine
    params:
      n: $n
      m: $hidden
    doc: encoder
  cx: testing.to_complex
  ch:
    type: testing.noise
    params:
      sigma: $sigma
    enabled: true
    bypass: false
  rx: testing.to_real
  dec:
    type: testing.affine
    params:
      n: $hidden
      m: $n
  err: testing.mse
connections:
  - src.x -> enc.x
  - enc.y -> cx.x
  - cx.z -> ch.z
  - ch.z -> rx.z
  - rx.x -> dec.x
  - dec.y -> err.pred
  - src.x -> err.target
train:
  - stage: e2e
    trainable:
      - enc
      - dec
    loss: mse(dec.y, src.x)
    optimizer:
      type: adam
      lr: $lr
      weight_decay: 0.0
    schedule:
      type: cosine
      warmup: 1
      min_factor: 0.1
    steps: $steps
    grad_clip: 1.0
    log_every: 1
    checkpoint_every: 0
    copy_weights:
      dec: dec
    variables:
      sigma: 0.2
evaluate:
  sweep:
    sigma:
      - 0.0
      - 0.5
  metrics:
    - err
  batch: 4
  images: 8
  cbr: true
presets:
  smoke:
    steps: 1
gui:
  positions:
    src: [0, 0]
"""


def _paths(node, prefix=()):
    """Every (key path, line) below a LineDict/LineList."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,), node.line_of(k)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,), node.line_of(i)
            yield from _paths(v, prefix + (i,))


def _set(data, path, value):
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _show(path):
    out = ""
    for k in path:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out


def test_rich_graph_is_valid():
    cg = compile_graph(loads_graph(RICH, "rich.yaml"))
    assert cg.problems == []


# key paths where an integer is a fine value (numbers, variable values, param values)
INT_OK = {("format",), ("name",), ("description",), ("evaluate", "batch"), ("evaluate", "images"),
          ("train", 0, "stage"), ("blocks", "enc", "doc")}


@pytest.mark.parametrize("path,line", [p for p in _paths(loads_yaml(RICH))],
                         ids=[_show(p) for p, _ in _paths(loads_yaml(RICH))])
def test_every_key_retyped_to_int_is_one_located_line_or_accepted(path, line):
    """Retype each key of each section to an int: either the schema accepts an int there
    (a number or a value), or it gives exactly one line naming the path and "got int"."""
    if path == ("format",):
        return      # the format is read first: tests/test_validation.py covers it
    data = loads_yaml(RICH, "rich.yaml")
    _set(data, path, 12345)
    text = dump_yaml(data)
    spec = loads_graph(text, "rich.yaml")
    structural = [str(p) for p in spec.problems]
    problems = [str(p) for p in compile_graph(spec).problems]    # must not raise
    assert all("\n" not in p for p in problems)
    n = len(path)
    value_of_a_mapping_of_values = (
        (path[0] == "variables" and n == 2) or (n == 4 and path[2] == "params")
        or (n == 4 and path[2] == "variables") or (path[0] == "presets" and n == 3)
        or (path[:2] == ("evaluate", "sweep") and n == 4) or (path[:2] == ("gui", "positions") and n == 4)
        or path == ("train", 0, "sigma"))
    int_ok = path in INT_OK or value_of_a_mapping_of_values or path[-1] in (
        "lr", "weight_decay", "warmup", "min_factor", "steps", "grad_clip", "log_every", "checkpoint_every")
    if int_ok:
        assert structural == [], structural
    else:
        assert len(structural) == 1, structural
        # line numbers refer to the dumped text: find the key's line there
        assert structural[0].startswith("rich.yaml:") and f"{_show(path)}: expected " in structural[0], structural
        assert structural[0].endswith("got int 12345"), structural


@pytest.mark.parametrize("section,value,message", [
    ("variables", "[1, 2]", "rich.yaml:{L}: variables: expected a mapping of variable names to values, got a list"),
    ("blocks", "7", "rich.yaml:{L}: blocks: expected a mapping of block names to blocks, got int 7"),
    ("connections", "{a: b}", "rich.yaml:{L}: connections: expected a list of 'src.port -> dst.port' strings, "
                              "got a mapping"),
    ("train", "stage1", "rich.yaml:{L}: train: expected a list of train stages (mappings), got str 'stage1'"),
    ("evaluate", "[1]", "rich.yaml:{L}: evaluate: expected a mapping with sweep, metrics, batch, images, got a list"),
    ("presets", "3", "rich.yaml:{L}: presets: expected a mapping of preset names to mappings of variable "
                     "overrides, got int 3"),
    ("ports", "x", "rich.yaml:{L}: ports: expected a mapping with inputs: and outputs:, got str 'x'"),
])
def test_whole_section_of_the_wrong_type(section, value, message):
    lines = RICH.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{section}:"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    text = "\n".join(lines[:start] + [f"{section}: {value}"] + lines[end:]) + "\n"
    problems = [str(p) for p in compile_graph(loads_graph(text, "rich.yaml")).problems]
    assert message.replace("{L}", str(start + 1)) in problems, problems


@pytest.mark.parametrize("old,new,message", [
    ("      min_factor: 0.1", "      min_fator: 0.1",
     "rich.yaml:{L}: train[0].schedule: unknown key 'min_fator' (did you mean 'min_factor'?)"),
    ("  metrics:", "  metric:", "rich.yaml:{L}: evaluate: unknown key 'metric' (did you mean 'metrics'?)"),
    ("    doc: encoder", "    docs: encoder", "rich.yaml:{L}: blocks.enc: unknown key 'docs' (did you mean 'doc'?)"),
    ("gui:", "guii: 1\ngui:", "rich.yaml:{L}: unknown top-level key 'guii' (did you mean 'gui'?)"),
    ("    type: testing.noise\n", "", "rich.yaml:{L}: blocks.ch: missing required key 'type'"),
    ("  cx: testing.to_complex", "  c-x: testing.to_complex",
     "rich.yaml:{L}: blocks: block name 'c-x' must be an identifier (letters, digits, _)"),
    ("      type: adam", "      type: adamm",
     "rich.yaml:{L}: train[0].optimizer.type: expected one of adam, adamw, sgd, rmsprop, got str 'adamm'"),
    ("    enabled: true", "    enabled: yes please",
     "rich.yaml:{L}: blocks.ch.enabled: expected true, false or an expression such as $use_x, got str 'yes please'"),
    ("    src: [0, 0]", "    src: [0, !!str 5]",
     "rich.yaml:{L}: gui.positions.src[1]: expected a number, got str '5'"),
    ("    src: [0, 0]", "    src: [0]", "rich.yaml:{L}: gui.positions.src: expected an [x, y] pair of numbers, got a list"),
    ("  cbr: true", "  cbr: [1, 2]",
     "rich.yaml:{L}: evaluate.cbr: expected true, false or a list of input ports such as [ch.x], got a list"),
])
def test_misspelled_and_misshaped_keys(old, new, message):
    assert old in RICH
    text = RICH.replace(old, new)
    # the line of the change (a removed line: the block's own line, just above it)
    line = RICH[:RICH.index(old)].count("\n") + (1 if new else 0)
    problems = [str(p) for p in compile_graph(loads_graph(text, "rich.yaml")).problems]
    assert message.replace("{L}", str(line)) in problems, problems


def test_a_broken_block_is_reported_once():
    """The connections and stages naming a block whose entry is broken say nothing more."""
    problems = [str(p) for p in compile_graph(loads_graph(RICH.replace(
        "  enc:\n    type: testing.affine\n", "  enc:\n    typ: testing.affine\n"), "rich.yaml")).problems]
    assert problems == ["rich.yaml:21: blocks.enc: unknown key 'typ' (did you mean 'type'?)",
                        "rich.yaml:20: blocks.enc: missing required key 'type'"], problems


def test_schema_tables_cover_the_sections_and_keys_the_engine_reads():
    from flowgraph.compile import STAGE_KEYS
    from flowgraph.graph import BLOCK_KEYS, TOP_KEYS
    assert set(TOP_KEYS) == set(schema.GRAPH.fields)
    assert set(BLOCK_KEYS) == set(schema.BLOCK.fields)
    assert set(STAGE_KEYS) <= set(schema.STAGE.fields)
    for kind, options in schema.OPTIMIZER_OPTIONS.items():
        assert set(options) <= set(schema.OPTIMIZER.fields), kind
    for kind, options in schema.SCHEDULE_OPTIONS.items():
        assert set(options) <= set(schema.SCHEDULE.fields), kind


def test_a_long_list_of_bad_items_is_reported_in_a_few_lines():
    text = RICH.replace("connections:\n", "connections:\n" + "".join(f"  - {i}\n" for i in range(500)), 1)
    problems = [str(p) for p in compile_graph(loads_graph(text, "rich.yaml")).problems]
    assert len(problems) == schema.MAX_PER_COLLECTION + 1, problems
    assert problems[-1].endswith("connections: ... and 490 more problems like these")
    assert not any("is not connected" in p for p in problems)    # no cascade from the dropped items
