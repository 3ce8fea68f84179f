"""combiner.zf / mmse / svd and sink.spectral_efficiency / sum_rate against closed forms."""
import math

import pytest
import torch

import blocks.mimo  # noqa: F401
from blocks.mimo._common import complex_normal
from flowgraph.testing import build, check_contract, check_gradients

C64, C128 = torch.complex64, torch.complex128


def cn(*shape, dtype=C64):
    return complex_normal(shape, torch.zeros(1, dtype=dtype))


def qpsk(b, n, t, scale=1.0, dtype=C64):
    ph = torch.randint(0, 4, (b, n, t)).to(torch.float64) * (math.pi / 2) + math.pi / 4
    return (scale * torch.polar(torch.ones_like(ph), ph)).to(dtype)


@pytest.mark.parametrize("type_id,params", [("combiner.zf", {}), ("combiner.mmse", {"snr_db": 3.0}),
                                            ("combiner.mmse", {"unbiased": True})])
def test_linear_combiners_contract_gradients(type_id, params):
    torch.manual_seed(0)
    check_contract(type_id, params, y=cn(3, 4, 5), h=cn(3, 4, 2))
    check_contract(type_id, params, y=cn(3, 4, 5), h=cn(3, 5, 4, 2))        # per-symbol (fast fading)
    check_gradients(type_id, params, wrt=["y", "h"], y=cn(3, 4, 5), h=cn(3, 4, 2))


def test_svd_combiner_contract_gradients():
    torch.manual_seed(1)
    check_contract("combiner.svd", {}, y=cn(3, 4, 5), h=cn(3, 4, 2), w=None)
    check_contract("combiner.svd", {}, y=cn(3, 4, 5), h=cn(3, 4, 3), w=cn(3, 3, 2))
    check_gradients("combiner.svd", {}, wrt=["y", "h"], y=cn(3, 4, 5), h=cn(3, 4, 2))


def test_zf_inverts_noiselessly_and_through_the_channel():
    torch.manual_seed(2)
    nt, nr = 2, 4
    x = qpsk(32, nt, 10, 1 / math.sqrt(nt))
    ch = build("channel.mimo_flat", {"nt": nt, "nr": nr, "snr_db": 300.0})
    out = ch(x=x)
    assert torch.allclose(build("combiner.zf")(y=out["y"], h=out["h"])["x_hat"], x, atol=1e-4)
    # fast fading: per-symbol inversion
    chf = build("channel.mimo_flat", {"nt": nt, "nr": nr, "snr_db": 300.0, "fading": "fast"})
    out = chf(x=x)
    assert torch.allclose(build("combiner.mmse", {"snr_db": 300.0})(y=out["y"], h=out["h"])["x_hat"], x, atol=1e-4)
    with pytest.raises(ValueError):
        build("combiner.zf")(y=cn(2, 2, 3), h=cn(2, 2, 3))


def test_mmse_vs_zf():
    """LMMSE has lower MSE than ZF at low SNR (Nr = Nt, the ill-conditioned case); unbiased MMSE
    has unit gain; at high SNR MMSE -> ZF."""
    torch.manual_seed(3)
    nt = nr = 2
    snr = 0.0
    x = qpsk(4000, nt, 8, 1 / math.sqrt(nt))
    out = build("channel.mimo_flat", {"nt": nt, "nr": nr, "snr_db": snr})(x=x)
    y, h = out["y"], out["h"]
    mse = {}
    for name, blk in [("zf", build("combiner.zf")), ("mmse", build("combiner.mmse", {"snr_db": snr})),
                      ("mmse_wrong_ps", build("combiner.mmse", {"snr_db": snr, "stream_power": 1.0}))]:
        mse[name] = ((blk(y=y, h=h)["x_hat"] - x).abs() ** 2).mean().item()
    # analytic LMMSE error per stream: Ps [(I + Ps/N0 H^H H)^{-1}]_ii averaged (Ps = 1/Nt)
    ps, n0 = 1 / nt, 10 ** (-snr / 10)
    eye = torch.eye(nt, dtype=h.dtype)
    err = ps * torch.linalg.inv(eye + (ps / n0) * h.mH @ h)
    analytic = torch.diagonal(err, dim1=-2, dim2=-1).real.mean().item()
    assert abs(mse["mmse"] / analytic - 1) < 0.03
    assert mse["mmse"] < 0.1 * mse["zf"]                    # ZF blows up on bad channels
    assert mse["mmse"] < mse["mmse_wrong_ps"]               # the 1/Nt stream power matters
    # unbiased: E[x_hat | x] = x
    g = build("combiner.mmse", {"snr_db": 300.0, "unbiased": True})
    hh = cn(5, 3, 2, dtype=C128)
    assert torch.allclose(g(y=hh @ x[:5].to(C128), h=hh)["x_hat"], x[:5].to(C128), atol=1e-6)
    hh = cn(64, 4, 2, dtype=C128)
    yy = hh @ x[:64].to(C128) + 0.1 * cn(64, 4, 8, dtype=C128)
    hi = build("combiner.mmse", {"snr_db": 80.0})(y=yy, h=hh)["x_hat"]
    assert torch.allclose(hi, build("combiner.zf")(y=yy, h=hh)["x_hat"], atol=1e-5)


def test_svd_precode_combine_recovers_streams():
    """precoder.svd + combiner.svd: parallel channels; equalized streams equal s without noise."""
    torch.manual_seed(4)
    nt, nr, ns = 4, 3, 2
    s = qpsk(16, ns, 12)
    h = cn(16, nr, nt)
    pre = build("precoder.svd", {"snr_db": 10.0})(s=s, h=h)
    y = h @ pre["x"]
    comb = build("combiner.svd")
    assert torch.allclose(comb(y=y, h=h, w=pre["w"])["x_hat"], s, atol=1e-4)
    # without w: r_i / sigma_i = sqrt(p_i) s_i
    r = comb(y=y, h=h)["x_hat"]                              # min(Nr, Nt) = 3 streams
    assert r.shape == (16, 3, 12)
    p = (pre["w"].abs() ** 2).sum(-2)
    assert torch.allclose(r[:, :ns], p.sqrt()[..., None].to(r.dtype) * s, atol=1e-4)
    assert r[:, ns:].abs().max() < 1e-4                      # the unused mode carries nothing
    raw = build("combiner.svd", {"equalize": False})(y=y, h=h)["x_hat"]
    assert not torch.allclose(raw, r, atol=1e-3)


def test_spectral_efficiency_closed_forms():
    """Seed 002 eq. 30: diagonal H and W = I/sqrt(Nt) give sum_i log2(1 + s_i^2 / (Nt N0))."""
    snr = 5.0
    n0 = 10 ** (-snr / 10)
    sv = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    h = torch.diag(sv).to(C128)[None]
    se = build("sink.spectral_efficiency", {"snr_db": snr})
    expect = torch.log2(1 + sv ** 2 / (3 * n0)).sum()
    v = check_contract(se, None, h=h, w=None)["value"]
    assert torch.allclose(v, expect[None])
    w = torch.eye(3, dtype=C128)[None] / math.sqrt(3)
    assert torch.allclose(se(h=h, w=w)["value"], expect[None])
    # per subcarrier, averaged; and a generic match with slogdet
    torch.manual_seed(5)
    h = cn(4, 6, 3, 2, dtype=C128)
    w = build("precoder.svd", {"snr_db": snr})(h=h)["w"]
    v = check_contract(se, None, h=h, w=w)["value"]
    m = torch.eye(3, dtype=C128) + h @ w @ w.mH @ h.mH / n0
    ref = (torch.linalg.slogdet(m)[1] / math.log(2)).mean(1)
    assert torch.allclose(v, ref)
    check_gradients("sink.spectral_efficiency", {}, wrt=["h", "w"], h=cn(2, 3, 2), w=cn(2, 2, 2))


def test_sum_rate_closed_forms():
    """Orthogonal users with matched beams: no interference, rate = sum log2(1 + |h_k w_k|^2 / N0)."""
    snr = 10.0
    n0 = 10 ** (-snr / 10)
    h = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]], dtype=C128)
    w = torch.eye(2, dtype=C128)[None] / math.sqrt(2)
    sr = build("sink.sum_rate", {"snr_db": snr})
    v = check_contract(sr, None, h=h, w=w)["value"]
    assert torch.allclose(v, torch.tensor([math.log2(1 + 2 / n0) + math.log2(1 + 0.5 / n0)], dtype=v.dtype))
    # full interference: both beams on the same direction
    w2 = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]], dtype=C128) / math.sqrt(2)
    v2 = sr(h=h, w=w2)["value"]
    assert torch.allclose(v2, torch.tensor([math.log2(1 + 2 / (2 + n0))], dtype=v.dtype))
    # a single user's MISO rate with MRT equals the log-det SE of that user
    torch.manual_seed(6)
    h1 = cn(8, 1, 4, dtype=C128)
    w1 = build("precoder.mrt")(h=h1)["w"]
    se = build("sink.spectral_efficiency", {"snr_db": snr})(h=h1, w=w1)["value"]
    assert torch.allclose(sr(h=h1, w=w1)["value"], se)
    check_contract(sr, None, h=cn(3, 5, 2, 4), w=cn(3, 5, 4, 2))
    check_gradients("sink.sum_rate", {}, wrt=["h", "w"], h=cn(2, 3, 4), w=cn(2, 4, 3))


def test_downlink_chain_end_to_end():
    """pilots -> channel -> LS -> RZF on the estimate -> true-channel sum rate: CSI quality matters."""
    torch.manual_seed(7)
    k, nt, b, snr = 3, 4, 400, 10.0
    h = cn(b, k, nt)
    sr = build("sink.sum_rate", {"snr_db": snr})
    rates = {}
    for nmse_db in (-30.0, -3.0):
        h_hat = build("estimator.noisy_csi", {"nmse_db": nmse_db})(h=h)["h_hat"]
        w = build("precoder.rzf", {"alpha": float(k), "snr_db": snr})(h=h_hat)["w"]
        rates[nmse_db] = sr(h=h, w=w)["value"].mean().item()
    assert rates[-30.0] > rates[-3.0] + 1.0
