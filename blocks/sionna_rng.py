"""Registers Sionna's own RNGs with the engine so runs seed, save and restore them.

Sionna keeps Python, NumPy and torch generators in ``sionna.phy.config`` (topologies,
ray parameters, some noise). Sionna is heavy to import, so nothing here imports it: if
no block of the run has loaded Sionna, there is nothing to seed or save.
"""
import sys

import torch

from flowgraph.rng import register_rng


def _config():
    mod = sys.modules.get("sionna.phy.config")
    return getattr(mod, "config", None) if mod is not None else None


def _seed(seed: int) -> None:
    cfg = _config()
    if cfg is not None:
        cfg.seed = int(seed)


def _get_state():
    cfg = _config()
    if cfg is None:
        return None
    return {"py": cfg.py_rng.getstate(), "np": cfg.np_rng.bit_generator.state,
            "torch": {dev: g.get_state() for dev, g in cfg._torch_rngs.items()}}


def _set_state(state) -> None:
    cfg = _config()
    if cfg is None or not state:
        return
    py = state["py"]
    cfg.py_rng.setstate((py[0], tuple(py[1]), py[2]))
    cfg.np_rng.bit_generator.state = state["np"]
    for dev, s in state["torch"].items():
        cfg.torch_rng(dev).set_state(s if torch.is_tensor(s) else torch.tensor(s, dtype=torch.uint8))


register_rng("sionna", _seed, _get_state, _set_state)
