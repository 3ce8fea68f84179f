"""Glue blocks (blocks/glue.py) and the OFDM precoding wrapper (blocks/ofdm/precoding.py):
contracts, gradients and the behaviour each docstring promises."""
import math

import pytest
import torch

import blocks  # noqa: F401
from blocks.mimo._common import energy
from flowgraph.testing import build, check_contract, check_gradients


def cn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)) / math.sqrt(2)


# ------------------------------------------------------------------------------ sources

def test_bits_contract_and_values():
    out = check_contract("source.bits", {"shape": [3, 40], "batch": 5})
    b = out["bits"]
    assert b.shape == (5, 3, 40) and b.dtype == torch.float32
    assert set(b.unique().tolist()) <= {0.0, 1.0}


def test_bits_eval_split_is_fixed_and_batch_independent():
    a = build("source.bits", {"shape": [16], "num_eval_examples": 300})
    b = build("source.bits", {"shape": [16], "num_eval_examples": 300})
    b.seed(99)                                      # the run seed moves training draws only
    xa = torch.cat([d["bits"] for d in a.eval_batches(7)])
    xb = torch.cat([d["bits"] for d in b.eval_batches(300)])
    assert xa.shape == (300, 16) and a.num_eval_examples() == 300
    assert torch.equal(xa, xb)
    assert torch.equal(xa, torch.cat([d["bits"] for d in a.eval_batches(7)]))   # repeatable
    assert abs(xa.mean().item() - 0.5) < 0.03
    assert not torch.equal(a()["bits"], b()["bits"])
    c = build("source.bits", {"shape": [16], "num_eval_examples": 300, "eval_seed": 5})
    assert not torch.equal(xa, torch.cat([d["bits"] for d in c.eval_batches(64)]))


def test_bits_feed_ldpc_encoder():
    bits = build("source.bits", {"shape": [64], "batch": 2})()["bits"]
    c = build("classical.ldpc_encode", {"k": 64, "n": 128})(bits=bits)["c"]
    assert c.shape == (2, 128)


@pytest.mark.parametrize("m", [0, 2, 4])
def test_symbols_energy_and_constellation(m):
    src = build("source.symbols", {"shape": [2, 500], "bits_per_symbol": m, "energy": 0.25,
                                   "num_eval_examples": 40})
    out = check_contract(src)
    assert out["x"].shape == (16, 2, 500) and out["x"].dtype == torch.complex64
    x = torch.cat([d["x"] for d in src.eval_batches(16)])
    assert x.shape == (40, 2, 500)
    assert abs(energy(x).mean().item() - 0.25) < 0.01
    if m:
        assert len(torch.unique(torch.view_as_real(x).reshape(-1, 2), dim=0)) == 2 ** m


def test_sources_reject_bad_params():
    with pytest.raises(ValueError):
        build("source.bits", {"shape": []})
    with pytest.raises(ValueError):
        build("source.symbols", {"bits_per_symbol": 3})


# ------------------------------------------------------------------------------ layout

def test_reshape_c_and_f_order():
    x = torch.arange(12.0).reshape(2, 6)
    c = check_contract("csirs.reshape", {"shape": [3, -1]}, x=x)["x"]
    assert torch.equal(c, x.reshape(2, 3, 2))
    f = check_contract("csirs.reshape", {"shape": [3, -1], "order": "F"}, x=x)["x"]
    # F order deals element n to row n mod 3, column n // 3 (a block interleaver)
    assert torch.equal(f[0], torch.tensor([[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]))
    back = build("csirs.reshape", {"shape": [-1], "order": "F"})(x=f)["x"]
    assert torch.equal(back, x)
    z = cn(2, 4, 6)
    assert torch.equal(build("csirs.reshape", {"shape": [6, 4], "order": "F"})(x=z)["x"][1],
                       torch.from_numpy(z[1].numpy().reshape(6, 4, order="F")))
    with pytest.raises(ValueError):
        build("csirs.reshape", {"shape": [5, -1], "order": "F"})(x=x)
    check_gradients("csirs.reshape", {"shape": [3, -1], "order": "F"}, wrt=["x"], x=cn(2, 6))


def test_permute():
    h = cn(2, 4, 3, 5, 6)
    out = check_contract("csirs.permute", {"dims": [0, 3, 4, 1, 2]}, x=h)["x"]
    assert out.shape == (2, 5, 6, 4, 3) and torch.equal(out[1, 2, 3], h[1, :, :, 2, 3])
    for bad in ([1, 0, 2], [0, 1, 1], []):
        with pytest.raises(ValueError):
            build("csirs.permute", {"dims": bad})
    with pytest.raises(ValueError):
        build("csirs.permute", {"dims": [0, 2, 1]})(x=h)
    check_gradients("csirs.permute", {"dims": [0, 2, 1]}, wrt=["x"], x=cn(2, 3, 4))


def test_group_ungroup_round_trip():
    x = torch.randn(8, 3, 4, 4)
    g = check_contract("csirs.group", {"size": 4}, x=x)["x"]
    assert g.shape == (2, 4, 3, 4, 4) and torch.equal(g[1, 2], x[6])
    u = check_contract("csirs.ungroup", {}, x=g)["x"]
    assert torch.equal(u, x)
    f = build("csirs.ungroup")(x=torch.zeros(2, 4, dtype=torch.bool))["x"]
    assert f.shape == (8,) and f.dtype == torch.bool
    with pytest.raises(ValueError):
        build("csirs.group", {"size": 3})(x=x)


def test_zeros():
    out = check_contract("csirs.zeros", {"shape": [4, 2, 8]}, ref=torch.zeros(3, 7))["x"]
    assert out.shape == (3, 4, 2, 8) and out.dtype == torch.complex64 and not out.any()


# ------------------------------------------------------------------------------ channel helpers

def test_apply_noiseless_matches_einsum_and_gradients():
    x, h = cn(2, 4, 3, 8, seed=1), cn(2, 5, 4, 3, 8, seed=2)
    y = check_contract("channel.apply", {"add_noise": False}, x=x, h=h)["y"]
    assert torch.allclose(y, torch.einsum("bknsf,bnsf->bksf", h, x), atol=1e-5)
    with pytest.raises(ValueError):
        build("channel.apply")(x=x, h=h[..., :4])
    check_gradients("channel.apply", {"snr_db": 5.0}, wrt=["x", "h"], x=x, h=h)


def test_apply_empirical_snr():
    torch.manual_seed(0)
    snr_db = 7.0
    nt = 4
    x = cn(64, nt, 2000, seed=3) / math.sqrt(nt)                # total energy 1 per channel use
    h = cn(64, 2, nt, 2000, seed=4)                             # unit-gain entries
    ch = build("channel.apply", {"snr_db": snr_db})
    y = ch(x=x, h=h)["y"]
    s = (h * x.unsqueeze(1)).sum(2)
    meas = 10 * math.log10(energy(s).mean().item() / energy(y - s).mean().item())
    assert abs(meas - snr_db) < 0.1


def test_stream_noise_matches_svd_receiver():
    torch.manual_seed(1)
    snr_db, t = 5.0, 4000
    h = cn(8, 3, 2, seed=5)
    s = cn(8, 2, t, seed=6)
    pre = build("precoder.svd", {"snr_db": snr_db, "power_allocation": "equal"})(h=h, s=s)
    ch = build("channel.mimo_flat", {"nt": 2, "nr": 3, "snr_db": snr_db})
    y = ch(x=pre["x"], h=h)["y"]
    xh = build("combiner.svd")(y=y, h=h, w=pre["w"])["x_hat"]
    out = check_contract("combiner.stream_noise", {"snr_db": snr_db}, h=h, w=pre["w"], x=xh)
    no = out["no"]
    assert no.shape == xh.shape and no.dtype == torch.float32
    emp = energy(xh - s).mean(-1)                               # (B, S) measured noise variance
    assert torch.allclose(emp, no[..., 0], rtol=0.1)


def test_mean_sink():
    v = check_contract("sink.mean", {}, x=torch.tensor([[True, False], [True, True]]))["value"]
    assert torch.equal(v, torch.tensor([0.5, 1.0]))
    v = build("sink.mean")(x=torch.tensor([3, 5]))["value"]
    assert torch.equal(v, torch.tensor([3.0, 5.0]))
    with pytest.raises(ValueError):
        build("sink.mean")(x=cn(2, 3))


# ------------------------------------------------------------------------------ precoder.ofdm

B, K, NT, S, F = 2, 3, 4, 2, 5

FLAT = {"zf": ("precoder.zf", {}), "mrt": ("precoder.mrt", {}),
        "rzf": ("precoder.rzf", {"alpha": 2.0, "snr_db": 7.0}),
        "wmmse": ("precoder.wmmse", {"snr_db": 7.0, "iterations": 5})}


@pytest.mark.parametrize("method", list(FLAT))
def test_ofdm_precoder_equals_flat_precoder_per_re(method):
    h, s = cn(B, K, NT, S, F, seed=7), cn(B, K, S, F, seed=8)
    flat_type, flat_params = FLAT[method]
    params = {"method": method, **{k: v for k, v in flat_params.items()}}
    if method == "wmmse":
        params["iterations"] = 5
    out = check_contract("precoder.ofdm", params, s=s, h=h)
    ref = build(flat_type, flat_params)(h=h.permute(0, 3, 4, 1, 2), s=s.permute(0, 2, 3, 1).unsqueeze(-1))
    assert torch.allclose(out["w"], ref["w"].permute(0, 3, 4, 1, 2), atol=1e-5)
    assert torch.allclose(out["x"], ref["x"][..., 0].permute(0, 3, 1, 2), atol=1e-5)
    # x = W s on every RE, and unit total transmit energy per RE on average (DESIGN.md)
    x = torch.einsum("bnksf,bksf->bnsf", out["w"], s)
    assert torch.allclose(out["x"], x, atol=1e-5)
    p = energy(out["w"]).sum(dim=(1, 2)).mean(dim=(1, 2))
    assert torch.allclose(p, torch.ones(B), atol=1e-4)


def test_ofdm_precoder_zf_nulls_interference_and_signal_normalization():
    h, s = cn(B, K, NT, S, F, seed=9), cn(B, K, S, F, seed=10)
    w = build("precoder.ofdm", {"method": "zf"})(h=h, s=s)["w"]
    g = torch.einsum("bknsf,bnjsf->bkjsf", h, w)                 # h_k w_j per RE
    off = g * (1 - torch.eye(K)).reshape(1, K, K, 1, 1)
    assert off.abs().max() < 1e-4
    x = build("precoder.ofdm", {"method": "mrt", "normalize": "signal"})(h=h, s=s)["x"]
    assert torch.allclose(energy(x).sum(1).mean(dim=(1, 2)), torch.ones(B), atol=1e-4)
    out = build("precoder.ofdm", {"method": "mrt"})(h=h)
    assert out["x"].shape == (B, NT, S, F) and not out["x"].any()


def test_ofdm_precoder_runtime_snr_reaches_rzf():
    h = cn(B, K, NT, S, F, seed=11)
    blk = build("precoder.ofdm", {"method": "rzf", "alpha": 1.0, "snr_db": 0.0})
    w0 = blk(h=h)["w"]
    blk.set_runtime("snr_db", 30.0)
    w1 = blk(h=h)["w"]
    wz = build("precoder.ofdm", {"method": "zf"})(h=h)["w"]
    assert not torch.allclose(w0, w1, atol=1e-3)
    assert (w1 - wz).abs().max() < (w0 - wz).abs().max()      # alpha N0 -> 0: towards ZF


@pytest.mark.parametrize("method", list(FLAT))
def test_ofdm_precoder_gradients(method):
    params = {"method": method, "iterations": 3}
    if method == "rzf":
        params.update(learnable_alpha=True, alpha=1.5)
    blk = check_gradients("precoder.ofdm", params, wrt=["s", "h"],
                          s=cn(B, K, S, F, seed=12), h=cn(B, K, NT, S, F, seed=13))
    if method == "rzf":
        assert [n for n, _ in blk.named_parameters()] == ["inner.alpha_raw"]
