"""Source blocks (blocks/sources.py): contract, determinism, held-out splits, datasets, errors."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import blocks  # noqa: F401  (registers the library)
from blocks.sources import TEST_PHOTOS
from flowgraph.errors import SemflowError
from flowgraph.testing import build, check_contract


def _eval_all(block, batch=0):
    batches = list(block.eval_batches(batch))
    return torch.cat([b["image"] for b in batches]), torch.cat([b["label"] for b in batches]), batches


def _seeded(type_id, params, seed):
    block = build(type_id, params)
    block.seed(seed)
    return block


# ----------------------------------------------------------------------------- bundled

def test_bundled_contract_range_and_cbr_size():
    out = check_contract("source.images", {"batch": 4})
    x = out["image"]
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0
    assert out["label"].tolist() == [-1] * 4
    block = build("source.images", {"size": 16, "batch": 2})
    assert type(block).bind_dims(block.p) == {"H": 16, "W": 16}
    assert check_contract(block)["image"].shape == (2, 3, 16, 16)
    assert block.source_values_per_example() == 3 * 16 * 16


def test_bundled_deterministic_under_seed():
    a, b, c = (_seeded("source.images", {"batch": 8}, s) for s in (3, 3, 4))
    xa, xb, xc = a()["image"], b()["image"], c()["image"]
    assert torch.equal(xa, xb)
    assert not torch.equal(xa, xc)
    assert not torch.equal(a()["image"], xa)          # the stream moves on


def test_generator_state_roundtrips_through_state_dict():
    a = _seeded("source.images", {"batch": 4}, 7)
    a()
    b = build("source.images", {"batch": 4})
    b.load_state_dict(a.state_dict())
    assert torch.equal(a()["image"], b()["image"])


def test_bundled_split_by_photo_and_fixed_eval():
    a = _seeded("source.images", {}, 1)
    assert list(a.test_names) == list(TEST_PHOTOS)
    assert a.train_names and not set(a.train_names) & set(a.test_names)
    x1, y1, batches = _eval_all(a, 64)
    a()                                                # training draws must not move eval
    x2, _, _ = _eval_all(a, 64)
    x3, _, _ = _eval_all(_seeded("source.images", {}, 99), 64)
    assert torch.equal(x1, x2) and torch.equal(x1, x3)
    assert len(x1) == a.num_eval_examples() > 100
    assert [len(b["image"]) for b in batches[:-1]] == [64] * (len(batches) - 1)
    assert 0.0 <= x1.min() and x1.max() <= 1.0 and (y1 == -1).all()


def test_eval_images_cap_and_eval_batch_param():
    full, _, _ = _eval_all(build("source.images", {}), 1000)
    capped = build("source.images", {"eval_images": 10, "eval_batch": 4})
    x, _, batches = _eval_all(capped)                  # 0: use the eval_batch param
    assert capped.num_eval_examples() == 10 and len(x) == 10
    assert [len(b["image"]) for b in batches] == [4, 4, 2]
    assert torch.equal(x[0], full[0]) and torch.equal(x[-1], full[-1])   # spread over the set
    assert [len(b["image"]) for b in capped.eval_batches(6)] == [6, 4]   # an argument wins


# ----------------------------------------------------------------------------- folder

def _write_images(folder, n, sizes=((40, 48), (20, 24), (64, 40))):
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        ext = ".jpg" if i % 3 == 2 else ".png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(sub / f"img{i:02d}{ext}")
        names.append(f"{sub.name}/img{i:02d}{ext}")
    return sorted(names)


def test_folder_dataset_split_contract_and_eval(tmp_path):
    names = _write_images(tmp_path, 12)
    params = {"dataset": "folder", "path": str(tmp_path), "batch": 5}
    block = _seeded("source.images", params, 0)
    assert block.test_names == names[::10] and block.train_names == [n for n in names if n not in names[::10]]
    out = check_contract(block)
    assert out["image"].shape == (5, 3, 32, 32) and 0 <= out["image"].min() and out["image"].max() <= 1
    x, _, _ = _eval_all(block)
    assert len(x) == block.num_eval_examples() == 2
    assert torch.equal(x, _eval_all(build("source.images", params))[0])
    again = _seeded("source.images", params, 0)
    assert torch.equal(again()["image"], out["image"])
    # short_side only downscales; an image smaller than the crop is upscaled to fit it
    assert sorted({tuple(p.shape[-2:]) for p in block.data.train}) == [(32, 38), (40, 48), (64, 40)]
    center = build("source.images", dict(params, crop="center", flip=False))
    assert check_contract(center)["image"].shape == (5, 3, 32, 32)


def test_folder_train_test_subfolders(tmp_path):
    _write_images(tmp_path / "train", 3)
    _write_images(tmp_path / "test", 2)
    block = build("source.images", {"dataset": "folder", "path": str(tmp_path), "size": 16})
    assert len(block.train_names) == 3 and block.num_eval_examples() == 2
    assert check_contract(block)["image"].shape == (16, 3, 16, 16)


def test_folder_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SemflowError, match="path") as exc:
        build("source.images", {"dataset": "folder", "path": str(missing)})
    assert str(missing) in str(exc.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SemflowError) as exc:
        build("source.images", {"dataset": "folder", "path": str(empty)})
    assert str(empty) in str(exc.value)
    _write_images(tmp_path / "bad", 2)
    (tmp_path / "bad" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SemflowError, match="broken.png"):
        build("source.images", {"dataset": "folder", "path": str(tmp_path / "bad")})


# ----------------------------------------------------------------------------- cifar10

def _fake_cifar(root, n_train=6, n_test=5):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else n_train
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [(k + i) % 10 for i in range(n)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
    return folder


def test_cifar10_fake_batches(tmp_path):
    folder = _fake_cifar(tmp_path)
    with open(folder / "test_batch", "rb") as fh:
        test = pickle.load(fh, encoding="bytes")
    for path in (tmp_path, folder):                    # the folder or its parent
        block = _seeded("source.images", {"dataset": "cifar10", "path": str(path), "batch": 4}, 0)
        out = check_contract(block)
        assert out["image"].shape == (4, 3, 32, 32) and set(out["label"].tolist()) <= set(range(10))
        x, y, _ = _eval_all(block, 2)
        assert block.num_eval_examples() == len(x) == 5
        expect = torch.from_numpy(test[b"data"]).view(-1, 3, 32, 32).float() / 255
        assert torch.equal(x, expect) and y.tolist() == test[b"labels"]
    small = build("source.images", {"dataset": "cifar10", "path": str(folder), "size": 24})
    assert check_contract(small)["image"].shape == (16, 3, 24, 24)
    assert _eval_all(small)[0].shape == (5, 3, 24, 24)


def test_cifar10_missing_file(tmp_path):
    folder = _fake_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(SemflowError, match="data_batch_3"):
        build("source.images", {"dataset": "cifar10", "path": str(tmp_path)})
    with pytest.raises(SemflowError, match="path"):
        build("source.images", {"dataset": "cifar10"})


# ----------------------------------------------------------------------------- digits

def test_digits_contract_labels_and_split():
    block = _seeded("source.digits", {"batch": 32}, 0)
    out = check_contract(block)
    x, y = out["image"], out["label"]
    assert x.shape == (32, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert not torch.equal(x[:, 0], x[:, 1])           # tinted: channels differ
    assert y.min() >= 0 and y.max() <= 9
    assert len(block.train_x) + len(block.test_x) == 1797
    ex, ey, _ = _eval_all(block, 100)
    assert len(ex) == block.num_eval_examples() == len(block.test_x)
    assert sorted(set(ey.tolist())) == list(range(10))
    assert torch.equal(ex, _eval_all(_seeded("source.digits", {}, 5), 64)[0])
    assert torch.equal(_seeded("source.digits", {"batch": 32}, 0)()["image"], x)
    assert block.source_values_per_example() == 3 * 32 * 32


def test_images_source_serves_the_digits():
    """source.images with dataset: digits gives the same held-out images as source.digits, so
    the JPEG chains are evaluated on the seed-003 graphs' images; one RNG, seeded as usual."""
    img = _seeded("source.images", {"dataset": "digits", "batch": 8, "eval_images": 40}, 3)
    dig = _seeded("source.digits", {"batch": 8, "eval_images": 40}, 3)
    assert torch.equal(img()["image"], dig()["image"])
    assert img.num_eval_examples() == dig.num_eval_examples() == 40
    a, la, _ = _eval_all(img, 16)
    b, lb, _ = _eval_all(dig, 16)
    assert torch.equal(a, b) and torch.equal(la, lb) and a.shape == (40, 3, 32, 32)
    resumed = build("source.images", {"dataset": "digits", "batch": 8})
    resumed.load_state_dict(img.state_dict())            # the digits draw from the saved RNG
    assert torch.equal(img()["image"], resumed()["image"])


def test_digits_num_users():
    block = build("source.digits", {"num_users": 2, "batch": 6, "size": 16})
    out = check_contract(block)
    assert out["image"].shape == (6, 2, 3, 16, 16) and out["label"].shape == (6, 2)
    assert all(not torch.equal(im[0], im[1]) for im in out["image"])   # a different image per user
    x, y, _ = _eval_all(block, 50)
    assert x.shape[1:] == (2, 3, 16, 16) and y.shape[1:] == (2,)
    assert len(x) == block.num_eval_examples() == len(block.test_x) // 2
    assert block.source_values_per_example() == 2 * 3 * 16 * 16
