"""Seed 003's SSCC baseline end to end, block by block (no graph engine):

JPEG (eq. 10 budget) -> 5G LDPC -> QPSK -> OFDM grid with pilots [2, 11] -> TDL channel
-> LS estimation -> LMMSE -> soft demapping -> LDPC decoding -> JPEG decoding -> PSNR,
with failures scored 0 dB (Sec. IV). Exercises every layout hand-over of both families.
"""
import math

import pytest
import torch

import blocks  # noqa: F401
from flowgraph.testing import build


import sionna.phy as sionna_phy  # noqa: E402

NT = 4                                   # streams = Tx antennas = UE antennas (joint receiver)
G = {"n_symbols": 14, "n_subcarriers": 64, "n_streams": NT}


def _images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, 32)
    base = torch.stack([t[None, :].expand(32, 32), t[:, None].expand(32, 32), t[None, :] * t[:, None]])
    return torch.stack([(base.roll(5 * i, -1) + 0.03 * torch.randn(3, 32, 32, generator=g)).clamp(0, 1)
                        for i in range(n)])


def _run(snr_db):
    sionna_phy.config.seed = 11
    torch.manual_seed(0)
    b = 2
    imgs = _images(b * NT).reshape(b, NT, 3, 32, 32)           # one image per stream
    kbits = 768                                                # eq. (10): 12 * 64 * 2 * 1/2
    enc = build("classical.jpeg_encode", {"header": "abbreviated"})   # Nbits = B_max = 768
    src = enc(image=imgs)
    c = build("classical.ldpc_encode", {"k": kbits, "n": 2 * kbits})(bits=src["bits"])["c"]
    s = build("classical.qam_map", {"bits_per_symbol": 2})(bits=c)["x"]   # (B, NT, 768) = D
    grid = build("csirs.ofdm_grid", G)(data=s)
    x = grid["x"] / math.sqrt(NT)                              # total energy 1 per RE
    ch = build("channel.tdl", {"n_subcarriers": 64, "n_users": NT, "n_tx_ant": NT,
                               "model": "A", "delay_spread": 30e-9, "snr_db": snr_db})
    y = ch(x=x)["y"]
    est = build("estimator.ls_ofdm", {**G, "snr_db": snr_db})(y=y)
    eq = build("combiner.lmmse_ofdm", {**G, "mode": "joint", "snr_db": snr_db})(
        y=y, h_hat=est["h_hat"], err_var=est["err_var"])
    llr = build("classical.qam_demap", {})(y=eq["x_hat"], no=eq["no_eff"])["llr"]
    dec = build("classical.ldpc_decode", {"k": kbits, "n": 2 * kbits})(llr=llr)
    rec = build("classical.jpeg_decode", {"header": "abbreviated"})(
        bits=dec["bits_hat"], failed=dec["failed"] | src["failed"])
    psnr = build("sink.psnr_sscc")(pred=rec["image"].reshape(-1, 3, 32, 32),
                                   target=imgs.reshape(-1, 3, 32, 32),
                                   failed=rec["failed"].reshape(-1))["value"]
    ber = build("sink.ber")(bits=src["bits"], bits_hat=dec["bits_hat"])["value"]
    return psnr, ber, rec["failed"]


def test_sscc_chain_high_snr_succeeds_low_snr_fails_at_0db():
    psnr, ber, failed = _run(30.0)
    assert not failed.any() and (ber == 0).all()
    assert (psnr > 20).all()
    psnr, ber, failed = _run(-5.0)
    assert failed.all() and (psnr == 0).all()
