"""Cost of wrapping Sionna: ``channel.umi`` block forward vs. the same Sionna calls made directly.

A: the semflow block (``build("channel.umi", cfg)`` then ``block(x=x)``): a fresh
   single-sector drop, ``GenerateOFDMChannel`` (normalized), ``ApplyOFDMChannel`` with AWGN,
   plus the block's layout views and port dict.
B: hand-written Sionna with the same configuration: PanelArrays, ``tr38901.UMi``,
   ``gen_single_sector_topology`` + ``set_topology``, ``OFDMChannel(return_channel=True)``
   on Sionna's own [B, 1, Nt, S, F] input.

Both run in one process, alternating in chunks of ``--chunk`` calls through
``bench/timing.py`` (random order per pair), chunk k of both with the same Sionna seeds (so
they draw the same topologies and noise), after warm-up calls. Prints the median ratio A/B
of wall and process CPU time with bootstrap 95% CIs and the verdict (target <= 1.05).

    .venv/bin/python bench/sionna_wrap.py [--batch 16] [--subcarriers 64] [--pairs 21] [--chunk 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

import blocks  # noqa: E402,F401
from flowgraph.testing import build  # noqa: E402
from timing import ChunkedWorker, interleave, report  # noqa: E402


def direct_sionna(cfg, device):
    """The hand-written baseline: Sionna objects configured exactly as the block does."""
    from sionna.phy.channel import OFDMChannel, gen_single_sector_topology
    from sionna.phy.channel.tr38901 import UMi, PanelArray
    from sionna.phy.ofdm import ResourceGrid

    fc = cfg["carrier_frequency"]
    bs = PanelArray(num_rows_per_panel=1, num_cols_per_panel=2, polarization="dual",
                    polarization_type="cross", antenna_pattern="38.901", carrier_frequency=fc,
                    device=device)
    ut = PanelArray(num_rows_per_panel=1, num_cols_per_panel=1, polarization="single",
                    polarization_type="V", antenna_pattern="omni", carrier_frequency=fc,
                    device=device)
    model = UMi(carrier_frequency=fc, o2i_model="low", ut_array=ut, bs_array=bs,
                direction="downlink", enable_pathloss=False, enable_shadow_fading=False,
                device=device)
    rg = ResourceGrid(num_ofdm_symbols=cfg["n_symbols"], fft_size=cfg["n_subcarriers"],
                      subcarrier_spacing=15e3, cyclic_prefix_length=20, device=device)
    chan = OFDMChannel(model, rg, normalize_channel=True, return_channel=True, device=device)
    no = 10.0 ** (-cfg["snr_db"] / 10.0)

    def run(x5):
        topo = gen_single_sector_topology(x5.shape[0], cfg["n_users"], "umi", indoor_probability=0.8,
                                          min_ut_velocity=0.0, max_ut_velocity=0.0, device=device)
        model.set_topology(*topo, los="random")
        return chan(x5, no)
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--subcarriers", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=21, help="timed chunk pairs at least")
    ap.add_argument("--chunk", type=int, default=3, help="channel calls per chunk")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--until-width", type=float, default=None,
                    help="keep sampling until the CPU-ratio CI is narrower than this")
    ap.add_argument("--budget", type=float, default=None, help="seconds at most")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import sionna.phy as sp

    dev = torch.device(args.device)
    cfg = {"carrier_frequency": 2.6e9, "n_subcarriers": args.subcarriers, "n_symbols": 14,
           "n_users": 4, "snr_db": 10.0}
    block = build("channel.umi", cfg).to(dev)
    run_b = direct_sionna(cfg, "cuda:0" if dev.type == "cuda" else "cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.complex(torch.randn(args.batch, 4, 14, args.subcarriers, generator=g),
                      torch.randn(args.batch, 4, 14, args.subcarriers, generator=g)).to(dev) / 8 ** 0.5
    x5 = x.unsqueeze(1)                                      # Sionna's [B, num_tx, num_tx_ant, S, F]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def time_a(seed):
        sp.config.seed = seed
        sync()
        t = time.perf_counter()
        out = block(x=x)
        sync()
        return time.perf_counter() - t, out

    def time_b(seed):
        sp.config.seed = seed
        sync()
        t = time.perf_counter()
        out = run_b(x5)
        sync()
        return time.perf_counter() - t, out

    with torch.inference_mode():
        for i in range(args.warmup):
            time_a(i)
            time_b(i)
        # same seed -> same draws: the two paths compute the same thing
        _, oa = time_a(123)
        _, (yb, hb) = time_b(123)
        same = torch.allclose(oa["y"], yb.reshape(oa["y"].shape), atol=1e-5) and \
            torch.allclose(oa["h"], hb.reshape(oa["h"].shape), atol=1e-6)

    def worker(call, name):
        # chunk k of A and of B draw with the same seeds (1000 + k*chunk + j)
        def target(boundary):
            k = 0
            with torch.inference_mode():
                while True:
                    for j in range(args.chunk):
                        call(1000 + k * args.chunk + j)
                    k += 1
                    boundary()
        return ChunkedWorker(target, name)

    t = interleave(worker(time_a, "semflow-block"), worker(time_b, "direct-sionna"), pairs=args.pairs,
                   warmup=1, until_width=args.until_width, budget_s=args.budget, progress=None)
    print(f"channel.umi B={args.batch} K=4 Nt=4 S=14 F={args.subcarriers} on {dev} "
          f"(threads={torch.get_num_threads()}, {args.chunk} calls per chunk)")
    print(f"  identical outputs for the same seed: {same}")
    print(report(t, "A semflow block / B direct Sionna", 1.05))


if __name__ == "__main__":
    main()
