"""The separated baselines of seed 002 (CSC-SA-Net, Sec. IV-A): PCA-based analog beams from the
initial CSI (ref. [55]). DMRS, LS estimation and ZF detection reuse the OFDM receiver blocks
(``csirs.ofdm_grid``, ``estimator.ls_ofdm``, ``combiner.zf_ofdm``)."""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import N_USERS, array_params, check_channel, check_positive, user_channel


def principal_phases(r: torch.Tensor, n: int) -> torch.Tensor:
    """Phase-only version of the n principal eigenvectors of Hermitian R (..., M, M):
    exp(j angle(u_i)) as the columns of an (..., M, n) unit-modulus matrix."""
    _, vecs = torch.linalg.eigh(r)                       # ascending eigenvalues
    top = vecs[..., -n:].flip(-1)
    return torch.polar(torch.ones_like(top.real), torch.angle(top))


@register("precoder.pca_hybrid")
class PCAHybrid(Block):
    """PCA-based broadband analog precoding and combining (seed 002 baselines, ref. [55]).

    From the CSI the BS holds, at OFDM symbol ``csi_symbol`` ("perfect initial CSI": the true
    channel of that symbol; or an estimate), over all subcarriers n:

    * UE k: F_RF[k] = exp(j angle(V_k)), V_k the ``streams`` principal eigenvectors of
      sum_n H_k[n]^H H_k[n] (the dominant transmit directions across the band);
    * BS: N_RF,r / K rows per UE, W_RF rows = exp(j angle(U_k))^H, U_k the principal
      eigenvectors of sum_n H_k[n] F_RF[k] F_RF[k]^H H_k[n]^H (each RF chain steered to one
      user); the users' residual interference is left to the digital ZF detector.

    Phase-only matrices: |entries| = 1. No parameters, not differentiable (eigenvectors).

    Shapes: h complex (B, Nr, K*Nt, S, F) -> f1, f2 complex (B, Nt, Ns), w complex (B, N_RF,r, Nr).
    """
    inputs = {"h": Port("complex", ("B", "Nr", "Ntk", "S", "F"), tag="csi",
                        doc="the CSI the BS holds (true channel or an estimate)")}
    outputs = {"f1": Port("complex", ("B", "Nt", "Ns"), tag="csi", doc="UE 1 analog precoder"),
               "f2": Port("complex", ("B", "Nt", "Ns"), tag="csi", doc="UE 2 analog precoder"),
               "w": Port("complex", ("B", "Nrf", "Nr"), tag="csi", doc="BS analog combiner")}
    params = {
        **array_params("bs_antennas", "bs_rf", "ue_antennas", "n_subcarriers"),
        "streams": Param(int, 1, "streams Ns per UE (the separated baselines: 1)"),
        "csi_symbol": Param(int, 8, "OFDM symbol of the initial CSI (the code: the first data symbol L)"),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"Nr": p["bs_antennas"], "Ntk": N_USERS * p["ue_antennas"], "Nt": p["ue_antennas"],
                "F": p["n_subcarriers"], "Ns": p["streams"], "Nrf": p["bs_rf"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        check_positive(self.type_id, p, ("bs_antennas", "bs_rf", "ue_antennas", "n_subcarriers", "streams"))
        if p.bs_rf % N_USERS or p.streams > min(p.ue_antennas, p.bs_rf // N_USERS * p.ue_antennas):
            raise ValueError(f"{self.type_id}: bs_rf must be a multiple of {N_USERS} and streams "
                             f"<= ue_antennas, got bs_rf={p.bs_rf}, streams={p.streams}")

    @torch.no_grad()
    def forward(self, h):
        p = self.p
        check_channel(self.type_id, h, p.bs_antennas, p.ue_antennas, p.n_subcarriers, p.csi_symbol + 1)
        hs = h[:, :, :, p.csi_symbol].to(torch.complex128)                  # (B, Nr, K Nt, F)
        fs, rows = [], []
        for k in range(N_USERS):
            hk = user_channel(hs.unsqueeze(3), k, p.ue_antennas)[:, :, :, 0]   # (B, Nr, Nt, F)
            hk = hk.permute(0, 3, 1, 2)                                     # (B, F, Nr, Nt)
            f = principal_phases((hk.mH @ hk).sum(1), p.streams)            # (B, Nt, Ns)
            g = hk @ f[:, None]                                             # (B, F, Nr, Ns)
            u = principal_phases((g @ g.mH).sum(1), p.bs_rf // N_USERS)     # (B, Nr, rows)
            fs.append(f.to(h.dtype))
            rows.append(u.mH.to(h.dtype))
        return {"f1": fs[0], "f2": fs[1], "w": torch.cat(rows, dim=1)}
