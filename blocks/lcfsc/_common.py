"""Helpers shared by the LCFSC blocks (seed 000): CSI as real channels."""
from __future__ import annotations

import torch


def csi_channels(h: torch.Tensor) -> torch.Tensor:
    """Complex CSI (B, Nr, Nt) -> real (B, 2, Nr, Nt): real and imaginary parts as channels."""
    if not h.is_complex():
        raise ValueError(f"expected complex CSI (B, Nr, Nt), got dtype {h.dtype}")
    return torch.stack((h.real, h.imag), dim=1)
