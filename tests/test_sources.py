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


# ----------------------------------------------------------------------------- class folders, tars, splits

def _class_tree(root, classes=("cat", "ant", "bee"), per_class=7, split="train", size=(8, 8)):
    """root/<split>/<class>/0000.png ...: pixel value = 10 * class rank + image index (by name)."""
    rng = np.random.default_rng(2)
    for c in classes:
        folder = root / split / c if split else root / c
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            arr[0, 0] = (sorted(classes).index(c), i, 0)          # a readable tag in pixel (0, 0)
            Image.fromarray(arr).save(folder / f"{i:04d}.png")


def _tags(block, split="test"):
    """(class, index) tags of every held-out image, read back from pixel (0, 0)."""
    x, y, _ = _eval_all_split(block, split)
    tag = (x[:, :2, 0, 0] * 255).round().long()
    return [tuple(t) for t in tag.tolist()], y.tolist()


def _eval_all_split(block, split):
    batches = list(block.eval_batches(5, split))
    return torch.cat([b["image"] for b in batches]), torch.cat([b["label"] for b in batches]), batches


FOLDER = {"dataset": "folder", "size": 8, "batch": 4, "short_side": 0, "crop": "center", "flip": False}


def test_class_folders_hold_out_the_last_per_class_by_index(tmp_path):
    _class_tree(tmp_path)
    block = build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 2, "val_per_class": 1})
    info = block.dataset_info
    assert info["classes"] == ["ant", "bee", "cat"] and info["layout"] == "class folders"
    assert info["splits"] == {"train": 12, "test": 6, "val": 3} and info["count"] == 6
    tags, labels = _tags(block, "test")
    assert sorted(tags) == [(c, i) for c in range(3) for i in (5, 6)]       # the last 2 of each class
    assert labels == [c for c, _ in tags]                                     # labels = sorted folder names
    vtags, _ = _tags(block, "val")
    assert sorted(vtags) == [(c, 4) for c in range(3)]                        # the one before them
    assert block.test_names[0] == "train/ant/0005.png" and "train/ant/0004.png" in block.val_names
    assert not set(block.train_names) & (set(block.test_names) | set(block.val_names))
    seen = set()
    for _ in range(40):                                                       # training never sees them
        out = block()
        seen |= {tuple(t) for t in (out["image"][:, :2, 0, 0] * 255).round().long().tolist()}
        assert out["label"].tolist() == [t[0] for t in (out["image"][:, :2, 0, 0] * 255).round().long().tolist()]
    assert seen <= {(c, i) for c in range(3) for i in range(4)} and len(seen) > 6


def test_a_tar_reads_like_the_folder_in_place(tmp_path):
    import tarfile as tf
    _class_tree(tmp_path / "tree")
    with tf.open(tmp_path / "data.tar", "w") as t:
        t.add(tmp_path / "tree" / "train", arcname="train")
    params = {**FOLDER, "test_per_class": 2, "val_per_class": 1}
    a = build("source.images", {**params, "path": str(tmp_path / "tree")})
    b = build("source.images", {**params, "path": str(tmp_path / "data.tar")})
    for split in ("test", "val"):
        xa, ya, _ = _eval_all_split(a, split)
        xb, yb, _ = _eval_all_split(b, split)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.train_names == b.train_names and b.dataset_info["archive"] is True
    a.seed(3), b.seed(3)
    assert torch.equal(a()["image"], b()["image"])


def test_fast_tar_scan_equals_tarfile_and_falls_back(tmp_path):
    import tarfile as tf

    from blocks.sources import _NeedTarfile, _scan_tar
    _class_tree(tmp_path / "tree", per_class=2)
    long_dir = tmp_path / "tree" / "train" / ("x" * 120)
    long_dir.mkdir()
    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(long_dir / "0000.png")
    for fmt, name in ((tf.USTAR_FORMAT, "ustar.tar"), (tf.GNU_FORMAT, "gnu.tar"), (tf.PAX_FORMAT, "pax.tar")):
        with tf.open(tmp_path / name, "w", format=fmt) as t:
            for p in sorted((tmp_path / "tree").rglob("*.png")):
                if fmt != tf.USTAR_FORMAT or len(p.relative_to(tmp_path / "tree").as_posix()) < 100:
                    t.add(p, arcname=p.relative_to(tmp_path / "tree").as_posix())
        with tf.open(tmp_path / name) as t:
            ref = {m.name: (m.offset_data, m.size) for m in t if m.isfile()}
        if fmt == tf.USTAR_FORMAT:
            assert _scan_tar(str(tmp_path / name)) == ref
        else:                                                   # long names: GNU 'L' / pax 'x' headers
            with pytest.raises(_NeedTarfile):
                _scan_tar(str(tmp_path / name))
        block = build("source.images", {**FOLDER, "path": str(tmp_path / name), "labels": "none"})
        assert len(block.train_names) + len(block.test_names) == len([n for n in ref if n.endswith(".png")])


def test_training_testing_and_val_folders(tmp_path):
    _class_tree(tmp_path, per_class=3, split="training")
    _class_tree(tmp_path, per_class=2, split="testing")
    _class_tree(tmp_path, per_class=1, split="val")
    block = build("source.images", {**FOLDER, "path": str(tmp_path)})
    assert block.dataset_info["splits"] == {"train": 9, "test": 6, "val": 3}
    assert block.dataset_info["held_out"] == "the testing/ folder"
    _, labels = _tags(block, "val")
    assert labels == [0, 1, 2]
    with pytest.raises(SemflowError, match="has testing/ but 'test_per_class'|test split"):
        build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 1})
    wrapped = tmp_path / "wrap"
    _class_tree(wrapped / "mydata", per_class=2, split="train")               # mydata/train/<class>/...
    _class_tree(wrapped / "mydata", per_class=1, split="test")
    block = build("source.images", {**FOLDER, "path": str(wrapped)})
    assert block.dataset_info["splits"]["test"] == 3 and block.test_names[0].startswith("mydata/test/")


def test_files_sharing_a_stem_stay_in_one_split(tmp_path):
    """Two views of one scene (left/0003.png, right/0003.png) never land on both sides."""
    rng = np.random.default_rng(3)
    for view in ("left", "right"):
        (tmp_path / view).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / view / f"{i:04d}.png")
    for params in ({"test_every": 3}, {"test_per_class": 2}):
        block = build("source.images", {**FOLDER, "path": str(tmp_path), **params})
        stem = lambda names: {n.split("/")[-1] for n in names}  # noqa: E731
        assert not stem(block.train_names) & stem(block.test_names)
        assert all(f"left/{s}" in block.test_names and f"right/{s}" in block.test_names
                   for s in stem(block.test_names))
        assert (block.dataset_info["classes"], block.dataset_info["layout"]) == (None, "unlabelled files")
    assert stem(build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 2}).test_names) \
        == {"0008.png", "0009.png"}


def test_labels_param(tmp_path):
    _class_tree(tmp_path, per_class=4, split="")                              # <class>/*.png, no split folder
    auto = build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 1})
    assert auto.dataset_info["classes"] is None and set(_tags(auto)[1]) == {-1}   # auto needs train/
    folders = build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 1, "labels": "folders"})
    assert folders.dataset_info["classes"] == ["ant", "bee", "cat"] and _tags(folders)[1] == [0, 1, 2]
    (tmp_path / "cat" / "deeper").mkdir()
    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(tmp_path / "cat" / "deeper" / "x.png")
    with pytest.raises(SemflowError, match="class folder directly below"):
        build("source.images", {**FOLDER, "path": str(tmp_path), "labels": "folders"})


def test_split_errors_are_one_line_and_name_the_block(tmp_path):
    _class_tree(tmp_path, per_class=3)
    block = build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 1})
    block.name = "src"
    for call in (lambda: block.num_eval_examples("val"), lambda: block.eval_batches(4, "val")):
        with pytest.raises(SemflowError, match=r"^block 'src' \(source.images\): no 'val' split: .*val_per_class"):
            call()
    with pytest.raises(SemflowError, match="no 'train' split: unknown split"):
        block.num_eval_examples("train")
    bundled = build("source.images", {})
    with pytest.raises(SemflowError, match="bundled photos have none"):
        bundled.eval_batches(4, "val")
    with pytest.raises(SemflowError, match="no validation split"):
        build("source.images", {"val_per_class": 5})
    with pytest.raises(SemflowError, match="test_per_class = 3 leaves no training images in class 'ant'"):
        build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 3})
    with pytest.raises(SemflowError, match="'test_per_class' applies to dataset 'folder' only"):
        build("source.images", {"test_per_class": 3})
    only_test = tmp_path / "only"
    _class_tree(only_test, per_class=1, split="test")
    with pytest.raises(SemflowError, match="no train/"):
        build("source.images", {**FOLDER, "path": str(only_test)})
    import gzip
    (tmp_path / "d.tar.gz").write_bytes(gzip.compress(b"\0" * 1024))
    with pytest.raises(SemflowError, match="not an uncompressed .tar"):
        build("source.images", {**FOLDER, "path": str(tmp_path / "d.tar.gz")})


def test_large_sets_decode_lazily_and_name_a_bad_file(tmp_path, monkeypatch):
    import blocks.sources as S
    _class_tree(tmp_path, per_class=3)
    (tmp_path / "train" / "ant" / "0001.png").write_bytes(b"not a png")
    with pytest.raises(SemflowError, match="0001.png"):                        # small: decoded at build
        build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 1})
    monkeypatch.setattr(S, "EAGER_DECODE", 0)
    block = build("source.images", {**FOLDER, "path": str(tmp_path), "test_per_class": 1})
    assert len(_eval_all_split(block, "test")[0]) == 3                      # the test images are fine
    with pytest.raises(SemflowError, match=r"cannot read image 'train/ant/0001.png'"):
        for _ in range(50):
            block()


def test_eval_repeats_and_dataset_info():
    block = build("source.images", {"eval_images": 6, "eval_repeats": 3, "eval_batch": 4})
    x, _, batches = _eval_all(block)
    assert block.num_eval_examples() == len(x) == 18 and [len(b["image"]) for b in batches] == [4, 2] * 3
    assert torch.equal(x[:6], x[6:12]) and torch.equal(x[:6], x[12:])
    info = block.dataset_info
    assert info["dataset"] == "bundled" and info["split"] == "test" and info["count"] == 18
    assert info["splits"]["val"] is None and "chelsea" in info["held_out"]
    dig = build("source.digits", {"val_per_class": 5})
    assert dig.dataset_info["splits"] == {"train": 1438 - 50, "test": 359, "val": 50}


def test_digits_val_split_is_disjoint():
    plain, held = build("source.digits", {}), build("source.digits", {"val_per_class": 4})
    vx, vy, _ = _eval_all_split(held, "val")
    assert len(vx) == held.num_eval_examples("val") == 40 and sorted(set(vy.tolist())) == list(range(10))
    tx, _, _ = _eval_all_split(held, "test")
    assert torch.equal(tx, _eval_all(plain, 64)[0])                          # test split unchanged
    train = held.train_x.flatten(1)
    for v in (vx * 255).round().to(torch.uint8).flatten(1)[:10]:
        assert not (train == v).all(1).any()
    img = build("source.images", {"dataset": "digits", "val_per_class": 4})
    assert torch.equal(_eval_all_split(img, "val")[0], vx)


def test_random_sources_val_split():
    bits = build("source.bits", {"shape": [32], "num_eval_examples": 300})
    test = torch.cat([d["bits"] for d in bits.eval_batches(64)])
    val = torch.cat([d["bits"] for d in bits.eval_batches(7, "val")])
    assert val.shape == test.shape and not torch.equal(val, test)
    assert torch.equal(val, torch.cat([d["bits"] for d in bits.eval_batches(300, split="val")]))
    assert bits.dataset_info["splits"] == {"train": None, "test": 300, "val": 300}
    with pytest.raises(SemflowError, match="unknown split"):
        bits.eval_batches(4, "training")


# ----------------------------------------------------------------------------- shapes

def test_shapes_contract_labels_follow_the_geometry():
    block = _seeded("source.shapes", {"batch": 64, "noise": 0.0}, 0)
    out = check_contract(block)
    x, y = out["image"], out["label"]
    assert x.shape == (64, 3, 32, 32) and y.shape == (64, 32, 32) and y.dtype == torch.long
    assert set(y.unique().tolist()) == {0, 1, 2, 3}
    lum = x.min(1).values                                                     # darkest channel per pixel
    assert (lum[y == 0] <= 0.4 + 1e-6).all() and (lum[y > 0] >= 0.5 - 1e-6).all()  # dark ground, bright shapes
    # a lone shape away from the border fills its bounding box as its geometry says:
    # a square all of it, a disc ~pi/4, a triangle ~1/2
    single = _seeded("source.shapes", {"batch": 300, "max_shapes": 1, "noise": 0.0}, 1)()
    fill = {1: [], 2: [], 3: []}
    for im_label in single["label"]:
        ys, xs = (im_label > 0).nonzero(as_tuple=True)
        if len(ys) > 30 and 0 < ys.min() and ys.max() < 31 and 0 < xs.min() and xs.max() < 31:
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            fill[im_label.max().item()].append(len(ys) / box.item())
    assert all(len(f) >= 5 for f in fill.values())
    assert min(fill[1]) == 1.0 and 0.6 < min(fill[2]) and max(fill[2]) < 0.9        # pixel grid: small discs vary
    assert 0.35 < min(fill[3]) and max(fill[3]) < 0.7
    assert block.source_values_per_example() == 3 * 32 * 32


def test_shapes_splits_are_fixed_and_independent():
    a, b = _seeded("source.shapes", {"num_eval_examples": 40}, 1), _seeded("source.shapes", {"num_eval_examples": 40}, 2)
    ta = torch.cat([d["label"] for d in a.eval_batches(16)])
    assert torch.equal(ta, torch.cat([d["label"] for d in b.eval_batches(40)]))
    va = torch.cat([d["label"] for d in a.eval_batches(16, "val")])
    assert va.shape == ta.shape and not torch.equal(va, ta)
    assert not torch.equal(a()["label"], b()["label"])                        # training follows the seed
    assert a.dataset_info["classes"] == ["background", "square", "disc", "triangle"]


# ----------------------------------------------------------------------------- multiuser

@pytest.mark.parametrize("dataset", ["bundled", "folder"])
def test_multiuser_takes_unlabelled_photos_repeats_and_val(dataset, tmp_path):
    params = {"dataset": dataset, "num_users": 3, "batch": 2, "size": 8, "eval_images": 4}
    if dataset == "folder":
        _write_images(tmp_path, 40)
        params.update(path=str(tmp_path), test_per_class=12, val_per_class=6)
    src = build("source.multiuser", params)
    out = check_contract(src)
    assert out["image"].shape == (2, 3, 3, 8, 8) and (out["label"] == -1).all()
    once = torch.cat([b["image"] for b in src.eval_batches(3)])
    assert once.shape == (4, 3, 3, 8, 8) and src.num_eval_examples() == 4
    rep = build("source.multiuser", {**params, "eval_repeats": 2})
    twice = torch.cat([b["image"] for b in rep.eval_batches(3)])
    assert rep.num_eval_examples() == len(twice) == 8 and torch.equal(twice[:4], once) and torch.equal(twice[4:], once)
    assert rep.dataset_info["count"] == 8 and rep.dataset_info["num_users"] == 3
    if dataset == "folder":
        val = torch.cat([b["image"] for b in src.eval_batches(2, "val")])
        assert len(val) == src.num_eval_examples("val") == 2                    # 6 images = 2 frames of 3
        assert not torch.equal(val, once[:2])
    else:
        with pytest.raises(SemflowError, match="no 'val' split"):
            src.num_eval_examples("val")


def test_multiuser_folder_with_class_labels(tmp_path):
    _class_tree(tmp_path, per_class=8)
    src = build("source.multiuser", {"dataset": "folder", "path": str(tmp_path), "num_users": 2, "batch": 3,
                                     "size": 8, "test_per_class": 2, "val_per_class": 2})
    y = torch.cat([b["label"] for b in src.eval_batches(2)])
    assert y.shape == (3, 2) and sorted(y.flatten().tolist()) == [0, 0, 1, 1, 2, 2]
    assert src.dataset_info["splits"] == {"train": 12, "test": 3, "val": 3}
    d = build("source.multiuser", {"num_users": 4, "val_per_class": 4})          # digits: 40 val images
    assert d.num_eval_examples("val") == 10 and d.num_eval_examples() == 359 // 4


# ----------------------------------------------------------------------------- the real CIFAR-10 tar

def test_cifar10_jpeg_tar_in_place(cifar_tar):
    """../shared/data/cifar10-train-jpeg.tar: 50,000 JPEGs in train/<class>/NNNN.jpg, labels in
    CIFAR-10 order; the last 500 per class by index are the test split, the 500 before them val."""
    import io
    import tarfile as tf

    block = build("source.images", {"dataset": "folder", "path": str(cifar_tar), "test_per_class": 500,
                                    "val_per_class": 500, "eval_batch": 250})
    info = block.dataset_info
    assert info["classes"] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                               "ship", "truck"]
    assert info["splits"] == {"train": 40000, "test": 5000, "val": 5000} and info["archive"] is True
    assert block.test_names[:2] == ["train/airplane/4500.jpg", "train/airplane/4501.jpg"]
    assert block.test_names[-1] == "train/truck/4999.jpg" and block.val_names[0] == "train/airplane/4000.jpg"
    assert max(n for n in block.train_names if "/cat/" in n) == "train/cat/3999.jpg"
    first = next(iter(block.eval_batches(250)))
    with tf.open(cifar_tar) as t:                               # tarfile's own reading, stopped early
        member = next(m for m in t if m.name == "train/airplane/4500.jpg")
        raw = t.extractfile(member).read()
    ref = torch.from_numpy(np.array(Image.open(io.BytesIO(raw)).convert("RGB"))).permute(2, 0, 1).float() / 255
    assert torch.equal(first["image"][0], ref) and first["label"][:250].tolist() == [0] * 250
    spread = build("source.images", {"dataset": "folder", "path": str(cifar_tar), "test_per_class": 500,
                                     "eval_images": 20})           # 20 spread over the 5000: two per class
    labels = torch.cat([b["label"] for b in spread.eval_batches(8)])
    assert labels.tolist() == [c for c in range(10) for _ in range(2)]
    out = check_contract(_seeded("source.images", {"dataset": "folder", "path": str(cifar_tar),
                                                   "test_per_class": 500, "batch": 8}, 0))
    assert out["image"].shape == (8, 3, 32, 32) and out["label"].min() >= 0
