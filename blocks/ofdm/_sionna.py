"""Shared helpers of the OFDM blocks: lazy Sionna import, per-device object caches and the
deterministic resource grid that ``csirs.ofdm_grid``, ``estimator.ls_ofdm`` and
``combiner.lmmse_ofdm`` must agree on.
"""
from __future__ import annotations

import functools
import math

import torch

#: pilot OFDM symbol indices of seed 003, Table II
DEFAULT_PILOT_SYMBOLS = [2, 11]


def noise_var(snr_db: float) -> float:
    """N0 = 10^(-SNR/10) for unit symbol energy (DESIGN.md)."""
    return 10.0 ** (-float(snr_db) / 10.0)


def sionna_device(device) -> str:
    """torch device -> the device string Sionna objects are built for ('cpu', 'cuda:0', ...)."""
    device = torch.device(device)
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{idx}"
    return device.type


def sionna_state_safe(fn):
    """Run a forward that touches Sionna objects with inference mode off (grad still off).

    Sionna objects keep tensors between calls (built buffers, the UMi/UMa/RMa topology that
    ``set_topology`` updates in place). Created under ``torch.inference_mode`` they would be
    inference tensors, and a later training step would fail ("Inference tensors cannot be
    saved for backward" / "Inplace update to inference tensor outside InferenceMode"). Under
    inference mode the wrapped call therefore runs in ``inference_mode(False)`` + ``no_grad``;
    outputs are ordinary tensors, which inference-mode callers accept.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False), torch.no_grad():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)
    return wrapper


class DeviceCache:
    """Builds Sionna objects lazily for each device they are used on.

    Sionna objects fix their device at construction, so ``Block.to(device)`` cannot move
    them; blocks instead ask this cache for the objects of the input's device. The cache is
    a plain dict attribute (not a submodule): nothing of it enters ``state_dict``.
    """

    def __init__(self, builder):
        self._builder = builder
        self._objs: dict[str, object] = {}

    @sionna_state_safe
    def get(self, device):
        key = sionna_device(device)
        objs = self._objs.get(key)
        if objs is None:
            objs = self._objs[key] = self._builder(key)
        return objs

    def clear(self):
        self._objs.clear()


def grid_cache(block) -> DeviceCache:
    """The per-device Sionna cache of a resource-grid block, built once on the CPU now so
    that a bad grid (no data REs, pilot pattern) fails at construction, naming the block."""
    num_data(block.p)
    cache = DeviceCache(block._build)
    cache.get("cpu")
    return cache


def pilot_tensors(n_streams: int, n_symbols: int, n_subcarriers: int, pilot_symbols,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask (1, Nt, S, F) bool and pilots (1, Nt, P) complex64 of a Kronecker-style pattern.

    Same structure as Sionna's ``KroneckerPilotPattern`` (OFDM symbols ``pilot_symbols``
    carry pilots; stream j uses subcarriers f = j mod Nt, the others are zero so the streams'
    pilots are orthogonal), but the QPSK values come from a private ``torch.Generator`` seeded
    with ``seed`` instead of Sionna's global RNG, so every block that builds the grid with
    the same params gets the same pilots. Sionna normalizes them (``normalize=True``) to
    average energy 1 per stream over each pilot OFDM symbol, i.e. |p|^2 = Nt where nonzero.
    """
    pilot_symbols = sorted(int(i) for i in pilot_symbols)
    if len(set(pilot_symbols)) != len(pilot_symbols):
        raise ValueError(f"pilot_symbols has duplicates: {pilot_symbols}")
    for i in pilot_symbols:
        if not 0 <= i < n_symbols:
            raise ValueError(f"pilot symbol index {i} outside 0..{n_symbols - 1}")
    if len(pilot_symbols) >= n_symbols:
        raise ValueError("every OFDM symbol is a pilot symbol: no data REs are left")
    if pilot_symbols and n_subcarriers % n_streams:
        raise ValueError(f"n_subcarriers={n_subcarriers} must be a multiple of the number of "
                         f"streams {n_streams} (orthogonal comb pilots)")
    mask = torch.zeros(1, n_streams, n_symbols, n_subcarriers, dtype=torch.bool)
    mask[:, :, pilot_symbols, :] = True
    g = torch.Generator().manual_seed(int(seed))
    npil = len(pilot_symbols)
    pil = torch.zeros(1, n_streams, npil, n_subcarriers, dtype=torch.complex64)
    per = n_subcarriers // n_streams if pilot_symbols else 0
    for j in range(n_streams):
        bits = torch.randint(0, 2, (2, npil, per), generator=g).float() * 2 - 1
        pil[0, j, :, j::n_streams] = torch.complex(bits[0], bits[1]) / math.sqrt(2.0)
    return mask, pil.reshape(1, n_streams, npil * n_subcarriers)


def build_resource_grid(device: str, n_symbols: int, n_subcarriers: int, n_streams: int,
                        pilot_symbols, subcarrier_spacing: float, cyclic_prefix: int,
                        pilot_seed: int):
    """A Sionna ``ResourceGrid`` (1 transmitter, ``n_streams`` streams) with our pilot pattern."""
    from sionna.phy.ofdm import PilotPattern, ResourceGrid

    common = dict(num_ofdm_symbols=n_symbols, fft_size=n_subcarriers,
                  subcarrier_spacing=subcarrier_spacing, num_tx=1,
                  num_streams_per_tx=n_streams, cyclic_prefix_length=cyclic_prefix,
                  device=device)
    if not list(pilot_symbols):
        return ResourceGrid(pilot_pattern="empty", **common)
    mask, pil = pilot_tensors(n_streams, n_symbols, n_subcarriers, pilot_symbols, pilot_seed)
    pp = PilotPattern(mask, pil, normalize=True, device=device)
    return ResourceGrid(pilot_pattern=pp, **common)


def data_indices(rg) -> torch.Tensor:
    """Flat (S*F) indices of the data REs of stream 0, in resource-grid order."""
    mask = rg.pilot_pattern.mask[0, 0].reshape(-1)
    return torch.nonzero(mask == 0, as_tuple=False).squeeze(-1)


def grid_params(defaults_streams: int = 4) -> dict:
    """The params every block that shares the resource grid declares (same names/defaults)."""
    from flowgraph.block import Param
    return {
        "n_symbols": Param(int, 14, "OFDM symbols per slot S (seed 003 Table II: 14)"),
        "n_subcarriers": Param(int, 64, "subcarriers F (seed 003 N_f in {32, 64, 128})"),
        "n_streams": Param(int, defaults_streams,
                           "streams / Tx antennas Nt that carry pilots (seed 003: N_m = 4)"),
        "pilot_symbols": Param(list, list(DEFAULT_PILOT_SYMBOLS),
                               "pilot OFDM symbol indices (seed 003 Table II: [2, 11])"),
        "subcarrier_spacing": Param(float, 15e3, "subcarrier spacing [Hz] (seed 003: 15 kHz)"),
        "cyclic_prefix": Param(int, 20, "cyclic prefix length [samples] (seed 003: 20)"),
        "pilot_seed": Param(int, 0, "seed of the QPSK pilot values; must match across the "
                                    "grid, estimator and combiner blocks"),
    }


def num_data(p) -> int:
    return (int(p["n_symbols"]) - len(p["pilot_symbols"])) * int(p["n_subcarriers"])


def grid_from_params(p, device: str, n_streams: int | None = None):
    return build_resource_grid(device, int(p["n_symbols"]), int(p["n_subcarriers"]),
                               int(n_streams if n_streams is not None else p["n_streams"]),
                               p["pilot_symbols"], float(p["subcarrier_spacing"]),
                               int(p["cyclic_prefix"]), int(p["pilot_seed"]))
