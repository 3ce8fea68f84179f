"""source.images with stream: true: lazy DataLoader reading, bounded memory, deterministic
order, disjoint rank shares, resume.

Every training image is one flat colour whose red value encodes its index, so a crop tells
which file it came from, whatever the crop position and flip."""
import numpy as np
import pytest
import torch
from PIL import Image

from blocks import sources
from blocks.sources import STREAM_DECODED, ImageSource
from flowgraph import SemflowError

N_TRAIN = 24


@pytest.fixture
def folder(tmp_path):
    for split, n in (("train", N_TRAIN), ("test", 3)):
        d = tmp_path / split
        d.mkdir()
        for i in range(n):
            arr = np.full((20, 26, 3), (10 * i, 7, 200), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"img{i:03d}.png")
    return tmp_path


def make(folder, **kw):
    p = {"dataset": "folder", "path": str(folder), "size": 16, "batch": 4, "stream": True, **kw}
    src = ImageSource(**p)
    src.name = "src"
    src.seed(5)
    return src


def file_ids(batch) -> list:
    return [round(float(v) * 255 / 10) for v in batch["image"][:, 0, 0, 0]]


def test_stream_holds_a_bounded_number_of_decoded_images(folder):
    before = dict(STREAM_DECODED)
    cached = len(sources._CACHE)
    src = make(folder)
    ids = []
    for _ in range(12):                     # 48 crops: two epochs of 24 files
        ids += file_ids(src())
        # at most one batch of decoded images is alive at any time, and none after it
        assert STREAM_DECODED["live"] - before["live"] == 0
    assert STREAM_DECODED["decoded"] - before["decoded"] == 48      # each crop decoded once, when used
    assert STREAM_DECODED["peak"] <= max(before["peak"], before["live"] + 4)
    assert len(sources._CACHE) == cached                              # nothing decoded was cached
    # each epoch visits every file once, in a seeded order that differs between epochs
    assert sorted(ids[:24]) == sorted(ids[24:]) == list(range(N_TRAIN))
    assert ids[:24] != ids[24:]


def test_stream_is_deterministic_and_ranks_split_without_overlap(folder):
    one = make(folder)
    whole = [one() for _ in range(4)]
    again = make(folder, workers=2)       # worker processes decode: the same crops
    for b in whole:
        torch.testing.assert_close(again()["image"], b["image"])
    r0, r1 = make(folder), make(folder)
    r0.shard, r1.shard = (0, 2), (1, 2)
    for b in whole:
        a, c = r0(), r1()
        assert a["image"].shape[0] == c["image"].shape[0] == 2
        torch.testing.assert_close(torch.cat([a["image"], c["image"]]), b["image"])
        assert not set(file_ids(a)) & set(file_ids(c))


def test_stream_resumes_where_it_stopped(folder):
    ref = make(folder)
    expected = [ref()["image"] for _ in range(5)]
    src = make(folder)
    src(), src()
    state = src.state_dict()
    resumed = make(folder)
    resumed.load_state_dict(state)
    for want in expected[2:]:
        torch.testing.assert_close(resumed()["image"], want)


def test_stream_needs_a_folder_and_a_splittable_batch(folder):
    with pytest.raises(SemflowError, match="param 'stream' applies to dataset 'folder' only"):
        ImageSource(dataset="bundled", stream=True)
    src = make(folder, batch=3)
    src.shard = (0, 2)
    with pytest.raises(SemflowError, match="batch 3 does not split over 2 processes"):
        src()
