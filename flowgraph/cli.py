"""``semflow`` command line (also ``python -m flowgraph``).

    semflow validate GRAPH...                 report every problem, exit 1 on any
    semflow run GRAPH [--preset P] [--set VAR=VALUE]... [--out DIR] [--device cpu|cuda]
                      [--seed N] [--resume]   train stages, then evaluate
    semflow train GRAPH ...                   training stages only
    semflow eval GRAPH --checkpoint PATH ...  evaluation only
    semflow blocks [--json]                   list registered blocks
    semflow describe TYPE                     one block's ports, params and doc
    semflow gui [GRAPH]                       the Qt editor (needs the gui extra)

Every error is one line ``semflow: error: ...`` and a non-zero exit.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import yaml

from . import registry
from .errors import SemflowError, ValidationError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"semflow: error: {message}\n")


def _parse_set(items) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SemflowError(f"--set {item!r}: expected VAR=VALUE, e.g. --set snr_db=5")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k.isidentifier():
            raise SemflowError(f"--set {item!r}: '{k}' is not a variable name")
        try:
            out[k] = yaml.safe_load(v) if v.strip() else ""
        except yaml.YAMLError:
            out[k] = v
    return out


def _parse_sweep(items) -> dict:
    """--sweep VAR=[v1, v2, ...] (repeatable): the evaluation grid, in the order given."""
    out = {}
    for item in items or []:
        k, _, v = item.partition("=")
        k = k.strip()
        try:
            vals = yaml.safe_load(v) if v.strip() else None
        except yaml.YAMLError:
            vals = None
        if not k.isidentifier() or not isinstance(vals, list) or not vals:
            raise SemflowError(f"--sweep {item!r}: expected VAR=[v1, v2, ...], e.g. --sweep snr_db=[0,5,10]")
        out[k] = vals
    return out


def _graph(path):
    from .graph import load_graph
    return load_graph(path)


def cmd_validate(args) -> int:
    from .compile import compile_graph
    bad = 0
    for path in args.graphs:
        try:
            spec = _graph(path)
            cg = compile_graph(spec, preset=args.preset, overrides=_parse_set(args.set))
        except SemflowError as exc:
            print(str(exc))
            bad += 1
            continue
        for note in cg.notes:
            print(note)
        if cg.problems:
            bad += 1
            for p in cg.problems:
                print(p)
        else:
            print(f"{path}: ok ({len(cg.blocks)} blocks, {len(cg.edges)} connections)")
    return 1 if bad else 0


def _runner(args, out=None):
    from .run import Runner
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    spec = _graph(args.graph)
    sweep = _parse_sweep(getattr(args, "sweep", None))
    if sweep:   # replaces the graph's evaluate.sweep; validation then checks the names
        spec.evaluate = {**(spec.evaluate or {}), "sweep": sweep}
    return Runner(spec, preset=args.preset, overrides=_parse_set(args.set), out=out or args.out,
                  device=args.device, seed=args.seed, quiet=args.quiet, command=sys.argv)


def _resume_dir(args):
    """--resume without --out continues the newest run directory of this graph+preset."""
    if args.out or not getattr(args, "resume", False):
        return args.out
    from .graph import load_graph
    name = load_graph(args.graph).name
    runs = sorted(Path("runs").glob(f"{name}-{args.preset or 'default'}-*"))
    runs = [r for r in runs if (r / "checkpoints" / "last.pt").is_file()]
    if not runs:
        raise SemflowError(f"--resume: no earlier run of '{name}' (preset {args.preset or 'default'}) "
                           f"with a checkpoint under runs/; pass --out DIR")
    return str(runs[-1])


def cmd_run(args) -> int:
    r = _runner(args, _resume_dir(args))
    try:
        r.run(resume=args.resume, stop_after=args.stop_after)
    finally:
        r.close()
    return 0


def cmd_train(args) -> int:
    r = _runner(args, _resume_dir(args))
    try:
        r.train(resume=args.resume, stop_after=args.stop_after)
        r.log(f"checkpoint: {r.checkpoint_path}")
    finally:
        r.close()
    return 0


def cmd_eval(args) -> int:
    r = _runner(args)
    try:
        r.load_weights(args.checkpoint)
        r.evaluate()
        r.log(f"run directory: {r.out}")
    finally:
        r.close()
    return 0


def cmd_blocks(args) -> int:
    types = registry.all_types()
    if args.json:
        print(json.dumps({t: c.describe() for t, c in types.items()}, indent=2, default=str))
        return 0
    by_stage: dict = {}
    for t, c in types.items():
        by_stage.setdefault(c.stage(), []).append(c)
    for stage, classes in by_stage.items():
        print(f"{stage}:")
        for c in classes:
            ins = ", ".join(f"{k}{v.shape_str()}" for k, v in c.inputs.items())
            outs = ", ".join(f"{k}{v.shape_str()}" for k, v in c.outputs.items())
            doc = (c.__doc__ or "").strip().splitlines()[0] if c.__doc__ else ""
            print(f"  {c.type_id:32s} {ins or '-'} -> {outs or '-'}")
            if doc:
                print(f"  {'':32s} {doc[:100]}")
    for p in registry.plugin_problems:
        print(f"warning: {p}")
    return 0


def cmd_describe(args) -> int:
    cls = registry.get(args.type)
    d = cls.describe()
    print(f"{d['type']}  (stage: {d['stage']}, class {cls.__module__}.{cls.__qualname__})\n")
    if d["doc"]:
        print(textwrap.indent(d["doc"], "  ") + "\n")
    for title, key in (("inputs", "inputs"), ("outputs", "outputs")):
        print(f"{title}:")
        for name, p in d[key].items():
            shape = "(*)" if p["shape"] is None else "(" + ",".join(map(str, p["shape"])) + ")"
            extra = " optional" if p["optional"] else ""
            tag = f" [{p['tag']}]" if p["tag"] else ""
            print(f"  {name:14s} {p['kind']:8s} {shape:18s}{tag}{extra}  {p['doc']}")
        if not d[key]:
            print("  (none)")
    print("params:")
    for name, p in d["params"].items():
        default = "REQUIRED" if p["required"] else repr(p["default"])
        flags = " runtime" if p["runtime"] else ""
        choices = f" one of {p['choices']}" if p["choices"] else ""
        print(f"  {name:14s} {p['type']:6s} = {default:12s}{flags}{choices}  {p['doc']}")
    if not d["params"]:
        print("  (none)")
    if d["taps"]:
        print("taps:")
        for name, doc in d["taps"].items():
            print(f"  {name:14s} {doc}")
    return 0


def cmd_gui(args) -> int:
    try:
        from gui.app import main as gui_main
    except ImportError as exc:
        raise SemflowError(f"the GUI needs the project's gui extra (pip install -e '.[gui]'): {exc}") from None
    return gui_main([args.graph] if args.graph else [])


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="semflow", description="Block-flow-graph runs for semantic communication research.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    v = sub.add_parser("validate", help="check graphs; print every problem")
    v.add_argument("graphs", nargs="+")
    v.add_argument("--preset")
    v.add_argument("--set", action="append", metavar="VAR=VALUE")
    v.set_defaults(func=cmd_validate)

    def common(sp, resume=True):
        sp.add_argument("graph")
        sp.add_argument("--preset", help="named overrides from the graph's presets:")
        sp.add_argument("--set", action="append", metavar="VAR=VALUE", help="override a variable (repeatable)")
        sp.add_argument("--sweep", action="append", metavar="VAR=[V1,V2,...]",
                        help="evaluate over this grid instead of the graph's evaluate.sweep (repeatable)")
        sp.add_argument("--out", help="run directory (default runs/<name>-<preset>-<time>)")
        sp.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--quiet", action="store_true", help="log to the run directory only")
        sp.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (default: torch's choice; 1 helps on a busy machine)")
        if resume:
            sp.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
            sp.add_argument("--stop-after", type=int, default=None, metavar="STEPS",
                            help="stop (with a checkpoint) after this many training steps")

    r = sub.add_parser("run", help="train stages, then evaluate")
    common(r)
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("train", help="training stages only")
    common(t)
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="evaluation only, from a checkpoint")
    common(e, resume=False)
    e.add_argument("--checkpoint", required=True)
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("blocks", help="list registered blocks")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_blocks)
    d = sub.add_parser("describe", help="describe one block type")
    d.add_argument("type")
    d.set_defaults(func=cmd_describe)
    g = sub.add_parser("gui", help="open the graph editor")
    g.add_argument("graph", nargs="?")
    g.set_defaults(func=cmd_gui)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"semflow: error: graph has {len(exc.problems)} problem(s); see above", file=sys.stderr)
        return 1
    except SemflowError as exc:
        print(f"semflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("semflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
