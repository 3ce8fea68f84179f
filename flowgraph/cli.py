"""``semflow`` command line (also ``python -m flowgraph``).

    semflow validate GRAPH...                 report every problem, exit 1 on any
    semflow run GRAPH [--preset P] [--set VAR=VALUE]... [--out DIR] [--device cpu|cuda]
                      [--seed N] [--resume] [--tensorboard]   train stages, then evaluate
    semflow train GRAPH ...                   training stages only
    semflow eval GRAPH --checkpoint PATH ...  evaluation only
    semflow study STUDY.yaml [--jobs N] [--preset P] [--dry-run]   many runs, one comparison
    semflow compare RUN_OR_STUDY... [--out DIR]                    overlay runs: PNG, table, CSV
    semflow blocks [STAGE|PATTERN] [--json]   list registered blocks
    semflow describe TYPE...                  blocks' ports, params and doc
    semflow gui [GRAPH]                       the Qt editor (needs the gui extra)

Every error is one line ``semflow: error: ...`` and a non-zero exit. SIGINT/SIGTERM
during training write a checkpoint first (``--resume`` continues).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import textwrap
from pathlib import Path

import yaml

from . import registry
from .errors import SemflowError, ValidationError, did_you_mean


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


def _limits(args):
    from .limits import Limits
    return Limits(force=getattr(args, "force", False), allow_outside_paths=getattr(args, "allow_outside_paths", False))


def cmd_validate(args) -> int:
    """Without --preset, the graph as written and under each of its presets."""
    from .compile import validate_graph
    bad = 0
    for path in args.graphs:
        try:
            spec = _graph(path)
            problems, cg = validate_graph(spec, preset=args.preset, overrides=_parse_set(args.set),
                                          limits=_limits(args), with_graph=True)
        except SemflowError as exc:
            print(str(exc))
            bad += 1
            continue
        for note in cg.notes:
            print(note)
        if problems:
            bad += 1
            for p in problems:
                print(p)
        else:
            presets = f", {len(spec.presets)} presets" if spec.presets and not args.preset else ""
            print(f"{path}: ok ({len(cg.blocks)} blocks, {len(cg.edges)} connections{presets})")
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
    taps = None
    if getattr(args, "tensorboard", None) is not None:
        from .taps import TapHub
        from .tensorboard import require_tensorboard
        require_tensorboard()        # one line before any work when the extra is missing
        taps = TapHub()
    r = Runner(spec, preset=args.preset, overrides=_parse_set(args.set), out=out or args.out,
               device=args.device, seed=args.seed, quiet=args.quiet, command=sys.argv,
               resume=getattr(args, "resume", False), taps=taps, limits=_limits(args))
    if taps is not None:
        from .tensorboard import TensorBoardLogger
        r.tensorboard = TensorBoardLogger(r, args.tensorboard or None)
        r.log(f"tensorboard: {r.tensorboard.logdir}")
    return r


def _finish(r, work) -> int:
    """Run ``work()`` with SIGINT/SIGTERM turned into a stop with a checkpoint; close the run."""
    from .rundir import stop_on_signals
    try:
        with stop_on_signals(r) as signals:
            work()
        if signals:
            import signal as _signal
            name = _signal.Signals(signals[0]).name
            ckpt = f"checkpoint {r.checkpoint_path}; " if r.checkpoint_path.is_file() else ""
            r.log(f"semflow: stopped by {name}; {ckpt}continue with --resume --out {r.out}")
            return 128 + int(signals[0])
    finally:
        if getattr(r, "tensorboard", None) is not None:
            r.tensorboard.close()
        r.close()
    return 0


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
    return _finish(r, lambda: r.run(stop_after=args.stop_after))


def cmd_train(args) -> int:
    r = _runner(args, _resume_dir(args))

    def work():
        r.train(stop_after=args.stop_after)
        r.log(f"checkpoint: {r.checkpoint_path}")
    return _finish(r, work)


def cmd_eval(args) -> int:
    r = _runner(args)

    def work():
        r.load_weights(args.checkpoint, allow_other_graph=args.allow_other_graph)
        r.evaluate()
        r.log(f"run directory: {r.out}")
    return _finish(r, work)


def cmd_study(args) -> int:
    from .study import run_study
    return run_study(args.study, out=args.out, jobs=args.jobs, preset=args.preset, overrides=_parse_set(args.set),
                     threads=args.threads, dry_run=args.dry_run, device=args.device)


def cmd_compare(args) -> int:
    from .compare import compare_main
    return compare_main(args.inputs, out=args.out, metrics=args.metrics, x=args.x, panels=args.panels,
                        baseline=args.baseline, series=args.series)


_ABBREVIATIONS = ("e.g.", "i.e.", "al.", "eq.", "eqs.", "fig.", "figs.", "cf.", "vs.", "sec.", "no.", "approx.")


def summary(cls) -> str:
    """A block's one-line summary: the first sentence of its docstring, whole (a full stop
    inside parentheses or after e.g., et al., eq. ... does not end it)."""
    para = (cls.__doc__ or "").strip().split("\n\n")[0]
    text = " ".join(line.strip() for line in para.splitlines())
    depth = 0
    for m in re.finditer(r"[()]|[.!?](?=\s+[A-Z])", text):
        c = m.group()
        if c in "()":
            depth += 1 if c == "(" else -1
        elif depth <= 0 and not text[:m.end()].lower().endswith(_ABBREVIATIONS):
            return text[:m.end()]
    return text


def _select_blocks(pattern: str | None) -> dict:
    types = registry.all_types()
    if not pattern:
        return types
    stages = {c.stage() for c in types.values()}
    if pattern in stages:
        return {t: c for t, c in types.items() if c.stage() == pattern}
    glob = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
    hit = {t: c for t, c in types.items() if fnmatch.fnmatch(t, glob)}
    if not hit:
        raise SemflowError(f"no block type or stage matches '{pattern}'"
                           + (did_you_mean(pattern, sorted(stages | set(types))) or
                              f" (stages: {', '.join(sorted(stages))})"))
    return hit


def cmd_blocks(args) -> int:
    types = _select_blocks(args.pattern)
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
            print(f"  {c.type_id:32s} {ins or '-'} -> {outs or '-'}")
            doc = summary(c)
            if doc:
                print(textwrap.fill(doc, width=120, initial_indent=" " * 35, subsequent_indent=" " * 35))
    for p in registry.plugin_problems:
        print(f"warning: {p}")
    return 0


def cmd_describe(args) -> int:
    classes = [registry.get(t) for t in args.types]     # an unknown type fails before any output
    for i, cls in enumerate(classes):
        if i:
            print("\n" + "-" * 80 + "\n")
        _describe(cls)
    return 0


def _describe(cls) -> None:
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


def cmd_gui(args) -> int:
    try:
        from gui.app import main as gui_main
    except ImportError as exc:
        raise SemflowError(f"the GUI needs the project's gui extra (pip install -e '.[gui]'): {exc}") from None
    return gui_main([args.graph] if args.graph else [])


def _safety_flags(sp):
    sp.add_argument("--force", action="store_true",
                    help="lift the run limits (sweep points, evaluated examples, memory; docs/robustness.md)")
    sp.add_argument("--allow-outside-paths", action="store_true",
                    help="let graph blocks name files outside the graph's folder and project")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="semflow", description="Block-flow-graph runs for semantic communication research.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    v = sub.add_parser("validate", help="check graphs; print every problem")
    v.add_argument("graphs", nargs="+")
    v.add_argument("--preset")
    v.add_argument("--set", action="append", metavar="VAR=VALUE")
    _safety_flags(v)
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
        _safety_flags(sp)
        sp.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                        help="log losses, metrics and image grids for TensorBoard (default DIR: RUN/tensorboard; "
                             "needs the tensorboard extra)")
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
    e.add_argument("--allow-other-graph", action="store_true",
                   help="load a checkpoint written by another graph (same block names and shapes)")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("study", help="run a study (graphs x presets x settings x seeds), then compare")
    s.add_argument("study")
    s.add_argument("--out", help="study directory (default runs/studies/<name>[-<preset>])")
    s.add_argument("--jobs", type=int, default=1, help="points run in parallel processes")
    s.add_argument("--preset", help="run every point with this preset (e.g. smoke) instead of the study's")
    s.add_argument("--set", action="append", metavar="VAR=VALUE", help="override a variable in every point")
    s.add_argument("--threads", type=int, default=None, help="torch threads per point (default: the study's, or 1)")
    s.add_argument("--device", default=None, help="device of every point (default: the study's, or cpu)")
    s.add_argument("--dry-run", action="store_true", help="validate every point and list them; run nothing")
    s.set_defaults(func=cmd_study)
    c = sub.add_parser("compare", help="overlay the curves of runs or studies: PNG per metric, table, tidy CSV")
    c.add_argument("inputs", nargs="+", metavar="RUN_OR_STUDY", help="a run or study directory, or LABEL=RUN_DIR")
    c.add_argument("--out", help="output directory (default: STUDY/compare for one study, else runs/compare-<time>)")
    c.add_argument("--metrics", help="comma-separated metric columns (default: all)")
    c.add_argument("--x", help="x-axis sweep variable (default: the first)")
    c.add_argument("--panels", help="variable whose values become small multiples")
    c.add_argument("--series", help="'label' (default: a line per run or variant) or a variable: a line per value")
    c.add_argument("--baseline", help="label that differences are stated against (default: the first)")
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser("blocks", help="list registered blocks (all, one stage, or matching a pattern)")
    b.add_argument("pattern", nargs="?", metavar="STAGE|PATTERN", help="a stage (channel) or a glob (*ofdm*)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_blocks)
    d = sub.add_parser("describe", help="describe block types")
    d.add_argument("types", nargs="+", metavar="TYPE")
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
        if len(exc.problems) == 1:
            print(f"semflow: error: {exc.problems[0]}", file=sys.stderr)
            return 1
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
    except BrokenPipeError:     # `semflow blocks | head`: the reader left; not an error of ours
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
