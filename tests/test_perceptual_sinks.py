"""sink.lpips (VGG-16 LPIPS from user-supplied weights, tested on random weights) and
sink.user_msssim (per-user MS-SSIM, linear and dB) -- seed 001 Deep JSCBF's metrics."""
import math

import pytest
import torch
import torch.nn.functional as F

import blocks  # noqa: F401
from blocks.perceptual import LPIPS_CHANNELS, LPIPS_TAPS, SCALE, SHIFT, VGG16_CFG
from flowgraph.compile import compile_graph
from flowgraph.errors import SemflowError
from flowgraph.graph import load_graph
from flowgraph.metrics import ms_ssim_per_image
from flowgraph.scheduler import Scheduler
from flowgraph.testing import build, check_contract


def _random_files(tmp_path, layout="split"):
    """Random VGG-16 + LPIPS weights in the published files' key layouts."""
    g = torch.Generator().manual_seed(0)
    vgg, idx, cin = {}, 0, 3
    for v in VGG16_CFG:
        if v == "M":
            idx += 1
            continue
        vgg[f"features.{idx}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * math.sqrt(2.0 / (9 * cin))
        vgg[f"features.{idx}.bias"] = torch.randn(v, generator=g) * 0.01
        idx += 2
        cin = v
    vgg["classifier.0.weight"] = torch.zeros(1)                          # torchvision files carry more
    lin = {f"lin{j}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for j, c in enumerate(LPIPS_CHANNELS)}
    if layout == "split":
        torch.save(lin, tmp_path / "vgg.pth")
        torch.save(vgg, tmp_path / "vgg16.pth")
        return {"weights": str(tmp_path / "vgg.pth"), "vgg_weights": str(tmp_path / "vgg16.pth")}, vgg, lin
    full = dict(lin)                                                      # lpips.LPIPS().state_dict() naming
    slices = [(1, 0, 4), (2, 4, 9), (3, 9, 16), (4, 16, 23), (5, 23, 30)]
    for k, v in vgg.items():
        if k.startswith("features."):
            i = int(k.split(".")[1])
            s = next(n for n, lo, hi in slices if lo <= i < hi)
            full[f"net.slice{s}.{i}.{k.split('.')[2]}"] = v
    torch.save(full, tmp_path / "lpips_full.pth")
    return {"weights": str(tmp_path / "lpips_full.pth")}, vgg, lin


def _reference_lpips(x0, x1, vgg, lin):
    """LPIPS written out layer by layer with F.conv2d (Zhang et al. 2018, eq. 1)."""
    shift, scale = torch.tensor(SHIFT).view(1, 3, 1, 1), torch.tensor(SCALE).view(1, 3, 1, 1)
    feats = []
    for x in (x0, x1):
        h, idx, out = (x - shift) / scale, 0, []
        for v in VGG16_CFG:
            if v == "M":
                h = F.max_pool2d(h, 2)
                idx += 1
                continue
            h = F.relu(F.conv2d(h, vgg[f"features.{idx}.weight"], vgg[f"features.{idx}.bias"], padding=1))
            if idx + 1 in LPIPS_TAPS:
                out.append(h)
            idx += 2
        feats.append(out)
    d = 0
    for j, (a, b) in enumerate(zip(*feats)):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        d = d + (lin[f"lin{j}.model.1.weight"] * (na - nb) ** 2).sum(1).mean(dim=(1, 2))
    return d


@pytest.mark.parametrize("layout", ["split", "full"])
def test_lpips_matches_the_formula_on_random_weights(tmp_path, layout):
    params, vgg, lin = _random_files(tmp_path, layout)
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 3, 32, 32), torch.rand(2, 3, 3, 32, 32)
    out = check_contract("sink.lpips", params, pred=pred, target=target)["value"]
    ref = _reference_lpips(2 * pred.flatten(0, 1) - 1, 2 * target.flatten(0, 1) - 1, vgg, lin).view(2, 3).mean(1)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-6)
    assert (out > 0).all()
    same = build("sink.lpips", params)(pred=target, target=target)["value"]
    assert torch.allclose(same, torch.zeros(2), atol=1e-6)


def test_lpips_is_differentiable_frozen_and_normalises_inputs(tmp_path):
    params, _, _ = _random_files(tmp_path)
    lp = build("sink.lpips", params)
    assert not any(p.requires_grad for p in lp.parameters())
    lp.train()
    assert not lp.net.training
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    target = torch.rand(2, 3, 32, 32)
    lp(pred=pred, target=target)["value"].mean().backward()               # usable in a loss (eq. 31)
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    raw = build("sink.lpips", {**params, "normalize": False})
    assert torch.allclose(raw(pred=2 * pred.detach() - 1, target=2 * target - 1)["value"],
                          lp(pred=pred.detach(), target=target)["value"], atol=1e-6)


def test_lpips_without_weights_fails_with_one_line(tmp_path):
    with pytest.raises(ValueError) as exc:
        build("sink.lpips", {})
    assert "weights" in str(exc.value) and "\n" not in str(exc.value)
    lin_only = {f"lin{j}.model.1.weight": torch.rand(1, c, 1, 1) for j, c in enumerate(LPIPS_CHANNELS)}
    torch.save(lin_only, tmp_path / "vgg.pth")
    with pytest.raises(ValueError, match="vgg_weights"):
        build("sink.lpips", {"weights": str(tmp_path / "vgg.pth")})
    with pytest.raises(ValueError, match="not a file"):
        build("sink.lpips", {"weights": str(tmp_path / "missing.pth")})


def test_lpips_in_a_graph_without_weights_names_file_line_and_block(write_graph):
    path = write_graph("""
format: 1
name: lp
blocks:
  src: {type: source.images, params: {size: 32, batch: 2}}
  lp:  {type: sink.lpips}
connections:
  - src.image -> lp.pred
  - src.image -> lp.target
""")
    with pytest.raises(SemflowError) as exc:
        Scheduler(compile_graph(load_graph(path)))
    msg = str(exc.value)
    assert "g.yaml:" in msg and "'lp'" in msg and "sink.lpips" in msg and "\n" not in msg


def test_user_msssim_linear_and_db():
    torch.manual_seed(0)
    target = torch.rand(2, 4, 3, 32, 32)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    lin = check_contract("sink.user_msssim", {}, pred=pred, target=target)["value"]
    per_image = ms_ssim_per_image(pred.flatten(0, 1), target.flatten(0, 1)).view(2, 4)
    assert torch.allclose(lin, per_image.mean(1), atol=1e-6)
    db = build("sink.user_msssim", {"db": True})(pred=pred, target=target)["value"]
    assert torch.allclose(db, (-10 * torch.log10(1 - per_image)).mean(1), atol=1e-4)
    # dB per image, then the mean: not the dB of the mean (Jensen)
    assert (db >= -10 * torch.log10(1 - lin) - 1e-5).all()
    perfect = build("sink.user_msssim", {"db": True})(pred=target, target=target)["value"]
    assert torch.isfinite(perfect).all() and (perfect > 50).all()
    # the paper's dB scale: 12.07 dB is MS-SSIM 0.938 (seed 001 Table II)
    assert abs(-10 * math.log10(1 - 0.938) - 12.07) < 0.02
