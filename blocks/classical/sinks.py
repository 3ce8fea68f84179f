"""Sinks of the classical baseline: BER, BLER, and PSNR with seed 003's failure rule."""
from __future__ import annotations

import torch

from flowgraph.block import Param, Port, Sink
from flowgraph.registry import register

#: same floor as ``sink.psnr``: identical images score 100 dB, not inf
MSE_FLOOR = 1e-10

_BITS = {"bits": Port("real", ("B", "..."), tag="bits", doc="transmitted 0/1 bits"),
         "bits_hat": Port("real", ("B", "..."), tag="bits", doc="decided bits (> 0.5 means 1)")}


def _errors(where, bits, bits_hat):
    if bits.shape != bits_hat.shape:
        raise ValueError(f"{where}: bits {tuple(bits.shape)} and bits_hat "
                         f"{tuple(bits_hat.shape)} differ")
    return ((bits > 0.5) != (bits_hat > 0.5)).reshape(bits.shape[0], -1)


@register("sink.ber")
class BER(Sink):
    """Bit error rate per example: the fraction of bits with bits_hat != bits.

    Reference curve: uncoded QPSK on AWGN has BER = Q(sqrt(2 Eb/N0)) (Proakis, Digital
    Communications, eq. 4.3-13), checked in tests/test_classical_coding.py.

    Shapes: bits real (B, ...), bits_hat real (B, ...) same shape -> value real (B,).
    """
    inputs = dict(_BITS)
    higher_is_better = False
    scale = "log"
    proportion = True

    def forward(self, bits, bits_hat):
        return {"value": _errors("sink.ber", bits, bits_hat).float().mean(dim=1)}


@register("sink.bler")
class BLER(Sink):
    """Block error rate per example: the fraction of blocks with at least one bit error.

    block_len = 0: all bits of an example form one block (one LDPC codeword or one image
    transport block, as seed 003's Fig. 7); block_len > 0: the example's flattened bits are
    cut into blocks of that length (it must divide them).

    Shapes: bits real (B, ...), bits_hat real (B, ...) same shape -> value real (B,).
    """
    inputs = dict(_BITS)
    params = {"block_len": Param(int, 0, "bits per block; 0: one block per example")}
    higher_is_better = False
    scale = "log"
    proportion = True

    def forward(self, bits, bits_hat):
        err = _errors("sink.bler", bits, bits_hat)
        n = err.shape[1] if self.p.block_len <= 0 else int(self.p.block_len)
        if err.shape[1] % n:
            raise ValueError(f"sink.bler: block_len {n} does not divide {err.shape[1]} bits")
        return {"value": err.reshape(err.shape[0], -1, n).any(dim=2).float().mean(dim=1)}


@register("sink.psnr_sscc")
class PSNRSSCC(Sink):
    """PSNR per image with seed 003's failure rule (Sec. IV): a failed transmission scores 0 dB.

    PSNR_b = 10 log10(max_val^2 / MSE_b) on clamp(pred, 0, max_val) (as ``sink.psnr``, MSE
    floored at 1e-10 max_val^2), replaced by exactly 0 dB where ``failed`` is true ("the
    transmission is considered a failure, and the PSNR is recorded as 0 dB"). Averaging the
    per-image values then gives seed 003's average PSNR, whose value is pulled towards 0 by the
    failure rate. Unconnected ``failed`` makes it equal to ``sink.psnr``.

    Shapes: pred real (B, ...), target real (B, ...) same shape, failed bool (B,) optional
            -> value real (B,) in dB.
    """
    inputs = {"pred": Port("real", ("B", "..."), tag="image", doc="reconstruction"),
              "target": Port("real", ("B", "..."), tag="image", doc="reference"),
              "failed": Port("bool", ("B",), tag="mask", optional=True, doc="transmission failed")}
    params = {"max_val": Param(float, 1.0, "peak signal value (1.0 for images in [0, 1])")}
    unit = "dB"
    higher_is_better = True

    def forward(self, pred, target, failed=None):
        if pred.shape != target.shape:
            raise ValueError(f"sink.psnr_sscc: pred {tuple(pred.shape)} and target "
                             f"{tuple(target.shape)} differ")
        m = self.p.max_val
        mse = ((pred.clamp(0.0, m) - target) ** 2).reshape(pred.shape[0], -1).mean(dim=1)
        psnr = 10.0 * torch.log10((m * m) / mse.clamp_min(MSE_FLOOR * m * m))
        if failed is not None:
            psnr = torch.where(failed.reshape(-1).to(psnr.device), torch.zeros_like(psnr), psnr)
        return {"value": psnr}
