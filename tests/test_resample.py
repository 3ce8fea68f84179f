"""Trivial reference codec (blocks/resample.py): extractor.downsample, decoder.upsample."""
import pytest
import torch

import blocks  # noqa: F401
from flowgraph.testing import build, check_contract


def _img(b=2, seed=0):
    return torch.rand(b, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_downsample_contract_values_and_modes():
    out = check_contract("extractor.downsample", {"side": 18}, image=_img())
    assert out["x"].shape == (2, 3, 18, 18)                     # 972 real values kept
    flat = torch.full((1, 3, 32, 32), 0.3)
    for mode in ("area", "bilinear", "bicubic"):
        x = build("extractor.downsample", {"side": 18, "mode": mode})(image=flat)["x"]
        assert torch.allclose(x, torch.full_like(x, 0.3), atol=1e-5), mode   # a flat image stays flat
    a, b = (build("extractor.downsample", {"side": 18, "mode": m})(image=_img())["x"] for m in ("area", "bicubic"))
    assert (a - b).abs().max() > 1e-3                           # the filter matters
    box = build("extractor.downsample", {"side": 16, "mode": "area"})(image=_img())["x"]
    assert torch.allclose(box, torch.nn.functional.avg_pool2d(_img(), 2), atol=1e-6)   # area = box mean


def test_upsample_contract_range_and_modes():
    x = torch.rand(2, 3, 18, 18) * 1.4 - 0.2                    # bicubic overshoot is clipped
    out = check_contract("decoder.upsample", {"size": 32}, x=x)["image"]
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    outs = [build("decoder.upsample", {"size": 32, "mode": m})(x=x)["image"] for m in ("nearest", "bilinear", "bicubic")]
    assert all((outs[i] - outs[j]).abs().max() > 1e-3 for i in range(3) for j in range(i))


def test_smooth_images_survive_the_round_trip_and_noise_does_not():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = torch.stack([0.2 + 0.6 * xx, 0.5 + 0.3 * torch.sin(3 * yy), 0.4 + 0.2 * xx * yy])[None]
    down, up = build("extractor.downsample", {"side": 18, "mode": "bicubic"}), build("decoder.upsample", {"size": 32})

    def psnr(x):
        return float(-10 * torch.log10(((up(x=down(image=x)["x"])["image"] - x) ** 2).mean()))
    assert psnr(smooth) > 40 and psnr(_img(1)) < 15


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="side"):
        build("extractor.downsample", {"side": 0})
    with pytest.raises(ValueError, match="size"):
        build("decoder.upsample", {"size": 0})
