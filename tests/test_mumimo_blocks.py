"""Seed 003 blocks (blocks/mumimo): contracts, gradients, ablation switches, precoder physics,
sinks, the multi-user source and the CSI draw/apply pair. Tiny widths, N_f = 32, batch 2."""
import pickle

import numpy as np
import pytest
import torch

import blocks  # noqa: F401
from blocks.mimo.precoders import rzf_matrix
from blocks.mumimo._layers import fold_channels, grid_to_map
from blocks.mumimo.precoder import rzf_ofdm
from flowgraph.testing import build, check_contract, check_gradients

B, K, NT, S, F, SIZE = 2, 4, 4, 14, 32, 16
D = 12 * F
ENC = dict(size=SIZE, n_subcarriers=F, widths=[8, 16], scenario_widths=[4, 8], scenario_hidden=8)
PRE = dict(width=8)
DEC = dict(size=SIZE, n_subcarriers=F, attention_width=8, restoration_widths=[16, 8, 8, 4],
           classifier_widths=[4, 8, 8], classifier_hidden=16)
GRID = dict(n_symbols=S, n_subcarriers=F, n_streams=K)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cx(*shape):
    return torch.complex(torch.randn(*shape), torch.randn(*shape)) * 0.5 ** 0.5


def _pair(type_id, on: dict, off: dict):
    """The same block with a switch on and off, sharing every weight they have in common,
    so any output difference comes from the switched mechanism alone."""
    a, b = build(type_id, on).eval(), build(type_id, off).eval()
    missing, unexpected = b.load_state_dict(a.state_dict(), strict=False)
    assert not missing, missing
    return a, b


# ----------------------------------------------------------------------------- encoder

def test_encoder_contract_range_and_gradients():
    img, h = torch.rand(B, K, 3, SIZE, SIZE), _cx(B, K, NT, S, F)
    data = check_contract("extractor.asymmetric_encoder", ENC, image=img, h=h)["data"]
    assert data.shape == (B, K, D)
    assert data.real.abs().max() < 1 and data.imag.abs().max() < 1          # tanh (Table I)
    check_gradients("extractor.asymmetric_encoder", ENC, wrt=["image"], image=img, h=h)
    # without scenario adaptation the CSI input may stay unconnected
    out = check_contract("extractor.asymmetric_encoder", {**ENC, "scenario_adaptation": False}, image=img)
    assert out["data"].shape == (B, K, D)


def test_encoder_users_are_encoded_independently():
    enc = build("extractor.asymmetric_encoder", ENC).eval()
    img, h = torch.rand(B, K, 3, SIZE, SIZE), _cx(B, K, NT, S, F)
    a = enc(image=img, h=h)["data"]
    img2 = img.clone()
    img2[:, 1] = torch.rand(B, 3, SIZE, SIZE)
    b = enc(image=img2, h=h)["data"]
    assert torch.allclose(a[:, [0, 2, 3]], b[:, [0, 2, 3]], atol=1e-6) and not torch.allclose(a[:, 1], b[:, 1])


def test_encoder_noise_adaptation_switch():
    on, off = _pair("extractor.asymmetric_encoder", {**ENC, "noise_adaptation": True},
                    {**ENC, "noise_adaptation": False})
    img, h = torch.rand(B, K, 3, SIZE, SIZE), _cx(B, K, NT, S, F)
    assert not torch.allclose(on(image=img, h=h)["data"], off(image=img, h=h)["data"])
    outs = {}
    for snr in (-5.0, 15.0):
        for name, blk in (("on", on), ("off", off)):
            blk.set_runtime("snr_db", snr)
            outs[name, snr] = blk(image=img, h=h)["data"]
    assert not torch.allclose(outs["on", -5.0], outs["on", 15.0])        # the SNR reaches the features
    assert torch.equal(outs["off", -5.0], outs["off", 15.0])             # and only through the module


def test_encoder_scenario_adaptation_switch():
    on, off = _pair("extractor.asymmetric_encoder", {**ENC, "scenario_adaptation": True},
                    {**ENC, "scenario_adaptation": False})
    img, h1, h2 = torch.rand(B, K, 3, SIZE, SIZE), _cx(B, K, NT, S, F), 3 * _cx(B, K, NT, S, F)
    assert not torch.allclose(on(image=img, h=h1)["data"], off(image=img, h=h1)["data"])
    assert not torch.allclose(on(image=img, h=h1)["data"], on(image=img, h=h2)["data"])   # |H| matters
    assert torch.equal(off(image=img, h=h1)["data"], off(image=img, h=h2)["data"])
    with pytest.raises(ValueError, match="needs the CSI"):
        on(image=img)


# ----------------------------------------------------------------------------- precoder

def test_precoder_contract_power_and_gradients():
    s, h = _cx(B, K, S, F), _cx(B, K, NT, S, F)
    x = check_contract("precoder.residual_rzf", PRE, s=s, h=h)["x"]
    assert x.shape == (B, NT, S, F)
    # total power constraint: mean over REs of sum over antennas |x|^2 = 1, per example
    assert torch.allclose(x.abs().square().sum(1).mean((1, 2)), torch.ones(B), atol=1e-5)
    blk = check_gradients("precoder.residual_rzf", PRE, wrt=["s"], s=s, h=h)
    assert blk.alpha_raw.grad is not None and blk.alpha_raw.grad != 0     # alpha learns (eq. 7)


def test_precoder_residual_switch_and_plain_rzf_math():
    on, off = _pair("precoder.residual_rzf", {**PRE, "residual": True}, {**PRE, "residual": False})
    s, h = _cx(B, K, S, F), _cx(B, K, NT, S, F)
    x_off = off(s=s, h=h)["x"]
    assert not torch.allclose(on(s=s, h=h)["x"], x_off)
    # residual off = RZF of eq. 7 with alpha sigma^2, per RE, normalized to unit total power
    n0 = 10 ** (-off.p.snr_db / 10)
    hm = h.permute(0, 3, 4, 1, 2)                                          # (B, S, F, K, Nt)
    v = rzf_matrix(hm, float(off.current_alpha().detach()) * n0)                    # flat-MIMO library
    ref = (v @ s.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1).permute(0, 3, 1, 2)
    ref = ref / ref.abs().square().sum(1).mean((1, 2)).sqrt().reshape(-1, 1, 1, 1)
    assert torch.allclose(x_off, ref, atol=1e-5)


def test_precoder_alpha_mmse_is_k_over_power():
    """alpha: mmse = n_users / power (K sigma^2 / P): fixed for classical RZF, the initial value
    of a learnable alpha; it changes the coarse precoder against seed 003's alpha = 1."""
    s, h = _cx(B, K, S, F), _cx(B, K, NT, S, F)
    plain = {**PRE, "residual": False, "learnable_alpha": False, "snr_db": 0.0}
    mmse = build("precoder.residual_rzf", {**plain, "alpha": "mmse"})
    assert mmse.current_alpha() == K
    assert build("precoder.residual_rzf", {**plain, "alpha": "mmse", "power": 2.0}).current_alpha() == K / 2
    x_k = build("precoder.residual_rzf", {**plain, "alpha": float(K)})(s=s, h=h)["x"]
    assert torch.allclose(mmse(s=s, h=h)["x"], x_k)
    x_1 = build("precoder.residual_rzf", {**plain, "alpha": 1.0})(s=s, h=h)["x"]
    assert not torch.allclose(x_k, x_1, atol=1e-3)
    learn = build("precoder.residual_rzf", {**PRE, "alpha": "mmse", "learnable_alpha": True})
    assert abs(float(learn.current_alpha().detach()) - K) < 1e-5


def test_zf_limit_removes_interference_and_fails_on_singular_channel():
    zf = build("precoder.residual_rzf", {"residual": False, "learnable_alpha": False, "alpha": 0.0})
    s, h = _cx(B, K, S, F), _cx(B, K, NT, S, F)
    x = zf(s=s, h=h)["x"]
    y = torch.einsum("bknsf,bnsf->bksf", h, x)                            # noise-free receive
    # H V = g I: each UE receives only its own symbol, with one real gain g per example
    g = (y * s.conj()).sum((1, 2, 3)) / s.abs().square().sum((1, 2, 3))
    err = (y - g.reshape(-1, 1, 1, 1) * s).abs().square().sum() / y.abs().square().sum()
    assert err < 1e-6 and g.imag.abs().max() < 1e-4 * g.real.abs().min()
    h_bad = h.clone()
    h_bad[:, 1:] = h_bad[:, :1]                                            # identical users: H H^H singular
    assert not torch.isfinite(zf(s=s, h=h_bad)["x"]).all()                 # seed 003 Fig. 10
    v = rzf_ofdm(h_bad, 0.1)                                               # RZF stays finite
    assert torch.isfinite(v).all()
    with pytest.raises(ValueError, match="ZF"):
        build("precoder.residual_rzf", {"alpha": 0.0, "learnable_alpha": True})


# ----------------------------------------------------------------------------- decoder

def test_decoder_contract_attention_tap_and_gradients():
    y, yp = _cx(B, K, S, F), _cx(B, K, S, F)
    seen = {}
    dec = build("decoder.pilot_guided", DEC)
    dec._publish = lambda blk, tap, t: seen.__setitem__(tap, t)
    out = check_contract(dec, y=y, pilot_ref=yp)
    assert out["image"].shape == (B, K, 3, SIZE, SIZE) and out["logits"].shape == (B, K, 10)
    assert 0 < out["image"].min() and out["image"].max() < 1
    a = seen["attention"]
    assert a.shape == (B, K, 2, S, F) and 0 < a.min() and a.max() < 1
    check_gradients("decoder.pilot_guided", DEC, wrt=["y"], y=y, pilot_ref=yp)
    check_gradients("decoder.pilot_guided", {**DEC, "pilot_guidance": False}, wrt=["y"], y=y)


def test_decoder_pilot_guidance_switch():
    y, yp = _cx(B, K, S, F), _cx(B, K, S, F)
    on = build("decoder.pilot_guided", DEC).eval()
    off = build("decoder.pilot_guided", {**DEC, "pilot_guidance": False}).eval()
    assert not torch.allclose(on(y=y, pilot_ref=yp)["image"], off(y=y)["image"])
    assert not torch.allclose(on(y=y, pilot_ref=yp)["image"], on(y=y, pilot_ref=2 * yp)["image"])
    assert sum(p.numel() for p in on.parameters()) > sum(p.numel() for p in off.parameters())
    with pytest.raises(ValueError, match="pilot_ref"):
        on(y=y)


def test_decoder_is_per_user():
    dec = build("decoder.pilot_guided", DEC).eval()
    y, yp = _cx(B, K, S, F), _cx(B, K, S, F)
    a = dec(y=y, pilot_ref=yp)["image"]
    y2 = y.clone()
    y2[:, 2] = 0
    b = dec(y=y2, pilot_ref=yp)["image"]
    assert torch.allclose(a[:, [0, 1, 3]], b[:, [0, 1, 3]], atol=1e-6) and not torch.allclose(a[:, 2], b[:, 2])


def test_grid_to_map_fold():
    g = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)   # (c, S, F)
    m = grid_to_map(g, 2)                                                  # 24 values -> 4 positions x 6
    assert m.shape == (1, fold_channels(2, 3, 4, 2), 2, 2) == (1, 6, 2, 2)
    # position 0 holds subcarrier 0 over all symbols and both channels, position 1 subcarrier 1
    assert sorted(m[0, :, 0, 0].tolist()) == sorted(g[0, :, :, 0].flatten().tolist())
    assert sorted(m[0, :, 0, 1].tolist()) == sorted(g[0, :, :, 1].flatten().tolist())
    assert grid_to_map(torch.ones(1, 1, 3, 3), 2).shape == (1, 3, 2, 2)    # 9 values zero-padded to 12


# ----------------------------------------------------------------------------- channel

def test_draw_channel_shapes_batch_change_and_user_correlation():
    draw = build("channel.ofdm_draw", {"n_subcarriers": F, "scenario": "umi"})
    h = check_contract(draw, ref=torch.zeros(B, 3))["h"]
    assert h.shape == (B, K, NT, S, F) and torch.isfinite(h).all()
    assert abs(h.abs().square().mean().item() - 1.0) < 1e-3               # normalized links
    assert draw(ref=torch.zeros(B + 1))["h"].shape[0] == B + 1            # new batch size: new topology
    same = build("channel.ofdm_draw", {"n_subcarriers": F, "scenario": "rma", "user_correlation": 1.0})
    h = same(ref=torch.zeros(B))["h"]
    assert torch.equal(h[:, 1], h[:, 0]) and torch.equal(h[:, 3], h[:, 0])
    assert not any(isinstance(m, torch.nn.Module) for m in draw.children())  # nothing in state_dict


@pytest.mark.parametrize("scenario", ["umi", "rma"])
def test_draw_channel_normalize_per_drop_keeps_the_users_path_loss(scenario):
    """normalize: per_link gives every UE link unit gain; per_drop (with 38.901 path loss and
    shadow fading) gives unit gain on average over the drop's K links, and the users of a drop
    keep their large-scale differences (several dB apart, as 38.901 distances and O2I losses
    make them); none keeps the raw gains (tiny with path loss on)."""
    base = {"n_subcarriers": F, "scenario": scenario, "n_users": K}
    gain = {}
    for mode in ("per_link", "per_drop", "none"):
        draw = build("channel.ofdm_draw", {**base, "normalize": mode, "pathloss": True, "shadow_fading": True})
        h = draw(ref=torch.zeros(32))["h"]
        gain[mode] = h.abs().square().mean(dim=(2, 3, 4))                    # (drops, users)
    assert torch.allclose(gain["per_link"], torch.ones_like(gain["per_link"]), atol=1e-4)
    assert torch.allclose(gain["per_drop"].mean(1), torch.ones(32), atol=1e-4)
    spread_db = 10 * torch.log10(gain["per_drop"].max(1).values / gain["per_drop"].min(1).values)
    print(f"{scenario}: strongest / weakest user of a drop, per_drop: median {spread_db.median():.1f} dB, "
          f"quartiles {spread_db.quantile(0.25):.1f} / {spread_db.quantile(0.75):.1f} dB")
    assert spread_db.median() > 6.0
    assert gain["none"].mean() < 1e-6                                      # path loss: a transmit SNR
    with pytest.raises(ValueError, match="per_drop"):
        build("channel.ofdm_draw", {**base, "normalize": "per_user"})


def test_power_norm_per_user_gives_every_user_unit_energy():
    """channel.power_norm per_dim: 1 on (B, K, D): each user's symbols at energy 1 (the per-user
    option); the default (seed 003) normalizes the K users jointly, so one user may take most."""
    x = _cx(B, K, 12)
    x[:, 1] *= 10.0                                                        # user 1 much louder
    joint = check_contract("channel.power_norm", {}, x=x)["x"]
    per = check_contract("channel.power_norm", {"per_dim": 1}, x=x)["x"]
    e_joint, e_per = joint.abs().square().mean(-1), per.abs().square().mean(-1)   # (B, K)
    assert torch.allclose(e_joint.mean(1), torch.ones(B), atol=1e-5)
    assert (e_joint[:, 1] > 3.5).all()                                     # of a total of K = 4
    assert torch.allclose(e_per, torch.ones(B, K), atol=1e-5)
    check_gradients("channel.power_norm", {"per_dim": 1}, wrt=["x"], x=x)
    with pytest.raises(ValueError, match="outside"):
        build("channel.power_norm", {"per_dim": 3})(x=x)


def test_draw_channel_scenario_is_runtime():
    """One block serves UMi, UMa and RMa in turn (mixed-scenario training, sweeps over
    scenarios): each scenario gets its own Sionna model, and batch-size changes still work."""
    draw = build("channel.ofdm_draw", {"n_subcarriers": F, "scenario": "umi"})
    assert draw(ref=torch.zeros(B))["h"].shape == (B, K, NT, S, F)
    for scenario, batch in (("uma", B), ("rma", B + 1), ("umi", B + 1), ("uma", B - 1)):
        draw.set_runtime("scenario", scenario)
        h = draw(ref=torch.zeros(batch))["h"]
        assert h.shape == (batch, K, NT, S, F) and torch.isfinite(h).all()
        assert draw._channels[scenario][0].type_id == f"channel.{scenario}"
    assert sorted(draw._channels) == ["rma", "uma", "umi"]
    with pytest.raises(ValueError, match="scenario"):
        draw.set_runtime("scenario", "indoor")


def test_pilot_reference_at_configured_res_only():
    """Y_p as the decoder receives it: UE k's row holds stream k's pilots at symbols [2, 11],
    subcarriers f = k mod K, and zeros everywhere else (seed 003 Fig. 5)."""
    ref = build("csirs.ofdm_grid", GRID)(data=torch.zeros(B, K, D, dtype=torch.complex64))["pilot_ref"]
    expect = torch.zeros(K, S, F, dtype=torch.bool)
    for k in range(K):
        expect[k, [2, 11], k::K] = True
    assert torch.equal(ref[0].abs() > 0, expect) and torch.equal(ref[1], ref[0])


# ----------------------------------------------------------------------------- sinks

def test_user_psnr_is_per_image_then_mean():
    target = torch.rand(B, K, 3, 4, 4)
    pred = target.clone()
    pred[:, 0] += 0.1                                                      # only user 0 distorted
    v = check_contract("sink.user_psnr", {}, pred=pred.clamp(0, 1), target=target)["value"]
    per = 10 * torch.log10(1 / ((pred[:, 0].clamp(0, 1) - target[:, 0]) ** 2).flatten(1).mean(1))
    assert torch.allclose(v, (per + 3 * 100.0) / 4, atol=1e-3)            # identical users: 100 dB cap


def test_accuracy_fraction_of_users():
    logits = torch.zeros(B, K, 10)
    label = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    logits[0, :, 1] = 1                                                    # example 0: only user 0 right
    logits[1, torch.arange(K), label[1]] = 1                               # example 1: all right
    v = check_contract("sink.accuracy", {}, logits=logits, label=label)["value"]
    assert v.tolist() == [0.25, 1.0]


# ----------------------------------------------------------------------------- source

def _fake_cifar(root, n_train=6, n_test=9):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else n_train
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": [(i + j) % 10 for j in range(n)]}, fh)
    return folder


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_multiuser_source(dataset, tmp_path):
    params = {"dataset": dataset, "num_users": K, "batch": B, "size": SIZE}
    if dataset == "cifar10":
        params["path"] = str(_fake_cifar(tmp_path))
    src = build("source.multiuser", params)
    out = check_contract(src)
    assert out["image"].shape == (B, K, 3, SIZE, SIZE) and out["label"].shape == (B, K)
    assert out["label"].min() >= 0 and out["label"].max() <= 9
    n = src.num_eval_examples()
    assert n == (359 // K if dataset == "digits" else 9 // K)
    got = list(src.eval_batches(3))
    assert sum(b["image"].shape[0] for b in got) == n and all(b["label"].shape[1] == K for b in got)
    assert src.source_values_per_example() == 3 * SIZE * SIZE * K
