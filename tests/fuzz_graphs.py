"""A deterministic generator of malformed graph files, and a runner that validates them.

Mutation classes (issue 18.7), applied to the shipped graphs and to small graphs made
for the purpose:

    delete_key         a key anywhere in the file removed
    rename_key         a key misspelled (typo, case, suffix)
    retype_value       a value replaced by one of another type (numbers, NaN, strings, lists...)
    wrong_structure    a section, block, stage or list item of the wrong shape
    deep_nesting       lists and mappings nested 100 to 50,000 deep
    huge_values        5,000-digit integers, 1e999, megabyte strings, 10**7 batches
    yaml_alias         alias bombs ("billion laughs"), merge trees, recursive and many aliases
    yaml_tag           !!python/..., !!binary, !!set, unknown and mismatched tags
    hierarchy_path     graph: paths that are long, absolute, outside, special files,
                       self/mutual inclusion, 2^22-block bombs, huge and odd files
    expression_attack  code execution, attribute access, lambdas, giant powers/repeats,
                       cycles, very long expressions, in variables, params and losses

Case ``i`` depends only on (seed, i), so a run of N cases is a prefix of a run of more.
Every attack that would run code tries to create the marker file; the caller checks it
never appears.

``python tests/fuzz_graphs.py --cases 1500 [--code DIR]`` validates the cases with the
engine in DIR (default: this checkout) and prints a table per class: this is how
docs/robustness.md measured main before and this branch after.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("delete_key", "rename_key", "retype_value", "wrong_structure", "deep_nesting", "huge_values",
         "yaml_alias", "yaml_tag", "hierarchy_path", "expression_attack")
MARKER = "FUZZ_MARKER"        # the file attacks try to create, in the fuzz directory


@dataclass
class Case:
    index: int
    kind: str
    name: str                                   # short description, e.g. "deepjscc_awgn: train[0].steps"
    files: dict = field(default_factory=dict)   # relative path -> str | bytes | ("symlink", target)
    entry: str = "graph.yaml"


def seed_graphs(root: Path = ROOT) -> dict:
    """The shipped graphs (name -> text) that mutations start from."""
    out = {}
    for p in sorted((root / "graphs").rglob("*.yaml")):
        if "parts" in p.parts or "studies" in p.parts:
            continue
        out[p.relative_to(root / "graphs").as_posix()] = p.read_text()
    return out


# --------------------------------------------------------------------------------------
# Helpers on plain YAML data
# --------------------------------------------------------------------------------------

def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _get(data, path):
    for k in path:
        data = data[k]
    return data


def _set(data, path, value):
    _get(data, path[:-1])[path[-1]] = value


def _show(path) -> str:
    return ".".join(str(k) for k in path)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)    # libyaml when present: generation is not under test
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_PARSED: dict = {}


def _dump(data) -> str:
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=120)


def _typo(rng, key: str) -> str:
    if not key:
        return "x"
    ops = [lambda k: k[:-1], lambda k: k + "s", lambda k: k.upper(), lambda k: k[1:] + k[0],
           lambda k: k.replace("_", "") if "_" in k else k + "_", lambda k: k[0] + k[0] + k[1:],
           lambda k: " " + k, lambda k: k + "-1"]
    new = rng.choice(ops)(key)
    return new if new != key else key + "x"


def _weird(rng, marker: str):
    return rng.choice([
        0, -1, 1, 2 ** 31, 10 ** 18, 3.5, -0.0, float("nan"), float("inf"), -float("inf"), True, False, None,
        "", "x", "$nope", "=1/0", "uniform(0, 20)", "choice([])", "randint(5, 1)", [], [1, 2], {}, {"a": 1},
        "a" * 5000, [[[]]], "sink.psnr", "graph:", "0x10", "$", "= $", "[1, 2", "{a: 1",
        f"=open('{marker}', 'w')", "🙂", "\u0000", "\\", "a\nb", ["$nope"], {"type": 5}])


# --------------------------------------------------------------------------------------
# The mutation classes
# --------------------------------------------------------------------------------------

def _pick_graph(rng, graphs):
    name = rng.choice(sorted(graphs))
    key = (name, graphs[name])
    if key not in _PARSED:
        _PARSED[key] = yaml.load(graphs[name], Loader=_LOADER)
    return name, copy.deepcopy(_PARSED[key])


def m_delete_key(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    path = rng.choice(list(_paths(data)))
    parent = _get(data, path[:-1])
    del parent[path[-1]]
    return f"{name}: delete {_show(path)}", {"graph.yaml": _dump(data)}


def m_rename_key(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    keys = [p for p in _paths(data) if isinstance(p[-1], str)]
    path = rng.choice(keys)
    parent = _get(data, path[:-1])
    new = _typo(rng, path[-1])
    items = [(new if k == path[-1] else k, v) for k, v in parent.items()]
    parent.clear()
    parent.update(items)
    return f"{name}: rename {_show(path)} -> {new!r}", {"graph.yaml": _dump(data)}


def m_retype_value(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    path = rng.choice(list(_paths(data)))
    value = _weird(rng, marker)
    _set(data, path, value)
    return f"{name}: {_show(path)} = {repr(value)[:40]}", {"graph.yaml": _dump(data)}


def m_wrong_structure(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    choice = rng.randrange(6)
    shapes = [5, "text", [1, 2], {"a": 1}, None, [[{"x": [1]}]], True]
    if choice == 0:                                  # a whole section
        key = rng.choice(["variables", "blocks", "connections", "train", "evaluate", "presets", "ports", "gui",
                          "format", "name", "description"])
        data[key] = rng.choice(shapes)
        what = key
    elif choice == 1 and data.get("blocks"):          # a block entry
        b = rng.choice(list(data["blocks"]))
        data["blocks"][b] = rng.choice(shapes + [{"type": [1]}, {"type": "sink.psnr", "params": [1]}])
        what = f"blocks.{b}"
    elif choice == 2 and data.get("train"):           # a stage, or its parts
        st = data["train"][0]
        key = rng.choice(["trainable", "loss", "optimizer", "schedule", "copy_weights", "variables", "steps"])
        st[key] = rng.choice(shapes + [{"type": {"nested": 1}}])
        what = f"train[0].{key}"
    elif choice == 3 and data.get("connections"):     # a connection
        i = rng.randrange(len(data["connections"]))
        data["connections"][i] = rng.choice(shapes + ["a -> b", "a.b -> ", "->", "a.b -> c.d -> e.f"])
        what = f"connections[{i}]"
    elif choice == 4 and data.get("presets"):         # a preset
        p = rng.choice(list(data["presets"]))
        data["presets"][p] = rng.choice(shapes + [{"steps": [1, 2]}, {"nope": 1}])
        what = f"presets.{p}"
    else:                                             # the whole file
        data = rng.choice([[data], "just text", 42, None, [], {}])
        what = "file"
    return f"{name}: {what}", {"graph.yaml": _dump(data)}


def m_deep_nesting(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    depth = rng.choice([100, 1000, 5000, 50000])
    style = rng.choice(["list", "map", "mixed"])
    if style == "list":
        deep = "[" * depth + "1" + "]" * depth
    elif style == "map":
        deep = "{a: " * depth + "1" + "}" * depth
    else:
        deep = "[{a: " * (depth // 2) + "1" + "}]" * (depth // 2)
    path = rng.choice([p for p in _paths(data)] or [("variables",)])
    _set(data, path, "__DEEP__")
    text = _dump(data).replace("__DEEP__", deep)
    return f"{name}: {_show(path)} nested {depth} ({style})", {"graph.yaml": text}


def m_huge_values(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    kind = rng.randrange(7)
    if kind == 0:
        value, shown = "9" * rng.choice([25, 400, 5000]), "huge int literal"
    elif kind == 1:
        value, shown = rng.choice(["1e999", "-1e999", "1e-999", ".inf", "-.nan"]), "overflowing float"
    elif kind == 2:
        value, shown = "'" + "y" * rng.choice([100_000, 900_000, 1_200_000]) + "'", "megabyte string"
    elif kind == 3:
        value, shown = str(rng.choice([10 ** 7, 10 ** 9, 10 ** 12, 2 ** 62])), "huge count"
    elif kind == 4:
        value, shown = "[" + ", ".join(["0"] * rng.choice([1000, 200_000])) + "]", "long list"
    elif kind == 5:
        value, shown = "'" + "k" * 4000 + "'", "4000-character key"
    else:
        value, shown = "-" + "9" * 19, "int below -2**63"
    if kind == 5:
        section = rng.choice(["variables", "blocks", "presets"])
        if isinstance(data.get(section), dict):
            data[section]["__KEY__"] = 1
        text = _dump(data).replace("__KEY__", value)
    else:
        paths = [p for p in _paths(data)]
        if kind == 3 and isinstance(data.get("variables"), dict):   # where counts matter
            paths = [("variables", k) for k in data["variables"]] or paths
        path = rng.choice(paths)
        _set(data, path, "__HUGE__")
        text = _dump(data).replace("'__HUGE__'", value).replace("__HUGE__", value)
    return f"{name}: {shown}", {"graph.yaml": text}


def _laughs(width, levels, prefix="l"):
    lines = [f"{prefix}0: &{prefix}0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{prefix}{i}: &{prefix}{i} [" + ", ".join([f"*{prefix}{i - 1}"] * width) + "]")
    return lines


def m_yaml_alias(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    text = _dump(data)
    kind = rng.randrange(7)
    if kind in (0, 1, 2):     # a bomb in variables, the description, or a runtime value
        width, levels = rng.choice([(9, 9), (10, 8), (4, 20)])
        bomb = "\n".join("  " + ln for ln in _laughs(width, levels))
        last = f"*l{levels - 1}"
        if kind == 0:
            text = text.replace("variables:\n", f"variables:\n{bomb}\n", 1) if "variables:\n" in text else \
                text + f"variables:\n{bomb}\n"
            shown = "billion laughs in variables"
        elif kind == 1:
            text = f"x_bomb:\n{bomb}\n" + re.sub(r"^description:.*?(?=^\S)", "", text, flags=re.S | re.M)
            text += f"description: {last}\n"
            shown = "billion laughs as the description"
        else:
            text = text.replace("variables:\n", f"variables:\n{bomb}\n  snr_db: {last}\n", 1)
            shown = "billion laughs as snr_db"
    elif kind == 3:           # a tree of merge keys
        lines = ["m0: &m0 {a: 1, b: 2}"]
        for i in range(1, 25):
            lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}], k{i}: {{<<: *m{i - 1}}}, j{i}: {{<<: *m{i - 1}}}}}")
        text = "\n".join(lines) + "\n" + text
        shown = "nested merge tree"
    elif kind == 4:           # recursive alias
        text = text.replace("variables:\n", "variables:\n  loop: &loop [1, *loop]\n", 1)
        shown = "recursive alias"
    elif kind == 5:           # many aliases of a small value
        n = rng.choice([50, 150, 5000])
        text = text.replace("variables:\n", "variables:\n  base: &base 1\n" +
                            "".join(f"  v{i}: *base\n" for i in range(n)), 1)
        shown = f"{n} aliases"
    else:                     # a benign reuse of a preset (should still validate)
        if isinstance(data.get("presets"), dict) and data["presets"]:
            first = next(iter(data["presets"]))
            data["presets"]["again"] = data["presets"][first]     # dumped as &id001 ... *id001
        text = _dump(data)
        shown = "benign anchor"
    return f"{name}: {shown}", {"graph.yaml": text}


def m_yaml_tag(rng, graphs, marker):
    name, data = _pick_graph(rng, graphs)
    tags = [f"!!python/object/apply:os.system ['touch {marker}']",
            f"!!python/object/apply:subprocess.call [['touch', '{marker}']]",
            "!!python/name:os.system", "!!python/module:os", "!!python/object/new:dict {}",
            f"!!python/object/apply:builtins.eval [\"open('{marker}', 'w')\"]",
            "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [{a: 1}]", "!!pairs [{a: 1}]",
            "!!timestamp 2001-12-14", "!custom value", "!!int notanint", "!!float x", "!!str 5",
            "!!bool maybe", "!!null x", "!!map [1, 2]", "!!seq {a: 1}", "!<tag:evil.com,2024:x> 1"]
    tag = rng.choice(tags)
    path = rng.choice(list(_paths(data)))
    _set(data, path, "__TAG__")
    text = _dump(data).replace("__TAG__", tag)
    return f"{name}: {_show(path)} = {tag[:40]}", {"graph.yaml": text}


_SUB = """\
format: 1
name: sub
variables: {snr_db: 10}
ports:
  inputs: {x: ch.x}
  outputs: {y: ch.y}
blocks:
  ch: {type: channel.awgn, params: {snr_db: $snr_db}}
"""


def _with_graph_block(path: str) -> str:
    """deepjscc_awgn with its channel as a graph block at ``path``."""
    text = (ROOT / "graphs" / "deepjscc_awgn.yaml").read_text()
    return text.replace("  ch:     {type: channel.awgn, params: {snr_db: $snr_db}}",
                        f"  ch:     {{type: {json.dumps('graph:' + path)}, params: {{snr_db: $snr_db}}}}")


def m_hierarchy_path(rng, graphs, marker):
    kind = rng.randrange(16)
    files = {"parts/sub.yaml": _SUB}
    paths = {0: "x" * 4000 + ".yaml", 1: "/etc/passwd", 2: "../" * 12 + "etc/passwd", 3: "/dev/zero",
             4: "/dev/stdin", 5: "/proc/self/environ", 6: "graph.yaml", 7: "parts/", 8: "nul\u0000.yaml",
             9: "", 10: "parts/sub.yaml/../../graph.yaml"}
    if kind in paths:
        path, shown = paths[kind], f"graph:{paths[kind][:30]!r}"
    elif kind == 11:        # mutual inclusion
        files["parts/a.yaml"] = _SUB.replace("  ch: {type: channel.awgn, params: {snr_db: $snr_db}}",
                                             "  ch: {type: 'graph:b.yaml'}")
        files["parts/b.yaml"] = files["parts/a.yaml"].replace("b.yaml", "a.yaml")
        path, shown = "parts/a.yaml", "mutual inclusion"
    elif kind == 12:        # the hierarchy bomb: 22 levels, each including the next twice
        for i in range(22):
            body = (f"  a: {{type: 'graph:l{i + 1}.yaml'}}\n  b: {{type: 'graph:l{i + 1}.yaml'}}\n" if i < 21
                    else "  a: {type: channel.awgn}\n")
            files[f"parts/l{i}.yaml"] = f"format: 1\nname: l{i}\nports: {{inputs: {{x: a.x}}, outputs: {{y: a.y}}}}\n" \
                                        f"blocks:\n{body}"
        path, shown = "parts/l0.yaml", "2^22-block bomb"
    elif kind == 13:        # a very large file, and an odd one
        big = rng.choice([2_000_000, 5_000_000])
        files["parts/big.yaml"] = "format: 1\n#" + "x" * big + "\n"
        path, shown = "parts/big.yaml", f"{big // 10 ** 6} MB file"
    elif kind == 14:
        files["parts/odd.yaml"] = rng.choice([b"\x00\xff\xfe" * 100, b"", b"- 1\n- 2\n", b"format: 1\n",
                                              ("symlink", "odd.yaml"), ("symlink", "/etc/passwd")])
        path, shown = "parts/odd.yaml", "odd file"
    else:
        path, shown = "graph:graph:parts/sub.yaml", "doubled prefix"
    files["graph.yaml"] = _with_graph_block(path)
    return f"hierarchy: {shown}", files


def m_expression_attack(rng, graphs, marker):
    attacks = [
        f"__import__('os').system('touch {marker}')", f"=open('{marker}', 'w').write('x')",
        "$c.__class__.__mro__", "=(lambda: 1)()", "=[x for x in range(10)]", "=9 ** 9 ** 9",
        "='x' * 10 ** 9", "=range(10 ** 12)", "=[0] * 10 ** 9", "=eval('1')", f"=exec('open(\"{marker}\", \"w\")')",
        "=getattr(1, 'real')", "=globals()", "=__builtins__", "=f'{1}'", "=" + "(" * 100_000 + "1" + ")" * 100_000,
        "=" + "-" * 5000 + "1", "=" + "+".join(["1"] * 5000), "=().__class__.__bases__[0].__subclasses__()",
        "=[[0] * 10 ** 5] * 10 ** 5", "=round(10 ** 300, -10 ** 9)", "=2 ** 10000", "=sum([[1]] * 1000, [])",
        "=str(list(range(100000)))", "=linspace(0, 1, 10 ** 9)", "=max(range(10 ** 8))", "=$nope + 1",
        "=1 if $c else 2", "=(1).__add__(2)", "=[1, 2][10 ** 20]", "=\u00bd", "$c $c",
    ]
    name, data = _pick_graph(rng, graphs)
    attack = rng.choice(attacks)
    where = rng.randrange(4)
    if where == 0 and isinstance(data.get("variables"), dict) and data["variables"]:
        k = rng.choice(list(data["variables"]))
        data["variables"][k] = attack
        shown = f"variables.{k}"
    elif where == 1 and isinstance(data.get("blocks"), dict):
        b = rng.choice(list(data["blocks"]))
        entry = data["blocks"][b]
        if isinstance(entry, dict):
            entry.setdefault("params", {})
            if isinstance(entry["params"], dict):
                entry["params"]["channels" if "channels" in entry["params"] else (list(entry["params"]) or ["x"])[0]] \
                    = attack
        shown = f"blocks.{b}.params"
    elif where == 2 and data.get("train"):
        data["train"][0]["loss"] = rng.choice([f"mse(dec.image, src.image) + {attack.lstrip('=')}",
                                               "mse(dec.image, src.image).__class__", attack])
        shown = "train[0].loss"
    else:
        data.setdefault("variables", {})
        if isinstance(data["variables"], dict):
            data["variables"].update({"a": "$b", "b": "$a"} if rng.random() < 0.3 else {"evil": attack})
        shown = "variables"
    return f"{name}: {shown} = {attack[:40]!r}", {"graph.yaml": _dump(data)}


MUTATIONS = {k: globals()[f"m_{k}"] for k in KINDS}


def generate(graphs: dict, n: int, seed: int = 0, marker: str = MARKER) -> list[Case]:
    """``n`` cases, classes in turn; case ``i`` depends only on (seed, i)."""
    cases = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        rng = random.Random(f"{seed}:{i}")
        name, files = MUTATIONS[kind](rng, graphs, marker)
        cases.append(Case(i, kind, name, files))
    return cases


def write_case(case: Case, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rel, content in case.files.items():
        p = directory / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple) and content[0] == "symlink":
            p.symlink_to(content[1])
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return directory / case.entry


# --------------------------------------------------------------------------------------
# Running: one worker process validates the cases; a case over the time limit is a hang
# --------------------------------------------------------------------------------------

@dataclass
class Outcome:
    case: Case
    status: str          # ok | error | traceback | hang | unlocated
    seconds: float
    lines: list
    detail: str = ""


_LOCATED = re.compile(r"^(?P<file>[^\n]+?\.ya?ml|[^\n:]+)(?::\d+)?: \S")


def classify(case: Case, case_dir: Path, reply: dict | None, seconds: float) -> Outcome:
    if reply is None:
        return Outcome(case, "hang", seconds, [], "killed at the time limit")
    if reply.get("traceback"):
        return Outcome(case, "traceback", seconds, [], reply["traceback"].strip().splitlines()[-1][:300])
    lines = [ln for ln in (reply.get("out", "") + reply.get("err", "")).splitlines() if ln.strip()]
    if reply.get("rc") == 0 and len(lines) == 1 and lines[0].endswith(")") and ": ok (" in lines[0]:
        return Outcome(case, "ok", seconds, lines)
    prefix = str(case_dir)
    bad = [ln for ln in lines if not (ln.startswith(prefix) and _LOCATED.match(ln)) or len(ln) > 2000]
    if reply.get("rc") != 1 or not lines or bad:
        return Outcome(case, "unlocated", seconds, lines, (bad or lines or [f"rc {reply.get('rc')}"])[0][:300])
    return Outcome(case, "error", seconds, lines)


class Worker:
    """A `python tests/fuzz_worker.py` process; restarted after a hang."""

    def __init__(self, code_root: Path, memory_limit: int):
        self.code_root, self.memory_limit = code_root, memory_limit
        self.proc = None

    def start(self):
        env = {**os.environ, "PYTHONPATH": str(self.code_root), "FUZZ_MEMORY_LIMIT": str(self.memory_limit)}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fuzz_worker.py")], cwd=self.code_root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        line = self._read(300)            # imports torch and the block library: slow on a busy machine
        if line is None or not line.startswith("ready"):
            raise RuntimeError(f"fuzz worker did not start: {line!r}")

    def _read(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else None

    def validate(self, path: Path, timeout: float):
        """(reply or None after a hang, seconds the case took; a restart is not counted)."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        t0 = time.monotonic()
        self.proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        self.proc.stdin.flush()
        line = self._read(timeout)
        seconds = time.monotonic() - t0
        if not line:
            self.stop()
            return None, seconds
        return json.loads(line), seconds

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def run_cases(cases, directory: Path, code_root: Path = ROOT, timeout: float = 20.0,
              memory_limit: int = 6 * 2 ** 30, progress=None, keep: bool = False) -> list[Outcome]:
    worker = Worker(code_root, memory_limit)
    outcomes = []
    try:
        for case in cases:
            case_dir = directory / f"case{case.index:05d}"
            entry = write_case(case, case_dir)
            reply, seconds = worker.validate(entry, timeout)
            outcomes.append(classify(case, case_dir, reply, seconds))
            if not keep:
                shutil.rmtree(case_dir, ignore_errors=True)
            if progress:
                progress(outcomes[-1])
    finally:
        worker.stop()
    return outcomes


def table(outcomes) -> str:
    """Markdown: one row per mutation class, counts per outcome."""
    cols = ["ok", "error", "unlocated", "traceback", "hang"]
    rows = ["| class | cases | validates | one-line located error | other output | traceback | hang (> limit) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    totals = dict.fromkeys(cols, 0)
    for kind in KINDS:
        mine = [o for o in outcomes if o.case.kind == kind]
        counts = {c: sum(o.status == c for o in mine) for c in cols}
        for c in cols:
            totals[c] += counts[c]
        rows.append(f"| {kind} | {len(mine)} | " + " | ".join(str(counts[c]) for c in cols) + " |")
    rows.append(f"| **all** | {len(outcomes)} | " + " | ".join(f"**{totals[c]}**" for c in cols) + " |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose engine validates the cases")
    ap.add_argument("--graphs", type=Path, default=None, help="checkout whose graphs/ are mutated (default --code)")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--show", default="traceback,hang,unlocated", help="outcomes to list one per line")
    ap.add_argument("--only", default="", help="comma-separated case indices to run (of --cases)")
    ap.add_argument("--json", type=Path, default=None, help="write every outcome (index, kind, status, lines)")
    args = ap.parse_args(argv)
    import tempfile
    directory = args.dir or Path(tempfile.mkdtemp(prefix="semflow-fuzz-"))
    marker = directory / MARKER
    cases = generate(seed_graphs(args.graphs or args.code), args.cases, args.seed, str(marker))
    if args.only:
        keep = {int(i) for i in args.only.split(",")}
        cases = [c for c in cases if c.index in keep]
    t0 = time.monotonic()
    outcomes = run_cases(cases, directory, args.code.resolve(), args.timeout,
                         progress=lambda o: print(f"\r{o.case.index + 1}/{len(cases)}", end="", file=sys.stderr))
    print(file=sys.stderr)
    print(table(outcomes))
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"\n{len(cases)} cases in {time.monotonic() - t0:.0f} s (slowest {slowest.seconds:.1f} s: "
          f"[{slowest.case.kind}] {slowest.case.name[:60]}); code executed: {marker.exists()}")
    if args.json:
        args.json.write_text(json.dumps([{"index": o.case.index, "kind": o.case.kind, "name": o.case.name,
                                          "status": o.status, "seconds": round(o.seconds, 3),
                                          "lines": [ln[:300] for ln in o.lines[:5]], "detail": o.detail}
                                         for o in outcomes], indent=1))
    show = set(args.show.split(","))
    for o in outcomes:
        if o.status in show:
            print(f"- {o.status}: [{o.case.kind}] {o.case.name}: {o.detail}")


if __name__ == "__main__":
    main()
