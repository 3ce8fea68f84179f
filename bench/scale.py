"""Training throughput: 1 vs 2 gloo processes, --compile vs eager, --amp vs eager (issue 15).

    .venv/bin/python bench/scale.py                  # all three ratios, deepjscc_awgn smoke-size
    .venv/bin/python bench/scale.py --only amp compile --graph graphs/lcfsc.yaml --preset quick

* **compile / amp vs eager**: two Runners in this process train the same graph, A with the
  option and B without, chunk by chunk through ``bench/timing.py`` (``interleave``: random
  order per pair, wall and process-CPU time, median ratio A/B with a bootstrap 95% CI).
  A ratio below 1 means the option is faster. The compiled Runner compiles in the warm-up.
* **2 vs 1 processes**: the same command under torchrun with ``--nproc-per-node`` 1 and 2
  (alternating, ``--repeats`` times each); rank 0 times ``--steps`` training steps after
  ``--warmup`` steps and reports examples per second of the global batch. The ratio is
  throughput(2) / throughput(1): above 1 means data parallelism pays. Process-pair runs
  cannot interleave chunk by chunk, so this ratio is as noisy as the machine.

``bench/gpu_check.py`` runs the compile/amp comparisons on CUDA for the GPU figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from overhead import ENDLESS, engine_train_worker  # noqa: E402
from timing import interleave, report  # noqa: E402

from flowgraph.graph import load_graph  # noqa: E402
from flowgraph.run import Runner  # noqa: E402


def make_runner(args, out, steps=ENDLESS, **options):
    overrides = {"steps": steps, **{k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set or [])}}
    return Runner(load_graph(ROOT / args.graph), preset=args.preset, overrides=overrides, out=out,
                  quiet=True, seed=0, device=args.device, **options)


def against_eager(args, label: str, **options) -> str:
    """Interleaved chunks of a Runner with ``options`` (A) and a plain eager one (B)."""
    with tempfile.TemporaryDirectory() as tmp:
        a = engine_train_worker(make_runner(args, Path(tmp) / "a", **options), args.chunk)
        b = engine_train_worker(make_runner(args, Path(tmp) / "b"), args.chunk)
        t = interleave(a, b, pairs=args.pairs, warmup=args.warmup_chunks, budget_s=args.budget,
                       progress=lambda m: print(m, file=sys.stderr))
    return report(t, f"{label} vs eager ({args.graph}, preset {args.preset}, {args.device})", None,
                  unit=f"{args.chunk}-step chunk")


def ddp_worker(args):
    """Under torchrun: train warmup + steps steps; rank 0 prints examples/s of the global batch."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(os.environ.get("SCALE_OUT", tmp)) / "run"
        r = make_runner(args, out, steps=args.warmup + args.steps)
        marks = {}

        def on_step(_name, row, _ctx):
            if row["step"] in (args.warmup, args.warmup + args.steps):
                marks[row["step"]] = time.perf_counter()
        r.spec.train[0]["log_every"] = 1
        r.taps.subscribe("train.step", on_step, min_interval=0.0)
        batch = r.scheduler.source().p["batch"]
        r.train()
        if r.world.main:
            seconds = marks[args.warmup + args.steps] - marks[args.warmup]
            print(json.dumps({"world": r.world.size, "examples_per_s": args.steps * batch / seconds,
                              "batch": batch, "steps": args.steps}), flush=True)
        r.close()


def processes(args) -> str:
    rates = {1: [], 2: []}
    for _ in range(args.repeats):
        for n in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
                       str(Path(__file__).resolve()), "--ddp-worker", "--graph", args.graph,
                       "--steps", str(args.steps), "--warmup", str(args.warmup)]
                cmd += ["--preset", args.preset] if args.preset else []
                for kv in args.set or []:
                    cmd += ["--set", kv]
                res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SCALE_OUT": tmp,
                                                                               "OMP_NUM_THREADS": "1"})
                line = next((ln for ln in res.stdout.splitlines() if ln.startswith("{")), None)
                if res.returncode or line is None:
                    raise SystemExit(f"torchrun with {n} process(es) failed:\n{res.stderr[-2000:]}")
                rates[n].append(json.loads(line)["examples_per_s"])
                print(f"  {n} process(es): {rates[n][-1]:.1f} examples/s", file=sys.stderr)
    r1, r2 = statistics.median(rates[1]), statistics.median(rates[2])
    return (f"2 vs 1 gloo processes ({args.graph}, preset {args.preset}, global batch fixed, {args.steps} steps "
            f"after {args.warmup}, {args.repeats} runs each): 1 process {r1:.1f} examples/s, 2 processes "
            f"{r2:.1f} examples/s, throughput ratio 2/1 = {r2 / r1:.3f} "
            f"(runs: {', '.join(f'{v:.1f}' for v in rates[1])} | {', '.join(f'{v:.1f}' for v in rates[2])})")


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", default="graphs/deepjscc_awgn.yaml")
    p.add_argument("--preset", default="smoke")
    p.add_argument("--set", action="append", metavar="VAR=VALUE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", nargs="+", choices=("ddp", "compile", "amp"), default=["ddp", "compile", "amp"])
    p.add_argument("--amp", default="bf16", choices=("bf16", "fp16"))
    p.add_argument("--chunk", type=int, default=5, help="training steps per timed chunk (compile/amp)")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--warmup-chunks", type=int, default=2)
    p.add_argument("--budget", type=float, default=None, help="seconds per comparison (compile/amp)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per torchrun run (ddp)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (ddp)")
    p.add_argument("--repeats", type=int, default=2, help="torchrun runs per process count (ddp)")
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(args)
    torch.set_num_threads(1)
    lines = [f"# bench/scale.py {' '.join(sys.argv[1:])}  (torch {torch.__version__}, {os.cpu_count()} CPUs)"]
    if "ddp" in args.only:
        lines.append(processes(args))
    if "compile" in args.only:
        lines.append(against_eager(args, "--compile", compile=True))
    if "amp" in args.only:
        lines.append(against_eager(args, f"--amp {args.amp}", amp=args.amp))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
