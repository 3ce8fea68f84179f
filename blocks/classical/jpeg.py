"""JPEG source coding under a bit budget (Pillow), and the JPEG + capacity upper bound.

Seed 003, Sec. IV: "the maximum allowable number of information bits per transmission
block, B_max, is ... B_max = floor(N_st x N_sf x m x r)  (10) ... If the bitstream exceeds
this capacity limit, the compression quality is iteratively reduced until the size
constraint is met. In the extreme case where the compressed bitstream remains larger than
B_max even at the lowest quality setting, the transmission is considered a failure, and the
PSNR is recorded as 0 dB. For successful compressions, zero-padding is applied to match the
required input block length." Seed 001, Sec. V: "BPG + capacity ... transmit the coded bits
perfectly at the rate of the channel capacity ... ideal performance upper bounds."

Bit contract (JPEG lengths vary per image, tensors cannot):
    bits   real (B, ..., Nbits)  0/1, the JPEG bytes MSB first, zero-padded to Nbits = B_max
    length int  (B, ...)         number of valid bits (a multiple of 8; 0 when failed)
    failed bool (B, ...)         the image did not fit (or, at the decoder, was lost)
A JPEG stream ends with its EOI marker, so the decoder does not need ``length``: trailing
padding is ignored. ``header`` picks what the budget pays for:
    "abbreviated" (default): 1 quality byte + the JPEG "image only" stream (Pillow
                   streamtype=2, standard tables); the receiver regenerates the quantization
                   and Huffman tables from the quality byte (both ends know the codec), as
                   baselines that count only payload bits do. A 32x32 image needs >= ~75 bytes.
    "full":        a standalone JFIF file (Huffman-optimized). Its ~300-byte header alone
                   exceeds seed 003's budgets (eq. 10: 48-192 bytes for QPSK r=1/2,
                   N_f = 32-128), so every image would fail (0 dB) with it.
"""
from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np
import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

#: value of every pixel of the reconstruction of a failed example
FAIL_FILL = 0.5


def bmax_bits(n_st: int, n_sf: int, bits_per_symbol: int, code_rate: float) -> int:
    """Seed 003, eq. (10): B_max = floor(N_st * N_sf * m * r) information bits."""
    return int(math.floor(n_st * n_sf * bits_per_symbol * code_rate + 1e-9))


def _pil(img: torch.Tensor):
    from PIL import Image
    a = (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    a = a.permute(1, 2, 0).numpy()
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a, "L" if a.shape[2] == 1 else "RGB")


def _skip_soi_app(s: bytes) -> bytes:
    """Drop SOI and APPn/COM segments from the head of a JPEG stream."""
    i = 2
    while i + 4 <= len(s) and s[i] == 0xFF and (0xE0 <= s[i + 1] <= 0xEF or s[i + 1] == 0xFE):
        i += 2 + int.from_bytes(s[i + 2:i + 4], "big")
    return s[i:]


@lru_cache(maxsize=256)
def _tables(quality: int, mode: str) -> bytes:
    """The tables-only JPEG stream (SOI DQT DHT EOI) Pillow writes for ``quality``."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new(mode, (8, 8)).save(buf, "JPEG", quality=quality, streamtype=1)
    return buf.getvalue()


def jpeg_payload(img, quality: int, header: str) -> bytes:
    """Encode a PIL image; return the bytes the budget pays for (see module doc)."""
    buf = io.BytesIO()
    if header == "full":
        img.save(buf, "JPEG", quality=int(quality), optimize=True)
        return buf.getvalue()
    img.save(buf, "JPEG", quality=int(quality), streamtype=2)
    return bytes([int(quality)]) + _skip_soi_app(buf.getvalue())


def jpeg_decode_payload(payload: bytes, header: str, channels: int, size) -> torch.Tensor | None:
    """Decode ``payload``; (C, H, W) float in [0, 1], or None if it cannot be decoded."""
    from PIL import Image
    try:
        if header == "abbreviated":
            q = payload[0]
            if not 1 <= q <= 100:
                return None
            payload = _tables(q, "L" if channels == 1 else "RGB")[:-2] + payload[1:]
        im = Image.open(io.BytesIO(payload))
        im.load()
        im = im.convert("L" if channels == 1 else "RGB")
        if im.size != (size[1], size[0]):
            return None
        a = np.asarray(im, dtype=np.float32) / 255.0
        a = a[..., None] if a.ndim == 2 else a
        return torch.from_numpy(a.copy()).permute(2, 0, 1)
    except Exception:        # any corrupt stream is a failed transmission, never a crash
        return None


def best_quality(img, budget_bits: int, header: str, qmin: int, qmax: int):
    """Largest quality in [qmin, qmax] whose payload fits ``budget_bits`` (binary search; JPEG
    size grows with quality), with its payload; (None, None) if even qmin does not fit."""
    lo, hi, best = int(qmin), int(qmax), (None, None)
    while lo <= hi:
        q = (lo + hi) // 2
        pl = jpeg_payload(img, q, header)
        if 8 * len(pl) <= budget_bits:
            best, lo = (q, pl), q + 1
        else:
            hi = q - 1
    return best


def _bytes_to_bits(payload: bytes, nbits: int) -> torch.Tensor:
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    out = np.zeros(nbits, dtype=np.float32)
    out[:len(bits)] = bits[:nbits]
    return torch.from_numpy(out)


def _bits_to_bytes(bits: torch.Tensor) -> bytes:
    b = (bits.detach().cpu().numpy() > 0.5).astype(np.uint8)
    b = b[: len(b) - len(b) % 8]
    return np.packbits(b).tobytes()


_HEADER = Param(str, "abbreviated", "abbreviated: quality byte + image-only stream (tables "
                                    "implied); full: standalone JFIF file (~300-byte header)",
                choices=("abbreviated", "full"))
_QRANGE = {"min_quality": Param(int, 1, "lowest JPEG quality tried"),
           "max_quality": Param(int, 95, "highest JPEG quality tried")}


def _budget_params() -> dict:
    return {"budget_bits": Param(int, 0, "bit budget Nbits; 0: B_max of eq. (10) from n_st, n_sf, "
                                         "bits_per_symbol, code_rate"),
            "n_st": Param(int, 12, "eq. (10) N_st: data OFDM symbols (14 - 2 pilot symbols)"),
            "n_sf": Param(int, 64, "eq. (10) N_sf: data subcarriers"),
            "bits_per_symbol": Param(int, 2, "eq. (10) m: modulation order in bits"),
            "code_rate": Param(float, 0.5, "eq. (10) r: LDPC code rate")}


def _nbits(p) -> int:
    if p["budget_bits"] > 0:
        return int(p["budget_bits"])
    return bmax_bits(int(p["n_st"]), int(p["n_sf"]), int(p["bits_per_symbol"]), float(p["code_rate"]))


@register("classical.jpeg_encode")
class JPEGEncode(Block):
    """JPEG encoder with seed 003's rate control (Sec. IV, eq. 10), via Pillow.

    quality = 0: the best quality in [min_quality, max_quality] whose payload fits the budget
    (seed 003 lowers the quality until it fits); quality > 0: that quality, failing if it
    does not fit. The budget is Nbits = ``budget_bits`` or B_max of eq. (10); the optional
    ``budget`` input lowers it per example (e.g. a capacity budget, clipped to Nbits).
    Failed examples send all-zero bits with length 0. Not differentiable (a codec).

    Shapes: image real (B, ..., C, H, W) in [0, 1] (C = 3 or 1), budget int (B, ...) optional
            -> bits real (B, ..., Nbits), length int (B, ...), quality int (B, ...),
               failed bool (B, ...).
    """
    inputs = {"image": Port("real", ("B", "...", "C", "H", "W"), tag="image", doc="images in [0, 1]"),
              "budget": Port("int", ("B", "..."), optional=True, doc="per-example bit budget")}
    outputs = {"bits": Port("real", ("B", "...", "Nbits"), tag="bits", doc="JPEG bits, zero-padded"),
               "length": Port("int", ("B", "..."), doc="valid bits (0 if failed)"),
               "quality": Port("int", ("B", "..."), doc="JPEG quality used (0 if failed)"),
               "failed": Port("bool", ("B", "..."), tag="mask", doc="did not fit the budget")}
    params = {"quality": Param(int, 0, "0: best quality that fits; 1-95: fixed quality"),
              **_QRANGE, "header": _HEADER, **_budget_params()}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if not 1 <= p.min_quality <= p.max_quality <= 100 or not 0 <= p.quality <= 100:
            raise ValueError("classical.jpeg_encode: need 1 <= min_quality <= max_quality <= 100 "
                             "and 0 <= quality <= 100")
        if _nbits(p) < 8:
            raise ValueError(f"classical.jpeg_encode: budget of {_nbits(p)} bits is below one byte")

    @classmethod
    def bind_dims(cls, p):
        return {"Nbits": _nbits(p)}

    def forward(self, image, budget=None):
        nbits = _nbits(self.p)
        lead = image.shape[:-3]
        imgs = image.reshape(-1, *image.shape[-3:])
        buds = None if budget is None else budget.reshape(-1).tolist()
        bits = torch.zeros(imgs.shape[0], nbits)
        length = torch.zeros(imgs.shape[0], dtype=torch.int64)
        quality = torch.zeros(imgs.shape[0], dtype=torch.int64)
        failed = torch.zeros(imgs.shape[0], dtype=torch.bool)
        for i in range(imgs.shape[0]):
            bud = nbits if buds is None else max(0, min(nbits, int(buds[i])))
            pil = _pil(imgs[i])
            if self.p.quality > 0:
                pl = jpeg_payload(pil, self.p.quality, self.p.header)
                q, pl = (self.p.quality, pl) if 8 * len(pl) <= bud else (None, None)
            else:
                q, pl = best_quality(pil, bud, self.p.header, self.p.min_quality, self.p.max_quality)
            if q is None:
                failed[i] = True
                continue
            bits[i] = _bytes_to_bits(pl, nbits)
            length[i], quality[i] = 8 * len(pl), q
        dev = image.device
        return {"bits": bits.reshape(*lead, nbits).to(dev), "length": length.reshape(lead).to(dev),
                "quality": quality.reshape(lead).to(dev), "failed": failed.reshape(lead).to(dev)}


@register("classical.jpeg_decode")
class JPEGDecode(Block):
    """JPEG decoder for ``classical.jpeg_encode``'s bit contract (seed 003, Sec. IV), via Pillow.

    An example FAILS (seed 003: "the transmission is considered a failure, and the PSNR is
    recorded as 0 dB") when the incoming ``failed`` is set (e.g. ``classical.ldpc_decode``'s
    parity/CRC failure, or the encoder's "did not fit"), when ``length`` is 0, or when the
    bytes do not decode to a C x H x W image; it never raises. Failed examples get a uniform
    0.5 image and ``failed`` = true; score them with ``sink.psnr_sscc`` (0 dB on failure).

    Shapes: bits real (B, ..., Nbits), length int (B, ...) optional, failed bool (B, ...)
            optional -> image real (B, ..., C, H, W) in [0, 1], failed bool (B, ...).
    """
    inputs = {"bits": Port("real", ("B", "...", "Nbits"), tag="bits", doc="received JPEG bits"),
              "length": Port("int", ("B", "..."), optional=True, doc="valid bits (default: all)"),
              "failed": Port("bool", ("B", "..."), optional=True, tag="mask",
                             doc="upstream failure (LDPC/CRC, did not fit)")}
    outputs = {"image": Port("real", ("B", "...", "C", "H", "W"), tag="image", doc="reconstruction"),
               "failed": Port("bool", ("B", "..."), tag="mask", doc="transmission failed")}
    params = {"height": Param(int, 32, "image height H"), "width": Param(int, 32, "image width W"),
              "channels": Param(int, 3, "image channels C (3 RGB, 1 grey)", choices=(1, 3)),
              "header": _HEADER}

    @classmethod
    def bind_dims(cls, p):
        return {"C": int(p["channels"]), "H": int(p["height"]), "W": int(p["width"])}

    def forward(self, bits, length=None, failed=None):
        c, h, w = int(self.p.channels), int(self.p.height), int(self.p.width)
        lead = bits.shape[:-1]
        flat = bits.reshape(-1, bits.shape[-1])
        n = flat.shape[0]
        lens = None if length is None else length.reshape(-1).tolist()
        fin = torch.zeros(n, dtype=torch.bool) if failed is None else failed.reshape(-1).cpu()
        out = torch.full((n, c, h, w), FAIL_FILL)
        fail = torch.zeros(n, dtype=torch.bool)
        for i in range(n):
            ln = flat.shape[1] if lens is None else int(lens[i])
            img = None
            if not bool(fin[i]) and ln > 0:
                img = jpeg_decode_payload(_bits_to_bytes(flat[i, :ln]), self.p.header, c, (h, w))
            if img is None:
                fail[i] = True
            else:
                out[i] = img
        return {"image": out.reshape(*lead, c, h, w).to(bits.device),
                "failed": fail.reshape(lead).to(bits.device)}


def mimo_capacity(h: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Mean over REs of log2 det(I + (SNR/Nt) H H^H) bits per channel use, per example.

    h: (B, Nr, Nt, ...) -> (B,). Equal power over the Nt transmit antennas with total energy
    1 per RE (the channel blocks' convention), i.e. no CSI at the transmitter.
    """
    b, nr, nt = h.shape[:3]
    hm = h.reshape(b, nr, nt, -1).permute(0, 3, 1, 2).to(torch.complex128)   # (B, R, Nr, Nt)
    snr = 10.0 ** (float(snr_db) / 10.0)
    g = torch.eye(nr, dtype=hm.dtype, device=hm.device) + (snr / nt) * (hm @ hm.mH)
    return (torch.linalg.slogdet(g)[1] / math.log(2.0)).mean(dim=1).float()


@register("classical.capacity_budget")
class CapacityBudget(Block):
    """JPEG + capacity: ideal capacity-achieving channel code, best JPEG under the budget.

    The upper bound of seeds 001/003 ("BPG/JPEG + capacity", seed 001 Sec. V): the channel
    carries channel_uses * C bits error-free, with C = streams * log2(1 + SNR) (AWGN, SNR =
    10^(snr_db/10)) or, when ``h`` is connected, the MIMO capacity mean_RE log2 det(I + SNR/Nt
    H H^H) (equal power, no transmitter CSI). budget = floor(channel_uses * C / users) bits per
    image (``users`` share the resource equally). The best JPEG quality whose payload fits is
    used and decoded without errors; if none fits, the example fails (0.5 image, 0 dB with
    ``sink.psnr_sscc``). The budget is monotone non-decreasing in snr_db.

    Shapes: image real (B, C, H, W) in [0, 1], h complex (B, Nr, Nt, ...) optional
            -> image real (B, C, H, W), budget int (B,), quality int (B,), failed bool (B,),
               capacity real (B,) bits per channel use.
    """
    inputs = {"image": Port("real", ("B", "C", "H", "W"), tag="image", doc="source images in [0, 1]"),
              "h": Port("complex", ("B", "Nr", "Nt", "..."), tag="csi", optional=True,
                        doc="channel for the MIMO capacity (default: AWGN)")}
    outputs = {"image": Port("real", ("B", "C", "H", "W"), tag="image", doc="JPEG reconstruction"),
               "budget": Port("int", ("B",), doc="bit budget per image"),
               "quality": Port("int", ("B",), doc="JPEG quality used (0 if failed)"),
               "failed": Port("bool", ("B",), tag="mask", doc="no quality fits the budget"),
               "capacity": Port("real", ("B",), doc="bits per channel use")}
    params = {"channel_uses": Param(int, 768, "complex channel uses per example (e.g. data REs "
                                              "N_st * N_sf = 12 * 64)"),
              "streams": Param(int, 1, "parallel AWGN streams (without h)"),
              "users": Param(int, 1, "users sharing the channel uses equally"),
              "snr_db": Param(float, 10.0, "SNR = Es/N0 per receive antenna in dB", runtime=True),
              **_QRANGE, "header": _HEADER}

    def forward(self, image, h=None):
        b = image.shape[0]
        if h is None:
            cap = torch.full((b,), self.p.streams * math.log2(1.0 + 10.0 ** (self.p.snr_db / 10.0)))
        else:
            cap = mimo_capacity(h.detach(), self.p.snr_db).cpu()
        budget = torch.floor(self.p.channel_uses * cap / self.p.users).to(torch.int64)
        out = torch.full(image.shape, FAIL_FILL)
        quality = torch.zeros(b, dtype=torch.int64)
        failed = torch.zeros(b, dtype=torch.bool)
        c, hh, ww = image.shape[1:]
        for i in range(b):
            q, pl = best_quality(_pil(image[i]), int(budget[i]), self.p.header,
                                 self.p.min_quality, self.p.max_quality)
            rec = None if q is None else jpeg_decode_payload(pl, self.p.header, c, (hh, ww))
            if rec is None:
                failed[i] = True
            else:
                out[i], quality[i] = rec, q
        dev = image.device
        return {"image": out.to(dev), "budget": budget.to(dev), "quality": quality.to(dev),
                "failed": failed.to(dev), "capacity": cap.to(dev)}
