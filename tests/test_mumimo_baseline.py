"""DJSCC multi-user baseline blocks (seed 003 Sec. IV): contracts, gradients, per-user independence."""
import torch

from flowgraph.testing import build, check_contract, check_gradients

P = {"size": 16, "channels": 8, "filters": 8}


def test_encoder_contract_and_gradients():
    img = torch.rand(2, 3, 3, 16, 16)
    out = check_contract("extractor.deepjscc_mu", P, image=img)
    assert out["data"].shape == (2, 3, 8 * 16 * 16 // 32)
    check_gradients("extractor.deepjscc_mu", P, wrt=["image"], image=img)


def test_decoder_contract_and_gradients():
    z = torch.randn(2, 3, 64, dtype=torch.cfloat)
    out = check_contract("decoder.deepjscc_mu", {**P, "num_classes": 5}, z=z)
    assert out["image"].shape == (2, 3, 3, 16, 16) and out["logits"].shape == (2, 3, 5)
    check_gradients("decoder.deepjscc_mu", {**P, "num_classes": 5}, wrt=["z"], z=z)


def test_users_are_coded_independently():
    """Folding users into the batch must not mix them: changing user 1 leaves user 0's symbols."""
    torch.manual_seed(0)
    enc = build("extractor.deepjscc_mu", P).eval()
    img = torch.rand(1, 2, 3, 16, 16)
    a = enc(image=img)["data"]
    img2 = img.clone()
    img2[:, 1] = torch.rand(3, 16, 16)
    b = enc(image=img2)["data"]
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.equal(a[:, 1], b[:, 1])
