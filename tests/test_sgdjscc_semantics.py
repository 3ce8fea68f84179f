"""Seed 004 (SGD-JSCC) semantic side information and perceptual metrics: caption tokens and
their agreement sink, the judge classifier, sink.fid with user weights (sink.frechet and the
Fréchet helper are tested in tests/test_sinks.py) and the paper-scale autoencoder."""
import numpy as np
import pytest
import torch
from skimage.color import rgb2lab

import blocks  # noqa: F401
from blocks.sgdjscc import caption as cap
from blocks.sources import DigitsSource
from flowgraph.errors import SemflowError
from flowgraph.testing import build, check_contract, check_gradients


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _digits(n=16):
    return next(iter(DigitsSource(size=32).eval_batches(n)))


def test_rgb_to_lab_matches_skimage():
    rgb = torch.rand(500, 3)
    ours = cap.rgb_to_lab(rgb).numpy()
    ref = rgb2lab(rgb.numpy()[None].astype(np.float64))[0]
    assert np.abs(ours - ref).max() < 0.05


def test_caption_tokens_contract_vocabulary_and_colours():
    data = _digits()
    tok = check_contract("extractor.caption_tokens", {}, image=data["image"], label=data["label"])["tokens"]
    assert tok.shape == (16, 4) and tok.min() >= 0 and tok.max() < cap.VOCAB
    assert torch.equal(tok[:, 0], data["label"] + cap.LABEL0)
    assert ((tok[:, 1:3] >= cap.COLOUR0) & (tok[:, 1:3] < cap.LIGHT0)).all()
    # a pure red image on white: dominant white, then red; light
    img = torch.ones(1, 3, 32, 32)
    img[:, 1:, 8:20, 8:20] = 0.0
    t = cap.caption_tokens(img, None, ["color1", "color2", "lightness"])[0].tolist()
    assert t == [cap.COLOUR0 + cap.COLOUR_NAMES.index("white"), cap.COLOUR0 + cap.COLOUR_NAMES.index("red"),
                 cap.LIGHT0 + 2]
    # no label (or label -1): the null token
    assert (cap.caption_tokens(img, torch.tensor([-1]), ["label"]) == cap.NULL).all()
    assert (cap.caption_tokens(img, None, ["label"]) == cap.NULL).all()


def test_caption_fields_switch():
    """A16: what the text carries (label / colours / both)."""
    data = _digits()
    lab = build("extractor.caption_tokens", {"fields": ["label"]})(**data)["tokens"]
    col = build("extractor.caption_tokens", {"fields": ["color1", "color2"]})(**data)["tokens"]
    both = build("extractor.caption_tokens", {"fields": ["label", "color1", "color2"]})(**data)["tokens"]
    assert torch.equal(both, torch.cat((lab, col), dim=1))
    with pytest.raises(ValueError, match="fields"):
        build("extractor.caption_tokens", {"fields": ["mood"]})


def test_caption_agreement_sink():
    data = _digits()
    img = data["image"]
    same = check_contract("sink.caption_agreement", {}, pred=img, target=img)["value"]
    assert torch.allclose(same, torch.ones(16))
    shuffled = check_contract("sink.caption_agreement", {}, pred=img.roll(1, 0), target=img)["value"]
    assert shuffled.mean() < 0.6                    # other images' colours mostly disagree
    red, green = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    red[:, 0], green[:, 1] = 0.8, 0.6
    blk = build("sink.caption_agreement", {"fields": ["color1"]})
    assert float(blk(pred=red, target=green)["value"]) == 0.0 and float(blk(pred=red, target=red)["value"]) == 1.0
    with pytest.raises(ValueError, match="label"):
        build("sink.caption_agreement", {"fields": ["label"]})


def test_image_classifier_contract_gradients_and_learning():
    data = _digits(64)
    out = check_contract("decoder.image_classifier", {}, image=data["image"])
    assert out["logits"].shape == (64, 10) and out["features"].shape == (64, 64)
    check_gradients("decoder.image_classifier", {}, wrt=["image"], image=data["image"][:4])
    src = DigitsSource(size=32, batch=64)
    clf = build("decoder.image_classifier", {})
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    for _ in range(100):
        b = src()
        loss = torch.nn.functional.cross_entropy(clf(image=b["image"])["logits"], b["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    acc = build("sink.accuracy", {})(logits=clf(image=data["image"])["logits"], label=data["label"])["value"]
    assert float(acc.mean()) > 0.6          # 100 steps: about 0.85 measured


def test_fid_needs_user_weights_and_runs_with_a_torchscript_file(tmp_path):
    with pytest.raises(SemflowError, match="needs Inception weights"):
        build("sink.fid", {})
    with pytest.raises(SemflowError, match="no such file"):
        build("sink.fid", {"weights": str(tmp_path / "missing.pt")})

    class Feat(torch.nn.Module):          # a stand-in detector with the NVlabs call signature
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return x.float().mean(dim=(2, 3))

    path = tmp_path / "toy_inception.pt"
    torch.jit.script(Feat()).save(str(path))
    fid = build("sink.fid", {"weights": str(path)})
    img = torch.rand(8, 3, 16, 16)
    out = check_contract(fid, pred=img, target=img)
    assert out["stats"].shape == (8, 6) and torch.allclose(out["value"], torch.zeros(8))
    assert fid.reduce_stats(out["stats"]) == pytest.approx(0.0, abs=1e-6)
    far = fid(pred=(img * 0.2).clamp(0, 1), target=img)["stats"]
    assert fid.reduce_stats(far) > 100.0                   # features on the 0-255 scale


def test_paper_autoencoder_shapes_and_gradients_small_config():
    small = dict(ch=32, ch_mult=[1, 2], num_res_blocks=1, z_channels=4)
    img = torch.rand(2, 3, 16, 16)
    z = check_contract("extractor.sgd_autoencoder", small, image=img)["z"]
    assert z.shape == (2, 4 * 8 * 8 // 2)
    out = check_contract("decoder.sgd_autoencoder", {**small, "size": 16}, z=z.detach())["image"]
    assert out.shape == (2, 3, 16, 16)
    check_gradients("extractor.sgd_autoencoder", small, wrt=["image"], image=img)
    check_gradients("decoder.sgd_autoencoder", {**small, "size": 16}, wrt=["z"], z=z.detach())
    att = build("extractor.sgd_autoencoder", {**small, "attn_levels": [1]})
    assert sum(p.numel() for p in att.parameters()) > sum(p.numel() for p in build("extractor.sgd_autoencoder", small).parameters())


@pytest.mark.slow
def test_paper_autoencoder_code_config_parameter_count():
    """The released code's ddconfig: 128 px -> (16, 16, 16), 2048 complex symbols (CBR 1/24)."""
    enc, dec = build("extractor.sgd_autoencoder", {}), build("decoder.sgd_autoencoder", {})
    n = sum(p.numel() for p in enc.parameters()) + sum(p.numel() for p in dec.parameters())
    print(f"\nAutoencoderKL-shaped JSCC: {n / 1e6:.2f} M parameters")
    assert 80e6 < n < 88e6              # the notes' estimate: about 84 M
    with torch.no_grad():
        z = enc(image=torch.rand(1, 3, 128, 128))["z"]
    assert z.shape == (1, 2048)


def test_patch_discriminator_contract_gradients_and_one_set_of_weights():
    real, fake = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out = check_contract("decoder.patch_discriminator", {}, real=real, fake=fake)
    assert out["real"].shape == (2, 1, 8, 8) and out["fake"].shape == (2, 1, 8, 8)
    check_gradients("decoder.patch_discriminator", {}, wrt=["fake"], real=real, fake=fake)
    dis = build("decoder.patch_discriminator", {})
    same = dis(real=real, fake=real)
    assert torch.equal(same["real"], same["fake"])            # one network scores both
