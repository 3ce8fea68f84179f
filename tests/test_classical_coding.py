"""QAM mapping/demapping, 5G LDPC, BER/BLER sinks: closed forms and Monte-Carlo checks."""
import math

import pytest
import torch

import blocks  # noqa: F401
from flowgraph.testing import build, check_contract, check_gradients


import sionna.phy as sionna_phy  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    sionna_phy.config.seed = 7
    torch.manual_seed(0)


def _awgn(x, n0, g):
    """CN(0, n0) noise written inline (the test's own channel)."""
    n = torch.complex(torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g))
    return x + n * math.sqrt(n0 / 2)


def _q(x):
    return 0.5 * math.erfc(x / math.sqrt(2))


def _bits(*shape, seed=0):
    return torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(seed)).float()


def test_qam_contracts_energy_and_gradient():
    for m in (2, 4, 6):
        bits = _bits(4, 2, 60 * m, seed=m)
        x = check_contract("classical.qam_map", {"bits_per_symbol": m}, bits=bits)["x"]
        assert x.shape == (4, 2, 60)
        llr = check_contract("classical.qam_demap", {"bits_per_symbol": m, "snr_db": 30.0},
                             y=x, no=None)["llr"]
        assert torch.equal((llr > 0).float(), bits)          # noiseless: LLR signs = bits
        pts = build("classical.qam_map", {"bits_per_symbol": m})(
            bits=_bits(1, 4096 * m, seed=10 + m))["x"]
        assert abs(pts.abs().square().mean().item() - 1) < 0.05   # unit average energy
    y = torch.randn(2, 8, dtype=torch.complex64)
    check_gradients("classical.qam_demap", {"bits_per_symbol": 4}, wrt=["y"], y=y)
    # an explicit per-symbol noise variance overrides snr_db
    no = torch.full((2, 8), 0.5)
    a = build("classical.qam_demap", {"snr_db": 3.0103})(y=y)["llr"]
    b = build("classical.qam_demap", {"snr_db": 50.0})(y=y, no=no)["llr"]
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("ebno_db", [0.0, 4.0, 7.0])
def test_qpsk_ber_matches_q_function(ebno_db):
    """Uncoded QPSK on AWGN: BER = Q(sqrt(2 Eb/N0)); Es = 1, Eb = 1/2, N0 = 1/(2 Eb/N0)."""
    g = torch.Generator().manual_seed(int(ebno_db * 10))
    n = 200_000
    bits = torch.randint(0, 2, (4, n // 4), generator=g).float()
    x = build("classical.qam_map", {"bits_per_symbol": 2})(bits=bits)["x"]
    ebno = 10 ** (ebno_db / 10)
    n0 = 1.0 / (2 * ebno)
    y = _awgn(x, n0, g)
    hard = build("classical.qam_demap", {"snr_db": -10 * math.log10(n0), "hard_out": True})(y=y)["llr"]
    ber = build("sink.ber")(bits=bits, bits_hat=hard)["value"].mean().item()
    ref = _q(math.sqrt(2 * ebno))
    tol = 4 * math.sqrt(ref * (1 - ref) / n) + 0.02 * ref      # 4 sigma Monte-Carlo
    assert abs(ber - ref) < tol, (ber, ref)


def _ldpc_bler(ebno_db, n_cw, seed):
    k, n = 512, 1024
    enc = build("classical.ldpc_encode", {"k": k, "n": n})
    dec = build("classical.ldpc_decode", {"k": k, "n": n})
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 2, (n_cw, k), generator=g).float()
    x = build("classical.qam_map", {})(bits=enc(bits=u)["c"])["x"]
    esno_db = ebno_db + 10 * math.log10(2 * k / n)            # Es/N0 = Eb/N0 * m * r
    y = _awgn(x, 10 ** (-esno_db / 10), g)
    llr = build("classical.qam_demap", {"snr_db": esno_db})(y=y)["llr"]
    out = dec(llr=llr)
    bler = build("sink.bler")(bits=u, bits_hat=out["bits_hat"])["value"]
    return bler, out["failed"]


def test_ldpc_bler_waterfall():
    """5G LDPC k=512, n=1024 (r = 1/2), QPSK, AWGN: BLER ~ 1 at 0 dB, ~0 at 2.5 dB Eb/N0.

    CI sample: 32 codewords at 0 dB, 200 at 2.5 dB (BLER < 1e-2 means at most 1 error); the
    slow-marked test below uses 2000 codewords.
    """
    bler, failed = _ldpc_bler(0.0, 32, seed=1)
    assert bler.mean().item() >= 0.9
    assert failed.float().mean().item() >= 0.9              # detected by the parity check
    bler, failed = _ldpc_bler(2.5, 200, seed=2)
    assert bler.mean().item() < 1e-2 and failed.float().mean().item() < 1e-2


@pytest.mark.slow
def test_ldpc_bler_below_1e_2_at_2p5db_full():
    bler = torch.cat([_ldpc_bler(2.5, 250, seed=100 + i)[0] for i in range(8)])   # 2000 codewords
    assert bler.mean().item() < 1e-2
    bler, _ = _ldpc_bler(0.0, 500, seed=4)
    assert bler.mean().item() > 0.9


def test_ldpc_contracts_blocks_crc_and_failure_flag():
    p = {"k": 128, "n": 256, "n_blocks": 3, "crc": "CRC16"}
    enc, dec = build("classical.ldpc_encode", p), build("classical.ldpc_decode", p)
    assert type(enc).bind_dims(enc.p) == {"Nb": 3 * 112, "Nc": 3 * 256}
    u = _bits(2, 4, 3 * 112)
    c = check_contract(enc, bits=u)["c"]
    assert c.shape == (2, 4, 768) and set(c.unique().tolist()) <= {0.0, 1.0}
    llr = (2 * c - 1) * 6.0                                   # clean channel
    out = check_contract(dec, llr=llr)
    assert torch.equal(out["bits_hat"], u) and not out["failed"].any()
    bad = llr.clone()
    bad[0, 1, 256:512] = -bad[0, 1, 256:512]                  # destroy block 2 of one example
    bad[1, 3] = float("nan")                                  # garbage must not crash
    out = dec(llr=bad)
    expect = torch.zeros(2, 4, dtype=torch.bool)
    expect[0, 1] = expect[1, 3] = True
    assert torch.equal(out["failed"], expect)
    with pytest.raises(ValueError):
        enc(bits=_bits(2, 100))


def test_ber_bler_sinks():
    bits = _bits(3, 40)
    hat = bits.clone()
    hat[1, 5] = 1 - hat[1, 5]
    hat[2, :20] = 1 - hat[2, :20]
    ber = check_contract("sink.ber", {}, bits=bits, bits_hat=hat)["value"]
    assert torch.allclose(ber, torch.tensor([0.0, 1 / 40, 0.5]))
    bler = check_contract("sink.bler", {}, bits=bits, bits_hat=hat)["value"]
    assert torch.equal(bler, torch.tensor([0.0, 1.0, 1.0]))
    bler = build("sink.bler", {"block_len": 10})(bits=bits, bits_hat=hat)["value"]
    assert torch.allclose(bler, torch.tensor([0.0, 0.25, 0.5]))
    assert not build("sink.ber").higher_is_better
