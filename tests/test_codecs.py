"""DeepJSCC encoder/decoder (blocks/codecs.py): contract, gradients, CBR, pairing, ablation."""
import pytest
import torch

import blocks  # noqa: F401  (registers the library)
from flowgraph.testing import build, check_contract, check_gradients


def _img(b=2, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


@pytest.mark.parametrize("gdn", [False, True])
def test_encoder_contract_and_gradients(gdn):
    torch.manual_seed(0)
    out = check_contract("extractor.deepjscc", {"channels": 16, "filters": 8, "gdn": gdn}, image=_img())
    assert out["z"].shape == (2, 16 * 32 * 32 // 32)
    check_gradients("extractor.deepjscc", {"channels": 16, "filters": 8, "gdn": gdn},
                    wrt=["image"], image=_img())


@pytest.mark.parametrize("gdn", [False, True])
def test_decoder_contract_and_gradients(gdn):
    torch.manual_seed(0)
    z = torch.randn(2, 512, dtype=torch.cfloat)
    out = check_contract("decoder.deepjscc", {"channels": 16, "filters": 8, "gdn": gdn}, z=z)
    img = out["image"]
    assert img.shape == (2, 3, 32, 32)
    assert img.min() >= 0 and img.max() <= 1          # sigmoid output
    check_gradients("decoder.deepjscc", {"channels": 16, "filters": 8, "gdn": gdn}, wrt=["z"], z=z)


def test_cbr_is_one_sixth_for_c16():
    enc = build("extractor.deepjscc", {"channels": 16, "filters": 8})
    z = enc(image=_img(1))["z"]
    n = z.shape[1]
    assert z.is_complex()
    assert n / (3 * 32 * 32) == pytest.approx(1 / 6)
    enc8 = build("extractor.deepjscc", {"channels": 8, "filters": 8})
    assert enc8(image=_img(1))["z"].shape[1] / (3 * 32 * 32) == pytest.approx(1 / 12)


def test_complex_pairing_is_consecutive_values():
    enc = build("extractor.deepjscc", {"channels": 4, "filters": 8})
    seen = {}
    enc._publish = lambda name, tap, t: seen.__setitem__(tap, t)
    z = enc(image=_img(1, 16, 16))["z"]
    v = seen["features"].reshape(1, -1)
    assert torch.equal(z.real, v[:, 0::2]) and torch.equal(z.imag, v[:, 1::2])


def test_decoder_size_inference_and_explicit_size():
    z = torch.randn(3, 8 * 16 * 16 // 32, dtype=torch.cfloat)       # c=8, 16x16 image
    dec = build("decoder.deepjscc", {"channels": 8, "filters": 8})
    assert dec(z=z)["image"].shape == (3, 3, 16, 16)
    dec16 = build("decoder.deepjscc", {"channels": 8, "filters": 8, "size": 16})
    assert dec16(z=z)["image"].shape == (3, 3, 16, 16)
    assert type(dec16).bind_dims(dec16.p) == {"H": 16, "W": 16, "N": 64}
    with pytest.raises(ValueError, match="size"):
        build("decoder.deepjscc", {"channels": 8, "filters": 8, "size": 32})(z=z)
    with pytest.raises(ValueError, match="square"):
        dec(z=torch.randn(3, 7, dtype=torch.cfloat))


def test_encoder_rejects_bad_size():
    with pytest.raises(ValueError, match="multiples of 4"):
        build("extractor.deepjscc", {"filters": 8})(image=_img(1, 30, 32))


def test_gdn_ablation_changes_output():
    torch.manual_seed(0)
    a = build("extractor.deepjscc", {"filters": 8, "gdn": False})
    torch.manual_seed(0)
    b = build("extractor.deepjscc", {"filters": 8, "gdn": True})
    x = _img(1)
    assert not torch.allclose(a(image=x)["z"], b(image=x)["z"])


def test_paper_widths_by_default():
    enc = build("extractor.deepjscc", {"channels": 16})
    convs = [m for m in enc.net if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [16, 32, 32, 32, 16]
    assert [m.stride[0] for m in convs] == [2, 2, 1, 1, 1]
    assert all(m.kernel_size == (5, 5) for m in convs)
