"""Cost of wrapping Sionna: ``channel.umi`` block forward vs. the same Sionna calls made directly.

A: the semflow block (``build("channel.umi", cfg)`` then ``block(x=x)``): a fresh
   single-sector drop, ``GenerateOFDMChannel`` (normalized), ``ApplyOFDMChannel`` with AWGN,
   plus the block's layout views and port dict.
B: hand-written Sionna with the same configuration: PanelArrays, ``tr38901.UMi``,
   ``gen_single_sector_topology`` + ``set_topology``, ``OFDMChannel(return_channel=True)``
   on Sionna's own [B, 1, Nt, S, F] input.

Both run in one process, interleaved A B A B with the same Sionna seed before each pair
(so they draw the same topologies and noise), after warm-up calls. Prints the median time
of each and the ratio A / B (target <= 1.05).

    .venv/bin/python bench/sionna_wrap.py [--batch 16] [--subcarriers 64] [--repeats 21]
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

import blocks  # noqa: E402,F401
from flowgraph.testing import build  # noqa: E402


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
    ap.add_argument("--repeats", type=int, default=21, help="timed A/B pairs (median taken)")
    ap.add_argument("--warmup", type=int, default=3)
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
        ta, tb = [], []
        for i in range(args.repeats):
            if i % 2 == 0:                                   # alternate which goes first
                ta.append(time_a(1000 + i)[0])
                tb.append(time_b(1000 + i)[0])
            else:
                tb.append(time_b(1000 + i)[0])
                ta.append(time_a(1000 + i)[0])
    ma, mb = statistics.median(ta), statistics.median(tb)
    print(f"channel.umi B={args.batch} K=4 Nt=4 S=14 F={args.subcarriers} on {dev} "
          f"(threads={torch.get_num_threads()}, repeats={args.repeats})")
    print(f"  identical outputs for the same seed: {same}")
    print(f"  A semflow block : median {ma * 1e3:8.2f} ms")
    print(f"  B direct Sionna : median {mb * 1e3:8.2f} ms")
    print(f"  ratio A/B = {ma / mb:.3f}   (target <= 1.05)")


if __name__ == "__main__":
    main()
