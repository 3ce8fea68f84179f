"""OFDM resource grid (map / extract), LS channel estimation and LMMSE equalization."""
import pytest
import torch

import blocks  # noqa: F401
from flowgraph.testing import build, check_contract, check_gradients


import sionna.phy as sionna_phy  # noqa: E402

G = {"n_symbols": 14, "n_subcarriers": 32, "n_streams": 4}
D = (14 - 2) * 32
DATA_SYMS = [s for s in range(14) if s not in (2, 11)]


def _cx(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)) * 0.5 ** 0.5


@pytest.fixture(autouse=True)
def _seed():
    sionna_phy.config.seed = 99
    torch.manual_seed(0)


def test_grid_round_trip_pilots_and_reference():
    data = _cx(3, 4, D)
    out = check_contract("csirs.ofdm_grid", G, data=data)
    x, ref = out["x"], out["pilot_ref"]
    assert x.shape == ref.shape == (3, 4, 14, 32)
    back = check_contract("csirs.ofdm_extract", G, x=x)["data"]
    assert torch.equal(back, data)
    # pilots only on OFDM symbols 2 and 11 (seed 003 Table II), zeros at all data REs
    assert (ref.abs() > 0).any(dim=(0, 1, 3)).nonzero().flatten().tolist() == [2, 11]
    assert ref[:, :, DATA_SYMS].abs().max() == 0
    assert torch.equal(x[:, :, [2, 11]], ref[:, :, [2, 11]])
    # orthogonal comb: one stream per pilot RE, stream j on subcarriers j mod 4
    active = (ref[0].abs() > 0)[:, 2]                         # (Nt, F)
    assert active.sum(0).eq(1).all()
    assert all(active[j, j::4].all() for j in range(4))
    # average energy 1 per stream per pilot OFDM symbol; same pilots for every example
    assert torch.allclose(ref[0, :, 2].abs().square().mean(-1), torch.ones(4))
    assert torch.equal(ref[0], ref[2])
    # same params -> same pilots in a second block; another pilot_seed -> other pilots
    data0 = torch.zeros(1, 4, D, dtype=torch.complex64)
    r2 = build("csirs.ofdm_grid", G)(data=data0)["pilot_ref"]
    r3 = build("csirs.ofdm_grid", {**G, "pilot_seed": 1})(data=data0)["pilot_ref"]
    assert torch.equal(r2[0], ref[0]) and not torch.equal(r3[0], ref[0])


def test_grid_gradients_and_binding():
    data = _cx(2, 4, D)
    check_gradients("csirs.ofdm_grid", G, wrt=["data"], data=data)
    check_gradients("csirs.ofdm_extract", G, wrt=["x"], x=_cx(2, 3, 14, 32))
    cls = type(build("csirs.ofdm_grid", G))
    assert cls.bind_dims(build("csirs.ofdm_grid", G).p) == {"S": 14, "F": 32, "D": D, "Nt": 4}
    with pytest.raises(ValueError):
        build("csirs.ofdm_grid", {**G, "pilot_symbols": [2, 14]})
    with pytest.raises(ValueError):
        build("csirs.ofdm_grid", {**G, "n_subcarriers": 30})   # comb needs F multiple of Nt


def test_extract_works_on_received_grids_with_other_row_counts():
    x = _cx(2, 6, 14, 32)
    d = build("csirs.ofdm_extract", G)(x=x)["data"]
    assert d.shape == (2, 6, D)
    assert torch.equal(d[:, :, :32], x[:, :, 0])             # first data RE = symbol 0
    assert torch.equal(d[:, :, 64:96], x[:, :, 3])            # symbol 2 is skipped


@pytest.mark.parametrize("interp", ["nn", "lin", "lin_time_avg"])
def test_ls_recovers_h_at_pilots_noiseless(interp):
    """Unprecoded grid through a noiseless UMi channel: LS is exact at the pilot REs."""
    data = _cx(2, 4, D)
    g = build("csirs.ofdm_grid", G)(data=data)
    ch = build("channel.umi", {"n_subcarriers": 32, "add_noise": False})
    out = ch(x=g["x"])
    est = check_contract("estimator.ls_ofdm", {**G, "interpolation": interp}, y=out["y"])
    pil = g["pilot_ref"][0].abs() > 0                         # (Nt, S, F) pilot REs per stream
    h, hh = out["h"], est["h_hat"]
    err = (hh - h)[:, :, pil].abs().max().item()
    assert err < 1e-4 * h[:, :, pil].abs().mean().item()
    # interpolation: whole-grid estimate close to h (static UE, smooth in frequency)
    nmse = ((hh - h).abs().square().mean() / h.abs().square().mean()).item()
    assert nmse < 0.2
    # err_var = N0 / |p|^2 at pilots, |p|^2 = Nt
    assert torch.allclose(est["err_var"][:, :, pil], torch.full_like(est["err_var"][:, :, pil], 0.1 / 4))


def test_ls_estimation_mse_matches_n0_over_pilot_energy():
    """LS error at pilot REs has variance N0/|p|^2 (the closed form Sionna reports)."""
    data = _cx(8, 4, D)
    g = build("csirs.ofdm_grid", G)(data=data)
    ch = build("channel.tdl", {"n_subcarriers": 32, "snr_db": 10.0})
    out = ch(x=g["x"])
    est = build("estimator.ls_ofdm", {**G, "snr_db": 10.0})(y=out["y"])
    pil = g["pilot_ref"][0].abs() > 0
    mse = (est["h_hat"] - out["h"])[:, :, pil].abs().square().mean().item()
    assert abs(mse / (0.1 / 4) - 1) < 0.15


def test_lmmse_joint_and_per_user():
    data = _cx(2, 4, D)
    x = build("csirs.ofdm_grid", G)(data=data)["x"]
    # joint: 4 UE antennas detect 4 streams, perfect CSI, high SNR -> data back
    out = build("channel.tdl", {"n_subcarriers": 32, "snr_db": 40.0})(x=x)
    eq = check_contract("combiner.lmmse_ofdm", {**G, "mode": "joint", "snr_db": 40.0},
                        y=out["y"], h_hat=out["h"], err_var=None)
    assert eq["x_hat"].shape == eq["no_eff"].shape == (2, 4, D)
    assert (eq["x_hat"] - data).abs().square().mean() < 5e-2
    # per_user: an ideally precoded (diagonal effective) channel, UE k decodes stream k
    heff = torch.zeros_like(out["h"])
    for k in range(4):
        heff[:, k, k] = out["h"][:, k, 0]
    y = torch.einsum("bknsf,bnsf->bksf", heff, x)
    eq = check_contract("combiner.lmmse_ofdm", {**G, "snr_db": 40.0}, y=y, h_hat=heff,
                        err_var=torch.zeros(2, 4, 4, 14, 32))
    assert (eq["x_hat"] - data).abs().square().mean() < 1e-3
    assert (eq["no_eff"] > 0).all()


@pytest.mark.parametrize("type_id,params,name,shape", [
    ("csirs.ofdm_grid", G, "data", (2, 4, D)),
    ("csirs.ofdm_extract", G, "x", (2, 4, 14, 32)),
    ("channel.umi", {"n_subcarriers": 32}, "x", (2, 4, 14, 32)),
    ("classical.qam_demap", {}, "y", (2, 10)),
])
def test_first_use_under_inference_mode_then_training(type_id, params, name, shape):
    """Sionna state built lazily under torch.inference_mode must not poison later training."""
    b = build(type_id, params)
    b._sn.clear()                                   # force the lazy build inside inference mode
    x = _cx(*shape)
    with torch.inference_mode():
        b(**{name: x})
        b(**{name: x})
    check_gradients(b, wrt=[name], **{name: x})
