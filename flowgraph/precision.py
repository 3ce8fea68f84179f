"""Mixed-precision training (``--amp bf16|fp16``): autocast, the fp16 grad scaler, and the
blocks that stay in fp32.

Training frames run under ``torch.autocast`` with the chosen dtype (matrix products and
convolutions in bf16/fp16, reductions in fp32: torch's own op lists). Evaluation always
runs in fp32, so reported metrics do not depend on ``--amp``.

**Blocks that keep fp32:** every block with a complex-valued port (channels, modulators,
precoders, equalisers, estimators, OFDM and MIMO blocks, Sionna wrappers, rate sinks),
except the learned codecs (stages ``extractor`` and ``decoder``). There is no bf16 complex
dtype and complex matrix algebra in half precision loses the SNRs these blocks work at,
so the scheduler runs them with autocast off and their half-precision inputs cast back to
float32 (:meth:`flowgraph.scheduler.Scheduler.forward`). Codecs have complex symbols at
their ports but real networks inside: they run under autocast, with :class:`ComplexFromFp32`
forming their complex symbols from float32. The rule follows the declared ports and the
stage, so new blocks are covered without a list to maintain.

``fp16`` adds a ``torch.amp.GradScaler``: the loss is scaled before backward, gradients
are unscaled before clipping, and steps whose gradients overflow are skipped by the scaler
(so the non-finite gradient check is left to it). ``bf16`` needs no scaler.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.overrides import TorchFunctionMode

from .errors import SemflowError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
HALF = (torch.bfloat16, torch.float16)


def check_amp(amp: str | None) -> str | None:
    """``None`` / ``""`` / ``"off"``: full precision; else ``bf16`` or ``fp16`` (one-line error otherwise)."""
    if amp in (None, "", "off", "none", "fp32"):
        return None
    if amp not in AMP_DTYPES:
        raise SemflowError(f"--amp {amp}: unknown precision (use bf16 or fp16)")
    return amp


def autocast(amp: str | None, device: torch.device):
    """The autocast region of one training frame (nothing when ``amp`` is off)."""
    if amp is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(amp: str | None, device: torch.device):
    """A GradScaler for fp16, else None."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None


#: learned codecs: complex symbols at their ports, real networks inside (run in half precision)
CODEC_STAGES = ("extractor", "decoder")


def has_complex_port(cls) -> bool:
    ports = list(cls.inputs.values()) + list(cls.outputs.values())
    return any(p.kind == "complex" for p in ports)


def keeps_fp32(cls, type_id: str = "") -> bool:
    """Blocks with a complex port run outside autocast, except learned codecs (see the module docstring)."""
    return has_complex_port(cls) and type_id.split(".", 1)[0] not in CODEC_STAGES


def is_half_codec(cls, type_id: str) -> bool:
    """A learned codec with complex ports: autocast inside, complex values formed from fp32."""
    return has_complex_port(cls) and type_id.split(".", 1)[0] in CODEC_STAGES


class ComplexFromFp32(TorchFunctionMode):
    """Inside a codec under autocast: ``view_as_complex`` / ``complex`` / ``polar`` get their
    half-precision inputs as float32 (there is no bf16 complex dtype), so a network's real
    output becomes complex64 symbols; everything else keeps autocast's dtypes."""
    FORMERS = {torch.view_as_complex, torch.complex, torch.polar}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FORMERS:
            args = tuple(a.float() if torch.is_tensor(a) and a.dtype in HALF else a for a in args)
        return func(*args, **kwargs)


def to_fp32(kwargs: dict) -> dict:
    return {k: (v.float() if torch.is_tensor(v) and v.dtype in HALF else v) for k, v in kwargs.items()}
