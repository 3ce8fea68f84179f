"""Channel blocks and the scalar combiner: contracts, gradients and physics checks."""
import math

import pytest
import torch

import blocks  # noqa: F401
from flowgraph.testing import build, check_contract, check_gradients


def _cx(*shape, seed=0):
    """CN(0, 1) test symbols from a private generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)) * 0.5 ** 0.5


def _energy(x):
    return (x.abs() ** 2).reshape(x.shape[0], -1).mean(1)


# ---------------------------------------------------------------- contracts / grads
@pytest.mark.parametrize("type_id,params", [
    ("channel.power_norm", {}),
    ("channel.awgn", {"snr_db": 5.0}),
    ("channel.rayleigh", {"snr_db": 5.0, "fading": "block"}),
    ("channel.rayleigh", {"snr_db": 5.0, "fading": "fast"}),
])
def test_channel_contract_and_gradients(type_id, params):
    torch.manual_seed(0)
    for shape in [(4, 16), (2, 3, 5)]:
        x = _cx(*shape)
        out = check_contract(type_id, params, x=x)
        for t in out.values():
            assert t.shape == x.shape
        check_gradients(type_id, params, wrt=["x"], x=x)


@pytest.mark.parametrize("mode", ["mmse", "zf"])
def test_combiner_contract_and_gradients(mode):
    y, h = _cx(4, 16, seed=1), _cx(4, 16, seed=2)
    check_contract("combiner.mmse_scalar", {"mode": mode}, y=y, h=h)
    check_gradients("combiner.mmse_scalar", {"mode": mode}, wrt=["y", "h"], y=y, h=h)


def test_channel_input_declared():
    from flowgraph import registry
    assert registry.get("channel.awgn").channel_input == "x"
    assert registry.get("channel.rayleigh").channel_input == "x"


def test_snr_is_runtime():
    ch = build("channel.awgn", {"snr_db": 0.0})
    assert ch.params["snr_db"].runtime
    ch.set_runtime("snr_db", 30)
    assert ch.p.snr_db == 30.0


# ---------------------------------------------------------------- power norm
def test_power_norm_is_per_example():
    x = _cx(4, 256)
    scales = torch.tensor([1e-3, 1.0, 10.0, 1e3]).view(4, 1)
    out = build("channel.power_norm")(x=x * scales)["x"]
    assert torch.allclose(_energy(out), torch.ones(4), atol=1e-5)
    # a batch-level normalization would leave the tiny example far below 1
    batch_norm = x * scales / (x * scales).abs().pow(2).mean().sqrt()
    assert _energy(batch_norm)[0] < 1e-3
    out2 = build("channel.power_norm", {"power": 2.0})(x=_cx(3, 2, 8) * 7)["x"]
    assert torch.allclose(_energy(out2), torch.full((3,), 2.0), atol=1e-5)


def test_power_norm_zero_example_stays_finite():
    x = _cx(2, 8)
    x[0] = 0
    out = build("channel.power_norm")(x=x)["x"]
    assert torch.isfinite(torch.view_as_real(out)).all() and out[0].abs().max() == 0


# ---------------------------------------------------------------- AWGN
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_awgn_empirical_snr(snr_db):
    torch.manual_seed(1234)
    x = build("channel.power_norm")(x=_cx(8, 32768, seed=3))["x"]
    y = build("channel.awgn", {"snr_db": snr_db})(x=x)["y"]
    n = y - x
    measured = 10 * math.log10(_energy(x).mean().item() / _energy(n).mean().item())
    assert abs(measured - snr_db) < 0.1
    # circular: real and imaginary parts each carry N0/2
    n0 = 10 ** (-snr_db / 10)
    assert n.real.var().item() == pytest.approx(n0 / 2, rel=0.02)
    assert n.imag.var().item() == pytest.approx(n0 / 2, rel=0.02)


def test_awgn_uses_global_rng():
    x = _cx(2, 64)
    ch = build("channel.awgn", {"snr_db": 0.0})
    torch.manual_seed(7)
    a = ch(x=x)["y"]
    torch.manual_seed(7)
    b = ch(x=x)["y"]
    assert torch.equal(a, b)


# ---------------------------------------------------------------- Rayleigh
def test_rayleigh_gain_statistics():
    torch.manual_seed(0)
    x = torch.ones(200000, 1, dtype=torch.cfloat)
    h = build("channel.rayleigh", {"fading": "fast", "snr_db": 30.0})(x=x)["h"].flatten()
    assert (h.abs() ** 2).mean().item() == pytest.approx(1.0, abs=0.02)       # E|h|^2 = 1
    assert h.mean().abs().item() < 0.01                                         # zero mean
    ang = torch.angle(h)
    assert torch.exp(1j * ang).mean().abs().item() < 0.01                      # circular mean ~ 0
    # phase uniform on [-pi, pi): compare the histogram with the flat one
    hist = torch.histc(ang, bins=8, min=-math.pi, max=math.pi) / ang.numel()
    assert (hist - 1 / 8).abs().max().item() < 0.005
    # |h| is Rayleigh: P(|h|^2 > 1) = exp(-1)
    assert (h.abs() ** 2 > 1).float().mean().item() == pytest.approx(math.exp(-1), abs=0.01)


def test_rayleigh_block_vs_fast():
    torch.manual_seed(0)
    x = _cx(5, 4, 6)
    hb = build("channel.rayleigh", {"fading": "block"})(x=x)["h"]
    assert hb.shape == x.shape
    flat = hb.reshape(5, -1)
    assert torch.equal(flat, flat[:, :1].expand_as(flat))                     # one h per example
    assert flat[:, 0].real.unique().numel() == 5                                # differs across examples
    hf = build("channel.rayleigh", {"fading": "fast"})(x=x)["h"].reshape(5, -1)
    assert hf[0].real.unique().numel() == hf.shape[1]                           # varies per symbol


def test_rayleigh_applies_phase_and_noise():
    torch.manual_seed(0)
    x = build("channel.power_norm")(x=_cx(4, 4096))["x"]
    out = build("channel.rayleigh", {"fading": "block", "snr_db": 10.0})(x=x)
    n = out["y"] - out["h"] * x
    assert _energy(n).mean().item() == pytest.approx(0.1, rel=0.05)
    assert not torch.allclose(out["y"], out["h"].abs() * x, atol=0.5)          # phase is applied


def test_mmse_recovers_x_at_high_snr():
    torch.manual_seed(0)
    x = build("channel.power_norm")(x=_cx(16, 512))["x"]
    for fading in ("block", "fast"):
        out = build("channel.rayleigh", {"fading": fading, "snr_db": 40.0})(x=x)
        xh = build("combiner.mmse_scalar", {"snr_db": 40.0})(y=out["y"], h=out["h"])["x"]
        mse = (xh - x).abs().pow(2).mean().item()
        assert mse < 0.01, (fading, mse)


def test_mmse_vs_zf_ablation():
    torch.manual_seed(0)
    x = build("channel.power_norm")(x=_cx(8, 4096))["x"]
    out = build("channel.rayleigh", {"fading": "fast", "snr_db": 0.0})(x=x)
    mm = build("combiner.mmse_scalar", {"snr_db": 0.0, "mode": "mmse"})(y=out["y"], h=out["h"])["x"]
    zf = build("combiner.mmse_scalar", {"snr_db": 0.0, "mode": "zf"})(y=out["y"], h=out["h"])["x"]
    assert not torch.allclose(mm, zf)
    mse_mm = (mm - x).abs().pow(2).mean().item()
    mse_zf = (zf - x).abs().pow(2).mean().item()
    assert mse_mm < mse_zf            # MMSE does not amplify noise on deep fades
    # closed form of the scalar LMMSE error: E[N0 / (|h|^2 + N0)]
    g = out["h"].abs() ** 2
    assert mse_mm == pytest.approx((1.0 / (g + 1.0)).mean().item(), rel=0.05)
    # and at high SNR they coincide
    hi = build("channel.rayleigh", {"fading": "fast", "snr_db": 60.0})(x=x)
    a = build("combiner.mmse_scalar", {"snr_db": 60.0, "mode": "mmse"})(**hi)["x"]
    b = build("combiner.mmse_scalar", {"snr_db": 60.0, "mode": "zf"})(**hi)["x"]
    assert (a - b).abs().median().item() < 1e-4


def test_power_norm_antenna_dim_gives_total_power_per_channel_use():
    from flowgraph.testing import build
    x = torch.randn(3, 4, 10, dtype=torch.cfloat) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1)
    y = build("channel.power_norm", {"antenna_dim": 1})(x=x)["x"]
    per_use = (y.abs() ** 2).sum(1).mean(1)          # summed over Nt=4, averaged over T
    assert torch.allclose(per_use, torch.ones(3), atol=1e-5)
    y0 = build("channel.power_norm")(x=x)["x"]
    assert torch.allclose((y0.abs() ** 2).mean((1, 2)), torch.ones(3), atol=1e-5)
