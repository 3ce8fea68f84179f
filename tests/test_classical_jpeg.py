"""JPEG under seed 003's eq. (10) budget, the failure -> 0 dB path, and the capacity bound."""
import math

import pytest
import torch

import blocks  # noqa: F401
from blocks.classical.jpeg import bmax_bits
from flowgraph.testing import build, check_contract


def _images(n=3, size=32, seed=0):
    """Smooth colour ramps plus mild texture (JPEG-friendly, deterministic)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, size)
    base = torch.stack([t[None, :].expand(size, size), t[:, None].expand(size, size),
                        t[None, :] * t[:, None]])
    out = [(base.roll(i * 5, dims=-1) + 0.04 * torch.randn(3, size, size, generator=g)).clamp(0, 1)
           for i in range(n)]
    return torch.stack(out)


def test_eq10_budget():
    assert bmax_bits(12, 64, 2, 0.5) == 768                    # QPSK r=1/2, N_f = 64
    assert bmax_bits(12, 32, 4, 2 / 3) == 1024                 # 16QAM r=2/3, N_f = 32
    assert bmax_bits(12, 128, 4, 1 / 3) == 2048
    enc = build("classical.jpeg_encode", {"n_sf": 128, "bits_per_symbol": 4, "code_rate": 0.5})
    assert type(enc).bind_dims(enc.p) == {"Nbits": 12 * 128 * 4 // 2}


@pytest.mark.parametrize("header", ["full", "abbreviated"])
@pytest.mark.parametrize("budget", [768, 2048, 6000])
def test_jpeg_budget_respected_and_round_trip(header, budget):
    imgs = _images()
    enc = build("classical.jpeg_encode", {"budget_bits": budget, "header": header})
    out = check_contract(enc, image=imgs, budget=None)
    assert out["bits"].shape == (3, budget)
    ln, fl = out["length"], out["failed"]
    assert (ln <= budget).all() and (ln % 8 == 0).all()
    assert torch.equal(fl, ln == 0)
    for i in range(3):                                        # zero padding after the stream
        assert out["bits"][i, ln[i]:].abs().sum() == 0
    dec = build("classical.jpeg_decode", {"header": header})
    rec = check_contract(dec, bits=out["bits"], length=out["length"], failed=out["failed"])
    assert torch.equal(rec["failed"], fl)
    psnr = build("sink.psnr_sscc")(pred=rec["image"], target=imgs, failed=rec["failed"])["value"]
    assert torch.equal(psnr == 0, fl)
    assert (psnr[~fl] > 20).all()
    # the stream is self-delimiting: decoding without ``length`` gives the same images
    assert torch.equal(dec(bits=out["bits"])["image"], rec["image"])
    if header == "abbreviated":
        assert not fl.any()                                   # ~100 bytes fit even 768 bits
    if header == "full" and budget <= 2048:
        assert fl.all()                                       # the JFIF header alone is too big


def test_quality_is_the_best_that_fits_and_grows_with_budget():
    imgs = _images(2)
    qs = []
    for budget in (800, 1600, 3200):
        out = build("classical.jpeg_encode", {"budget_bits": budget, "header": "abbreviated"})(image=imgs)
        q = out["quality"]
        qs.append(q)
        up = build("classical.jpeg_encode", {"budget_bits": budget, "header": "abbreviated",
                                             "quality": 0, "min_quality": 1,
                                             "max_quality": 100})(image=imgs)
        assert (up["quality"] >= q).all()
        # quality + 1 no longer fits (binary search found the edge; JPEG size is monotone here)
        for i in range(2):
            nxt = build("classical.jpeg_encode", {"budget_bits": 100000, "header": "abbreviated",
                                                  "quality": int(q[i]) + 1})(image=imgs[i:i + 1])
            assert nxt["length"][0] > budget or int(q[i]) == 95
    assert (qs[0] <= qs[1]).all() and (qs[1] <= qs[2]).all()
    # a fixed quality that does not fit fails instead of being lowered
    out = build("classical.jpeg_encode", {"budget_bits": 800, "quality": 90,
                                          "header": "abbreviated"})(image=imgs)
    assert out["failed"].all() and (out["length"] == 0).all()


def test_per_example_budget_input_and_leading_user_dim():
    imgs = _images(4).reshape(2, 2, 3, 32, 32)               # (B, K, C, H, W)
    enc = build("classical.jpeg_encode", {"budget_bits": 4000, "header": "abbreviated"})
    budget = torch.tensor([[4000, 1000], [50, 99999]])
    out = check_contract(enc, image=imgs, budget=budget)
    assert out["bits"].shape == (2, 2, 4000)
    assert out["length"][0, 1] <= 1000 and out["failed"][1, 0] and not out["failed"][1, 1]
    assert out["length"][1, 1] <= 4000                        # clipped to the buffer
    rec = build("classical.jpeg_decode", {"header": "abbreviated"})(bits=out["bits"], failed=out["failed"])
    assert rec["image"].shape == (2, 2, 3, 32, 32)
    assert torch.equal(rec["failed"], out["failed"])


def test_failure_paths_never_raise_and_score_0db():
    imgs = _images(4)
    enc = build("classical.jpeg_encode", {"budget_bits": 6000, "header": "abbreviated"})
    out = enc(image=imgs)
    bits = out["bits"].clone()
    bits[0] = torch.randint(0, 2, bits[0].shape, generator=torch.Generator().manual_seed(1)).float()
    bits[1] = 0.0                                             # an all-zero buffer
    upstream = torch.tensor([False, False, True, False])      # e.g. LDPC/CRC failure
    rec = build("classical.jpeg_decode", {"header": "abbreviated"})(bits=bits, failed=upstream)
    assert rec["failed"].tolist() == [True, True, True, False]
    assert torch.all(rec["image"][:3] == 0.5)
    psnr = build("sink.psnr_sscc")(pred=rec["image"], target=imgs, failed=rec["failed"])["value"]
    assert psnr[:3].tolist() == [0.0, 0.0, 0.0] and psnr[3] > 20
    # sink.psnr_sscc without failures equals plain PSNR
    p2 = check_contract("sink.psnr_sscc", {}, pred=rec["image"], target=imgs, failed=None)["value"]
    mse = ((rec["image"][3] - imgs[3]) ** 2).mean()
    assert abs(p2[3].item() - (-10 * math.log10(mse.item()))) < 1e-3


def test_capacity_budget_monotone_in_snr():
    imgs = _images(2)
    cb = build("classical.capacity_budget", {"channel_uses": 768, "header": "abbreviated"})
    prev_b, prev_q, prev_p = -1, torch.full((2,), -1), torch.full((2,), -1.0)
    for snr in (-10.0, -3.0, 0.0, 5.0, 10.0, 20.0):
        cb.set_runtime("snr_db", snr)
        out = check_contract(cb, image=imgs, h=None)
        cap = math.log2(1 + 10 ** (snr / 10))
        assert torch.allclose(out["capacity"], torch.full((2,), cap))
        assert (out["budget"] == math.floor(768 * cap)).all()
        assert (out["budget"] >= prev_b).all() and (out["quality"] >= prev_q).all()
        p = build("sink.psnr_sscc")(pred=out["image"], target=imgs, failed=out["failed"])["value"]
        assert (p >= prev_p - 1e-6).all()
        prev_b, prev_q, prev_p = out["budget"], out["quality"], p
    assert out["failed"].sum() == 0
    cb.set_runtime("snr_db", -10.0)
    assert cb(image=imgs)["failed"].all()                     # 105 bits: nothing fits -> 0 dB


def test_capacity_budget_mimo():
    """With h: mean_RE log2 det(I + SNR/Nt H H^H); identity 2x2 -> 2 log2(1 + SNR/2)."""
    imgs = _images(2)
    h = torch.eye(2, dtype=torch.complex64).expand(2, 2, 2).reshape(2, 2, 2, 1, 1).expand(2, 2, 2, 3, 4)
    cb = build("classical.capacity_budget", {"channel_uses": 100, "snr_db": 10.0, "users": 2})
    out = cb(image=imgs, h=h)
    assert torch.allclose(out["capacity"], torch.full((2,), 2 * math.log2(1 + 10 / 2)), atol=1e-4)
    assert (out["budget"] == math.floor(100 * 2 * math.log2(6) / 2)).all()
