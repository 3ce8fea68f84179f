"""channel.mimo_flat and csirs.pilots: contracts, gradients, empirical SNR, correlation, pilots."""
import math

import pytest
import torch

import blocks.mimo  # noqa: F401  (registers the blocks)
from blocks.mimo._common import complex_normal, exp_corr_sqrt
from flowgraph.testing import build, check_contract, check_gradients

C64 = torch.complex64


def cn(*shape, dtype=C64):
    return complex_normal(shape, torch.zeros(1, dtype=dtype))


def unit_symbols(b, nt, t, dtype=C64):
    """QPSK-like unit-total-energy symbols: E||x_t||^2 = 1 summed over Nt."""
    ph = torch.randint(0, 4, (b, nt, t)).to(torch.float64) * (math.pi / 2) + math.pi / 4
    return (torch.polar(torch.ones_like(ph), ph) / math.sqrt(nt)).to(dtype)


@pytest.mark.parametrize("fading", ["block", "fast"])
@pytest.mark.parametrize("correlation", ["iid", "kronecker"])
def test_contract(fading, correlation):
    torch.manual_seed(0)
    p = {"nt": 3, "nr": 2, "fading": fading, "correlation": correlation, "rho_tx": 0.5, "rho_rx": 0.3}
    out = check_contract("channel.mimo_flat", p, x=cn(4, 3, 5), pilots=cn(4, 3, 6))
    assert out["y_pilots"].shape == (4, 2, 6)
    assert out["h"].shape == ((4, 2, 3) if fading == "block" else (4, 5, 2, 3))
    out = check_contract("channel.mimo_flat", p, x=cn(4, 3, 5), pilots=None)
    assert out["y_pilots"].shape == (4, 2, 0)


def test_gradients():
    check_gradients("channel.mimo_flat", {"nt": 2, "nr": 3}, wrt=["x", "pilots"],
                    x=cn(2, 2, 4), pilots=cn(2, 2, 2))
    check_gradients("channel.mimo_flat", {"nt": 2, "nr": 3, "fading": "fast"}, wrt=["x"], x=cn(2, 2, 4))
    check_gradients("channel.mimo_flat", {"nt": 2, "nr": 3}, wrt=["x", "h"], x=cn(2, 2, 4), h=cn(2, 3, 2))


def test_bad_params():
    with pytest.raises(ValueError):
        build("channel.mimo_flat", {"rho_tx": 1.5})
    with pytest.raises(ValueError):
        build("channel.mimo_flat", {"fading": "slow"})


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
@pytest.mark.parametrize("correlation", ["iid", "kronecker"])
def test_empirical_snr_per_receive_antenna(snr_db, correlation):
    """SNR = Es/N0 per receive antenna: E|[Hx]_i|^2 / E|n_i|^2 = 1/N0 for E||x_t||^2 = 1."""
    torch.manual_seed(1)
    nt, nr, b, t = 2, 3, 40000, 4
    ch = build("channel.mimo_flat", {"nt": nt, "nr": nr, "snr_db": snr_db, "correlation": correlation,
                                     "rho_tx": 0.7, "rho_rx": 0.5})
    x = unit_symbols(b, nt, t)
    out = ch(x=x)
    s = out["h"] @ x
    n = out["y"] - s
    sig = (s.abs() ** 2).mean(dim=(0, 2))               # per receive antenna
    noise = (n.abs() ** 2).mean(dim=(0, 2))
    snr_emp = 10 * torch.log10(sig / noise)
    assert torch.allclose(snr_emp, torch.full_like(snr_emp, snr_db), atol=0.1), snr_emp
    assert torch.allclose(noise, torch.full_like(noise, 10 ** (-snr_db / 10)), rtol=0.03)


def test_fast_fading_snr_and_structure():
    torch.manual_seed(2)
    ch = build("channel.mimo_flat", {"nt": 2, "nr": 2, "snr_db": 5.0, "fading": "fast"})
    x = unit_symbols(4000, 2, 8)
    out = ch(x=x)
    h = out["h"]                                        # (B, T, Nr, Nt)
    s = torch.einsum("btij,bjt->bit", h, x)
    snr = 10 * torch.log10((s.abs() ** 2).mean() / ((out["y"] - s).abs() ** 2).mean())
    assert abs(snr.item() - 5.0) < 0.1
    # independent draws per symbol time: correlation between consecutive H ~ 0
    c = (h[:, 1:] * h[:, :-1].conj()).mean().abs()
    assert c < 0.02
    # block fading: the same H for all symbol times of an example
    ch_b = build("channel.mimo_flat", {"nt": 2, "nr": 2, "snr_db": 300.0})
    xb = unit_symbols(3, 2, 8)
    ob = ch_b(x=xb)
    assert torch.allclose(ob["y"], ob["h"] @ xb, atol=1e-5)


def test_pilots_see_the_same_channel():
    torch.manual_seed(3)
    ch = build("channel.mimo_flat", {"nt": 3, "nr": 2, "snr_db": 300.0})
    tau = build("csirs.pilots", {"nt": 3, "num_pilots": 4})()["pilots"]       # batch 1, broadcast
    out = ch(x=unit_symbols(5, 3, 7), pilots=tau)
    assert torch.allclose(out["y_pilots"], out["h"] @ tau, atol=1e-5)


def test_unit_entry_energy_and_kronecker_covariance():
    """Ablation: kronecker changes the spatial covariance (E[H H^H]/Nt = R_rx, E[H^H H]/Nr = R_tx)."""
    torch.manual_seed(4)
    nt, nr, b = 3, 4, 20000
    x = unit_symbols(b, nt, 1)
    rho_tx, rho_rx = 0.8, 0.5
    cov = {}
    for corr in ("iid", "kronecker"):
        ch = build("channel.mimo_flat", {"nt": nt, "nr": nr, "correlation": corr,
                                         "rho_tx": rho_tx, "rho_rx": rho_rx})
        h = ch(x=x)["h"].to(torch.complex128)
        assert abs((h.abs() ** 2).mean().item() - 1.0) < 0.02           # CN(0, 1) entries
        cov[corr] = ((h.mH @ h).mean(0) / nr, (h @ h.mH).mean(0) / nt)
    i_t = torch.arange(nt, dtype=torch.float64)
    i_r = torch.arange(nr, dtype=torch.float64)
    r_tx = rho_tx ** (i_t[:, None] - i_t[None, :]).abs()
    r_rx = rho_rx ** (i_r[:, None] - i_r[None, :]).abs()
    assert torch.allclose(cov["kronecker"][0].real, r_tx, atol=0.03)
    assert torch.allclose(cov["kronecker"][1].real, r_rx, atol=0.03)
    assert torch.allclose(cov["iid"][0].real, torch.eye(nt, dtype=torch.float64), atol=0.03)
    assert torch.allclose(cov["iid"][1].real, torch.eye(nr, dtype=torch.float64), atol=0.03)
    assert (cov["kronecker"][0] - cov["iid"][0]).abs().max() > 0.5


def test_exp_corr_sqrt():
    r = exp_corr_sqrt(4, 0.6, torch.float64, "cpu")
    i = torch.arange(4, dtype=torch.float64)
    assert torch.allclose(r @ r, 0.6 ** (i[:, None] - i[None, :]).abs(), atol=1e-12)
    r1 = exp_corr_sqrt(3, 1.0, torch.float64, "cpu")          # rank one still works
    assert torch.allclose(r1 @ r1, torch.ones(3, 3, dtype=torch.float64), atol=1e-10)


# ----------------------------------------------------------------------------- csirs.pilots

@pytest.mark.parametrize("kind,np_", [("dft", 0), ("dft", 5), ("identity", 6)])
def test_pilots_orthogonal(kind, np_):
    nt, power = 3, 2.0
    out = check_contract("csirs.pilots", {"nt": nt, "num_pilots": np_, "kind": kind, "power": power},
                         ref=cn(4, 7))
    tau = out["pilots"].to(torch.complex128)
    npil = np_ or nt
    assert tau.shape == (4, nt, npil)
    gram = tau[0] @ tau[0].mH
    assert torch.allclose(gram, power * npil / nt * torch.eye(nt, dtype=gram.dtype), atol=1e-5)
    assert torch.allclose((tau[0].abs() ** 2).sum(0), torch.full((npil,), power, dtype=torch.float64),
                          atol=1e-5)


def test_pilots_bad():
    with pytest.raises(ValueError):
        build("csirs.pilots", {"nt": 4, "num_pilots": 2})
    with pytest.raises(ValueError):
        build("csirs.pilots", {"nt": 2, "num_pilots": 3, "kind": "identity"})


def test_pilots_learnable():
    blk = check_gradients("csirs.pilots", {"nt": 2, "num_pilots": 4, "learnable": True}, ref=cn(3, 2))
    assert blk.tau.grad is not None
    with torch.no_grad():
        blk.tau.mul_(3.0).add_(0.1)
    tau = blk(ref=cn(3, 2))["pilots"][0]
    assert abs((tau.abs() ** 2).sum().item() - 4.0) < 1e-4          # energy kept at power * Np
    assert len(list(build("csirs.pilots", {"nt": 2}).parameters())) == 0


def test_two_phase_closed_loop():
    """Pilot phase draws H; the data phase reuses it through the optional ``h`` input (no cycle)."""
    torch.manual_seed(5)
    k, nt, b = 2, 4, 64
    pil = build("csirs.pilots", {"nt": nt})
    ch_p = build("channel.mimo_flat", {"nt": nt, "nr": k, "snr_db": 40.0})
    ch_d = build("channel.mimo_flat", {"nt": nt, "nr": k, "snr_db": 40.0})
    s = unit_symbols(b, k, 10) * math.sqrt(k)                     # unit energy per user stream
    tau = pil(ref=s)["pilots"]
    out_p = check_contract(ch_p, None, x=None, pilots=tau, h=None)
    assert out_p["y"].shape == (b, k, 0)
    h_hat = build("estimator.ls")(y_pilots=out_p["y_pilots"], pilots=tau)["h_hat"]
    pre = build("precoder.zf")(s=s, h=h_hat)
    out_d = check_contract(ch_d, None, x=pre["x"], pilots=None, h=out_p["h"])
    assert out_d["h"] is not None and torch.equal(out_d["h"], out_p["h"])
    # ZF on a good estimate: each user receives its own stream times a real positive gain
    g = torch.diagonal(out_p["h"] @ pre["w"], dim1=-2, dim2=-1)
    r = out_d["y"] / g[..., None]
    assert ((r - s).abs() ** 2).mean() < 1e-2
    with pytest.raises(ValueError, match="input h"):
        ch_d(x=pre["x"], h=out_p["h"][:, :1])
    with pytest.raises(ValueError, match="at least one"):
        ch_d()
