"""estimator.ls / lmmse / perfect / noisy_csi and sink.nmse against closed forms."""
import math

import pytest
import torch

import blocks.mimo  # noqa: F401
from blocks.mimo._common import complex_normal
from flowgraph.testing import build, check_contract, check_gradients

C64 = torch.complex64


def cn(*shape, dtype=C64):
    return complex_normal(shape, torch.zeros(1, dtype=dtype))


def pilot_link(nt, nr, np_, snr_db, b, power=1.0, kind="dft"):
    """Send pilots through channel.mimo_flat; return (y_pilots, tau, true h)."""
    tau = build("csirs.pilots", {"nt": nt, "num_pilots": np_, "power": power, "kind": kind})()["pilots"]
    tau = tau.expand(b, -1, -1)
    ch = build("channel.mimo_flat", {"nt": nt, "nr": nr, "snr_db": snr_db})
    out = ch(x=torch.zeros(b, nt, 1, dtype=C64), pilots=tau)
    return out["y_pilots"], tau, out["h"]


@pytest.mark.parametrize("type_id,params", [("estimator.ls", {}), ("estimator.lmmse", {"snr_db": 5.0})])
def test_pilot_estimators_contract_and_gradients(type_id, params):
    torch.manual_seed(0)
    check_contract(type_id, params, y_pilots=cn(4, 3, 5), pilots=cn(4, 2, 5))
    check_gradients(type_id, params, wrt=["y_pilots", "pilots"], y_pilots=cn(4, 3, 5), pilots=cn(4, 2, 5))


def test_genie_and_noisy_contract():
    torch.manual_seed(0)
    h = cn(3, 2, 4)
    assert check_contract("estimator.perfect", {}, h=h)["h_hat"] is h
    check_contract("estimator.noisy_csi", {"nmse_db": -10.0}, h=h)
    check_contract("estimator.noisy_csi", {}, h=cn(3, 5, 2, 4))           # with a subcarrier dim
    check_gradients("estimator.noisy_csi", {}, wrt=["h"], h=h)
    check_contract("sink.nmse", {}, h_hat=cn(3, 2, 4), h=h)


def test_ls_exact_without_noise():
    torch.manual_seed(1)
    y, tau, h = pilot_link(3, 2, 3, 300.0, 8)
    h_ls = build("estimator.ls")(y_pilots=y, pilots=tau)["h_hat"]
    assert torch.allclose(h_ls, h, atol=1e-5)
    # square tau: the pseudo-inverse is the plain inverse of seed 000 eq. 10
    assert torch.allclose(h_ls, y @ torch.linalg.inv(tau), atol=1e-5)


@pytest.mark.parametrize("nt,nr,np_,snr_db,power,kind", [(2, 2, 4, 0.0, 1.0, "dft"),
                                                          (4, 2, 4, 10.0, 1.0, "identity"),
                                                          (2, 3, 2, 5.0, 2.0, "dft")])
def test_ls_nmse_matches_closed_form(nt, nr, np_, snr_db, power, kind):
    """Orthogonal pilots, tau tau^H = (P Np / Nt) I: NMSE_LS = Nt N0 / (P Np)."""
    torch.manual_seed(2)
    b = 6000
    y, tau, h = pilot_link(nt, nr, np_, snr_db, b, power, kind)
    h_ls = build("estimator.ls")(y_pilots=y, pilots=tau)["h_hat"]
    n0 = 10 ** (-snr_db / 10)
    analytic = nt * n0 / (power * np_)
    err = ((h_ls - h).abs() ** 2).sum()
    ref = (h.abs() ** 2).sum()
    assert abs((err / ref).item() / analytic - 1) < 0.04       # ratio of means
    # per-example sink: E[||E||^2 / ||H||^2] = analytic * n / (n - 1), ||H||^2 ~ Gamma(n, 1), n = Nr Nt
    n = nr * nt
    v = build("sink.nmse")(h_hat=h_ls, h=h)["value"]
    assert v.shape == (b,)
    assert abs(v.mean().item() / (analytic * n / (n - 1)) - 1) < 0.06


def test_lmmse_beats_ls_at_low_snr():
    """LMMSE NMSE = N0/(c + N0) < LS NMSE = N0/c, c = P Np / Nt; at high SNR they coincide."""
    torch.manual_seed(3)
    nt, nr, np_, b = 2, 2, 2, 6000
    res = {}
    for snr_db in (-5.0, 30.0):
        y, tau, h = pilot_link(nt, nr, np_, snr_db, b)
        ls = build("estimator.ls")(y_pilots=y, pilots=tau)["h_hat"]
        lm = build("estimator.lmmse", {"snr_db": snr_db})(y_pilots=y, pilots=tau)["h_hat"]
        ref = (h.abs() ** 2).sum()
        res[snr_db] = (((ls - h).abs() ** 2).sum() / ref).item(), (((lm - h).abs() ** 2).sum() / ref).item()
    n0 = 10 ** 0.5
    c = np_ / nt
    ls_lo, lm_lo = res[-5.0]
    assert abs(ls_lo / (n0 / c) - 1) < 0.05
    assert abs(lm_lo / (n0 / (c + n0)) - 1) < 0.05
    assert lm_lo < 0.5 * ls_lo
    ls_hi, lm_hi = res[30.0]
    assert abs(lm_hi / ls_hi - 1) < 0.01


def _kron_link(nt, nr, np_, snr_db, b, rho_tx, rho_rx):
    tau = build("csirs.pilots", {"nt": nt, "num_pilots": np_})()["pilots"].expand(b, -1, -1)
    ch = build("channel.mimo_flat", {"nt": nt, "nr": nr, "snr_db": snr_db, "correlation": "kronecker",
                                     "rho_tx": rho_tx, "rho_rx": rho_rx})
    out = ch(x=torch.zeros(b, nt, 1, dtype=C64), pilots=tau)
    return out["y_pilots"], tau, out["h"]


def _nmse(h_hat, h):
    return (((h_hat - h).abs() ** 2).sum() / (h.abs() ** 2).sum()).item()


def test_lmmse_contract_and_gradients_with_a_covariance():
    torch.manual_seed(6)
    params = {"snr_db": 5.0, "covariance": "kronecker", "rho_tx": 0.7, "rho_rx": 0.5}
    check_contract("estimator.lmmse", params, y_pilots=cn(4, 3, 5), pilots=cn(4, 2, 5))
    check_gradients("estimator.lmmse", params, wrt=["y_pilots", "pilots"], y_pilots=cn(4, 3, 5), pilots=cn(4, 2, 5))
    r = torch.eye(6, dtype=C64).expand(4, 6, 6).contiguous()
    check_contract("estimator.lmmse", {"snr_db": 5.0}, y_pilots=cn(4, 3, 5), pilots=cn(4, 2, 5), r_h=r)
    with pytest.raises(ValueError, match="r_h"):
        build("estimator.lmmse")(y_pilots=cn(4, 3, 5), pilots=cn(4, 2, 5), r_h=torch.eye(5, dtype=C64)[None])


def test_lmmse_with_the_channel_covariance_beats_ls_under_kronecker_correlation():
    """Kronecker-correlated 4 x 4 channel (rho 0.9 at both ends): the LMMSE estimate with the
    true covariance (param or input r_h) has NMSE <= LS and <= the i.i.d.-prior LMMSE at every
    SNR, by a wide margin at low SNR, and equals the i.i.d. closed form when R_h = I."""
    torch.manual_seed(7)
    nt, nr, np_, b = 4, 4, 4, 4000
    rho = 0.9
    from blocks.mimo.estimators import kron_covariance
    r_h = kron_covariance(nr, nt, rho, rho, C64, "cpu")[None]
    for snr_db in (-5.0, 5.0, 20.0):
        y, tau, h = _kron_link(nt, nr, np_, snr_db, b, rho, rho)
        ls = _nmse(build("estimator.ls")(y_pilots=y, pilots=tau)["h_hat"], h)
        iid = _nmse(build("estimator.lmmse", {"snr_db": snr_db})(y_pilots=y, pilots=tau)["h_hat"], h)
        kron_blk = build("estimator.lmmse", {"snr_db": snr_db, "covariance": "kronecker",
                                             "rho_tx": rho, "rho_rx": rho})
        h_kron = kron_blk(y_pilots=y, pilots=tau)["h_hat"]
        kron = _nmse(h_kron, h)
        h_in = build("estimator.lmmse", {"snr_db": snr_db})(y_pilots=y, pilots=tau, r_h=r_h)["h_hat"]
        assert torch.allclose(h_in, h_kron, atol=1e-4)                    # input = param
        print(f"SNR {snr_db:5.1f} dB  NMSE [dB]: LS {10 * math.log10(ls):6.2f}  LMMSE iid "
              f"{10 * math.log10(iid):6.2f}  LMMSE kronecker {10 * math.log10(kron):6.2f}")
        assert kron <= iid <= ls, (snr_db, kron, iid, ls)
        if snr_db < 0:
            assert kron < 0.5 * iid                                      # the prior matters at low SNR
    # R_h = I reproduces the i.i.d. estimator of seed 000's model
    y, tau, h = pilot_link(2, 3, 4, 0.0, 16)
    eye = torch.eye(6, dtype=C64)[None]
    a = build("estimator.lmmse", {"snr_db": 0.0})(y_pilots=y, pilots=tau)["h_hat"]
    c = build("estimator.lmmse", {"snr_db": 0.0})(y_pilots=y, pilots=tau, r_h=eye)["h_hat"]
    assert torch.allclose(a, c, atol=1e-5)


def test_noisy_csi_nmse():
    """Ablation and calibration: the error energy follows nmse_db."""
    torch.manual_seed(4)
    h = cn(4000, 4, 8) * 3.0                    # NMSE is relative to the example's own energy
    for nmse_db in (-6.9, -20.0):
        h_hat = build("estimator.noisy_csi", {"nmse_db": nmse_db})(h=h)["h_hat"]
        v = build("sink.nmse")(h_hat=h_hat, h=h)["value"]
        assert abs(10 * torch.log10(v.mean()).item() - nmse_db) < 0.1
    blk = build("estimator.noisy_csi", {"nmse_db": -10.0})
    blk.set_runtime("nmse_db", -100.0)
    assert torch.allclose(blk(h=h)["h_hat"], h, atol=1e-3)


def test_learnable_pilots_train_through_ls():
    """A learnable CSI-RS receives gradients through channel.mimo_flat and estimator.ls."""
    torch.manual_seed(5)
    pil = build("csirs.pilots", {"nt": 2, "num_pilots": 3, "learnable": True})
    ch = build("channel.mimo_flat", {"nt": 2, "nr": 2, "snr_db": 5.0})
    ls = build("estimator.ls")
    x = torch.zeros(16, 2, 1, dtype=C64)
    tau = pil(ref=x)["pilots"]
    out = ch(x=x, pilots=tau)
    loss = build("sink.nmse")(h_hat=ls(y_pilots=out["y_pilots"], pilots=tau)["h_hat"], h=out["h"])["value"].mean()
    loss.backward()
    assert pil.tau.grad is not None and pil.tau.grad.abs().sum() > 0


def test_empty_pilots_rejected():
    with pytest.raises(ValueError, match="pilots"):
        build("estimator.ls")(y_pilots=torch.zeros(2, 2, 0, dtype=C64), pilots=torch.zeros(2, 2, 0, dtype=C64))
