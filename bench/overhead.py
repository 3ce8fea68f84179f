"""Engine overhead: DeepJSCC/AWGN training and inference through semflow vs a hand-written loop.

Both sides use the very same kind of block modules (each side its own Runner's scheduler),
the same optimizer settings and the same data. Through ``bench/timing.py`` they alternate in
short chunks inside one process: A = the engine's own loop (``Runner.train()`` /
``Runner.evaluate()``, paused at each chunk boundary by a tap subscriber), B = the hand loop.
Prints the median ratio A/B of wall and of process CPU time with bootstrap 95% CIs over the
chunk pairs, and a verdict against the target.

    .venv/bin/python bench/overhead.py [--part train|eval|both] [--threads 1] [--chunk 20]
        [--pairs 40] [--until-width 0.02] [--budget 600] [--batch 32] [--filters 32]

Targets (issue 2): training <= 1.03, inference <= 1.02 on CPU at batch 32.
Training chunk = ``--chunk`` steps: the engine's variable handling, routing, loss expression,
finite checks, PSNR logging (every chunk), train.csv and its timed checkpoints, against the hand
loop's forward/backward/step. Inference chunk = one sweep point over the 189 held-out crops:
``Runner.evaluate`` against the hand loop computing the same per-image PSNR and MS-SSIM.
With ``--ema`` / ``--validate-every`` the stage gets ``ema:`` / ``validate:`` (on the test
split, as a timing) and the hand loop does the same work: a fused EMA update per step, and
every N steps the EMA weights swapped in, the PSNR of the first ``--val-images`` held-out
crops, the weights swapped back.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from timing import ChunkedWorker, interleave, report  # noqa: E402

from flowgraph.graph import load_graph  # noqa: E402
from flowgraph.run import Runner  # noqa: E402

SNRS = [0, 5, 10, 15, 20]
ENDLESS = 10 ** 8        # steps / points: the benchmark stops the workers, not the loops


def make_runner(args, out, **extra):
    ov = {"steps": ENDLESS, "batch": args.batch, "filters": args.filters, **extra}
    spec = load_graph(ROOT / "graphs/deepjscc_awgn.yaml")
    if args.ema:
        spec.train[0]["ema"] = args.ema
    if args.validate_every:
        spec.train[0]["validate"] = {"every": args.validate_every, "metric": "psnr", "split": "test",
                                     "images": args.val_images}
    return Runner(spec, overrides=ov, out=out, quiet=True, seed=0)


def engine_train_worker(r, chunk):
    """Runner.train() as is; a train.step subscriber (one row per log step) ends each chunk."""
    r.spec.train[0]["log_every"] = chunk
    holder = {}

    def target(boundary):
        r.taps.subscribe("train.step", lambda *_: boundary(), min_interval=0.0)
        r.train()
    holder["w"] = ChunkedWorker(target, "engine-train", on_stop=lambda: setattr(r, "stop_requested", True))
    return holder["w"]


def hand_train_worker(r, chunk, ema=0.0, validate_every=0, val_images=64):
    """The same modules in a plain loop: src -> enc -> power norm -> AWGN -> dec, MSE, Adam
    (plus the EMA update and the validation passes when asked)."""
    s = r.scheduler
    src, enc, pn, ch, dec, psnr = (s.block(n) for n in ("src", "enc", "pn", "ch", "dec", "psnr"))
    ch.p.snr_db = 10.0
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    live = [p.detach() for p in params]
    shadow = [p.clone() for p in live]
    enc.train(), dec.train()

    def validate():
        backup = [p.clone() for p in live]
        with torch.no_grad():
            torch._foreach_copy_(live, shadow if ema else backup)
        enc.eval(), dec.eval()
        vals, seen = [], 0
        with torch.inference_mode():
            for data in src.eval_batches(64):
                if seen >= val_images:
                    break
                xe = data["image"][: val_images - seen]
                vals.append(psnr(pred=dec(z=ch(x=pn(x=enc(image=xe)["z"])["x"])["y"])["image"], target=xe)["value"])
                seen += len(xe)
        float(torch.cat(vals).mean())
        with torch.no_grad():
            torch._foreach_copy_(live, backup)
        enc.train(), dec.train()

    def target(boundary):
        step = 0
        while True:
            for _ in range(chunk):
                x = src()["image"]
                y = ch(x=pn(x=enc(image=x)["z"])["x"])["y"]
                loss = torch.nn.functional.mse_loss(dec(z=y)["image"], x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ema:
                    torch._foreach_lerp_(shadow, live, 1.0 - ema)
                step += 1
                if validate_every and step % validate_every == 0:
                    validate()
            boundary()
    return ChunkedWorker(target, "hand-train")


def engine_eval_worker(r):
    """Runner.evaluate() over an endless list of sweep points; each point is one chunk."""
    points = [{"snr_db": SNRS[i % len(SNRS)]} for i in range(10_000)]

    def target(boundary):
        r.taps.subscribe("eval.point", lambda *_: boundary(), min_interval=0.0)
        r.evaluate(points=points, write=False)
    return ChunkedWorker(target, "engine-eval", on_stop=lambda: setattr(r, "stop_requested", True))


def hand_eval_worker(r, batch):
    s = r.scheduler
    src, enc, pn, ch, dec, psnr, ms = (s.block(n) for n in ("src", "enc", "pn", "ch", "dec", "psnr", "msssim"))
    s.eval()

    def target(boundary):
        with torch.inference_mode():
            i = 0
            while True:
                ch.p.snr_db = float(SNRS[i % len(SNRS)])
                vals_p, vals_m = [], []
                for data in src.eval_batches(batch):
                    x = data["image"]
                    xh = dec(z=ch(x=pn(x=enc(image=x)["z"])["x"])["y"])["image"]
                    vals_p.append(psnr(pred=xh, target=x)["value"].float().cpu())
                    vals_m.append(ms(pred=xh, target=x)["value"].float().cpu())
                torch.cat(vals_p).mean(), torch.cat(vals_m).mean()
                i += 1
                boundary()
    return ChunkedWorker(target, "hand-eval")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("train", "eval", "both"), default="both")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=20, help="training steps per chunk")
    ap.add_argument("--pairs", type=int, default=40, help="timed chunk pairs at least")
    ap.add_argument("--warmup", type=int, default=3, help="untimed chunk pairs first")
    ap.add_argument("--until-width", type=float, default=None,
                    help="keep sampling until the CPU-ratio CI is narrower than this")
    ap.add_argument("--budget", type=float, default=None, help="seconds at most per part (with --until-width)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pair order")
    ap.add_argument("--ema", type=float, default=0.0, help="train with ema: DECAY (and the hand loop too)")
    ap.add_argument("--validate-every", type=int, default=0, help="train with validate: every N steps")
    ap.add_argument("--val-images", type=int, default=64, help="held-out crops per validation")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="semflow-bench-"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"filters {args.filters}, chunk {args.chunk} steps, pairs >= {args.pairs}", flush=True)
    kw = dict(pairs=args.pairs, warmup=args.warmup, until_width=args.until_width,
              budget_s=args.budget, seed=args.seed, progress=lambda m: print(m, flush=True))
    if args.part in ("train", "both"):
        a, b = make_runner(args, tmp / "a"), make_runner(args, tmp / "b")
        t = interleave(engine_train_worker(a, args.chunk),
                       hand_train_worker(b, args.chunk, args.ema, args.validate_every, args.val_images), **kw)
        print(report(t, f"training (engine/hand, {args.chunk} steps per chunk)", 1.03), flush=True)
        a.close(), b.close()
    if args.part in ("eval", "both"):
        a, b = make_runner(args, tmp / "c"), make_runner(args, tmp / "d")
        t = interleave(engine_eval_worker(a), hand_eval_worker(b, 64), **kw)
        print(report(t, "inference (engine/hand, one sweep point of 189 crops per chunk)", 1.02,
                     unit="point"), flush=True)
        a.close(), b.close()


if __name__ == "__main__":
    main()
