"""Numbers comparable with the literature (issue 20): whole images of any size through
fully convolutional codecs, tiled evaluation, both PSNR conventions, uint8 scoring, and
tables that name their test set (flowgraph/imagesize.py, blocks/codecs.py, blocks/sources.py)."""
import math

import numpy as np
import pytest
import torch

import blocks  # noqa: F401  (registers the library)
from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph, loads_graph
from flowgraph.imagesize import join_tiles, quantize_uint8, split_tiles
from flowgraph.report import format_table
from flowgraph.run import Runner
from flowgraph.taps import TapHub
from flowgraph.testing import build, check_contract, check_gradients

AWGN = "graphs/deepjscc_awgn.yaml"


def _png(path, h, w, seed):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    # smooth structure plus noise, so the codec has something to reconstruct
    y, x = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(x[..., None] / (3.0 + seed) + np.arange(3)) * np.cos(y[..., None] / 5.0)
    arr = np.clip(base + g.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def _folder(tmp_path, name, test_images):
    """train/ (two 40x40 photos) + test/ with the given {file: (h, w)}."""
    root = tmp_path / name
    for i in range(2):
        _png(root / "train" / f"t{i}.png", 40, 40, 10 + i)
    arrays = {f: _png(root / "test" / f, h, w, j) for j, (f, (h, w)) in enumerate(test_images.items())}
    return root, arrays


def _runner(tmp_path, name, sets, path=AWGN, **kw):
    kw.setdefault("quiet", True)
    return Runner(load_graph(path), preset="smoke", overrides=sets, out=tmp_path / name, **kw)


# ---- the codec -------------------------------------------------------------------------------------
def test_deepjscc_codec_takes_any_multiple_of_4_and_tells_the_decoder_the_size():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 48, 80)
    out = check_contract("extractor.deepjscc", {"channels": 16, "filters": 8}, image=img)
    assert out["z"].shape == (2, 16 * 48 * 80 // 32)                    # N = c H W / 32: CBR 1/6 again
    assert out["hw"].tolist() == [[48, 80], [48, 80]]
    dec = build("decoder.deepjscc", {"channels": 16, "filters": 8})
    rec = check_contract(dec, z=out["z"], hw=out["hw"])["image"]
    assert rec.shape == (2, 3, 48, 80)
    check_gradients(dec, wrt=["z"], z=out["z"], hw=out["hw"])
    # one trained codec serves every size: the same weights decode a 32x32 image
    small = build("extractor.deepjscc", {"channels": 16, "filters": 8})(image=torch.rand(1, 3, 32, 32))
    assert dec(**small)["image"].shape == (1, 3, 32, 32)
    # without hw a non-square feature map cannot be guessed
    with pytest.raises(ValueError, match="connect the hw input"):
        dec(z=out["z"])
    assert type(dec).fixed_image_size(dec.p) is None
    assert build("extractor.deepjscc").size_multiple({}) == 4


def test_decoder_refuses_a_fixed_size_beside_hw_and_mixed_sizes_in_a_batch():
    z = torch.randn(2, 8 * 8 * 12 // 32, dtype=torch.cfloat)
    with pytest.raises(ValueError, match="param 'size' must be 0"):
        build("decoder.deepjscc", {"channels": 8, "filters": 8, "size": 8})(z=z, hw=torch.tensor([[8, 12]] * 2))
    with pytest.raises(ValueError, match="one size"):
        build("decoder.deepjscc", {"channels": 8, "filters": 8})(z=z, hw=torch.tensor([[8, 12], [12, 8]]))
    assert build("decoder.deepjscc", {"size": 32}).fixed_image_size({"size": 32, "channels": 16}) == (32, 32)


# ---- whole images through a graph ------------------------------------------------------------------
def test_one_evaluation_of_48x80_and_32x32_images_reports_the_cbr_of_each(tmp_path):
    root, arrays = _folder(tmp_path, "mixed", {"a.png": (48, 80), "b.png": (32, 32), "c.png": (32, 32)})
    r = _runner(tmp_path, "run", {"dataset": "folder", "data_path": str(root), "eval_whole": True,
                                  "short_side": 0})
    hub_stats = []
    r.taps.subscribe("psnr.stats", lambda n, v, i: hub_stats.append(v), min_interval=0.0)
    res = r.evaluate(points=[{"snr_db": 10}])
    row = res["rows"][0]
    assert row["n"] == 3 and len(res["per_example"]["snr_db=10"]["psnr"]) == 3
    sizes = {e["shape"]: e for e in res["cbr"]["images"]}
    assert set(sizes) == {"3×48×80", "3×32×32"}
    assert (sizes["3×48×80"]["channel_uses"], sizes["3×48×80"]["source_values"]) == (1920, 11520)
    assert (sizes["3×32×32"]["channel_uses"], sizes["3×32×32"]["source_values"]) == (512, 3072)
    assert sizes["3×48×80"]["examples"] == 1 and sizes["3×32×32"]["examples"] == 2
    assert all(e["fraction"] == "1/6" for e in sizes.values()) and res["cbr"]["fraction"] == "1/6"
    assert res["cbr"]["varies"] is False
    # batches hold one size each: [a], [b, c]
    assert [tuple(s.shape) for s in hub_stats] == [(1, 1), (2, 1)]
    # psnr_of_mse through the set-level metric: 10 log10(1 / mean over images of their MSE)
    mse = [10 ** (-v / 10) for v in res["per_example"]["snr_db=10"]["psnr"]]
    assert row["psnr_of_mse"] == pytest.approx(10 * math.log10(1 / (sum(mse) / len(mse))), abs=1e-4)
    assert row["psnr_of_mse"] < row["psnr"]
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "CBR, the same for every image: 0.1667 (1/6); per image size" in log
    assert res["data"]["dataset"]["eval_whole"] is True
    assert "whole images (native size, sides cropped to multiples of 4)" in res["data"]["dataset"]["name"]


def test_tiled_evaluation_of_a_64x64_image_equals_its_four_tiles_scored_separately(tmp_path):
    big, arrays = _folder(tmp_path, "big", {"img.png": (64, 64)})
    whole = arrays["img.png"]
    # the same pixels as four 32x32 files, in row-major tile order (t0 t1 / t2 t3)
    four = tmp_path / "four"
    from PIL import Image
    for i in range(2):
        _png(four / "train" / f"t{i}.png", 40, 40, 10 + i)
    for k, (y, x) in enumerate([(0, 0), (0, 32), (32, 0), (32, 32)]):
        (four / "test").mkdir(parents=True, exist_ok=True)
        Image.fromarray(whole[y:y + 32, x:x + 32]).save(four / "test" / f"t{k}.png")
    common = {"dataset": "folder", "eval_whole": True, "short_side": 0}
    ta = _runner(tmp_path, "tiled", {**common, "data_path": str(big), "tile": 32, "eval_multiple": 32})
    tb = _runner(tmp_path, "tiles", {**common, "data_path": str(four)})
    tb.scheduler.load_state_dict(ta.scheduler.state_dict())       # one model
    a = ta.evaluate(points=[{"snr_db": 5}], write=False)
    b = tb.evaluate(points=[{"snr_db": 5}], batch=4, write=False)
    assert a["rows"][0]["n"] == 1 and b["rows"][0]["n"] == 4
    tile_mse = [10 ** (-v / 10) for v in b["per_example"]["snr_db=5"]["psnr"]]
    # the reassembled image's PSNR is that of its MSE over all pixels = the mean of its tiles' MSEs
    assert a["per_example"]["snr_db=5"]["psnr"][0] == pytest.approx(10 * math.log10(4 / sum(tile_mse)), abs=1e-4)
    assert a["rows"][0]["psnr"] == pytest.approx(b["rows"][0]["psnr_of_mse"], abs=1e-4)
    # the CBR counts the channel uses of all four tiles for the one image
    assert (a["cbr"]["channel_uses"], a["cbr"]["source_values"]) == (4 * 512, 3 * 64 * 64)
    assert a["evaluation"]["tile"] == 32


def test_split_and_join_tiles_are_inverse_and_row_major():
    x = torch.arange(2 * 2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 2, 3, 4, 6)   # (B, K, C, H, W)
    label = torch.tensor([7, 9])
    tiles, n = split_tiles({"image": x, "label": label}, (4, 6), 2, "test")
    assert n == 6 and tiles["image"].shape == (12, 2, 3, 2, 2)
    assert torch.equal(tiles["image"][1], x[0, :, :, 0:2, 2:4])              # image 0, tile row 0, col 1
    assert torch.equal(tiles["image"][6 + 3], x[1, :, :, 2:4, 0:2])          # image 1, tile row 1, col 0
    assert tiles["label"].tolist() == [7] * 6 + [9] * 6
    assert torch.equal(join_tiles(tiles["image"], 2, (4, 6), 2), x)
    with pytest.raises(Exception, match="not a whole number of 4×4 tiles"):
        split_tiles({"image": x}, (4, 6), 4, "block 'src'")


# ---- validation -------------------------------------------------------------------------------------
SWIN = """\
format: 1
name: swin_sizes
variables: {whole: true, size: 16, swin_size: 16, tile: 0}
blocks:
  src: {type: source.images, params: {size: $size, eval_whole: $whole, eval_multiple: 16}}
  enc: {type: extractor.swin, params: {size: $swin_size, embed_dims: [8, 16], depths: [2, 2], num_heads: [2, 2], window: 4}}
  dec: {type: decoder.swin, params: {size: $swin_size, embed_dims: [8, 16], depths: [2, 2], num_heads: [2, 2], window: 4}}
  psnr: {type: sink.psnr}
connections:
  - src.image -> enc.image
  - enc.x -> dec.x
  - dec.image -> psnr.pred
  - src.image -> psnr.target
evaluate: {tile: $tile}
"""


def _problems(text, **sets):
    spec = loads_graph(text, "g.yaml")
    return [str(p) for p in compile_graph(spec, overrides=sets).problems]


def test_validate_refuses_a_swin_codec_for_whole_images_in_one_line_per_block():
    probs = _problems(SWIN)
    assert probs == [
        "g.yaml:6: block 'enc' (extractor.swin) works on 16×16 images only (its params fix H and W), but block "
        "'src' (source.images) evaluates whole images of their own sizes (eval_whole): use evaluate.tile: 16 "
        "or a block that takes any size",
        "g.yaml:7: block 'dec' (decoder.swin) works on 16×16 images only (its params fix H and W), but block "
        "'src' (source.images) evaluates whole images of their own sizes (eval_whole): use evaluate.tile: 16 "
        "or a block that takes any size"]
    assert _problems(SWIN, tile=16) == []                          # 16x16 tiles are what it takes
    assert any("works on 16×16 images only, but evaluate.tile: 8 feeds 8×8 tiles" in p
               for p in _problems(SWIN, tile=8, whole=False))
    assert _problems(SWIN, whole=False) == []


def test_validate_refuses_a_swin_codec_of_another_size_than_the_crops():
    probs = _problems(SWIN, whole=False, swin_size=32)
    assert probs == ["g.yaml:10: src.image (B,3,H,W) -> enc.image expects (B,3,H,W): H=16 but H=32"]


def test_validate_names_a_stride_the_whole_images_do_not_fit_and_a_fixed_decoder(root):
    spec = load_graph(root / AWGN)
    probs = [str(p) for p in compile_graph(spec, preset="smoke", overrides={"eval_whole": True,
                                                                           "eval_multiple": 2}).problems]
    assert len(probs) == 1 and "block 'enc' (extractor.deepjscc) needs image sides that are multiples of 4, " \
        "but gets images whose sides are multiples of 2 px: set eval_multiple: 4 on block 'src'" in probs[0]
    fixed = (root / AWGN).read_text().replace("params: {channels: $c, filters: $filters}, doc:",
                                               "params: {channels: $c, filters: $filters, size: 32}, doc:")
    fixed = fixed.replace("  - enc.hw -> dec.hw\n", "")
    probs = [str(p) for p in compile_graph(loads_graph(fixed, AWGN), overrides={"eval_whole": True}).problems]
    assert len(probs) == 1 and "block 'dec' (decoder.deepjscc) works on 32×32 images only" in probs[0]
    probs = [str(p) for p in compile_graph(spec, overrides={"tile": 24}).problems]
    assert probs == [f"{spec.path}:{spec.line_of('evaluate', 'tile')}: evaluate.tile: 24 does not divide the "
                     f"32×32 images of block 'src' (source.images)"]
    probs = [str(p) for p in compile_graph(spec, overrides={"tile": 32, "eval_whole": True}).problems]
    assert len(probs) == 1 and "crops whole images to multiples of 4 px, so evaluate.tile: 32 cannot" in probs[0]


@pytest.mark.parametrize("sets,message", [
    ({"lead": "psnr_of_mes"}, "evaluate.lead: 'psnr_of_mes' is not a reported column (did you mean 'psnr_of_mse'?)"),
    ({"quantize": "uint16"}, "evaluate.quantize must be one of none, uint8, got 'uint16'"),
    ({"tile": -2}, "evaluate.tile must be a tile side in pixels (0 = off), got -2"),
])
def test_evaluate_scoring_keys_are_checked_with_file_and_line(root, sets, message):
    spec = load_graph(root / AWGN)
    probs = [str(p) for p in compile_graph(spec, overrides=sets).problems]
    assert any(message in p and p.startswith(f"{spec.path}:") for p in probs), probs


# ---- both PSNR conventions, lead column, uint8 -------------------------------------------------------
def test_a_graph_picks_the_psnr_convention_its_tables_lead_with(tmp_path):
    res = _runner(tmp_path, "lead", {"lead": "psnr_of_mse"}).evaluate(points=[{"snr_db": 10}])
    assert list(res["columns"])[:2] == ["psnr_of_mse", "psnr"]
    head = format_table(res).splitlines()[0]
    assert head.index("psnr_of_mse") < head.index("psnr [dB] mean")
    default = _runner(tmp_path, "default", {}).evaluate(points=[{"snr_db": 10}], write=False)
    assert list(default["columns"])[:2] == ["psnr", "psnr_of_mse"]
    assert default["rows"][0]["psnr"] == res["rows"][0]["psnr"]        # only the order changes


def test_uint8_quantisation_scores_the_rounded_reconstruction(tmp_path):
    hub, seen = TapHub(), {}
    for port in ("dec.image", "src.image"):
        hub.subscribe(port, lambda n, v, i: seen.setdefault(n, v.clone()), min_interval=0.0)
    r = _runner(tmp_path, "q", {"quantize": "uint8"}, taps=hub)
    res = r.evaluate(points=[{"snr_db": 10}], write=False)
    rec, ref = seen["dec.image"], seen["src.image"]
    expected = 10 * torch.log10(1 / ((quantize_uint8(rec) - ref) ** 2).flatten(1).mean(1))
    got = torch.tensor(res["per_example"]["snr_db=10"]["psnr"][:len(rec)])
    assert torch.allclose(got, expected, atol=1e-4)
    plain = _runner(tmp_path, "p", {}).evaluate(points=[{"snr_db": 10}], write=False)
    assert plain["per_example"] != res["per_example"]                  # the rounding is applied
    assert abs(plain["rows"][0]["psnr"] - res["rows"][0]["psnr"]) < 0.05
    assert res["evaluation"]["quantize"] == "uint8"
    assert torch.equal(quantize_uint8(torch.tensor([-0.1, 0.5, 1.2])), torch.tensor([0.0, 128 / 255, 1.0]))


# ---- named test sets --------------------------------------------------------------------------------
def test_tables_and_metrics_json_name_the_test_set(tmp_path):
    import json
    r = _runner(tmp_path, "named", {})
    r.evaluate(points=[{"snr_db": 10}])
    res = json.loads((tmp_path / "named" / "metrics.json").read_text())
    ds = res["data"]["dataset"]
    from blocks.sources import TEST_PHOTOS, _bundled_photo_words
    name = f"the bundled photos {_bundled_photo_words(TEST_PHOTOS)}, 32×32 grid crops (short side 256 px)"
    assert ds["name"] == name
    assert res["data"]["split"] == "test" and res["data"]["examples"] == 8 and ds["count"] == 8
    assert format_table(res).splitlines()[-1] == f"measured on: {name}; split test, 8 examples"


def test_bundled_whole_photos_come_at_their_own_size(tmp_path):
    from blocks.sources import TEST_PHOTOS, _bundled_photo_words

    def per_image(src):
        return [tuple(b["image"].shape[-2:]) for b in src.eval_batches() for _ in range(len(b["image"]))]
    src = build("source.images", {"eval_whole": True, "eval_multiple": 4, "batch": 4})
    batches = list(src.eval_batches())
    sizes = per_image(src)
    assert len(sizes) == len(TEST_PHOTOS) == src.num_eval_examples()
    assert all(h % 4 == 0 and w % 4 == 0 and 252 < min(h, w) <= 256 for h, w in sizes)   # short side 256
    assert all(b["image"].shape[1] == 3 for b in batches)
    for a, b in zip(batches, batches[1:]):     # a new batch starts where the size changes or a batch is full
        assert a["image"].shape[-2:] != b["image"].shape[-2:] or len(a["image"]) == 4
    info = src.dataset_info
    assert info["count"] == len(TEST_PHOTOS)
    assert info["held_out"] == f"the held-out photos {', '.join(TEST_PHOTOS)}, whole"
    assert info["name"] == (f"the bundled photos {_bundled_photo_words(TEST_PHOTOS)}, whole images "
                            "(short side 256 px, sides cropped to multiples of 4)")
    assert "chelsea, coffee, gravel and immunohistochemistry (scikit-image); china (scikit-learn)" in info["name"]
    native = build("source.images", {"eval_whole": True, "eval_multiple": 8, "short_side": 0})
    # chelsea is 451x300, coffee 600x400: cropped to multiples of 8
    got = per_image(native)
    assert got[TEST_PHOTOS.index("chelsea")] == (296, 448) and got[TEST_PHOTOS.index("coffee")] == (400, 600)
    first = next(iter(native.eval_batches()))
    assert native.source_values_in(first) == 3 * first["image"].shape[-2] * first["image"].shape[-1]
    with pytest.raises(Exception, match="eval_whole' applies to"):
        build("source.images", {"dataset": "digits", "eval_whole": True})
