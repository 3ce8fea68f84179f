"""OFDM channel blocks: 3GPP 38.901 (UMi/UMa/RMa/CDL/TDL via Sionna) and the sparse
massive-MIMO OFDM model of seeds 001/002: contracts, gradients, unit gain, noise level,
delay spread ordering, Doppler."""
import math

import pytest
import torch

import blocks  # noqa: F401
from blocks.ofdm.channels import rms_delay_spread
from flowgraph.testing import build, check_contract, check_gradients


sionna_phy = pytest.importorskip("sionna.phy")

#: small grids keep the suite fast (CP must not exceed the FFT size in Sionna)
SMALL = {"n_subcarriers": 16, "n_symbols": 4, "cyclic_prefix": 4}


def _cx(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)) * 0.5 ** 0.5


@pytest.fixture(autouse=True)
def _seed():
    sionna_phy.config.seed = 1234
    torch.manual_seed(0)


@pytest.mark.parametrize("type_id,extra", [
    ("channel.umi", {}),
    ("channel.uma", {"los": "nlos"}),
    ("channel.rma", {"los": "los", "max_speed": 10.0}),
    ("channel.cdl", {"model": "C"}),
    ("channel.tdl", {"model": "D", "max_speed": 30.0}),
])
def test_38901_contract_gradient_unit_gain(type_id, extra):
    params = {**SMALL, "n_users": 3, **extra}
    x = _cx(2, 4, 4, 16) * 0.5          # total energy 1 per RE over Nt = 4
    out = check_contract(type_id, params, x=x)
    assert out["y"].shape == (2, 3, 4, 16) and out["h"].shape == (2, 3, 4, 4, 16)
    assert out["y"].dtype == torch.complex64 and out["h"].dtype == torch.complex64
    # normalize=True: E|h|^2 = 1 per example and UE link (antennas x symbols x subcarriers)
    gain = out["h"].abs().square().mean(dim=(2, 3, 4))
    assert torch.allclose(gain, torch.ones_like(gain), atol=1e-4)
    check_gradients(type_id, params, wrt=["x"], x=x)
    assert build(type_id, params).channel_input == "x"


def test_38901_defaults_follow_seed003_table2():
    b = build("channel.umi")
    assert b.bind_dims(b.p) == {"S": 14, "F": 64, "K": 4, "Nt": 4}
    assert b.p.carrier_frequency == 2.6e9 and b.p.subcarrier_spacing == 15e3
    assert b.p.bs_polarization == "dual" and b.p.bs_polarization_type == "cross"
    assert (b.p.bs_rows, b.p.bs_cols, b.p.bs_pattern) == (1, 2, "38.901")


def test_umi_applies_h_and_noise_at_the_stated_snr():
    """y = sum_n h x + CN(0, N0), N0 = 10^(-snr/10); noiseless mode gives y = H x exactly."""
    x = _cx(4, 4, 4, 16) * 0.5
    b = build("channel.umi", {**SMALL, "snr_db": 5.0})
    out = b(x=x)
    clean = torch.einsum("bknsf,bnsf->bksf", out["h"], x)
    noise = out["y"] - clean
    n0 = noise.abs().square().mean().item()
    assert abs(n0 / 10 ** (-0.5) - 1) < 0.1          # 1024 samples: ~3 % std
    # received signal energy ~ 1 per UE (unit-gain channel, unit total Tx energy)
    assert 0.5 < clean.abs().square().mean().item() < 2.0
    b0 = build("channel.umi", {**SMALL, "add_noise": False})
    o0 = b0(x=x)
    assert torch.allclose(o0["y"], torch.einsum("bknsf,bnsf->bksf", o0["h"], x), atol=1e-5)


def test_topology_redrawn_per_batch():
    b = build("channel.umi", {**SMALL, "add_noise": False})
    x = _cx(2, 4, 4, 16)
    h1, h2 = b(x=x)["h"], b(x=x)["h"]
    assert (h1 - h2).abs().max() > 1e-3


def test_ue_speed_makes_the_channel_time_varying():
    """Doppler over the 14 OFDM symbols only with moving UEs (TR 38.901 7.5, step 11)."""
    def drift(v):
        b = build("channel.umi", {"n_subcarriers": 16, "cyclic_prefix": 4,
                                  "min_speed": v, "max_speed": v})
        h = b.sample_h(4)
        return (h[:, :, :, -1] - h[:, :, :, 0]).abs().mean().item()
    assert drift(0.0) < 1e-5
    assert drift(30.0) > 0.3


def test_delay_spread_ordering_at_defaults():
    """RMS delay spread from Sionna's generated (a, tau), 64 drops x 4 UEs per scenario.

    TR 38.901 Table 7.5-6 at 2.6 GHz: median DS UMa > UMi > RMa (lgDS NLoS about -6.36,
    -6.96, -7.43). The brief expected RMa above UMi (seed 003's remark about its simulated
    topology); the standard's tables, which Sionna implements, put RMa below -- asserted here.
    """
    med = {}
    for tid in ("channel.umi", "channel.uma", "channel.rma"):
        a, tau = build(tid, {"n_symbols": 1, "n_subcarriers": 32}).sample_cir(64)
        med[tid] = rms_delay_spread(a, tau).flatten().median().item()
    assert med["channel.uma"] > 1.2 * med["channel.umi"], med
    assert med["channel.rma"] < 0.5 * med["channel.umi"], med
    assert 10e-9 < med["channel.rma"] and med["channel.uma"] < 1e-6, med


def test_frequency_selectivity_grows_with_delay_spread():
    """TDL-A: larger delay spread -> lower correlation between distant subcarriers."""
    def corr(ds):
        b = build("channel.tdl", {"n_subcarriers": 64, "n_symbols": 1, "cyclic_prefix": 4,
                                  "delay_spread": ds, "n_users": 4})
        h = b.sample_h(32)[..., 0, :]                         # (B, K, Nt, F)
        c = (h[..., :48] * h[..., 16:].conj()).mean(-1).abs() / h.abs().square().mean(-1)
        return c.mean().item()
    assert corr(30e-9) > corr(1000e-9) + 0.2


# ---------------------------------------------------------------- sparse (seeds 001 / 002)
S001 = {"model": "seed001", "bs_ny": 4, "bs_nz": 2, "n_users": 3, "n_subcarriers": 16, "n_symbols": 4}
S002 = {"model": "seed002", "bs_antennas": 8, "ue_antennas": 2, "n_users": 2,
        "n_subcarriers": 16, "n_symbols": 4}


@pytest.mark.parametrize("params,nr,nt", [(S001, 3, 8), (S002, 8, 4)])
def test_sparse_contract_and_gradients(params, nr, nt):
    b = build("channel.sparse_mimo_ofdm", params)
    assert b.bind_dims(b.p) == {"Nr": nr, "Nt": nt, "S": 4, "F": 16}
    x = _cx(3, nt, 4, 16)
    out = check_contract("channel.sparse_mimo_ofdm", params, x=x)
    assert out["h"].shape == (3, nr, nt, 4, 16)
    check_gradients("channel.sparse_mimo_ofdm", params, wrt=["x"], x=x)


def test_sparse_seed001_matches_eq5_structure():
    """Static over symbols, unit gain per user, rank <= L across antennas x subcarriers."""
    b = build("channel.sparse_mimo_ofdm", {**S001, "add_noise": False, "n_paths": 2})
    h = b.sample_h(5)                                          # (B, K, Nt, S, F)
    assert torch.allclose(h[:, :, :, 1:], h[:, :, :, :1].expand_as(h[:, :, :, 1:]))
    g = h.abs().square().mean(dim=(2, 3, 4))
    assert torch.allclose(g, torch.ones_like(g), atol=1e-4)
    # eq. (5): h[k] (Nt x F) = sum of L rank-one terms a_t(theta_l) e_l^T
    sv = torch.linalg.svdvals(h[:, :, :, 0, :].to(torch.complex128))
    assert (sv[..., 2:] < 1e-6 * sv[..., :1]).all()
    # unnormalized: unit-modulus steering entries (eq. 6) -> E|h|^2 = 1 on average
    bu = build("channel.sparse_mimo_ofdm", {**S001, "normalize": False})
    e = bu.sample_h(400).abs().square().mean().item()
    assert abs(e - 1) < 0.15


def test_sparse_seed002_doppler():
    """Seed 002 eq. (6): time variation over OFDM symbols only with moving UEs."""
    still = build("channel.sparse_mimo_ofdm", {**S002, "max_speed_kmh": 0.0}).sample_h(4)
    assert torch.allclose(still[:, :, :, 1:], still[:, :, :, :1].expand_as(still[:, :, :, 1:]), atol=1e-5)
    moving = build("channel.sparse_mimo_ofdm", {**S002, "min_speed_kmh": 100.0,
                                                 "max_speed_kmh": 120.0}).sample_h(4)
    assert (moving[:, :, :, -1] - moving[:, :, :, 0]).abs().mean() > 0.05
    # unnormalized: 1/sqrt(N) ULA vectors (eqs. 7-8) -> E|H_ij|^2 = 1/(Nr Nu)
    e = build("channel.sparse_mimo_ofdm", {**S002, "normalize": False}).sample_h(400).abs().square().mean()
    assert abs(e.item() * 8 * 2 - 1) < 0.15


def test_sparse_noise_level():
    b = build("channel.sparse_mimo_ofdm", {**S001, "snr_db": 0.0})
    x = _cx(8, 8, 4, 16) / math.sqrt(8)
    out = b(x=x)
    n0 = (out["y"] - torch.einsum("brnsf,bnsf->brsf", out["h"], x)).abs().square().mean().item()
    assert abs(n0 - 1.0) < 0.1


def test_38901_channel_accepts_a_new_batch_size():
    """Evaluation batches (or a last partial batch) may differ from training batches."""
    from flowgraph.testing import build
    b = build("channel.umi", {"n_subcarriers": 32})
    for batch in (2, 3, 2):
        out = b(x=torch.randn(batch, 4, 14, 32, dtype=torch.cfloat) / 2)
        assert out["h"].shape == (batch, 4, 4, 14, 32)
