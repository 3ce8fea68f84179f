"""source.rgbt (seed 002 data): the procedural RGB-thermal generator keeps the properties the
system depends on (night RGB is dark, hot classes stand out in thermal and cold ones do not,
fusion beats either modality alone), its splits are fixed, and the MFNet loader reads the
real folder layout (tested on a tiny fake tree)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import blocks  # noqa: F401
from blocks.cscsanet import _scenes
from flowgraph.errors import SemflowError
from flowgraph.testing import build, check_contract

SMALL = dict(height=32, width=32, num_train=64, num_val=16, num_eval=24, batch=8)


def _split(src, split="test"):
    batches = list(src.eval_batches(64, split=split))
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def test_contract_and_determinism():
    src = build("source.rgbt", SMALL)
    out = check_contract(src)
    assert out["rgb"].shape == (8, 3, 32, 32) and out["thermal"].shape == (8, 1, 32, 32)
    assert out["label"].shape == (8, 32, 32) and out["night"].shape == (8,)
    assert 0 <= out["rgb"].min() and out["rgb"].max() <= 1 and out["label"].max() <= 8
    again = build("source.rgbt", SMALL)
    a, b = _split(src), _split(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    src.seed(5), again.seed(5)
    assert torch.equal(src()["rgb"], again()["rgb"])
    assert src.source_values_per_example() == 4 * 32 * 32


def test_splits_are_disjoint_balanced_and_sized():
    src = build("source.rgbt", SMALL)
    test, val = _split(src), _split(src, "val")
    assert src.num_eval_examples() == 24 == len(test["rgb"])
    assert src.num_eval_examples("val") == 16 == len(val["rgb"])
    assert src.dataset_info()["count"] == 24 and src.dataset_info()["train"] == 64
    train = src.data["train"][0]
    for other in (test["rgb"], val["rgb"]):
        flat = (other * 255).round().to(torch.uint8).flatten(1)
        assert not (flat[:, None] == train.flatten(1)[None]).all(-1).any()   # no scene shared
    for split in ("train", "val", "test"):
        night = src.data[split][3]
        assert int(night.sum()) * 2 == len(night)                          # exactly 50/50
    with pytest.raises(SemflowError, match="split"):
        list(src.eval_batches(4, split="train"))


def test_training_batches_flip():
    flip, plain = build("source.rgbt", SMALL), build("source.rgbt", {**SMALL, "flip": False})
    flip.seed(1), plain.seed(1)
    a, b = flip(), plain()
    flipped = ~torch.isclose(a["rgb"], b["rgb"]).flatten(1).all(1)
    assert flipped.any() and torch.equal(a["rgb"][flipped], b["rgb"][flipped].flip(-1))
    assert torch.equal(a["label"][flipped], b["label"][flipped].flip(-1))


def _scene_set(n=120, size=64):
    return _scenes.render_split(size, size, 11, n)


def test_night_rgb_is_darker_and_class_frequencies():
    rgb, th, lab, night = _scene_set()
    day_mean, night_mean = rgb[~night].mean(), rgb[night].mean()
    assert night_mean < 0.35 * day_mean
    freq = np.bincount(lab.ravel(), minlength=9) / lab.size
    assert 0.8 < freq[0] < 0.95                            # mostly unlabelled, as in MFNet
    assert freq[1] == max(freq[1:])                        # cars are the largest object class
    assert (freq[1:] > 0).all()                            # every class occurs


def _local_contrast(img, lab, cls):
    """|mean inside the objects of class cls - mean of the unlabelled pixels around them|,
    averaged over the images that contain the class."""
    vals = []
    kernel = torch.ones(1, 1, 7, 7)
    for i in range(len(lab)):
        m = torch.from_numpy(lab[i] == cls)
        if m.sum() < 4:
            continue
        ring = (F.conv2d(m[None, None].float(), kernel, padding=3)[0, 0] > 0) & torch.from_numpy(lab[i] == 0)
        if ring.sum() < 4:
            continue
        x = torch.from_numpy(img[i].astype(np.float32) / 255)
        vals.append(abs(float(x[m].mean() - x[ring].mean())))
    return float(np.mean(vals))


def test_hot_classes_contrast_in_thermal_and_cold_classes_do_not():
    rgb, th, lab, night = _scene_set(200)
    thermal = {c: _local_contrast(th[:, 0], lab, c) for c in range(1, 9)}
    hot = min(thermal[c] for c in _scenes.HOT)
    cold = max(thermal[c] for c in _scenes.COLD)
    assert hot > 2 * cold, thermal
    # at night the RGB contrast of objects collapses
    lum = rgb.mean(1)
    day = np.mean([_local_contrast(lum[~night], lab[~night], c) for c in range(1, 9)])
    dark = np.mean([_local_contrast(lum[night], lab[night], c) for c in range(1, 9)])
    assert dark < 0.5 * day


def _miou(pred, label, n=9):
    cf = torch.bincount(label.flatten() * n + pred.flatten(), minlength=n * n).reshape(n, n).double()
    inter, union = cf.diag(), cf.sum(0) + cf.sum(1) - cf.diag()
    present = union[1:] > 0
    return float((inter[1:][present] / union[1:][present]).mean())


def _pixel_features(images):
    """Per-pixel features of a linear segmenter: each channel at five scales (the pixel, box
    means of 3, 5, 9 and 17 px) and its local std, the image row, and their squares."""
    x = []
    for img in images:
        m5 = F.avg_pool2d(img, 5, 1, 2)
        x += [img, F.avg_pool2d(img, 3, 1, 1), m5, F.avg_pool2d(img, 9, 1, 4), F.avg_pool2d(img, 17, 1, 8),
              (F.avg_pool2d(img ** 2, 5, 1, 2) - m5 ** 2).clamp_min(0).sqrt()]
    n, _, h, w = images[0].shape
    row = torch.linspace(0, 1, h)[None, None, :, None].expand(n, 1, h, w)
    x = torch.cat(x + [row, row ** 2], 1).permute(0, 2, 3, 1).reshape(n * h * w, -1)
    return torch.cat([x, x ** 2], 1)


def _fit_linear_segmenter(x, y, steps=60):
    """Softmax regression (convex, L-BFGS: deterministic) with unlabelled down-weighted."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    lin = torch.nn.Linear(x.shape[1], 9)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    weight = torch.ones(9)
    weight[0] = 0.3
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin((x - mu) / sd), y, weight=weight)
        loss.backward()
        return loss
    opt.step(closure)
    return lambda z: lin((z - mu) / sd).argmax(1)


def test_fusion_beats_either_modality_alone():
    """The generator's intended property (../shared/specs/seed002.md Sec. 8.2): an RGB-only or
    thermal-only segmenter is worse than one that sees both, on the test split; at night the
    RGB-only one is the worst."""
    torch.set_num_threads(1)
    src = build("source.rgbt", dict(height=64, width=64, num_train=120, num_val=2, num_eval=40))
    tr, te = src.data["train"], src.data["test"]
    train = {"rgb": tr[0].float() / 255, "thermal": tr[1].float() / 255}
    test = {"rgb": te[0].float() / 255, "thermal": te[1].float() / 255}
    label, night = te[2].long(), te[3]
    pick = torch.randperm(tr[2].numel(), generator=torch.Generator().manual_seed(0))[:40000]
    scores = {}
    for name, chans in (("rgb", ["rgb"]), ("thermal", ["thermal"]), ("fusion", ["rgb", "thermal"])):
        predict = _fit_linear_segmenter(_pixel_features([train[c] for c in chans])[pick],
                                        tr[2].long().flatten()[pick])
        with torch.no_grad():
            pred = predict(_pixel_features([test[c] for c in chans])).reshape(label.shape)
        scores[name] = (_miou(pred, label), _miou(pred[night], label[night]))
    print(scores)
    assert scores["fusion"][0] > scores["rgb"][0] + 0.05 and scores["fusion"][0] > scores["thermal"][0] + 0.05
    assert scores["rgb"][1] < scores["thermal"][1] < scores["fusion"][1]


# ------------------------------------------------------------------ dataset: mfnet

def _fake_mfnet(root, names_by_split, size=(24, 32)):
    from PIL import Image
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    h, w = size
    for split, names in names_by_split.items():
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
            Image.fromarray(rgba, "RGBA").save(root / "images" / f"{name}.png")
            Image.fromarray(rng.integers(0, 9, (h, w), dtype=np.uint8), "L").save(root / "labels" / f"{name}.png")


def test_mfnet_folder_layout(tmp_path):
    root = tmp_path / "ir_seg_dataset"
    _fake_mfnet(root, {"train": ["00001D", "00002N", "00003D"], "val": ["00004N"], "test": ["00005D", "00006N"]})
    src = build("source.rgbt", {"dataset": "mfnet", "path": str(root), "height": 16, "width": 16, "batch": 2})
    out = check_contract(src)
    assert out["rgb"].shape == (2, 3, 16, 16) and out["thermal"].shape == (2, 1, 16, 16)
    test = _split(src)
    assert test["night"].tolist() == [False, True] and src.num_eval_examples("val") == 1
    assert set(test["label"].unique().tolist()) <= set(range(9))
    # the 4th channel is the thermal image, resized bilinearly like the RGB
    from PIL import Image
    with Image.open(root / "images" / "00005D.png") as im:
        ref = np.asarray(im.resize((16, 16), Image.Resampling.BILINEAR))
    assert torch.equal((test["thermal"][0, 0] * 255).round().to(torch.uint8), torch.from_numpy(ref[..., 3].copy()))


def test_mfnet_errors_are_one_line(tmp_path):
    with pytest.raises(SemflowError, match="images/ and labels/"):
        build("source.rgbt", {"dataset": "mfnet", "path": str(tmp_path / "nowhere")})
    root = tmp_path / "ir"
    _fake_mfnet(root, {"train": ["a"], "val": ["b"], "test": ["c"]})
    (root / "test.txt").write_text("c\nmissing\n")
    with pytest.raises(SemflowError, match="missing"):
        build("source.rgbt", {"dataset": "mfnet", "path": str(root), "height": 16, "width": 16})
