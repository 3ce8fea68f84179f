"""Seed 001 (Deep JSCBF) blocks (blocks/jscbf): contracts, gradients, eq. 26 against a direct
solve, eq. 29 per example, LAMP behaviour, and one test per ablation switch of
../shared/specs/seed001.md Sec. 9. Tiny widths: N_t = 16 (4 x 4), N_c = 16, Q = 8, 32 px."""
import math

import pytest
import torch

import blocks  # noqa: F401
from blocks.mimo.precoders import rzf_matrix, wmmse_beamformer
from flowgraph.testing import build, check_contract, check_gradients

B, K, NY, NZ, F, Q, L, SIZE = 2, 4, 4, 4, 16, 8, 4, 32
NT = NY * NZ
DC = 8
SWIN = dict(size=SIZE, patch_size=2, embed_dims=[8, 16], depths=[2, 2], num_heads=[2, 4], window=4,
            head_widths=[12], n_subcarriers=F, q=Q)
CSI = dict(n_users=K, nt=NT, user_width=8, d_model=16, layers=1, heads=2, out=DC)
FUSE = dict(n_users=K, q=Q, csi_dim=DC, d_model=16, layers=1, heads=2)
DATA = dict(nt=NT, n_users=K, q=Q, csi_dim=DC, d_model=16, layers=1, heads=2)
MD = dict(nt=NT, n_users=K, csi_dim=DC, d_model=16, layers=1, heads=2, snr_db=10.0)
RX = dict(q=Q, d_model=16, layers=1, heads=2)
LAMP = dict(ny=NY, nz=NZ, num_pilots=L, n_subcarriers=F, layers=3)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cx(*shape, dtype=torch.complex64):
    return torch.randn(*shape, dtype=dtype)


def _pair(type_id, on: dict, off: dict):
    """The same block with a switch on and off, sharing every weight they have in common."""
    a, b = build(type_id, on).eval(), build(type_id, off).eval()
    missing, _ = b.load_state_dict(a.state_dict(), strict=False)
    assert not missing, missing
    return a, b


def _channel(n_paths=2, **kw):
    return build("channel.sparse_mimo_ofdm", dict(model="seed001", n_users=K, n_paths=n_paths, bs_ny=NY,
                                                  bs_nz=NZ, n_subcarriers=F, n_symbols=1, max_delay=16.0,
                                                  add_noise=False, normalize=False, **kw))


def _pilot_frame(n, pilots_block, snr_db=20.0, channel=None):
    """(h, pilots, y_pilots) of n frames: one static draw through the L pilot symbols."""
    ch = channel or _channel()
    ref = torch.zeros(n, NT, 1, F, dtype=torch.complex64)
    h = ch(x=ref)["h"]
    pil = pilots_block(ref=ref)["pilots"]
    app = build("channel.apply", {"snr_db": snr_db})
    y = app(x=pil, h=h.expand(-1, -1, -1, pil.shape[2], -1))["y"]
    return h, pil, y


# ----------------------------------------------------------------------------- channel options

def test_seed001_channel_angle_ranges_and_path_norm():
    """Paper: phi in [0, pi/4], so the phase step along the UPA's z axis, -pi sin(phi) (the row
    h^H), stays in [-pi sin(pi/4), 0]; the notebook's U[0, 2 pi) angles reach both signs.
    Without 1/sqrt(L) the mean gain is L (= 2), with it 1."""
    torch.manual_seed(1)
    steps = {}
    for angles in ("paper", "code"):
        h = _channel(n_paths=1, angles=angles)(x=torch.zeros(512, NT, 1, F, dtype=torch.complex64))["h"]
        row = h[:, 0, :, 0, 0].reshape(512, NY, NZ)                      # antenna n_y * Nz + n_z
        steps[angles] = torch.angle(row[:, 0, 1] / row[:, 0, 0])
    assert steps["paper"].max() <= 1e-4 and steps["paper"].min() >= -math.pi * math.sin(math.pi / 4) - 1e-4
    assert (steps["code"] > 0.3).float().mean() > 0.2 and (steps["code"] < -2.3).float().mean() > 0.1
    x = torch.zeros(2000, NT, 1, F, dtype=torch.complex64)
    g_paper = _channel(path_norm=True)(x=x)["h"].abs().square().mean()
    g_code = _channel(path_norm=False)(x=x)["h"].abs().square().mean()
    assert abs(g_paper - 1.0) < 0.06 and abs(g_code - 2.0) < 0.12


# ----------------------------------------------------------------------------- pilots and LAMP

def test_hybrid_pilots_contract_energy_and_determinism():
    p = dict(nt=NT, num_pilots=L, n_subcarriers=F, n_rf=4, seed=7)
    out = check_contract("csirs.hybrid_pilots", p, ref=torch.zeros(3, 5))["pilots"]
    assert out.shape == (3, NT, L, F) and torch.equal(out[0], out[2])
    energy = out[0].abs().square().sum(dim=0).mean(dim=1)                 # per pilot symbol, per RE
    assert torch.allclose(energy, torch.ones(L), atol=1e-5)
    again = build("csirs.hybrid_pilots", p)(ref=torch.zeros(1))["pilots"]
    other = build("csirs.hybrid_pilots", {**p, "seed": 8})(ref=torch.zeros(1))["pilots"]
    assert torch.equal(again[0], out[0]) and not torch.allclose(other[0], out[0])
    # N_RF = 4 RF chains: every pilot symbol spans at most a 4-dim subspace over the subcarriers
    assert torch.linalg.matrix_rank(out[0, :, 0, :]).item() == 4
    assert "pilots" in build("csirs.hybrid_pilots", p).state_dict()     # saved with checkpoints


def test_lamp_contract_gradients_and_initialisation():
    pil = build("csirs.hybrid_pilots", dict(nt=NT, num_pilots=L, n_subcarriers=F))
    h, pilots, y = _pilot_frame(B, pil)
    out = check_contract("estimator.gmmv_lamp", LAMP, y_pilots=y, pilots=pilots)["h_hat"]
    assert out.shape == h.shape == (B, K, NT, 1, F)
    check_gradients("estimator.gmmv_lamp", LAMP, wrt=["y_pilots"], y_pilots=y, pilots=pilots)
    lamp = build("estimator.gmmv_lamp", LAMP)
    assert all(float(d.detach().abs().max()) == 0.0 for d in lamp.delta)       # B_t = Theta^H at start
    with pytest.raises(ValueError, match="differ between examples"):
        lamp(y_pilots=y, pilots=torch.randn_like(pilots))


def test_lamp_denoiser_keeps_strong_groups_and_kills_empty_ones():
    """The group shrinkage passes a group far above the noise (factor -> 1/pi) and zeroes a
    noise-only one, so with a perfectly orthogonal problem one layer recovers the support."""
    g = 4 * NT                                                            # rho^2 Nt dictionary columns
    lamp = build("estimator.gmmv_lamp", dict(LAMP, num_pilots=g, layers=1))
    theta = torch.zeros(F, g, g, dtype=torch.complex64)
    theta[:] = torch.eye(g)                                               # Theta = I (L = G here)
    x_true = torch.zeros(1, g, F, dtype=torch.complex64)
    x_true[0, 3] = 1.0 + 0.5j
    y = x_true + 0.01 * torch.randn(1, g, F, dtype=torch.complex64)
    x, _ = lamp._layer(0, theta, theta.mH, y, torch.zeros_like(y), y)
    assert (x[0, 3] - x_true[0, 3]).abs().max() < 0.15
    assert x[0, torch.arange(g) != 3].abs().max() < 1e-3


def test_lamp_train_layer_freezes_the_earlier_layers():
    pil = build("csirs.hybrid_pilots", dict(nt=NT, num_pilots=L, n_subcarriers=F))
    h, pilots, y = _pilot_frame(B, pil)
    lamp = build("estimator.gmmv_lamp", LAMP)
    lamp.set_runtime("train_layer", 2)
    (lamp(y_pilots=y, pilots=pilots)["h_hat"] - h).abs().square().sum().backward()
    assert lamp.delta[0].grad is None and lamp.theta[0].grad is None      # frozen
    assert lamp.delta[1].grad is not None and lamp.delta[1].grad.abs().sum() > 0
    assert lamp.delta[2].grad is None                                      # not evaluated


def _lamp_nmse(num_pilots, steps, torch_seed=0):
    torch.manual_seed(torch_seed)
    pil = build("csirs.hybrid_pilots", dict(nt=NT, num_pilots=num_pilots, n_subcarriers=F))
    lamp = build("estimator.gmmv_lamp", dict(LAMP, num_pilots=num_pilots, layers=4))
    opt = torch.optim.Adam(lamp.parameters(), lr=3e-3)
    ch = _channel()
    for _ in range(steps):
        h, pilots, y = _pilot_frame(16, pil, channel=ch)
        loss = (lamp(y_pilots=y, pilots=pilots)["h_hat"] - h).abs().square().sum() / h.abs().square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(99)
    with torch.no_grad():
        h, pilots, y = _pilot_frame(64, pil, channel=ch)
        err = (lamp(y_pilots=y, pilots=pilots)["h_hat"] - h).abs().square().flatten(1).sum(1)
        return float((err / h.abs().square().flatten(1).sum(1)).mean())


def test_lamp_nmse_falls_with_the_number_of_pilot_symbols():
    """Table I's trend on a small case (N_t = 16, N_c = 16, 20 dB, 4 layers): more pilot OFDM
    symbols, lower NMSE, already for the untrained network (AMP); and training lowers it."""
    nmse = {n: _lamp_nmse(n, 0) for n in (1, 4, 16)}
    assert nmse[1] > nmse[4] > nmse[16], nmse
    trained = _lamp_nmse(16, 25)
    assert trained < 0.7 * nmse[16], (trained, nmse)


# ----------------------------------------------------------------------------- semantic extraction

def test_image_extractor_contract_gradients_and_latent_layout():
    img = torch.rand(B, K, 3, SIZE, SIZE)
    s = check_contract("extractor.jscbf_image", SWIN, image=img)["s"]
    assert s.shape == (B, K, F, 2 * Q)
    check_gradients("extractor.jscbf_image", SWIN, wrt=["image"], image=img)
    enc = build("extractor.jscbf_image", SWIN).eval()
    img2 = img.clone()
    img2[:, 1] = torch.rand(B, 3, SIZE, SIZE)
    a, b = enc(image=img)["s"], enc(image=img2)["s"]
    assert torch.allclose(a[:, [0, 2, 3]], b[:, [0, 2, 3]], atol=1e-6) and not torch.allclose(a[:, 1], b[:, 1])
    # head_widths [] is the paper's per-token linear layer
    lin = build("extractor.jscbf_image", {**SWIN, "head_widths": []})
    assert isinstance(lin.head[0], torch.nn.Conv2d) and lin.head[0].kernel_size == (1, 1)


def test_csi_extractor_contract_gradients_and_per_user_fc_switch():
    h = _cx(B, K, NT, 1, F)
    assert check_contract("extractor.jscbf_csi", CSI, h_hat=h)["c"].shape == (B, F, DC)
    check_gradients("extractor.jscbf_csi", CSI, wrt=["h_hat"], h_hat=h)
    paper, code = build("extractor.jscbf_csi", CSI), build("extractor.jscbf_csi", {**CSI, "per_user_fc": False})
    assert paper.net.embed.in_features == K * 8 and code.net.embed.in_features == 2 * K * NT
    assert not torch.allclose(paper(h_hat=h)["c"], code(h_hat=h)["c"])


@pytest.mark.parametrize("mode", ["joint", "per_symbol"])
def test_fusion_contract_gradients(mode):
    s, c = torch.randn(B, K, F, 2 * Q), torch.randn(B, F, DC)
    w = check_contract("extractor.jscbf_fusion", {**FUSE, "mode": mode}, s=s, c=c)["w"]
    assert w.shape == (B, K, Q, F) and w.is_complex()
    check_gradients("extractor.jscbf_fusion", {**FUSE, "mode": mode}, wrt=["s", "c"], s=s, c=c)


def test_fusion_csi_switch_and_mode_switch():
    """A6 (no CSI semantic fusion) and A18 (per-symbol vs joint fusion) change W_s."""
    s, c = torch.randn(B, K, F, 2 * Q), torch.randn(B, F, DC)
    fuse = build("extractor.jscbf_fusion", FUSE).eval()
    with_c = fuse(s=s, c=c)["w"]
    fuse.set_runtime("use_csi", False)
    without = fuse(s=s, c=c)["w"]
    assert not torch.allclose(with_c, without)
    assert torch.equal(without, fuse(s=s)["w"])                          # unconnected c = off
    joint = fuse(s=s, c=c)["w"]
    per_symbol = build("extractor.jscbf_fusion", {**FUSE, "mode": "per_symbol"}).eval()(s=s, c=c)["w"]
    assert not torch.allclose(joint, per_symbol)


def test_fusion_per_symbol_mode_does_not_mix_ofdm_symbols():
    fuse = build("extractor.jscbf_fusion", {**FUSE, "mode": "per_symbol"}).eval()
    s, c = torch.randn(B, K, F, 2 * Q), torch.randn(B, F, DC)
    s2 = s.clone()
    s2[..., 0] += 1.0                                                     # Re of OFDM symbol 0
    a, b = fuse(s=s, c=c)["w"], fuse(s=s2, c=c)["w"]
    assert not torch.allclose(a[:, :, 0], b[:, :, 0]) and torch.allclose(a[:, :, 1:], b[:, :, 1:], atol=1e-6)


# ----------------------------------------------------------------------------- beamforming

@pytest.mark.parametrize("mode", ["joint", "per_symbol"])
def test_data_driven_contract_gradients_and_csi_switch(mode):
    w, c = _cx(B, K, Q, F), torch.randn(B, F, DC)
    x = check_contract("precoder.jscbf_data", {**DATA, "mode": mode}, w=w)["x"]
    assert x.shape == (B, NT, Q, F)
    check_gradients("precoder.jscbf_data", {**DATA, "mode": mode}, wrt=["w"], w=w)
    with_c = check_contract("precoder.jscbf_data", {**DATA, "mode": mode, "use_csi": True}, w=w, c=c)["x"]
    assert not torch.allclose(with_c, x)
    with pytest.raises(ValueError, match="use_csi"):
        build("precoder.jscbf_data", {**DATA, "use_csi": True})(w=w)


def test_eq26_closed_form_matches_a_direct_solve():
    """Eq. 26 in K x K form equals the literal N_t x N_t solve, for the paper's real c and for
    the notebook's complex c (complex128)."""
    hr = torch.randn(3, F, K, NT, dtype=torch.complex128)
    for c in (torch.rand(3, F, K, dtype=torch.float64) + 0.1, torch.randn(3, F, K, dtype=torch.complex128)):
        g = torch.randn(3, F, K, dtype=torch.complex128)
        beta = torch.rand(3, F, K, dtype=torch.float64) + 0.05
        f = wmmse_beamformer(hr, c, g, beta)
        eye = torch.eye(NT, dtype=torch.complex128)
        a = hr.mH @ (c[..., None].to(hr.dtype) * hr)                   # sum_m c_m h_m h_m^H (columns)
        for k in range(K):
            direct = torch.linalg.solve(beta[..., k, None, None] * eye + a, g[..., k, None] * hr[..., k, :].conj())
            assert (direct - f[..., k]).abs().max() < 1e-10


def test_model_driven_contract_and_gradients():
    c, h, w = torch.randn(B, F, DC), _cx(B, K, NT, 1, F), _cx(B, K, Q, F)
    for form in ("paper", "code"):
        out = check_contract("precoder.jscbf_wmmse", {**MD, "form": form}, c=c, h_hat=h, w=w)
        assert out["x"].shape == (B, NT, Q, F) and out["f"].shape == (B, NT, K, 1, F)
        check_gradients("precoder.jscbf_wmmse", {**MD, "form": form}, wrt=["c", "h_hat", "w"], c=c, h_hat=h, w=w)


def test_model_driven_starts_at_rzf_and_meets_its_power():
    """With the transformer head at zero the paper form's A = {p = 1, lambda = 1, e = 1} and,
    without R_e, eq. 26 is RZF with regularisation K N0; ||F_BB[n]||^2 = p[n]; X_m = F W_s."""
    md = build("precoder.jscbf_wmmse", {**MD, "robust": False}).eval()
    torch.nn.init.zeros_(md.net.head.weight)
    c, h, w = torch.randn(B, F, DC), _cx(B, K, NT, 1, F), _cx(B, K, Q, F)
    out = md(c=c, h_hat=h, w=w)
    f = out["f"][:, :, :, 0].permute(0, 3, 1, 2)                          # (B, F, Nt, K)
    hr = h[:, :, :, 0].permute(0, 3, 1, 2)
    ref = rzf_matrix(hr, K * 10 ** (-MD["snr_db"] / 10))
    ref = ref / ref.abs().square().sum(dim=(-2, -1), keepdim=True).sqrt()
    assert torch.allclose(f, ref, atol=1e-5)
    assert torch.allclose(f.abs().square().sum(dim=(-2, -1)), torch.ones(B, F), atol=1e-5)
    assert torch.allclose(out["x"], torch.einsum("bfnk,bkqf->bnqf", f, w), atol=1e-5)   # eq. 27


def test_model_driven_switches_change_the_beamformer():
    """A7 (paper vs notebook form), A8 (robust R_e term, with sigma_e^2 pushed well above 0)
    and A10 (learned vs equal power over the subcarriers)."""
    c, h, w = torch.randn(B, F, DC), _cx(B, K, NT, 1, F), _cx(B, K, Q, F)
    k = K
    on, off = _pair("precoder.jscbf_wmmse", {**MD, "robust": True}, {**MD, "robust": False})
    with torch.no_grad():
        on.net.head.bias[1 + 3 * k] = 6.0                                  # sigma_e^2 ~ 4 >> 0
        off.net.head.bias[1 + 3 * k] = 6.0
    assert not torch.allclose(on(c=c, h_hat=h, w=w)["f"], off(c=c, h_hat=h, w=w)["f"])
    on, off = _pair("precoder.jscbf_wmmse", {**MD, "learn_power": True}, {**MD, "learn_power": False})
    with torch.no_grad():
        on.net.head.weight[0].normal_()
        off.net.head.weight[0].copy_(on.net.head.weight[0])
    p_on = on(c=c, h_hat=h, w=w)["f"].abs().square().sum(dim=(1, 2, 3))  # ||F_BB[n]||^2, (B, F)
    p_off = off(c=c, h_hat=h, w=w)["f"].abs().square().sum(dim=(1, 2, 3))
    assert torch.allclose(p_off, torch.ones(B, F), atol=1e-5) and (p_on - 1).abs().max() > 0.05
    assert torch.allclose(p_on.sum(dim=1), torch.full((B,), float(F)), atol=1e-3)   # sum p[n] = P_t
    paper = build("precoder.jscbf_wmmse", MD).eval()(c=c, h_hat=h, w=w)["f"]
    code = build("precoder.jscbf_wmmse", {**MD, "form": "code"}).eval()(c=c, h_hat=h, w=w)["f"]
    assert not torch.allclose(paper, code)


def test_model_driven_publishes_its_parameter_set():
    md = build("precoder.jscbf_wmmse", MD)
    got = {}
    md._publish = lambda block, tap, t: got.setdefault(tap, t)
    md(c=torch.randn(B, F, DC), h_hat=_cx(B, K, NT, 1, F), w=_cx(B, K, Q, F))
    assert got["p"].shape == (B, F) and got["lam"].shape == (B, F, K) and (got["lam"] > 0).all()
    assert (got["se2"] >= 0).all() and got["e"].is_complex()


def test_combine_contract_gradients_beta_and_eq29_per_example():
    xd, xm = _cx(B, NT, Q, F), _cx(B, NT, Q, F)
    x = check_contract("precoder.jscbf_combine", {"beta_d_init": 0.5}, x_d=xd, x_m=xm)["x"]
    assert x.shape == (B, NT, Q, F)
    blk = check_gradients("precoder.jscbf_combine", {"beta_d_init": 0.5}, wrt=["x_d", "x_m"], x_d=xd, x_m=xm)
    assert blk.beta.grad is not None and (blk.beta.grad != 0).all()
    # eq. 28 below the cap: X = beta_d X_d + beta_m X_m exactly
    big = build("precoder.jscbf_combine", {"beta_d_init": 0.3, "beta_m_init": 0.7, "power": 1e6})
    assert torch.allclose(big(x_d=xd, x_m=xm)["x"], 0.3 * xd + 0.7 * xm, atol=1e-6)
    # eq. 29 per example: example 0 far above the cap is scaled to Q P_t; example 1, below
    # it, is left alone; neither depends on the other
    comb = build("precoder.jscbf_combine", {"beta_d_init": 0.0})
    cap = Q * F * 1.0
    xm2 = xm.clone()
    xm2[0] *= 10.0
    xm2[1] *= 0.1
    out = comb(x_m=xm2)["x"]
    energy = out.abs().square().sum(dim=(1, 2, 3))
    assert abs(energy[0] - cap) < 1e-2 * cap and energy[1] < cap
    assert torch.allclose(out[1], xm2[1])
    xm3 = xm2.clone()
    xm3[0] *= 5.0
    assert torch.allclose(comb(x_m=xm3)["x"][1], out[1])


def test_combine_power_rules_differ_and_hold():
    """A11: eq. 29 (paper) vs always Q P_t (equal) vs the notebook's per-subcarrier rule."""
    xd, xm = _cx(B, NT, Q, F), _cx(B, NT, Q, F)
    xm = xm * torch.linspace(0.1, 2.0, F)                                 # unequal subcarrier powers
    outs = {r: build("precoder.jscbf_combine", {"beta_d_init": 0.5, "power_rule": r})(x_d=xd * 0.01, x_m=xm * 0.01)["x"]
            for r in ("paper", "equal", "code")}
    e = {r: o.abs().square().sum(dim=(1, 2, 3)) for r, o in outs.items()}
    assert (e["paper"] < 0.5 * Q * F).all()                               # small X_c: not raised
    assert torch.allclose(e["equal"], torch.full((B,), float(Q * F)), rtol=1e-4)
    per_sc = outs["code"].abs().square().sum(dim=(1, 2))                  # (B, F)
    assert per_sc.std() / per_sc.mean() < 0.2 and not torch.allclose(outs["code"], outs["equal"])


def test_combine_model_driven_only_switch_needs_beta_d_off_zero():
    """A1 (model-driven only = x_d unconnected): with the notebook's beta_d = 0 the output does
    not change at initialisation; once beta_d moves, the data-driven branch shows."""
    xd, xm = _cx(B, NT, Q, F), _cx(B, NT, Q, F)
    comb = build("precoder.jscbf_combine", {})
    assert torch.equal(comb(x_d=xd, x_m=xm)["x"], comb(x_m=xm)["x"])      # inactive at init
    with torch.no_grad():
        comb.beta[0] = 0.5
    assert not torch.allclose(comb(x_d=xd, x_m=xm)["x"], comb(x_m=xm)["x"])
    # A2: data-driven only (x_m unconnected)
    assert not torch.allclose(comb(x_d=xd, x_m=xm)["x"], comb(x_d=xd)["x"])
    # the same two switches as params (the graphs' variant switch): equal to leaving a port open
    md_only, dd_only = _pair("precoder.jscbf_combine", {"use_data": False}, {"use_model": False})
    with torch.no_grad():
        md_only.beta[0] = dd_only.beta[0] = 0.5
    assert torch.equal(md_only(x_d=xd, x_m=xm)["x"], comb(x_m=xm)["x"])
    assert torch.equal(dd_only(x_d=xd, x_m=xm)["x"], comb(x_d=xd)["x"])


def test_combine_fixed_betas_do_not_train():
    """A12: learn_beta false keeps beta as a buffer (no parameters, no change by training)."""
    fixed = build("precoder.jscbf_combine", {"learn_beta": False, "beta_d_init": 1.0})
    assert list(fixed.parameters()) == [] and torch.equal(fixed.beta, torch.tensor([1.0, 1.0]))
    learn = build("precoder.jscbf_combine", {"beta_d_init": 1.0})
    opt = torch.optim.SGD(learn.parameters(), lr=0.1)
    xd, xm = _cx(B, NT, Q, F) * 0.01, _cx(B, NT, Q, F) * 0.01
    (learn(x_d=xd, x_m=xm)["x"] - xd).abs().square().sum().backward()
    opt.step()
    assert not torch.equal(learn.beta.detach(), torch.tensor([1.0, 1.0]))


# ----------------------------------------------------------------------------- receiver and decoder

def test_receiver_contract_gradients_and_layers_switch():
    """A21: the paper's fully connected layer (layers 0) vs a transformer."""
    y = _cx(B, K, Q, F)
    assert check_contract("decoder.jscbf_rx", RX, y=y)["s"].shape == (B, K, F, 2 * Q)
    check_gradients("decoder.jscbf_rx", RX, wrt=["y"], y=y)
    fc = check_contract("decoder.jscbf_rx", {**RX, "layers": 0}, y=y)["s"]
    assert isinstance(build("decoder.jscbf_rx", {**RX, "layers": 0}).net.head, torch.nn.Linear)
    assert not torch.allclose(fc, build("decoder.jscbf_rx", RX)(y=y)["s"])


def test_swin_decoder_contract_gradients_and_output_modes():
    s = torch.randn(B, K, F, 2 * Q)
    img = check_contract("decoder.jscbf_swin", SWIN, s=s)["image"]
    assert img.shape == (B, K, 3, SIZE, SIZE)
    check_gradients("decoder.jscbf_swin", SWIN, wrt=["s"], s=s)
    dec = build("decoder.jscbf_swin", SWIN)
    with torch.no_grad():
        dec.deembed[2].bias.fill_(3.0)                                    # push outputs above 1
    assert dec.train()(s=s)["image"].max() > 1.0                          # raw while training
    assert dec.eval()(s=s)["image"].max() <= 1.0                          # clamped in eval
    sig = build("decoder.jscbf_swin", {**SWIN, "output": "sigmoid"})
    sig.load_state_dict(dec.state_dict())
    out = sig.train()(s=s)["image"]
    assert 0.0 < out.min() and out.max() < 1.0


def test_pretraining_path_image_to_decoder_shapes_match():
    """Sec. IV-C pretraining "without the physical layer": extractor s feeds the decoder."""
    enc, dec = build("extractor.jscbf_image", SWIN), build("decoder.jscbf_swin", SWIN)
    img = torch.rand(B, K, 3, SIZE, SIZE)
    assert dec(s=enc(image=img)["s"])["image"].shape == img.shape
