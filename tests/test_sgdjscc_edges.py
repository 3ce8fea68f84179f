"""Seed 004 (SGD-JSCC) edge guidance: the batched torch Canny against skimage.feature.canny,
the edge-map extractor, the edge JSCC pair (contract, gradients, switches) and sink.edge_f1."""
import numpy as np
import pytest
import torch
from skimage.feature import canny as sk_canny

import blocks  # noqa: F401
from blocks.sgdjscc import _canny
from blocks.sources import DigitsSource, ImageSource
from flowgraph.testing import build, check_contract, check_gradients


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _test_images():
    digits = next(iter(DigitsSource(size=32).eval_batches(24)))["image"]
    photos = next(iter(ImageSource(size=32).eval_batches(24)))["image"]
    big = next(iter(ImageSource(size=64).eval_batches(8)))["image"]
    return [digits, photos, big]


@pytest.mark.parametrize("sigma, low, high, quantiles", [
    (1.0, 0.7, 0.9, True), (2.0, 0.7, 0.9, True), (1.0, 0.1, 0.2, False), (0.5, 0.05, 0.15, False)])
def test_canny_agrees_with_skimage(sigma, low, high, quantiles):
    agree, total, exact = 0, 0, 0
    for batch in _test_images():
        gray = _canny.luminance(batch.double())
        ours = _canny.canny(gray, sigma, low, high, quantiles).numpy()
        for i in range(len(gray)):
            ref = sk_canny(gray[i].numpy(), sigma=sigma, low_threshold=low, high_threshold=high,
                           use_quantiles=quantiles)
            agree += int((ours[i] == ref).sum())
            total += ref.size
            exact += int(np.array_equal(ours[i], ref))
    rate = agree / total
    print(f"\nsigma {sigma}: pixel agreement {rate:.5f}, identical maps {exact}")
    assert rate >= 0.999


def test_canny_float32_close_to_float64():
    batch = _test_images()[1]
    g = _canny.luminance(batch)
    a = _canny.canny(g.float(), 1.0, 0.7, 0.9, True)
    b = _canny.canny(g.double(), 1.0, 0.7, 0.9, True)
    assert (a == b).float().mean() > 0.995


def test_edge_map_contract_binary_and_soft():
    img = _test_images()[0][:4]
    out = check_contract("extractor.edge_map", {"sigmas": [0.5, 1.0, 2.0, 3.0]}, image=img)
    e, s = out["edge"], out["edge_soft"]
    assert set(e.unique().tolist()) <= {0.0, 1.0} and 0 < e.mean() < 0.5
    assert s.min() >= 0 and s.max() <= 1 and not torch.equal(s, e)
    assert (e[..., 0, :] == 0).all() and (e[..., :, -1] == 0).all()      # the 1-px border is never an edge
    for sig in ([1.0], []):
        one = check_contract("extractor.edge_map", {"sigmas": sig}, image=img)
        assert torch.equal(one["edge_soft"], one["edge"])


def test_edge_jscc_contract_gradients_and_cbr():
    edge = (torch.rand(2, 1, 32, 32) > 0.8).float()
    z = check_contract("extractor.edge_jscc", {"channels": 3}, edge=edge)["z"]
    assert z.shape == (2, 24)                          # 3 * 4 * 4 / 2 complex: CBR 24 / 3072 = 1/128
    check_gradients("extractor.edge_jscc", {"channels": 3}, edge=edge)
    zc = torch.randn(2, 24, dtype=torch.cfloat)
    prob = check_contract("decoder.edge_jscc", {"channels": 3, "size": 32}, z=zc, snr_db=torch.tensor([0.0, 5.0]))["prob"]
    assert prob.shape == (2, 1, 32, 32) and 0 < prob.min() and prob.max() < 1
    check_gradients("decoder.edge_jscc", {"channels": 3, "size": 32}, wrt=["z"], z=zc, snr_db=torch.zeros(2))


def test_edge_jscc_soft_input_switch():
    """A14: edge_soft as a second input channel changes the symbols."""
    edge = (torch.rand(2, 1, 32, 32) > 0.8).float()
    soft = torch.rand(2, 1, 32, 32)
    enc = build("extractor.edge_jscc", {"use_soft": True}).eval()
    assert not torch.allclose(enc(edge=edge, soft=soft)["z"], enc(edge=edge, soft=torch.zeros_like(soft))["z"])
    with pytest.raises(ValueError, match="soft"):
        enc(edge=edge)
    assert build("extractor.edge_jscc", {}).net[0].in_channels == 1


def test_edge_decoder_uses_the_snr_side_information():
    dec = build("decoder.edge_jscc", {"postprocess": False}).eval()
    z = torch.randn(2, 24, dtype=torch.cfloat)
    a = dec(z=z, snr_db=torch.full((2,), -10.0))["prob"]
    b = dec(z=z, snr_db=torch.full((2,), 10.0))["prob"]
    assert not torch.allclose(a, b)
    dec.set_runtime("snr_db", 10.0)
    assert torch.allclose(dec(z=z)["prob"], b)        # the runtime param is the fallback


def test_edge_decoder_low_snr_threshold_switch():
    """A12: the code's threshold at estimated SNR <= -5 dB (evaluation only)."""
    on = build("decoder.edge_jscc", {"threshold_table": [[-15.0, 0.5]]}).eval()
    off = build("decoder.edge_jscc", {"postprocess": False}).eval()
    off.load_state_dict(on.state_dict())
    z = torch.randn(3, 24, dtype=torch.cfloat)
    snr = torch.tensor([-15.0, -5.0, 5.0])
    a, b = on(z=z, snr_db=snr)["prob"], off(z=z, snr_db=snr)["prob"]
    assert torch.equal(a[2], b[2])                                            # above -5 dB: untouched
    assert torch.equal(a[0], b[0] * (b[0] > 0.5)) and torch.equal(a[1], b[1] * (b[1] > 0.25))
    on.train()
    assert torch.equal(on(z=z, snr_db=snr)["prob"], off.train()(z=z, snr_db=snr)["prob"])   # not in training


def test_edge_f1_sink():
    img = _test_images()[0][:4]
    same = check_contract("sink.edge_f1", {}, pred=img, target=img)["value"]
    assert torch.allclose(same, torch.ones(4))
    noisy = (img + 0.3 * torch.randn_like(img)).clamp(0, 1)
    worse = check_contract("sink.edge_f1", {}, pred=noisy, target=img)["value"]
    assert (worse < 1).all() and (worse >= 0).all()
    # edge maps directly: a map shifted by one pixel is perfect at tolerance 1, not at 0
    e = torch.zeros(1, 1, 16, 16)
    e[0, 0, 5, 3:12] = 1
    shifted = torch.roll(e, 1, dims=2)
    tol1 = build("sink.edge_f1", {"inputs": "edges", "tolerance": 1})(pred=shifted, target=e)["value"]
    tol0 = build("sink.edge_f1", {"inputs": "edges", "tolerance": 0})(pred=shifted, target=e)["value"]
    assert float(tol1) == 1.0 and float(tol0) == 0.0
    empty = torch.zeros_like(e)
    f1 = build("sink.edge_f1", {"inputs": "edges"})
    assert float(f1(pred=empty, target=empty)["value"]) == 1.0 and float(f1(pred=e, target=empty)["value"]) == 0.0


def test_edge_jscc_paper_stages_give_the_codes_symbol_count():
    """128 px, 4 stride-2 stages, 13 channels: 8 x 8 x 13 = 832 reals = 416 complex symbols,
    the released code's rate (round(0.2 * 64) = 13 channels; CBR 416 / 49152 = 1/118)."""
    edge = (torch.rand(1, 1, 128, 128) > 0.9).float()
    z = check_contract("extractor.edge_jscc", {"channels": 13, "stages": 4}, edge=edge)["z"]
    assert z.shape == (1, 416)
    prob = check_contract("decoder.edge_jscc", {"channels": 13, "stages": 4, "size": 128}, z=z.detach())["prob"]
    assert prob.shape == (1, 1, 128, 128)
    with pytest.raises(ValueError, match="stages"):
        build("extractor.edge_jscc", {"stages": 0})


def test_edge_map_cache_returns_the_same_maps():
    img = _test_images()[1][:6]
    plain = build("extractor.edge_map", {"sigmas": [1.0, 2.0, 3.0]})(image=img)
    cached = build("extractor.edge_map", {"sigmas": [1.0, 2.0, 3.0], "cache_size": 4})
    first = cached(image=img)                          # 4 of 6 images remembered
    again = cached(image=img.flip(0))                  # hits and misses mixed, new order
    assert len(cached._cache) == 4
    for k in ("edge", "edge_soft"):
        assert torch.equal(first[k], plain[k]) and torch.equal(again[k], plain[k].flip(0))
