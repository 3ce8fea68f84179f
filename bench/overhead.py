"""Engine overhead: DeepJSCC/AWGN training and inference through semflow vs a hand-written loop.

Both sides use the very same block modules (taken from the engine's scheduler), the same
optimizer settings and the same data, interleaved A B A B in one process, so machine
drift hits both equally. Prints the median time ratio engine / hand-written.

    .venv/bin/python bench/overhead.py [--batch 32] [--steps 300] [--filters 32] [--reps 5]

Targets (issue 2): training <= 1.03, inference <= 1.02 on CPU at batch 32.
Training = Runner.train() (variable handling, routing, finite checks, PSNR logging every
steps/20, checkpoints, train.csv) vs. the hand loop's forward/backward/step.
Inference = Runner.evaluate(write=False) over the held-out split at the graph's five
sweep SNRs vs. the hand loop computing the same per-image PSNR/MS-SSIM.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowgraph.graph import load_graph  # noqa: E402
from flowgraph.run import Runner  # noqa: E402


def make_runner(args, out):
    ov = {"steps": args.steps, "batch": args.batch, "filters": args.filters}
    return Runner(load_graph(ROOT / "graphs/deepjscc_awgn.yaml"), overrides=ov, out=out, quiet=True, seed=0)


def engine_train(r):
    t = time.perf_counter()
    r.train()
    return time.perf_counter() - t


def hand_train(r, steps):
    """The same modules in a plain loop: src -> enc -> power norm -> AWGN -> dec, MSE, Adam."""
    s = r.scheduler
    src, enc, pn, ch, dec = (s.block(n) for n in ("src", "enc", "pn", "ch", "dec"))
    ch.p.snr_db = 10.0
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    enc.train(), dec.train()
    t = time.perf_counter()
    for _ in range(steps):
        x = src()["image"]
        y = ch(x=pn(x=enc(image=x)["z"])["x"])["y"]
        loss = torch.nn.functional.mse_loss(dec(z=y)["image"], x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t


SNRS = [0, 5, 10, 15, 20]


def engine_eval(r):
    t = time.perf_counter()
    r.evaluate(points=[{"snr_db": v} for v in SNRS], write=False)
    return time.perf_counter() - t


def hand_eval(r, batch):
    s = r.scheduler
    src, enc, pn, ch, dec, psnr, ms = (s.block(n) for n in ("src", "enc", "pn", "ch", "dec", "psnr", "msssim"))
    s.eval()
    t = time.perf_counter()
    with torch.inference_mode():
        for snr in SNRS:
            ch.p.snr_db = float(snr)
            vals_p, vals_m = [], []
            for data in src.eval_batches(batch):
                x = data["image"]
                xh = dec(z=ch(x=pn(x=enc(image=x)["z"])["x"])["y"])["image"]
                vals_p.append(psnr(pred=xh, target=x)["value"].float().cpu())
                vals_m.append(ms(pred=xh, target=x)["value"].float().cpu())
            torch.cat(vals_p).mean(), torch.cat(vals_m).mean()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="semflow-bench-"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"steps {args.steps}, filters {args.filters}, reps {args.reps}")
    tr, ev = [], []
    for rep in range(args.reps + 1):            # rep 0 warms up both sides
        a = make_runner(args, tmp / f"a{rep}")
        b = make_runner(args, tmp / f"b{rep}")
        ta, tb = engine_train(a), hand_train(b, args.steps)
        ea, eb = engine_eval(a), hand_eval(b, 64)
        a.close(), b.close()
        if rep:
            tr.append(ta / tb)
            ev.append(ea / eb)
            print(f"rep {rep}: train engine {ta:.3f}s hand {tb:.3f}s ratio {ta / tb:.3f} | "
                  f"eval engine {ea:.3f}s hand {eb:.3f}s ratio {ea / eb:.3f}", flush=True)
    print(f"training  ratio engine/hand (median of {len(tr)}): {statistics.median(tr):.3f}  "
          f"[min {min(tr):.3f}, max {max(tr):.3f}]  target <= 1.03")
    print(f"inference ratio engine/hand (median of {len(ev)}): {statistics.median(ev):.3f}  "
          f"[min {min(ev):.3f}, max {max(ev):.3f}]  target <= 1.02")


if __name__ == "__main__":
    main()
