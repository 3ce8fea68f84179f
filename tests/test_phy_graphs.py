"""Graph-level physics of the issue-3 PHY graphs, at small sizes (smoke runs are in test_graphs.py)."""
import math
from pathlib import Path

import pytest
import torch

from flowgraph.graph import load_graph
from flowgraph.run import Runner

import sionna.phy  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]


def _evaluate(graph, overrides, points, tmp_path):
    r = Runner(load_graph(ROOT / graph), preset="smoke", overrides=overrides, out=tmp_path / "run",
               seed=3, quiet=True)
    try:
        return r.evaluate(points=points, write=False)
    finally:
        r.close()


def test_ldpc_awgn_ber_falls_with_ebno(tmp_path):
    res = _evaluate("graphs/phy/ldpc_qam_awgn.yaml", {"k": 256, "n": 512, "batch": 48, "codewords": 48},
                    [{"ebno_db": 0.0}, {"ebno_db": 1.5}, {"ebno_db": 3.5}], tmp_path)
    ber = [row["ber"] for row in res["rows"]]
    bler = [row["bler"] for row in res["rows"]]
    assert ber[0] > 0.05 and bler[0] > 0.8                # waterfall not reached at 0 dB
    assert ber[0] > ber[1] > ber[2] and ber[2] < 1e-3
    assert bler[2] < 0.1


def test_ldpc_awgn_snr_follows_ebno_expression(tmp_path):
    r = Runner(load_graph(ROOT / "graphs/phy/ldpc_qam_awgn.yaml"), preset="smoke",
               overrides={"k": 128, "n": 384, "bps": 4}, out=tmp_path / "r", quiet=True)
    try:
        r.scheduler.reset_variables({"ebno_db": 2.0})
        # Es/N0 = Eb/N0 + 10 log10(r m) = 2 + 10 log10(4/3)
        assert r.scheduler.block("ch").p.snr_db == pytest.approx(2.0 + 1.2493873660829995)
        assert r.scheduler.block("demap").p.snr_db == r.scheduler.block("ch").p.snr_db
    finally:
        r.close()


@pytest.mark.parametrize("nsf,bps,rate", [(128, 2, 0.5), (32, 4, 0.75)])
def test_sscc_ofdm_ebno_axis_is_sionnas_ebnodb2no(tmp_path, nsf, bps, rate):
    """Seed 003's Fig. 7 axis: sweeping ebno_db moves the channel's Es/N0 (snr_db) by Sionna's
    ebnodb2no rule for the same resource grid (K streams share the power; pilot and cyclic-prefix
    energy count); sweeping snr_db directly (the learned systems' axis) still works."""
    from sionna.phy.ofdm import ResourceGrid
    from sionna.phy.utils import ebnodb2no
    r = Runner(load_graph(ROOT / "graphs/baselines/jpeg_ldpc_qam_ofdm.yaml"), preset="smoke",
               overrides={"n_sf": nsf, "bps": bps, "rate": rate}, out=tmp_path / "r", quiet=True)
    try:
        rg = ResourceGrid(num_ofdm_symbols=14, fft_size=nsf, subcarrier_spacing=15e3, num_tx=1,
                          num_streams_per_tx=4, cyclic_prefix_length=20, pilot_pattern="kronecker",
                          pilot_ofdm_symbol_indices=[2, 11])
        assert rg.num_data_symbols == 12 * nsf
        for ebno_db in (-3.0, 4.0):
            r.scheduler.reset_variables({"ebno_db": ebno_db})
            n0 = float(ebnodb2no(ebno_db, bps, rate, rg))
            for blk in ("tx", "pre", "est", "eq"):
                assert r.scheduler.block(blk).p.snr_db == pytest.approx(-10 * math.log10(n0), abs=1e-4)
        r.scheduler.reset_variables({"snr_db": 7.0})
        assert r.scheduler.block("tx").p.snr_db == 7.0
    finally:
        r.close()


def test_precoding_umi_wmmse_beats_zf_and_rzf_beats_mrt(tmp_path):
    res = _evaluate("graphs/phy/mumimo_precoding_umi.yaml",
                    {"n_subcarriers": 32, "batch": 4, "drops": 8, "wmmse_iter": 10},
                    [{"snr_db": 10}, {"snr_db": 30}], tmp_path)
    at10, at30 = res["rows"]
    assert at10["rate_wmmse"] >= at10["rate_zf"]
    assert at10["rate_wmmse"] >= at10["rate_rzf"] - 0.05
    assert at30["rate_rzf"] > at30["rate_mrt"]
    assert at30["rate_zf"] > at30["rate_mrt"]                     # interference-limited MRT saturates
    assert at30["rate_rzf"] > at10["rate_rzf"]


def test_sscc_awgn_cliff(tmp_path):
    res = _evaluate("graphs/baselines/jpeg_ldpc_qam.yaml", {"eval_images": 4, "batch": 4},
                    [{"snr_db": -3.0}, {"snr_db": 6.0}], tmp_path)
    low, high = res["rows"]
    assert low["fail"] == 1.0 and low["psnr"] == 0.0              # every image lost: 0 dB each
    assert high["fail"] == 0.0 and high["psnr"] > 20.0 and high["bler"] == 0.0


def test_sscc_mumimo_ofdm_decodes_at_high_snr(tmp_path):
    res = _evaluate("graphs/baselines/jpeg_ldpc_qam_ofdm.yaml", {"eval_images": 4, "batch": 4},
                    [{"snr_db": -5.0}, {"snr_db": 30.0}], tmp_path)
    low, high = res["rows"]
    assert low["fail"] == 1.0 and low["psnr"] == 0.0
    assert high["fail"] == 0.0 and high["psnr"] > 20.0
    assert len(res["per_example"]["snr_db=30.0"]["psnr"]) == 4     # one PSNR per image, not per slot
