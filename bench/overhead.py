"""Engine overhead: DeepJSCC/AWGN training and inference through semflow vs a hand-written loop.

Both sides use the very same block modules (taken from the engine's scheduler), the same
optimizer settings and the same data, interleaved A B A B in one process, so machine
drift hits both equally. Prints the median time ratio engine / hand-written, of wall time
and of this process's CPU time (steadier on a loaded machine).

    .venv/bin/python bench/overhead.py [--batch 32] [--steps 300] [--filters 32] [--reps 5]
                                       [--ema 0.999] [--validate-every 50 --val-images 64]

Targets (issue 2): training <= 1.03, inference <= 1.02 on CPU at batch 32.
Training = Runner.train() (variable handling, routing, finite checks, PSNR logging every
steps/20, checkpoints, train.csv) vs. the hand loop's forward/backward/step.
Inference = Runner.evaluate(write=False) over the held-out split at the graph's five
sweep SNRs vs. the hand loop computing the same per-image PSNR/MS-SSIM.
With --ema / --validate-every the stage gets ``ema:`` / ``validate:`` (on the test split:
source.images has no validation split yet; this is a timing) and the hand loop does the
same work: a fused EMA update per step, and every N steps the EMA weights swapped in, the
PSNR of the first val-images held-out crops, the weights swapped back.
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
    spec = load_graph(ROOT / "graphs/deepjscc_awgn.yaml")
    if args.ema:
        spec.train[0]["ema"] = args.ema
    if args.validate_every:
        spec.train[0]["validate"] = {"every": args.validate_every, "metric": "psnr", "split": "test",
                                     "images": args.val_images}
    return Runner(spec, overrides=ov, out=out, quiet=True, seed=0)


def engine_train(r):
    t, c = time.perf_counter(), time.process_time()
    r.train()
    return time.perf_counter() - t, time.process_time() - c


def hand_train(r, steps, ema=0.0, validate_every=0, val_images=64):
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
    t, c = time.perf_counter(), time.process_time()
    for step in range(steps):
        x = src()["image"]
        y = ch(x=pn(x=enc(image=x)["z"])["x"])["y"]
        loss = torch.nn.functional.mse_loss(dec(z=y)["image"], x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema:
            torch._foreach_lerp_(shadow, live, 1.0 - ema)
        if validate_every and ((step + 1) % validate_every == 0 or step + 1 == steps):
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
    return time.perf_counter() - t, time.process_time() - c


SNRS = [0, 5, 10, 15, 20]


def engine_eval(r):
    t, c = time.perf_counter(), time.process_time()
    r.evaluate(points=[{"snr_db": v} for v in SNRS], write=False)
    return time.perf_counter() - t, time.process_time() - c


def hand_eval(r, batch):
    s = r.scheduler
    src, enc, pn, ch, dec, psnr, ms = (s.block(n) for n in ("src", "enc", "pn", "ch", "dec", "psnr", "msssim"))
    s.eval()
    t, c = time.perf_counter(), time.process_time()
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
    return time.perf_counter() - t, time.process_time() - c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--ema", type=float, default=0.0, help="train with ema: DECAY (0 = off)")
    ap.add_argument("--validate-every", type=int, default=0, help="train with validate: every N steps (0 = off)")
    ap.add_argument("--val-images", type=int, default=64, help="held-out crops per validation")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="semflow-bench-"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"steps {args.steps}, filters {args.filters}, reps {args.reps}, ema {args.ema or 'off'}, "
          f"validate every {args.validate_every or 'off'} ({args.val_images} crops)")
    tr, ev, tr_cpu, ev_cpu = [], [], [], []
    for rep in range(args.reps + 1):            # rep 0 warms up both sides
        a = make_runner(args, tmp / f"a{rep}")
        b = make_runner(args, tmp / f"b{rep}")
        ta, tb = engine_train(a), hand_train(b, args.steps, args.ema, args.validate_every, args.val_images)
        ea, eb = engine_eval(a), hand_eval(b, 64)
        a.close(), b.close()
        if rep:
            tr.append(ta[0] / tb[0])
            ev.append(ea[0] / eb[0])
            tr_cpu.append(ta[1] / tb[1])
            ev_cpu.append(ea[1] / eb[1])
            print(f"rep {rep}: train engine {ta[0]:.3f}s hand {tb[0]:.3f}s ratio {tr[-1]:.3f} (CPU {tr_cpu[-1]:.3f}) | "
                  f"eval engine {ea[0]:.3f}s hand {eb[0]:.3f}s ratio {ev[-1]:.3f} (CPU {ev_cpu[-1]:.3f})", flush=True)
    for what, wall, cpu, target in (("training ", tr, tr_cpu, 1.03), ("inference", ev, ev_cpu, 1.02)):
        print(f"{what} ratio engine/hand (median of {len(wall)}): wall {statistics.median(wall):.3f}  "
              f"[min {min(wall):.3f}, max {max(wall):.3f}]  CPU time {statistics.median(cpu):.3f}  "
              f"[min {min(cpu):.3f}, max {max(cpu):.3f}]  target <= {target}")


if __name__ == "__main__":
    main()
