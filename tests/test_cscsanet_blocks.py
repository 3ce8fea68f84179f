"""Seed 002 (CSC-SA-Net) blocks: contracts, gradients, unit modulus of every analog matrix, the
quantizer and its straight-through gradient, the uplink physics (NOMA/OMA resource elements,
noise level, identity channel), the SE sink against its closed form, the PCA baseline beams,
and one ablation test per switch of ../shared/specs/seed002.md Sec. 10. Tiny sizes: Nr = 8,
Nt = 4, N_c = 4 subcarriers (a 2 x 2 feature grid of 32 x 32 images), L = 2, Q = 1."""
import math

import pytest
import torch

import blocks  # noqa: F401
from blocks.cscsanet._csanet import dequantize, quantize
from blocks.cscsanet.sinks import hybrid_rates
from flowgraph.testing import build, check_contract, check_gradients

B, NR, NT, URF, BRF, F, L, Q = 3, 8, 4, 2, 2, 4, 2, 1
ARR = dict(bs_antennas=NR, ue_antennas=NT, n_subcarriers=F)
CH = dict(model="seed002", n_users=2, n_symbols=L + Q, max_delay=0.4, **ARR)
CSIRS = dict(n_pilot_symbols=L, bs_rf=BRF, ue_rf=URF, snr_db=5.0, **ARR)
TR = dict(d_model=16, heads=2, layers=1, ff=32, d_csi=8, feedback_bits=8, quant_bits=2)
UE = dict(user=0, n_pilot_symbols=L, ue_antennas=NT, ue_rf=URF, n_subcarriers=F, **TR)
BS = dict(bs_antennas=NR, bs_rf=BRF, n_subcarriers=F, **TR)
MS = dict(height=32, width=32, widths=[4, 8, 8, 8, 8], compress=[8], d_s=8, pool5=[1, 1],
          q_symbols=Q, d_csi=8, n_subcarriers=F)
ENC = dict(MS, in_channels=3, ue_antennas=NT, ue_rf=URF)
DEC = dict(MS, n_rows=BRF)
UPLINK = dict(bs_rf=BRF, first_symbol=L, snr_db=10.0, **ARR)
SE = dict(first_symbol=L, q_symbols=Q, **ARR)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cx(*shape):
    return torch.complex(torch.randn(*shape), torch.randn(*shape)) * 0.5 ** 0.5


def _channel(b=B, **kw):
    return build("channel.sparse_draw", {**CH, **kw}).sample_h(b)


def _phase(*shape):
    return torch.polar(torch.ones(*shape), torch.rand(*shape) * 2 * math.pi)


def _pair(type_id, on: dict, off: dict):
    """The same block with a switch on and off, sharing every weight they have in common."""
    a, b = build(type_id, on).eval(), build(type_id, off).eval()
    missing, _ = b.load_state_dict(a.state_dict(), strict=False)
    assert not missing, missing
    return a, b


def _unit_modulus(t):
    return torch.allclose(t.abs(), torch.ones_like(t.abs()), atol=1e-5)


# ------------------------------------------------------------------ channel (eqs. 6-8)

def test_sparse_draw_contract_and_same_draw_as_the_channel():
    out = check_contract("channel.sparse_draw", CH, ref=torch.zeros(B, 7))
    assert out["h"].shape == (B, NR, 2 * NT, L + Q, F)
    torch.manual_seed(3)
    h1 = build("channel.sparse_draw", CH)(ref=torch.zeros(B))["h"]
    torch.manual_seed(3)
    h2 = build("channel.sparse_mimo_ofdm", CH).sample_h(B)
    assert torch.equal(h1, h2)


@pytest.mark.parametrize("gain,expected", [("paper", 1 / (NR * NT)), ("unit_mean", 1.0), ("code", 2.0)])
def test_sparse_draw_gain_modes(gain, expected):
    """E|h_ij|^2: eqs. 6-8 (1/sqrt(N) steering, 1/sqrt(L)), unit mean, the code's L = 2."""
    h = _channel(2000, normalize=False, gain=gain, n_paths=2)
    assert abs(h.abs().square().mean().item() / expected - 1) < 0.1


@pytest.mark.parametrize("doppler", ["cosine", "uniform_positive"])
def test_sparse_draw_doppler_increment_is_2pi_fd_ti(doppler):
    """One path: H[q+1] / H[q] = exp(j 2 pi f_d T_I), |f_d| <= v_max / lambda; the code's
    uniform_positive draw has f_d >= 0 only; symbol_time sets T_I."""
    t_i = 8.93e-6
    h = _channel(400, n_paths=1, doppler=doppler, symbol_time=t_i, normalize=False)
    ratio = h[:, 0, 0, 1, 0] / h[:, 0, 0, 0, 0]
    fd = torch.angle(ratio) / (2 * math.pi * t_i)
    f_max = 28e9 * (120 / 3.6) / 299_792_458.0
    assert fd.abs().max() <= f_max * 1.001
    r0 = h[:, :, :NT, 2] / h[:, :, :NT, 1]              # the same increment on every entry of UE 1
    assert torch.allclose(r0, ratio[:, None, None, None].expand_as(r0), atol=1e-3)
    if doppler == "uniform_positive":
        assert fd.min() >= -1e-3 * f_max
    else:
        assert fd.min() < -0.2 * f_max and fd.max() > 0.2 * f_max
    slow = _channel(400, n_paths=1, doppler=doppler, symbol_time=t_i / 4, normalize=False)
    fd_slow = torch.angle(slow[:, 0, 0, 1, 0] / slow[:, 0, 0, 0, 0]).abs().mean()
    assert fd_slow < 0.5 * torch.angle(ratio).abs().mean()


# ------------------------------------------------------------------ BS-CSIRS-Net (eqs. 9, 12-14)

def test_csirs_contract_gradients_and_unit_modulus():
    h = _channel()
    y_p = check_contract("csirs.bs_csirsnet", CSIRS, h=h)["y_p"]
    assert y_p.shape == (B, 2, F, L, URF)
    blk = check_gradients("csirs.bs_csirsnet", CSIRS, h=h)
    x_rf, v_rf = blk.analog()
    assert x_rf.shape == (L, NR, BRF) and v_rf.shape == (L, URF, NT)
    assert _unit_modulus(x_rf) and _unit_modulus(v_rf)                     # eqs. (12)-(13)
    free = build("csirs.bs_csirsnet", {**CSIRS, "rf_param": "free"})
    assert not _unit_modulus(free.analog()[0]) and _unit_modulus(free.analog()[1])


def test_csirs_noiseless_equals_eq9_with_eq14_power():
    """Y_p = V_RF H^T X_RF x_BB with ||X_RF x_BB|| = 1 per RE (eq. 14, P_t = 1)."""
    h = _channel()
    blk = build("csirs.bs_csirsnet", {**CSIRS, "pilot_noise": False})
    y_p = blk(h=h)["y_p"]
    x_rf, v_rf = blk.analog()
    x_bb = torch.view_as_complex(blk.x_bb)
    for l_ in range(L):
        for n in range(F):
            t = x_rf[l_] @ x_bb[l_, n]
            assert abs(t.norm().item() - 1) > 1e-3          # not normalised before eq. 14
            t = t / t.norm()
            for k in range(2):
                hk = h[:, :, k * NT:(k + 1) * NT, l_, n]                # (B, Nr, Nt) uplink
                ref = torch.einsum("iu,bru,r->bi", v_rf[l_], hk, t)
                assert torch.allclose(y_p[:, k, n, l_], ref, atol=1e-5)


def test_csirs_pilot_noise_switch_and_its_snr():
    """Ablation 7: pilot_noise adds z (at the UE antennas, before V_RF); its power is
    N0 ||v_i||^2 = N0 Nt per RF chain."""
    h = _channel(64)
    on, off = _pair("csirs.bs_csirsnet", {**CSIRS, "snr_db": 0.0}, {**CSIRS, "pilot_noise": False})
    torch.manual_seed(1)
    noisy = on(h=h)["y_p"]
    clean = off(h=h)["y_p"]
    n0 = (noisy - clean).abs().square().mean().item()
    assert abs(n0 / NT - 1.0) < 0.1


def test_csirs_rx_agc_normalises_received_pilots():
    """Ablation 8: power_norm rx_agc (the code) replaces eq. 14 by a unit-power received pilot."""
    h = _channel()
    agc, eq14 = _pair("csirs.bs_csirsnet", {**CSIRS, "power_norm": "rx_agc"}, {**CSIRS})
    y = agc(h=h)["y_p"]
    assert torch.allclose(y.abs().square().mean(dim=(2, 3, 4)), torch.ones(B, 2), atol=1e-4)
    assert not torch.allclose(y, eq14(h=h)["y_p"])


# ------------------------------------------------------------------ quantizer (footnote 5)

@pytest.mark.parametrize("bits", [2, 4])
def test_quantizer_round_trip_levels_and_ste(bits):
    x = torch.rand(5, 6)
    q = quantize(x, bits)
    assert q.shape == (5, 6 * bits) and set(q.unique().tolist()) <= {0.0, 1.0}
    xq = dequantize(q, bits)
    n = torch.floor(x * 2 ** bits)
    assert torch.allclose(xq, (n + 0.5) / 2 ** bits)                      # interval centres
    assert (xq - x).abs().max() <= 0.5 / 2 ** bits + 1e-6
    assert torch.equal(quantize(xq, bits), q)                              # centres re-quantize
    # straight-through: the gradient of the dequantized value reaches x unchanged
    xg = x.clone().requires_grad_(True)
    g = torch.randn(5, 6)
    (dequantize(quantize(xg, bits), bits) * g).sum().backward()
    assert torch.allclose(xg.grad, g)
    xg.grad = None
    out = dequantize(quantize(xg, bits, ste=False), bits)
    assert not out.requires_grad                                           # ablation 10: no STE


def test_quantizer_msb_first():
    q = quantize(torch.tensor([[0.0, 0.3, 0.99]]), 2)
    assert q.tolist() == [[0, 0, 0, 1, 1, 1]]


# ------------------------------------------------------------------ UE-CSANet (eqs. 15-17)

def _y_p(b=B):
    return _cx(b, 2, F, L, URF)


def test_ue_csanet_contract_gradients_unit_modulus_bits():
    y_p = _y_p()
    for phase in ("exp", "project"):
        out = check_contract("estimator.ue_csanet", {**UE, "phase_param": phase}, y_p=y_p)
        assert out["f_rf"].shape == (B, NT, URF) and _unit_modulus(out["f_rf"])        # eq. (16)
        assert out["bits"].shape == (B, 8) and set(out["bits"].unique().tolist()) <= {0.0, 1.0}
        assert out["s_csi"].shape == (B, F, 8)
        check_gradients("estimator.ue_csanet", {**UE, "phase_param": phase}, wrt=["y_p"], y_p=y_p)


def test_ue_csanet_reads_its_own_user():
    a, b = _pair("estimator.ue_csanet", {**UE, "user": 0}, {**UE, "user": 1})
    y_p = _y_p()
    y2 = y_p.clone()
    y2[:, 1] = _cx(B, F, L, URF)
    assert torch.equal(a(y_p=y_p)["f_rf"], a(y_p=y2)["f_rf"])
    assert not torch.allclose(b(y_p=y_p)["f_rf"], b(y_p=y2)["f_rf"])


def test_ue_csanet_ste_switch():
    """Ablation 10: without the straight-through gradient the feedback branch gets no gradient."""
    y_p = _y_p()
    for ste in (True, False):
        blk = build("estimator.ue_csanet", {**UE, "ste": ste})
        bits = blk(y_p=y_p)["bits"]
        weights = torch.randn_like(bits)
        if not ste:
            assert not bits.requires_grad
            continue
        (dequantize(bits, 2) * weights[:, ::2]).sum().backward()
        grads = [p.grad for p in blk.feedback.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_ue_csanet_position_embedding_switch():
    learned, sine = _pair("estimator.ue_csanet", {**UE, "pos_embedding": "learned"}, {**UE})
    torch.nn.init.normal_(learned.pos)                                     # off its zero init
    y_p = _y_p()
    assert not torch.allclose(sine(y_p=y_p)["s_csi"], learned(y_p=y_p)["s_csi"])


@pytest.mark.parametrize("qbits", [2, 4])
def test_ue_csanet_quant_bits(qbits):
    """Ablation 9: B bits carry B / quant_bits scalars (footnote 5: 2; the code: 4)."""
    blk = build("estimator.ue_csanet", {**UE, "quant_bits": qbits})
    assert blk.feedback.out.out_features == 8 // qbits
    bits = blk(y_p=_y_p())["bits"]
    assert bits.shape == (B, 8)


# ------------------------------------------------------------------ BS-CSANet (eqs. 18-19)

def test_bs_csanet_contract_gradients_unit_modulus():
    bits = (torch.rand(B, 8) < 0.5).float()
    bits2 = (torch.rand(B, 8) < 0.5).float()
    for phase in ("exp", "project"):
        out = check_contract("combiner.bs_csanet", {**BS, "phase_param": phase}, bits1=bits, bits2=bits2)
        assert out["w_rf"].shape == (B, BRF, NR) and _unit_modulus(out["w_rf"])         # eq. (18)
        assert out["s_csi"].shape == (B, F, 8)
    check_gradients("combiner.bs_csanet", BS, wrt=["bits1", "bits2"], bits1=bits, bits2=bits2)


def test_feedback_chain_trains_the_ue_through_the_bs():
    """eq. 17 -> eq. 19: a loss on the BS-side feature reaches UE-CSANet's feedback branch."""
    ue, bs = build("estimator.ue_csanet", UE), build("combiner.bs_csanet", BS)
    bits = ue(y_p=_y_p())["bits"]
    bs(bits1=bits, bits2=bits.detach())["s_csi"].square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ue.feedback.parameters())


# ------------------------------------------------------------------ UE-MSFNet (eqs. 20-27)

def _ue_inputs(b=B):
    return dict(image=torch.rand(b, 3, 32, 32), s_csi=torch.randn(b, F, 8), f_rf=_phase(b, NT, URF))


@pytest.mark.parametrize("access,fk", [("noma", F), ("oma", F // 2)])
def test_ue_msfnet_contract_gradients_and_eq20_power(access, fk):
    p = {**ENC, "access": access}
    inp = _ue_inputs()
    s = check_contract("extractor.ue_msfnet", p, **inp)["s_bb"]
    assert s.shape == (B, URF, Q, fk)
    check_gradients("extractor.ue_msfnet", p, wrt=["image", "s_csi"], **inp)
    x = torch.einsum("bur,brqn->buqn", inp["f_rf"], s)                     # F_RF S_BB
    energy = x.abs().square().sum(dim=(1, 2, 3))
    assert torch.allclose(energy, torch.full((B,), float(Q * fk)), rtol=1e-4)    # eq. (20), P_t = 1


def test_ue_msfnet_thermal_and_baseband_power():
    p = {**ENC, "in_channels": 1, "power_norm": "baseband"}
    s = check_contract("extractor.ue_msfnet", p, image=torch.rand(B, 1, 32, 32),
                       s_csi=torch.randn(B, F, 8))["s_bb"]
    per_re = s.abs().square().sum(1).mean(dim=(1, 2))
    assert torch.allclose(per_re, torch.full((B,), 1 / NT), rtol=1e-4)


def test_ue_msfnet_symbol_map_switch():
    """Ablation 13: the code's bug sets imag = real."""
    good, bug = _pair("extractor.ue_msfnet", ENC, {**ENC, "symbol_map": "code_real_only"})
    inp = _ue_inputs()
    s_bug, s_good = bug(**inp)["s_bb"], good(**inp)["s_bb"]
    assert torch.allclose(s_bug.real, s_bug.imag)
    assert not torch.allclose(s_good.real, s_good.imag)


def test_ue_msfnet_sfa_switches():
    """Ablation 3: SFA on/off changes the symbols; with it off (or csi_gating false, Stage I)
    the CSI feature has no influence and gets no gradient."""
    on, off = _pair("extractor.ue_msfnet", ENC, {**ENC, "sfa": False})
    inp = _ue_inputs()
    assert not torch.allclose(on(**inp)["s_bb"], off(**inp)["s_bb"])
    other = dict(inp, s_csi=torch.randn(B, F, 8))
    assert not torch.allclose(on(**inp)["s_bb"], on(**other)["s_bb"])
    assert torch.equal(off(**inp)["s_bb"], off(**other)["s_bb"])
    on.set_runtime("csi_gating", False)
    assert torch.equal(on(**inp)["s_bb"], on(**other)["s_bb"])
    csi = inp["s_csi"].clone().requires_grad_(True)
    off(image=inp["image"], s_csi=csi, f_rf=inp["f_rf"])["s_bb"].abs().sum().backward()
    assert csi.grad is None


def test_ue_msfnet_grid_is_subcarrier_major():
    """Grid position (i, j) of the feature map is subcarrier n = Ws i + j."""
    blk = build("extractor.ue_msfnet", {**ENC, "sfa": False, "power_norm": "baseband"}).eval()
    feat = torch.randn(1, 8, 2, 2)

    class Fixed(torch.nn.Module):
        def forward(self, image):
            return feat.clone()
    blk.encoder = Fixed()
    base = blk(image=torch.zeros(1, 3, 32, 32))["s_bb"]
    feat[0, :, 1, 0] += 1.0                                    # position (1, 0) -> n = 2
    moved = blk(image=torch.zeros(1, 3, 32, 32))["s_bb"]
    ratio = (moved / base).flatten(0, 2)                       # power normalisation: one common factor
    same = (ratio - ratio[:, :1]).abs().max(0).values < 1e-4
    assert same.tolist() == [True, True, False, True]


# ------------------------------------------------------------------ uplink (eqs. 2-4)

def _uplink_inputs(access="noma", b=B):
    fk = F // 2 if access == "oma" else F
    return dict(s1=_cx(b, URF, Q, fk), s2=_cx(b, URF, Q, fk), h=_channel(b),
                f1=_phase(b, NT, URF), f2=_phase(b, NT, URF), w=_phase(b, BRF, NR))


@pytest.mark.parametrize("access", ["noma", "oma"])
def test_uplink_contract_and_gradients(access):
    p = {**UPLINK, "access": access}
    inp = _uplink_inputs(access)
    y = check_contract("channel.hybrid_uplink", p, **inp)["y"]
    assert y.shape == (B, BRF, Q, F)
    assert torch.allclose(y.abs().square().mean(dim=(1, 2, 3)), torch.ones(B), atol=1e-4)   # AGC
    check_gradients("channel.hybrid_uplink", p, wrt=["s1", "s2", "f1", "f2", "w"], **inp)


def test_uplink_noiseless_equals_eqs_2_to_4():
    blk = build("channel.hybrid_uplink", {**UPLINK, "snr_db": 200.0, "agc": False})
    inp = _uplink_inputs()
    y = blk(**inp)["y"]
    h = inp["h"][:, :, :, L:L + Q]
    ref = sum(torch.einsum("bir,bruqn,bus,bsqn->biqn", inp["w"], h[:, :, k * NT:(k + 1) * NT], f, s)
              for k, (f, s) in enumerate(((inp["f1"], inp["s1"]), (inp["f2"], inp["s2"]))))
    assert torch.allclose(y, ref, atol=1e-3)


def test_noma_superimposes_and_oma_separates_resource_elements():
    """Ablation 1: NOMA puts both UEs on all Q x F REs (superposition: y(s1, s2) = y(s1, 0) +
    y(0, s2)); OMA puts UE k only on subcarriers k, k+2, ...: each UE occupies Q F / 2 REs."""
    for access in ("noma", "oma"):
        blk = build("channel.hybrid_uplink", {**UPLINK, "access": access, "snr_db": 300.0, "agc": False})
        inp = _uplink_inputs(access)
        zero = torch.zeros_like(inp["s1"])
        y12, y1 = blk(**inp)["y"], blk(**dict(inp, s2=zero))["y"]
        y2 = blk(**dict(inp, s1=zero))["y"]
        assert torch.allclose(y12, y1 + y2, atol=1e-4)
        used1 = (y1.abs() > 1e-6).any(dim=(0, 1, 2))
        used2 = (y2.abs() > 1e-6).any(dim=(0, 1, 2))
        if access == "noma":
            assert used1.all() and used2.all()
        else:
            assert used1.tolist() == [True, False] * (F // 2) and used2.tolist() == [False, True] * (F // 2)
            assert int(used1.sum()) * Q == Q * F // 2


@pytest.mark.parametrize("noise_at", ["antenna", "rf"])
def test_uplink_noise_level(noise_at):
    """Ablation 15: CN(0, N0) at each BS antenna (eq. 3), or after combining with variance
    N0 ||w_i||^2 (the code); with unit-modulus W both give N0 Nr per RF chain."""
    p = {**UPLINK, "snr_db": 0.0, "agc": False, "noise_at": noise_at}
    blk = build("channel.hybrid_uplink", p)
    inp = _uplink_inputs(b=256)
    clean = build("channel.hybrid_uplink", {**p, "snr_db": 300.0})(**inp)["y"]
    n0 = (blk(**inp)["y"] - clean).abs().square().mean().item()
    assert abs(n0 / NR - 1.0) < 0.1


def test_uplink_ideal_is_the_identity_channel():
    """Stage I (Sec. III-H-1): identity equivalent channel, no noise."""
    blk = build("channel.hybrid_uplink", {**UPLINK, "agc": False})
    blk.set_runtime("ideal", True)
    inp = _uplink_inputs()
    assert torch.equal(blk(**inp)["y"], inp["s1"] + inp["s2"])
    oma = build("channel.hybrid_uplink", {**UPLINK, "agc": False, "access": "oma"})
    oma.set_runtime("ideal", True)
    inp = _uplink_inputs("oma")
    y = oma(**inp)["y"]
    assert torch.equal(y[..., 0::2], inp["s1"]) and torch.equal(y[..., 1::2], inp["s2"])


def test_uplink_tx_norm_per_ue():
    blk = build("channel.hybrid_uplink", {**UPLINK, "agc": False, "snr_db": 300.0, "tx_norm": "per_ue"})
    inp = _uplink_inputs()
    y1 = blk(**dict(inp, s2=torch.zeros_like(inp["s2"])))["y"]
    y1_big = blk(**dict(inp, s1=10 * inp["s1"], s2=torch.zeros_like(inp["s2"])))["y"]
    assert torch.allclose(y1, y1_big, atol=1e-4)                  # per-UE power is fixed


# ------------------------------------------------------------------ BS-MSFNet (eq. 22)

@pytest.mark.parametrize("access,combine", [("noma", "concat"), ("oma", "concat"), ("oma", "sum")])
def test_bs_msfnet_contract_and_gradients(access, combine):
    p = {**DEC, "access": access, "oma_combine": combine}
    y, csi = _cx(B, BRF, Q, F), torch.randn(B, F, 8)
    out = check_contract("decoder.bs_msfnet", p, y=y, s_csi=csi)
    assert out["logits"].shape == (B, 9, 32, 32)
    check_gradients("decoder.bs_msfnet", p, wrt=["y", "s_csi"], y=y, s_csi=csi)


def test_bs_msfnet_oma_combine_switch():
    """Ablation 14: concatenating the two users' REs (paper) vs adding them (code)."""
    cat, add = build("decoder.bs_msfnet", {**DEC, "access": "oma"}).eval(), \
        build("decoder.bs_msfnet", {**DEC, "access": "oma", "oma_combine": "sum"}).eval()
    assert cat.embed.in_features == 2 * add.embed.in_features == 2 * 2 * BRF * Q
    y = _cx(B, BRF, Q, F)
    swapped = y.clone()
    swapped[..., 0::2], swapped[..., 1::2] = y[..., 1::2], y[..., 0::2]
    # sum cannot tell the users apart; concat can
    assert torch.allclose(add(y=y, s_csi=torch.zeros(B, F, 8))["logits"],
                          add(y=swapped, s_csi=torch.zeros(B, F, 8))["logits"], atol=1e-5)
    assert not torch.allclose(cat(y=y, s_csi=torch.zeros(B, F, 8))["logits"],
                              cat(y=swapped, s_csi=torch.zeros(B, F, 8))["logits"])


def test_bs_msfnet_sfa_switch_and_pred_tap():
    on, off = _pair("decoder.bs_msfnet", DEC, {**DEC, "sfa": False})
    y, csi = _cx(B, BRF, Q, F), torch.randn(B, F, 8)
    assert not torch.allclose(on(y=y, s_csi=csi)["logits"], off(y=y)["logits"])
    seen = {}
    on._publish = lambda block, tap, t: seen.__setitem__(tap, t)
    logits = on(y=y, s_csi=csi)["logits"]
    assert torch.equal(seen["pred"], logits.argmax(1)) and seen["gate"].shape == (B, 8)


def test_msfnet_paper_sizes_match_table_ii():
    """MFNet widths at 480 x 640: two encoders + decoder = 3.37 M (Table II 'multimodal semantic
    fusion modules: 3.37M'; the code's encoders 1.414 M each, decoder 0.542 M)."""
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    enc = build("extractor.ue_msfnet", {"q_symbols": 4})
    dec = build("decoder.bs_msfnet", {"q_symbols": 4})
    assert n(enc.encoder) == 1_414_464 and n(dec.decoder) == 542_235
    assert abs((2 * n(enc.encoder) + n(dec.decoder)) / 1e6 - 3.37) < 0.005


# ------------------------------------------------------------------ SE sink (eqs. 30-31)

def test_hybrid_se_closed_form_on_a_rank1_channel():
    """H = a b^H: eta = log2(1 + (1/(Ns N0)) ||W~ a||^2 ||F~^H b||^2) with unit-norm rows/columns."""
    b = 2
    a, bb = _cx(b, NR), _cx(b, NT)
    h1 = torch.einsum("br,bu->bru", a, bb.conj())                       # (B, Nr, Nt)
    h = h1[:, :, :, None, None].expand(b, NR, NT, L + Q, F)
    h = torch.cat([h, 2 * h], dim=2)                                    # user 2: 4x the power
    f1, f2, w = _phase(b, NT, 1), _phase(b, NT, 1), _phase(b, 1, NR)
    n0 = 10 ** -0.5
    wn, fn1, fn2 = w / math.sqrt(NR), f1 / math.sqrt(NT), f2 / math.sqrt(NT)
    ga = torch.einsum("br,br->b", wn[:, 0], a).abs().square()
    r1 = torch.log2(1 + ga * torch.einsum("bu,bu->b", bb.conj(), fn1[:, :, 0]).abs().square() / n0)
    r2 = torch.log2(1 + 4 * ga * torch.einsum("bu,bu->b", bb.conj(), fn2[:, :, 0]).abs().square() / n0)
    out = check_contract("sink.hybrid_se", {**SE, "snr_db": 5.0}, h=h, f1=f1, f2=f2, w=w)["value"]
    assert torch.allclose(out, r1 + r2, rtol=1e-4)
    mn = build("sink.hybrid_se", {**SE, "snr_db": 5.0, "reduce": "min"})(h=h, f1=f1, f2=f2, w=w)["value"]
    assert torch.allclose(mn, torch.minimum(r1, r2), rtol=1e-4)


def test_hybrid_se_options():
    """Ablation 6: sum vs min over users, all data symbols vs the first; whitening is exact
    and equals the plain formula for orthogonal combiner rows."""
    h = _channel(4, n_symbols=L + 3)
    f1, f2 = _phase(4, NT, URF), _phase(4, NT, URF)
    w = _phase(4, BRF, NR)
    p = {**SE, "q_symbols": 3}
    se = lambda **kw: build("sink.hybrid_se", {**p, **kw})(h=h, f1=f1, f2=f2, w=w)["value"]  # noqa: E731
    assert (se(reduce="min") < se()).all()
    assert not torch.allclose(se(symbols="first"), se())
    dft = torch.fft.fft(torch.eye(NR))[:BRF].unsqueeze(0).expand(4, -1, -1).to(torch.complex64)
    hk = h[:, :, :NT, L:L + 3]
    assert torch.allclose(hybrid_rates(hk, f1, dft, 0.3), hybrid_rates(hk, f1, dft, 0.3, whiten=True), atol=1e-3)
    twin = w[:, :1].expand(-1, BRF, -1)                                 # identical rows: no gain
    assert (hybrid_rates(hk, f1, twin, 0.3, whiten=True) < hybrid_rates(hk, f1, twin, 0.3)).all()
    hg = _channel(4, n_symbols=L + 3)
    f = f1.clone().requires_grad_(True)
    build("sink.hybrid_se", p)(h=hg, f1=f, f2=f2, w=w)["value"].sum().backward()
    assert f.grad.abs().sum() > 0


# ------------------------------------------------------------------ separated baseline pieces

def test_pca_hybrid_unit_modulus_and_beam_gain():
    """Ablation 11: PCA beams from the true channel collect far more power than random phases."""
    h = _channel(64, n_paths=2)
    out = check_contract("precoder.pca_hybrid", dict(bs_rf=BRF, csi_symbol=L, **ARR), h=h)
    f1, f2, w = out["f1"], out["f2"], out["w"]
    assert f1.shape == (64, NT, 1) and w.shape == (64, BRF, NR)
    assert _unit_modulus(f1) and _unit_modulus(f2) and _unit_modulus(w)
    hk = h[:, :, :NT, L:L + 1]
    pca = hybrid_rates(hk, f1, w[:, :1], 1.0).mean()
    rnd = hybrid_rates(hk, _phase(64, NT, 1), _phase(64, 1, NR), 1.0).mean()
    assert pca > 2 * rnd


def test_zf_ofdm_recovers_the_data_with_the_true_channel():
    grid = dict(n_symbols=2, n_subcarriers=F, n_streams=2, pilot_symbols=[0], cyclic_prefix=0)
    data = _cx(B, 2, F)
    x = build("csirs.ofdm_grid", grid)(data=data)["x"]                # (B, 2, S, F)
    hm = _cx(B, BRF, 2, 2, F)                                           # (B, K, Nt, S, F)
    y = torch.einsum("bktsf,btsf->bksf", hm, x)
    out = check_contract("combiner.zf_ofdm", {}, y=y, h_hat=hm)["x_hat"]
    assert torch.allclose(out, x, atol=1e-4)
    assert torch.allclose(build("csirs.ofdm_extract", grid)(x=out)["data"], data, atol=1e-4)


def test_separated_phy_chain_dmrs_ls_zf_recovers_the_streams():
    """Separated baseline (Sec. IV-A): PCA beams from the true channel, one DMRS OFDM symbol,
    LS + ZF. Flat, static channel, no noise: both users' data come back exactly (the power and
    AGC scales are in the DMRS estimate); with Doppler the held estimate ages, so later data
    symbols are worse; with delay spread the comb-pilot interpolation across subcarriers errs."""
    nsym = 4
    grid = dict(n_symbols=nsym, n_subcarriers=F, n_streams=2, pilot_symbols=[0], cyclic_prefix=0)
    data = _cx(B, 2, (nsym - 1) * F)
    x = build("csirs.ofdm_grid", grid)(data=data)["x"]
    errors = {}
    for speed, delay in ((0.0, 0.0), (120.0, 0.0), (0.0, 1.0)):
        h = _channel(B, n_symbols=L + nsym, max_speed_kmh=speed, min_speed_kmh=speed, symbol_time=1e-4,
                     max_delay=delay)
        beams = build("precoder.pca_hybrid", dict(bs_rf=BRF, csi_symbol=L, **ARR))(h=h)
        y = build("channel.hybrid_uplink", {**UPLINK, "snr_db": 300.0, "tx_norm": "per_ue"})(
            s1=x[:, :1], s2=x[:, 1:], h=h, **beams)["y"]
        h_hat = build("estimator.ls_ofdm", grid)(y=y)["h_hat"]
        x_hat = build("csirs.ofdm_extract", grid)(x=build("combiner.zf_ofdm", {})(y=y, h_hat=h_hat)["x_hat"])["data"]
        errors[speed, delay] = (x_hat - data).abs().reshape(B, 2, nsym - 1, F).mean(dim=(0, 1, 3))
    assert errors[0.0, 0.0].max() < 1e-3
    assert errors[120.0, 0.0][-1] > errors[120.0, 0.0][0] > 1e-3
    assert errors[0.0, 1.0].min() > 1e-2
