"""Seed 000 modules other than the Swin encoder: Channel ModNet, R-CVAE, NPN, ADJSCC, stream glue.

Each block: contract, gradients where trainable, and an ablation showing its paper
mechanism changes the output (SNR in ModNet, y_bar in the CVAE, SSA in the NPN, CSI and
SNR side information in ADJSCC), plus the paper's invariants (beta sums to 1, m* within
[0.001, 0.015], psi idempotent and orthogonal, eq. 1's row-major stream layout).
"""
import math

import pytest
import torch

import blocks  # noqa: F401  (registers the library)
from blocks.lcfsc.cvae import PAPER_MBAR
from blocks.lcfsc.npn import subspace_projection
from flowgraph.testing import build, check_contract, check_gradients


def _csi(b=2, seed=1, nr=2, nt=2):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(b, nr, nt, generator=g), torch.randn(b, nr, nt, generator=g)) / math.sqrt(2)


# ---- Channel ModNet (g_a / g_s) -------------------------------------------------------------
MOD = dict(dim=16, c_out=6, layers=2)


def test_modnet_encoder_contract_gradients_and_snr_ablation():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 16)
    z = check_contract("extractor.channel_modnet", MOD, x=x)["z"]
    assert z.shape == (2, 4, 6)
    check_gradients("extractor.channel_modnet", MOD, wrt=["x"], x=x)
    enc = build("extractor.channel_modnet", dict(MOD, snr_db=0.0))
    with torch.no_grad():
        a = enc(x=x)["z"]
        enc.set_runtime("snr_db", 20.0)
        b = enc(x=x)["z"]
    assert (a - b).abs().max() > 1e-4


def test_modnet_decoder_contract_gradients_and_snr_ablation():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 6)
    x = check_contract("decoder.channel_modnet", MOD, z=z)["x"]
    assert x.shape == (2, 4, 16)
    check_gradients("decoder.channel_modnet", MOD, wrt=["z"], z=z)
    dec = build("decoder.channel_modnet", dict(MOD, snr_db=0.0))
    with torch.no_grad():
        a = dec(z=z)["x"]
        dec.set_runtime("snr_db", 20.0)
        b = dec(z=z)["x"]
    assert (a - b).abs().max() > 1e-4


def test_modnet_witt_default_hidden():
    enc = build("extractor.channel_modnet", dict(dim=32, c_out=8))
    assert enc.mod.sm[0].out_features == 48 and len(enc.mod.bm) == 7


# ---- stream mapping (eq. 1) -------------------------------------------------------------------
def test_stream_map_is_eq1_row_major_and_unmap_inverts_it():
    z = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    x = check_contract("tensor.stream_map", {"nt": 2}, x=z)["x"]
    assert x.shape == (2, 2, 6)                                   # 24 reals -> 12 symbols -> 2 x 6
    v = z.reshape(2, -1)
    assert torch.equal(x[:, 0, 0], torch.complex(v[:, 0], v[:, 1]))      # pairs (2n, 2n+1)
    assert torch.equal(x[:, 1, 0], torch.complex(v[:, 12], v[:, 13]))    # antenna 1 starts at symbol T
    back = check_contract("tensor.stream_unmap", {"shape": [4, 6]}, x=x)["x"]
    assert torch.equal(back, z)
    flat = build("tensor.stream_unmap", {})(x=x)["x"]
    assert flat.shape == (2, 24)
    with pytest.raises(ValueError, match="streams"):
        build("tensor.stream_map", {"nt": 4})(x=torch.randn(2, 3, 2))
    with pytest.raises(ValueError, match="shape"):
        build("tensor.stream_unmap", {"shape": [5, 5]})(x=x)


def test_mask_ratio_sink():
    out = check_contract("sink.mask_ratio", {}, m=torch.tensor([0.004, 0.01]))
    assert torch.equal(out["value"], torch.tensor([0.004, 0.01]))


# ---- R-CVAE (csirs.cvae_mask_ratio) -------------------------------------------------------------
CVAE = dict(in_dim=24, hidden=16, latent=4)


def test_cvae_contract_gradients_and_paper_mbar():
    torch.manual_seed(0)
    y = torch.randn(3, 4, 6)
    out = check_contract("csirs.cvae_mask_ratio", CVAE, y_bar=y)
    assert out["m"].shape == (3,) and out["loss"].shape == (3,) and out["beta"].shape == (3, 8)
    blk = check_gradients("csirs.cvae_mask_ratio", CVAE, wrt=["y_bar"], y_bar=y)
    for net in ("d_a", "d_s", "d_p", "d_q"):
        assert all(p.grad is not None for p in getattr(blk, net).parameters()), net
    assert type(blk).params["mbar"].default == [0.001, 0.003, 0.005, 0.007, 0.009, 0.012, 0.014, 0.015]
    assert PAPER_MBAR == type(blk).params["mbar"].default


def test_beta_sums_to_one_and_m_star_within_mbar_range():
    torch.manual_seed(0)
    cvae = build("csirs.cvae_mask_ratio", CVAE)
    for scale in (0.01, 1.0, 100.0):                     # even with extreme inputs
        out = cvae(y_bar=scale * torch.randn(16, 24))
        assert torch.allclose(out["beta"].sum(1), torch.ones(16), atol=1e-6)
        assert (out["beta"] >= 0).all()
        assert (out["m"] >= 0.001 - 1e-7).all() and (out["m"] <= 0.015 + 1e-7).all()
        assert torch.allclose(out["m"], out["beta"] @ torch.tensor(PAPER_MBAR), atol=1e-7)   # eq. (19)
        assert (out["loss"] >= 0).all()                  # L_rec + KL, both >= 0


def test_cvae_m_star_depends_on_its_input():
    torch.manual_seed(0)
    cvae = build("csirs.cvae_mask_ratio", CVAE).eval()   # eval: z = h_mu, deterministic
    with torch.no_grad():
        a = cvae(y_bar=torch.randn(2, 24))["m"]
        a2 = cvae(y_bar=torch.randn(2, 24, generator=torch.Generator().manual_seed(5)))["m"]
        b = cvae(y_bar=torch.randn(2, 24, generator=torch.Generator().manual_seed(5)))["m"]
    assert torch.equal(a2, b)                            # deterministic in eval
    assert (a - a2).abs().max() > 1e-7


def test_cvae_kl_is_eq22_plus_constant():
    torch.manual_seed(0)
    cvae = build("csirs.cvae_mask_ratio", dict(CVAE, normalize=False)).eval()
    seen = {}
    cvae._publish = lambda n, t, v: seen.__setitem__(t, v)
    y = torch.randn(2, 24)
    with torch.no_grad():
        out = cvae(y_bar=y)
        cond = torch.full((2, 1), 0.009 / 0.015)
        h_mu, h_sig = cvae.d_a(torch.cat((y, cond), 1)).chunk(2, 1)
        f_mu, f_sig = cvae.d_s(cond).chunk(2, 1)
        eq22 = 0.5 * (f_sig - h_sig + torch.exp(h_sig - f_sig) + (f_mu - h_mu) ** 2 / torch.exp(f_sig)).sum(1)
        rec = ((cvae.d_p(torch.cat((h_mu, cond), 1)) - y) ** 2).sum(1)      # eq. (21)
    assert torch.allclose(seen["kl"], eq22 - 0.5 * 4, atol=1e-5)
    assert torch.allclose(seen["rec"], rec, atol=1e-5)
    assert torch.allclose(out["loss"], rec + seen["kl"], atol=1e-5)         # eq. (23)


def test_cvae_m_star_gets_gradient_only_through_the_mask_chain():
    """L_c does not involve beta, so d_q learns only from L1 through m* (eq. 24)."""
    torch.manual_seed(0)
    cvae = build("csirs.cvae_mask_ratio", CVAE)
    cvae(y_bar=torch.randn(2, 24))["loss"].mean().backward()
    assert all(p.grad is None for p in cvae.d_q.parameters())
    cvae.zero_grad()
    cvae(y_bar=torch.randn(2, 24))["m"].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cvae.d_q.parameters())


def test_cvae_fixed_m_gives_the_stable_ratio_and_changes_m():
    torch.manual_seed(0)
    cvae = build("csirs.cvae_mask_ratio", dict(CVAE, mbar=[0.0, 0.5, 1.0], m_stable=0.25)).eval()
    y = torch.randn(4, 24)
    with torch.no_grad():
        learned = cvae(y_bar=y)
        cvae.set_runtime("fixed_m", True)
        fixed = cvae(y_bar=y)
    assert torch.equal(fixed["m"], torch.full((4,), 0.25))
    assert (learned["m"] - 0.25).abs().max() > 1e-4           # the switch changes the output
    assert torch.equal(fixed["loss"], learned["loss"]) and torch.equal(fixed["beta"], learned["beta"])


def test_cvae_unit_interval_mbar_for_the_m01_ablation():
    cvae = build("csirs.cvae_mask_ratio", dict(CVAE, mbar=[0.0, 0.5, 1.0]))
    m = cvae(y_bar=torch.randn(4, 24))["m"]
    assert ((m >= 0) & (m <= 1)).all()
    with pytest.raises(ValueError, match="in_dim"):
        cvae(y_bar=torch.randn(4, 25))


# ---- NPN (estimator.npn) --------------------------------------------------------------------------
NPN = dict(width=4, levels=1, basis=2)


def test_npn_contract_and_gradients():
    torch.manual_seed(0)
    h = _csi(4)
    out = check_contract("estimator.npn", NPN, h_ls=h)
    assert out["h_hat"].shape == (4, 2, 2) and out["h_hat"].is_complex()
    check_gradients("estimator.npn", NPN, wrt=["h_ls"], h_ls=h)
    out = check_contract("estimator.npn", dict(NPN, nr=4, nt=4, levels=2), h_ls=_csi(2, nr=4, nt=4))
    assert out["h_hat"].shape == (2, 4, 4)


def test_npn_projection_is_idempotent_and_orthogonal():
    torch.manual_seed(0)
    v = torch.randn(3, 16, 5, dtype=torch.float64)
    psi = subspace_projection(v, eps=0.0)
    eye = torch.eye(16, dtype=torch.float64)
    assert torch.allclose(psi @ psi, psi, atol=1e-10)                      # psi psi = psi
    assert torch.allclose(psi, psi.transpose(-1, -2), atol=1e-10)          # psi^T = psi (orthogonal)
    assert torch.allclose(psi @ v, v, atol=1e-10)                          # span(V_b) is kept
    r = (eye - psi) @ torch.randn(3, 16, 1, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    assert torch.allclose(v.transpose(-1, -2) @ r, zero, atol=1e-9)           # residual is orthogonal
    assert (torch.linalg.matrix_rank(psi) == 5).all()                     # a K-dim subspace


def test_npn_block_projector_tap_is_a_projector():
    torch.manual_seed(0)
    npn = build("estimator.npn", NPN)
    seen = {}
    npn._publish = lambda n, t, v: seen.__setitem__(t, v.detach())
    with torch.no_grad():
        npn(h_ls=_csi(3))
    psi = seen["psi"]                                                       # (B, 4, 4), K = 2
    assert psi.shape == (3, 4, 4)
    assert torch.allclose(psi @ psi, psi, atol=1e-4)
    assert torch.allclose(psi, psi.transpose(-1, -2), atol=1e-5)


def test_npn_subspace_attention_on_vs_off_changes_the_estimate():
    torch.manual_seed(0)
    npn = build("estimator.npn", NPN)
    h = _csi(3)
    with torch.no_grad():
        on = npn(h_ls=h)["h_hat"]
        npn.set_runtime("ssa", False)
        off = npn(h_ls=h)["h_hat"]
    assert (on - off).abs().max() > 1e-6


def test_npn_algorithm1_pretraining_reduces_the_error():
    """A few Adam steps of Algorithm 1 (MSE of h_e against h from LS at 0-20 dB) beat LS."""
    torch.manual_seed(0)
    npn = build("estimator.npn", dict(NPN, width=8))
    opt = torch.optim.Adam(npn.parameters(), lr=3e-3)

    def batch(n):
        h = _csi(n, seed=int(torch.randint(0, 10**6, ())))
        snr = torch.rand(n, 1, 1) * 20
        noise = _csi(n, seed=int(torch.randint(0, 10**6, ()))) * torch.sqrt(10 ** (-snr / 10))
        return h, h + noise                               # tau = I: h_LS = h + n
    for _ in range(150):
        h, h_ls = batch(64)
        loss = (npn(h_ls=h_ls)["h_hat"] - h).abs().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    h, h_ls = batch(2000)
    with torch.no_grad():
        err_npn = (npn(h_ls=h_ls)["h_hat"] - h).abs().pow(2).mean()
    err_ls = (h_ls - h).abs().pow(2).mean()
    assert err_npn < 0.9 * err_ls


# ---- ADJSCC baseline ---------------------------------------------------------------------------------
ADJ = dict(channels=6, filters=8)


def _img(b=2, seed=0):
    return torch.rand(b, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_adjscc_contract_gradients_and_cbr():
    torch.manual_seed(0)
    z = check_contract("extractor.adjscc", ADJ, image=_img(), h=_csi())["z"]
    assert z.shape == (2, 6, 4, 4)
    assert (z[0].numel() / 2) / (3 * 16 * 16) == pytest.approx(1 / 16)     # c = 6 -> CBR 1/16
    check_gradients("extractor.adjscc", ADJ, wrt=["image", "h"], image=_img(), h=_csi())
    img = check_contract("decoder.adjscc", ADJ, z=z.detach(), h=_csi())["image"]
    assert img.shape == (2, 3, 16, 16)
    check_gradients("decoder.adjscc", ADJ, wrt=["z", "h"], z=z.detach(), h=_csi())


@pytest.mark.parametrize("kind", ["extractor.adjscc", "decoder.adjscc"])
def test_adjscc_csi_and_snr_side_information_change_the_output(kind):
    torch.manual_seed(0)
    blk = build(kind, dict(ADJ, snr_db=5.0))
    arg = {"image": _img()} if kind.startswith("extractor") else {"z": torch.randn(2, 6, 4, 4)}
    with torch.no_grad():
        a = next(iter(blk(**arg, h=_csi(seed=1)).values()))
        b = next(iter(blk(**arg, h=_csi(seed=2)).values()))
        blk.set_runtime("snr_db", 15.0)
        c = next(iter(blk(**arg, h=_csi(seed=1)).values()))
    assert (a - b).abs().max() > 1e-6          # CSI side information is used
    assert (a - c).abs().max() > 1e-6          # SNR side information is used
    snr_only = build(kind, dict(ADJ, use_csi=False))
    with torch.no_grad():
        assert torch.equal(next(iter(snr_only(**arg, h=_csi(seed=1)).values())),
                           next(iter(snr_only(**arg).values())))
    with pytest.raises(ValueError, match="not connected"):
        blk(**arg)
