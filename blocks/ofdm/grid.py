"""OFDM resource grid: data symbols + pilots -> grid, and grid -> data symbols (Sionna).

Seed 003, Sec. III-A / Fig. 5: the encoder output is "mapped onto the OFDM resource grid,
where ... known pilot symbols Y_p ... are explicitly inserted at predefined locations", and
the decoder consumes "a sparse reference pilot tensor Y_p, which contains the known
transmitted symbols at allocated subcarriers and zeros at data positions" (Sec. III-C).
Pilot OFDM symbols [2, 11] are Table II's.
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Port
from flowgraph.registry import register

from ._sionna import (data_indices, grid_cache, grid_from_params, grid_params, num_data,
                      sionna_state_safe)


def _grid_dims(p) -> dict:
    return {"S": int(p["n_symbols"]), "F": int(p["n_subcarriers"]), "D": num_data(p)}


@register("csirs.ofdm_grid")
class OFDMGrid(Block):
    """Map data symbols and pilots onto an OFDM resource grid (seed 003, Sec. III-A, Fig. 5).

    Thin wrapper of Sionna's ``ResourceGrid`` + ``ResourceGridMapper`` with one transmitter
    and Nt = ``n_streams`` streams. OFDM symbols ``pilot_symbols`` (Table II: [2, 11]) carry
    orthogonal comb pilots (stream j on subcarriers f = j mod Nt, QPSK, |p|^2 = Nt so each
    stream has average energy 1 per pilot OFDM symbol); every other RE carries data, filled
    in resource-grid order (OFDM symbol-major, subcarriers fastest). The pilot values depend
    only on the grid params (``pilot_seed``), so ``estimator.ls_ofdm`` and
    ``combiner.lmmse_ofdm`` with the same params know them.

    ``pilot_ref`` is seed 003's sparse reference tensor Y_p: the known pilots at pilot REs and
    zeros at data REs (a batch-broadcast view; identical for every example).

    Differentiable in ``data`` (a scatter).

    Shapes: data complex (B, Nt, D), D = (S - len(pilot_symbols)) * F
            -> x complex (B, Nt, S, F), pilot_ref complex (B, Nt, S, F).
    """
    inputs = {"data": Port("complex", ("B", "Nt", "D"), tag="symbols", doc="data symbols per stream")}
    outputs = {"x": Port("complex", ("B", "Nt", "S", "F"), tag="symbols", doc="resource grid"),
               "pilot_ref": Port("complex", ("B", "Nt", "S", "F"), tag="symbols",
                                 doc="known pilots at pilot REs, zeros at data REs (Y_p)")}
    params = grid_params()

    def __init__(self, **params):
        super().__init__(**params)
        self._sn = grid_cache(self)

    @classmethod
    def bind_dims(cls, p):
        return {**_grid_dims(p), "Nt": int(p["n_streams"])}

    def _build(self, device):
        from sionna.phy.ofdm import ResourceGridMapper
        rg = grid_from_params(self.p, device)
        mapper = ResourceGridMapper(rg, device=device)
        nt = int(self.p.n_streams)
        ref = mapper(torch.zeros(1, 1, nt, rg.num_data_symbols, dtype=torch.complex64,
                                 device=device))[:, 0]           # (1, Nt, S, F)
        return {"rg": rg, "mapper": mapper, "ref": ref}

    @sionna_state_safe
    def forward(self, data):
        objs = self._sn.get(data.device)
        b, nt, d = data.shape
        if nt != self.p.n_streams or d != objs["rg"].num_data_symbols:
            raise ValueError(f"csirs.ofdm_grid: data {tuple(data.shape)} does not fit (B, "
                             f"{self.p.n_streams}, {objs['rg'].num_data_symbols})")
        x = objs["mapper"](data.to(torch.complex64).unsqueeze(1))[:, 0]
        ref = objs["ref"].expand(b, -1, -1, -1)
        return {"x": x, "pilot_ref": ref}


@register("csirs.ofdm_extract")
class OFDMExtract(Block):
    """Extract the data REs of an OFDM grid (inverse of ``csirs.ofdm_grid``; seed 003 Sec. III-C).

    Seed 003's receiver "removes the pilot to output the refined semantic features" (Sec. II):
    this block gathers the REs that ``csirs.ofdm_grid`` with the same params filled with data,
    in the same order, so ``ofdm_extract(ofdm_grid(d).x) == d``. It works on any number N of
    rows (Tx streams, UEs, or Rx antennas), because every stream has its data on the same REs
    (the pilot OFDM symbols are excluded as a whole). Differentiable (a gather).

    Shapes: x complex (B, N, S, F) -> data complex (B, N, D), D = (S - len(pilot_symbols)) * F.
    """
    inputs = {"x": Port("complex", ("B", "N", "S", "F"), tag="symbols", doc="resource grid")}
    outputs = {"data": Port("complex", ("B", "N", "D"), tag="symbols", doc="data REs")}
    params = grid_params()

    def __init__(self, **params):
        super().__init__(**params)
        self._sn = grid_cache(self)

    @classmethod
    def bind_dims(cls, p):
        return _grid_dims(p)

    def _build(self, device):
        rg = grid_from_params(self.p, device)
        return {"idx": data_indices(rg).to(device)}

    @sionna_state_safe
    def forward(self, x):
        s, f = int(self.p.n_symbols), int(self.p.n_subcarriers)
        if tuple(x.shape[-2:]) != (s, f):
            raise ValueError(f"csirs.ofdm_extract: grid {tuple(x.shape)} does not end in "
                             f"(S, F) = ({s}, {f})")
        idx = self._sn.get(x.device)["idx"]
        return {"data": x.reshape(*x.shape[:-2], s * f).index_select(-1, idx)}
