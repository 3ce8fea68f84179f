"""Time to quality: PSNR at 10 dB on the CIFAR-10 held-out split after fixed training-time budgets.

A = the ``quick`` recipe of graphs/deepjscc_awgn.yaml, trained by ``Runner.train()`` exactly
    as ``semflow run --preset quick`` trains it (its steps, batch, lr schedule, SNR draws),
    on the CIFAR-10 JPEG tar (``dataset: folder``, the last 500 images per class held out);
B = a plain hand-written DeepJSCC loop of the same model: the same encoder / power norm /
    AWGN / decoder modules and the same data, MSE, Adam at a constant lr, a fixed SNR.

The recipe's length is in steps, not seconds, so by default (``--fit steps``) the bench
measures the recipe's speed first and gives it, for each budget, its own run with
``steps`` = budget x speed: the recipe's schedule then ends at the budget, as a user
would set ``--set steps=N`` for the time they have. ``--fit none`` runs the preset's
steps once and scores it at every budget (finished or not). The hand loop has no
schedule; one run is scored at every budget.

All runs share one process and take turns in short chunks (``bench/timing.py``'s
ChunkedWorker hand-over, a random order per round), so all see the same machine. Each side's
clock is the sum of its own chunks (wall time by default; ``--clock cpu``: process CPU
time per thread, nearly blind to other programs on a shared machine). When a side's
clock passes a budget, its encoder and decoder weights are copied into an evaluation
Runner and scored at 10 dB on the 5000 held-out images, with the same images and noise
draws for both sides (a paired difference); evaluation time is not counted. A recipe
that ends before a budget is scored as it ended. The training JPEGs are decoded once
before any clock starts, so neither side pays for decoding.

    .venv/bin/python bench/time_to_quality.py [--budgets 120 480] [--clock wall|cpu]
        [--threads 1] [--fit steps|none] [--set VAR=VALUE ...] [--hand-lr 1e-3] [--hand-batch 64]
        [--hand-snr 10]

``--set`` changes the recipe (and the model both sides train: ``c``, ``filters``), as on
the semflow command line. Prints, per budget, PSNR of A and B with 95% CIs, A - B with a
paired 95% CI (as soon as both sides are scored at that budget, and again in the final
table), the steps each side took, and the load average.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dataset_loading import DEFAULT as CIFAR_TAR  # noqa: E402
from overhead import hand_train_worker  # noqa: E402
from timing import ChunkedWorker  # noqa: E402

from flowgraph.cli import _parse_set  # noqa: E402
from flowgraph.graph import load_graph  # noqa: E402
from flowgraph.run import Runner  # noqa: E402

GRAPH = ROOT / "graphs/deepjscc_awgn.yaml"
EVAL_SNR = 10.0


class Side:
    """One trainer behind a ChunkedWorker: its Runner, its clock and its step count."""

    def __init__(self, name: str, runner: Runner):
        self.name, self.runner = name, runner
        self.clock = 0.0
        self.done = False        # the recipe ended on its own (its last step ran)
        self.worker: ChunkedWorker | None = None
        self.budgets: list[float] = []   # budgets at which it is still to be scored

    @property
    def steps(self) -> int:
        return self.worker.steps


def recipe_side(runner: Runner, chunk: int) -> Side:
    """Runner.train() unmodified; a train.step subscriber (one row per log step) ends each chunk."""
    side = Side("quick recipe", runner)
    for stage in runner.spec.train:
        stage["log_every"] = chunk

    def target(boundary):
        def on_step(_name, row, _info):
            side.worker.steps = int(row["step"])
            boundary()
        runner.taps.subscribe("train.step", on_step, min_interval=0.0)
        runner.train()
        side.done = True
        while True:          # hand control back for good; the controller stops scheduling it
            boundary()
    side.worker = ChunkedWorker(target, "recipe", on_stop=lambda: setattr(runner, "stop_requested", True))
    side.worker.steps = 0
    return side


def hand_side(runner: Runner, chunk: int, lr: float, snr_db: float) -> Side:
    """bench/overhead.py's hand loop: the same modules, MSE, Adam at a constant lr, a fixed SNR."""
    side = Side("hand loop", runner)
    side.worker = hand_train_worker(runner, chunk, lr=lr, snr_db=snr_db)
    return side


def steps_per_second(runner: Runner, chunk: int, clock: str, threads: int, chunks: int = 4) -> float:
    """The recipe's training speed on ``clock``: a throwaway run, one warm-up chunk, then ``chunks``."""
    side = recipe_side(runner, chunk)
    side.worker.run_chunk()
    first, spent = side.steps, 0.0
    for _ in range(chunks):
        if side.done:
            break
        wall, cpu = side.worker.run_chunk()
        spent += wall if clock == "wall" else cpu / threads
    side.worker.stop()
    runner.close()
    return max(side.steps - first, 1) / max(spent, 1e-3)


def score(evaluator: Runner, side: Side) -> list[float]:
    """Per-image PSNR at EVAL_SNR of the side's current encoder/decoder (copied, not moved)."""
    for name in ("enc", "dec"):
        evaluator.scheduler.block(name).load_state_dict(side.runner.scheduler.block(name).state_dict())
    res = evaluator.evaluate(points=[{"snr_db": EVAL_SNR}], metrics=["psnr"], write=False)
    return next(iter(res["per_example"].values()))["psnr"]


def _budget(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def mean_ci(v: list[float]) -> tuple[float, float]:
    t = torch.tensor(v, dtype=torch.float64)
    return float(t.mean()), float(1.96 * t.std(unbiased=True) / math.sqrt(len(t)))


def _paired(scores: dict, budget: float) -> tuple[float, float]:
    """Mean and 95% CI of recipe - hand over the same held-out images and noise draws."""
    va, vb = scores[(False, budget)][0], scores[(True, budget)][0]
    return mean_ci([x - y for x, y in zip(va, vb)])


def predecode(runner: Runner) -> float:
    """Decode every training image of the (shared, per-process) dataset cache; seconds taken."""
    t0 = time.perf_counter()
    train = runner.scheduler.source().data.train
    for i in range(len(train)):
        train[i]
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(CIFAR_TAR) if CIFAR_TAR else None,
                    help="the CIFAR-10 JPEG tar (default: ../shared/data/cifar10-train-jpeg.tar)")
    ap.add_argument("--test-per-class", type=int, default=500, help="held out: the last N images per class")
    ap.add_argument("--eval-images", type=int, default=0, help="cap on the held-out images scored (0 = all)")
    ap.add_argument("--budgets", type=float, nargs="+", default=[120.0, 480.0], help="seconds of training")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: each side's chunk wall time; cpu: its process CPU time / threads")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--chunk", type=int, default=20, help="training steps per chunk")
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE", help="recipe variable")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--fit", choices=("steps", "none"), default="steps",
                    help="steps: one recipe run per budget with steps = budget x its measured speed (so its "
                         "schedule ends at the budget); none: one run as the preset has it, scored at each budget")
    ap.add_argument("--hand-lr", type=float, default=1e-3)
    ap.add_argument("--hand-batch", type=int, default=64)
    ap.add_argument("--hand-snr", type=float, default=EVAL_SNR, help="the hand loop's training SNR (dB)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.data:
        ap.error("no CIFAR-10 tar found; pass --data PATH")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    data = {"dataset": "folder", "data_path": args.data, "test_per_class": args.test_per_class,
            "eval_images": args.eval_images}
    recipe = {**data, **_parse_set(args.set)}
    model = {k: recipe[k] for k in ("c", "filters") if k in recipe}
    tmp = Path(tempfile.mkdtemp(prefix="semflow-ttq-"))

    def runner(out, overrides):
        return Runner(load_graph(GRAPH), preset=args.preset, overrides=overrides, out=tmp / out,
                      quiet=True, seed=args.seed)

    budgets = sorted(args.budgets)
    hand = hand_side(runner("hand", {**data, **model, "batch": args.hand_batch}), args.chunk,
                     args.hand_lr, args.hand_snr)
    hand.budgets = list(budgets)
    evaluator = runner("eval", {**data, **model})
    print(f"torch {torch.__version__}, {threads} thread(s), clock {args.clock}, budgets "
          f"{', '.join(_budget(x) for x in budgets)}, load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"training images decoded before timing: {predecode(hand.runner):.1f} s", flush=True)
    sets = " ".join(f"--set {k}={v}" for k, v in recipe.items() if k not in data)
    if args.fit == "steps":
        rate = steps_per_second(runner("calibrate", recipe), args.chunk, args.clock, threads)
        print(f"recipe speed: {rate:.2f} steps/s ({args.clock} clock), so steps = budget x speed", flush=True)
        recipes = []
        for budget in budgets:
            side = recipe_side(runner(f"recipe{budget:g}", {**recipe, "steps": max(1, int(budget * rate))}),
                               args.chunk)
            side.budgets = [budget]
            recipes.append(side)
    else:
        side = recipe_side(runner("recipe", recipe), args.chunk)
        side.budgets = list(budgets)
        recipes = [side]
    for side in recipes:
        print(f"A quick recipe: {GRAPH.relative_to(ROOT)} --preset {args.preset} {sets} "
              f"--set steps={side.runner.graph.root.values.get('steps')}", flush=True)
    print(f"B hand loop: Adam lr {args.hand_lr:g} constant, batch {args.hand_batch}, SNR {args.hand_snr:g} dB, MSE",
          flush=True)

    sides = recipes + [hand]
    scores: dict = {}          # (side is the hand loop, budget) -> (per-image PSNR, steps, done)
    rng = random.Random(args.seed)
    t_start = time.perf_counter()
    try:
        while any(side.budgets for side in sides):
            for side in rng.sample(sides, len(sides)):       # a random order per round
                if not side.budgets:
                    continue
                if not side.done:
                    wall, cpu = side.worker.run_chunk()
                    side.clock += wall if args.clock == "wall" else cpu / threads
                while side.budgets and (side.done or side.clock >= side.budgets[0]):
                    budget = side.budgets.pop(0)
                    v = score(evaluator, side)
                    scores[(side is hand, budget)] = (v, side.steps, side.done)
                    m, ci = mean_ci(v)
                    print(f"  [{time.perf_counter() - t_start:5.0f} s] {side.name:12s} at {_budget(budget)}: "
                          f"PSNR {m:.2f} ± {ci:.2f} dB after {side.steps} steps ({side.clock:.0f} s"
                          + (", recipe finished" if side.done else "") + ")", flush=True)
                    if (False, budget) in scores and (True, budget) in scores:   # both sides in: say it now,
                        md, cd = _paired(scores, budget)                          # a stopped run keeps it
                        print(f"  recipe - hand at {_budget(budget)}: {md:+.2f} ± {cd:.2f} dB (paired 95% CI)",
                              flush=True)
                if not side.budgets:
                    side.worker.stop()
    finally:
        for side in sides:
            side.worker.stop()

    n = len(scores[(True, budgets[0])][0])
    print(f"\nPSNR at {EVAL_SNR:g} dB on the held-out split (last {args.test_per_class} per class, n = {n}); "
          f"load average now {os.getloadavg()[0]:.2f}")
    print("| budget | quick recipe | hand loop | recipe - hand (paired 95% CI) | steps recipe / hand |")
    print("|---|---|---|---|---|")
    for budget in budgets:
        (va, sa, done), (vb, sb, _) = scores[(False, budget)], scores[(True, budget)]
        (ma, ca), (mb, cb) = mean_ci(va), mean_ci(vb)
        md, cd = _paired(scores, budget)
        print(f"| {_budget(budget)} | {ma:.2f} ± {ca:.2f} | {mb:.2f} ± {cb:.2f} | "
              f"**{md:+.2f}** ± {cd:.2f} | {sa}{' (finished)' if done else ''} / {sb} |")
    for side in sides:
        side.runner.close()
    evaluator.close()


if __name__ == "__main__":
    main()
