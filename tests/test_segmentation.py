"""Segmentation pieces: decoder.deepjscc_seg (blocks/codecs.py) and the segmentation toy graph
(graphs/examples/segmentation_toy.yaml: source.shapes -> DeepJSCC -> AWGN -> logits -> sink.miou)."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import blocks  # noqa: F401
from flowgraph.graph import load_graph
from flowgraph.run import Runner
from flowgraph.testing import build, check_contract, check_gradients

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("gdn", [False, True])
def test_seg_decoder_contract_and_gradients(gdn):
    torch.manual_seed(0)
    z = torch.randn(2, 8 * 32 * 32 // 32, dtype=torch.cfloat)
    params = {"channels": 8, "filters": 8, "gdn": gdn, "classes": 5, "size": 32}
    logits = check_contract("decoder.deepjscc_seg", params, z=z)["logits"]
    assert logits.shape == (2, 5, 32, 32)
    assert logits.min() < 0 or logits.max() > 1                  # logits, not a sigmoid image
    check_gradients("decoder.deepjscc_seg", params, wrt=["z"], z=z)
    assert type(build("decoder.deepjscc_seg", params)).bind_dims(build("decoder.deepjscc_seg", params).p) \
        == {"H": 32, "W": 32, "N": 256, "C": 5}


def test_seg_decoder_shares_the_deepjscc_body_and_switches_change_it():
    torch.manual_seed(1)
    seg = build("decoder.deepjscc_seg", {"channels": 8, "filters": 8, "classes": 3})
    img = build("decoder.deepjscc", {"channels": 8, "filters": 8})
    body = {k: v for k, v in img.state_dict().items() if not k.startswith(("net.8.", "net.9."))}
    assert set(body) <= set(seg.state_dict()) and seg.net[-2].out_channels == 3
    z = torch.randn(2, 64, dtype=torch.cfloat)                  # c = 8: 16 x 16 images
    torch.manual_seed(2)
    a = build("decoder.deepjscc_seg", {"channels": 8, "filters": 8, "gdn": False})(z=z)["logits"]
    torch.manual_seed(2)
    b = build("decoder.deepjscc_seg", {"channels": 8, "filters": 8, "gdn": True})(z=z)["logits"]
    assert a.shape == b.shape == (2, 4, 16, 16) and not torch.allclose(a, b)       # inferred square side
    with pytest.raises(ValueError, match="classes"):
        build("decoder.deepjscc_seg", {"classes": 1})


@pytest.mark.slow      # about a minute on 2 cores
def test_segmentation_toy_learns_beyond_background(tmp_path):
    """A fifth of the quick preset: the dataset mIoU clearly beats predicting background
    everywhere, and dense CE falls. (The quick preset's numbers are in docs/status.md.)"""
    ov = {"steps": 400, "eval_images": 64}
    r = Runner(load_graph(ROOT / "graphs/examples/segmentation_toy.yaml"), overrides=ov,
               out=tmp_path / "run", quiet=True, seed=0)
    r.train()
    miou = r.scheduler.block("miou")
    src = r.scheduler.block("src")
    sch = r.scheduler
    sch.eval()
    sch.reset_variables({"snr_db": 20})
    stats, labels = [], []
    with torch.inference_mode():
        for data in src.eval_batches(32):
            out = sch(inject={src.name: data})
            stats.append(out["miou.stats"])
            labels.append(data["label"])
    stats, labels = torch.cat(stats), torch.cat(labels)
    trained = miou.reduce_stats(stats)
    background = F.one_hot(torch.zeros_like(labels), 4).movedim(-1, 1).float()
    base = miou.reduce_stats(build("sink.miou", {"n_classes": 4})(logits=background, label=labels)["stats"])
    r.close()
    assert base < 0.25 and trained > 0.45, (trained, base)
    rows = (tmp_path / "run" / "train.csv").read_text().splitlines()
    header = rows[0].split(",")
    loss = [float(row.split(",")[header.index("loss")]) for row in rows[1:]]
    assert loss[-1] < 0.8 * loss[0]
