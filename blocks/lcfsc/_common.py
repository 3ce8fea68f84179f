"""Helpers shared by the LCFSC blocks (seed 000): CSI as real channels, warm starts."""
from __future__ import annotations

from pathlib import Path

import torch

from flowgraph.block import Param


def csi_channels(h: torch.Tensor) -> torch.Tensor:
    """Complex CSI (B, Nr, Nt) -> real (B, 2, Nr, Nt): real and imaginary parts as channels."""
    if not h.is_complex():
        raise ValueError(f"expected complex CSI (B, Nr, Nt), got dtype {h.dtype}")
    return torch.stack((h.real, h.imag), dim=1)


#: params every trainable LCFSC block accepts: initialise from a run's checkpoint
INIT_PARAMS = {
    "init_ckpt": Param(str, "", "warm start: a semflow checkpoint (e.g. <run>/checkpoints/last.pt); "
                                "'' keeps the random initialisation"),
    "init_block": Param(str, "", "name of the block inside init_ckpt whose weights to copy "
                                 "(required when init_ckpt is set; it may differ from this block's name)"),
}


def maybe_init(module: torch.nn.Module, p, where: str) -> None:
    """Load ``module``'s state from block ``p.init_block`` of checkpoint ``p.init_ckpt``.

    Seed 000 (Sec. IV-A, eq. 13) takes the proxy encoder's weights "from the latest trained
    CFSC encoder with the stable mask ratio m": graphs/lcfsc.yaml points its proxy blocks at
    a graphs/cfsc.yaml run this way. Keys are matched exactly; a missing or extra key is an
    error naming the first few.
    """
    path = p.get("init_ckpt", "")
    if not path:
        return
    name = p.get("init_block", "")
    if not name:
        raise ValueError(f"{where}: init_ckpt is set but init_block (the block to copy) is empty")
    if not Path(path).is_file():
        raise ValueError(f"{where}: init_ckpt {path!r} is not a file")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("blocks", ckpt)
    prefix = f"blocks.{name.replace('/', '__')}."
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not sub:
        raise ValueError(f"{where}: checkpoint {path!r} holds no block named {name!r}")
    own = module.state_dict()
    missing = [k for k in own if k not in sub]
    unexpected = [k for k in sub if k not in own]
    wrong = [k for k in sub if k in own and tuple(sub[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError(f"{where}: block {name!r} of {path!r} does not fit: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}, other shape {wrong[:4]}")
    module.load_state_dict(sub)
