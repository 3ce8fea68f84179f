"""CSI acquisition of seed 001 (Deep JSCBF): hybrid pilots and the learned GMMV-LAMP estimator.

Seed 001 (Sec. IV-B, Table I) estimates every UE's channel from L pilot OFDM symbols with
GMMV-LAMP (Ma, Gao, Gao, Di Renzo, "Model-driven deep learning based channel estimation and
feedback for millimeter-wave massive hybrid MIMO systems", JSAC 2021, seed 001 ref. [49]) and
feeds the estimate to the BS unquantised. The paper gives no further detail; the pilot
scheme and the network follow the authors' notebook (cells 4-5), read in
../shared/specs/seed001.md Sec. 2.3:

* pilots: L OFDM symbols, each through a random hybrid precoder s_l[n] = F_RF,l f_BB,l[n]
  with N_RF RF chains (F_RF unit-modulus random phases, f_BB complex Gaussian per
  subcarrier), fixed once (a seeded buffer saved with the checkpoint), shared by all UEs;
* observation of UE k on subcarrier n: y_k[n] = Phi[n] h_k[n] + z, Phi[n] in C^{L x Nt};
* sparse model: h_k[n] = A g_k[n], A the rho-times oversampled 2D-DFT dictionary of the UPA
  (G = rho^2 Nt columns); the support of g_k[n] is common to all subcarriers (GMMV);
* LAMP (Borgerding, Schniter, Rangan 2017) unrolled over T layers with a learned matrix
  B_t[n] per layer and subcarrier and a learned group Bernoulli-Gaussian shrinkage.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register


def upa_dictionary(ny: int, nz: int, oversample: int, dtype=torch.complex64) -> torch.Tensor:
    """Oversampled 2D-DFT dictionary A (Nt, G) of an Ny x Nz UPA, antenna index n_y Nz + n_z.

    Column (i, j) is exp(j 2 pi (n_y i / (rho Ny) + n_z j / (rho Nz))), unit-modulus entries
    (the steering vectors of eq. 6 on a rho-times finer spatial-frequency grid), G = rho^2 Nt.
    """
    gy, gz = oversample * ny, oversample * nz
    ay = torch.exp(2j * math.pi * torch.arange(ny)[:, None] * torch.arange(gy)[None, :] / gy)
    az = torch.exp(2j * math.pi * torch.arange(nz)[:, None] * torch.arange(gz)[None, :] / gz)
    return torch.kron(ay, az).to(dtype)


@register("csirs.hybrid_pilots")
class HybridPilots(Block):
    """Random hybrid-precoded pilot OFDM symbols for GMMV-LAMP (seed 001 Sec. IV-B, ref. [49];
    the authors' notebook cell 5).

    s_l[n] = F_RF,l f_BB,l[n] for l = 1..L, n = 1..N_c: F_RF,l in C^{Nt x N_RF} with
    unit-modulus entries of uniform random phase, f_BB,l[n] in C^{N_RF} i.i.d. CN(0, 1). Each
    pilot symbol is scaled to sum_n ||s_l[n]||^2 = N_c, i.e. energy 1 per resource element
    summed over the antennas (docs/conventions.md). The pilots are drawn once from ``seed``,
    kept as a buffer (saved in checkpoints) and sent identically to every example and UE.

    Shapes: ref any (B, ...) -> pilots complex (B, Nt, L, F), the same for every b.
    """
    inputs = {"ref": Port("any", ("B", "..."), doc="any batch tensor: gives B and the device")}
    outputs = {"pilots": Port("complex", ("B", "Nt", "L", "F"), tag="symbols",
                              doc="pilot grid: Nt antennas x L pilot OFDM symbols x F subcarriers")}
    params = {"nt": Param(int, 64, "BS antennas Nt (seed 001: 8 x 8 = 64)"),
              "num_pilots": Param(int, 32, "pilot OFDM symbols L (seed 001: 4 to 64)"),
              "n_subcarriers": Param(int, 64, "subcarriers F = N_c (seed 001: 64)"),
              "n_rf": Param(int, 4, "RF chains N_RF of the hybrid pilot precoder (notebook: 4)"),
              "seed": Param(int, 2024, "seed of the pilot draw")}

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["nt"], "L": p["num_pilots"], "F": p["n_subcarriers"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        for k in ("nt", "num_pilots", "n_subcarriers", "n_rf"):
            if p[k] < 1:
                raise ValueError(f"csirs.hybrid_pilots: {k} must be >= 1, got {p[k]}")
        g = torch.Generator().manual_seed(int(p.seed))
        nt, L, nf, nrf = p.nt, p.num_pilots, p.n_subcarriers, p.n_rf
        f_rf = torch.polar(torch.ones(L, nt, nrf), 2 * math.pi * torch.rand(L, nt, nrf, generator=g))
        f_bb = torch.view_as_complex(torch.randn(L, nrf, nf, 2, generator=g)) * math.sqrt(0.5)
        s = f_rf @ f_bb                                                   # (L, Nt, F)
        s = s * (nf / s.abs().square().sum(dim=(1, 2), keepdim=True)).sqrt()
        self.register_buffer("pilots", s.permute(1, 0, 2).contiguous())   # (Nt, L, F)

    def forward(self, ref):
        return {"pilots": self.pilots.to(ref.device).unsqueeze(0).expand(ref.shape[0], -1, -1, -1)}


@register("estimator.gmmv_lamp")
class GMMVLAMP(Block):
    """Learned GMMV-LAMP channel estimator at each UE (seed 001 Sec. IV-B, Table I, ref. [49]).

    Model per UE k (the batch and the UEs are independent problems): on subcarrier n the
    received pilots are y[n] = Phi[n] h[n] + z with Phi[n][l, :] = pilots[:, l, n] (the row
    h of ``channel.sparse_mimo_ofdm``: y = sum_i h_i x_i), h[n] = A g[n] with A the
    oversampled UPA dictionary (``upa_dictionary``, G = rho^2 Nt columns) and g[n] sharing one
    support over the N_c subcarriers. Normalised: Theta[n] = Phi[n] A / sqrt(c L), Y = y /
    sqrt(c L), c = ``theta_scale`` (the notebook's 100/32). With c = 1 the columns of Theta
    have unit norm on average, but the untrained network (AMP) then diverges on these
    ill-conditioned random hybrid pilots and the correlated oversampled dictionary; c ~ 3
    damps its first steps so that training starts from a stable estimate. From X = 0,
    V = Y, each of the T layers computes

        R     = X + B_t[n] V[n]                           (learned B_t[n] in C^{G x L})
        s2    = ||V||^2 / (L N_c)                          (residual variance)
        X     = R * sigmoid(||R_g||^2 / (s2 pi) - psi) / pi,  pi = 1 + s2 / th1,
                psi = N_c ln(1 + th1 / s2) + th2           (group shrinkage, ||R_g||^2 summed over n)
        V[n]  = Y[n] - Theta[n] X[n] + b V[n],  b = sum_g frac_g / L   (Onsager term)

    and the estimate is h_hat[n] = A X[n]. The shrinkage is the posterior mean of a group
    Bernoulli-Gaussian prior (active groups CN(0, th1), prior log-odds -th2) under CN(0, s2)
    noise; the notebook halves both log-likelihood terms (a real-valued form), the complex
    form is exact for these complex observations. Learned per layer: B_t = Theta^H + Delta_t
    (Delta_t starts at 0, so the untrained network is AMP with B = Theta^H, the notebook's
    initialisation) and th = (th1 = |th1_raw|, th2), initialised to (1, 2) as in the notebook.
    ``train_layer`` = t > 0 evaluates layers 1..t only, with layers < t frozen (the
    notebook's layer-wise training: one train stage per t); 0 runs all T layers (joint).

    The pilots are shared by the batch (``csirs.hybrid_pilots``); Theta is built from the
    first example's. Differentiable in y_pilots and in every learned parameter.

    Shapes: y_pilots complex (B, K, L, F), pilots complex (B, Nt, L, F)
            -> h_hat complex (B, K, Nt, 1, F) (static over the OFDM symbols).
    """
    inputs = {"y_pilots": Port("complex", ("B", "K", "L", "F"), tag="symbols",
                               doc="received pilot symbols per UE"),
              "pilots": Port("complex", ("B", "Nt", "L", "F"), tag="symbols", doc="transmitted pilots")}
    outputs = {"h_hat": Port("complex", ("B", "K", "Nt", 1, "F"), tag="csi", doc="channel estimate")}
    params = {"ny": Param(int, 8, "UPA columns N_y (seed 001: 8)"),
              "nz": Param(int, 8, "UPA rows N_z (seed 001: 8)"),
              "num_pilots": Param(int, 32, "pilot OFDM symbols L"),
              "n_subcarriers": Param(int, 64, "subcarriers F = N_c"),
              "oversample": Param(int, 2, "dictionary oversampling rho per UPA dimension (notebook: 2)"),
              "layers": Param(int, 10, "LAMP layers T (notebook: 10)"),
              "theta_scale": Param(float, 3.125, "c in Theta = Phi A / sqrt(c L) (notebook: 100/32); "
                                                 "c > 1 damps the first steps of the untrained network"),
              "train_layer": Param(int, 0, "0: all layers; t > 0: output after layer t, layers < t "
                                           "frozen (layer-wise training)", runtime=True)}

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["ny"] * p["nz"], "L": p["num_pilots"], "F": p["n_subcarriers"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        for k in ("ny", "nz", "num_pilots", "n_subcarriers", "oversample", "layers"):
            if p[k] < 1:
                raise ValueError(f"estimator.gmmv_lamp: {k} must be >= 1, got {p[k]}")
        self.register_buffer("dictionary", upa_dictionary(p.ny, p.nz, p.oversample), persistent=False)
        g, L, nf = self.dictionary.shape[1], p.num_pilots, p.n_subcarriers
        self.delta = nn.ParameterList(nn.Parameter(torch.zeros(nf, g, L, 2)) for _ in range(p.layers))
        self.theta = nn.ParameterList(nn.Parameter(torch.tensor([1.0, 2.0])) for _ in range(p.layers))

    def _theta(self, pilots: torch.Tensor) -> torch.Tensor:
        """Theta[n] = Phi[n] A / sqrt(c L): (F, L, G)."""
        phi = pilots[0].permute(2, 1, 0)                                  # (F, L, Nt)
        return phi.to(self.dictionary.dtype) @ self.dictionary / math.sqrt(self.p.theta_scale * self.p.num_pilots)

    def forward(self, y_pilots, pilots):
        p = self.p
        b, k, L, nf = y_pilots.shape
        if (L, nf) != (p.num_pilots, p.n_subcarriers) or pilots.shape[1:] != (p.ny * p.nz, L, nf):
            raise ValueError(f"estimator.gmmv_lamp: y_pilots {tuple(y_pilots.shape)} / pilots "
                             f"{tuple(pilots.shape)} do not fit L={p.num_pilots}, F={p.n_subcarriers}, "
                             f"Nt={p.ny * p.nz}")
        if b > 1 and not torch.equal(pilots, pilots[:1].expand_as(pilots)):
            raise ValueError("estimator.gmmv_lamp: the pilots differ between examples; "
                             "GMMV-LAMP learns B_t for one fixed pilot grid (csirs.hybrid_pilots)")
        theta = self._theta(pilots)                                       # (F, L, G)
        theta_h = theta.mH                                                # (F, G, L)
        y = y_pilots.reshape(b * k, L, nf).to(theta.dtype) / math.sqrt(p.theta_scale * L)
        x = y.new_zeros(b * k, theta.shape[2], nf)
        v = y
        last = int(p.train_layer) or p.layers
        if not 0 <= int(p.train_layer) <= p.layers:
            raise ValueError(f"estimator.gmmv_lamp: train_layer {p.train_layer} outside 0..{p.layers}")
        for t in range(last):
            frozen = int(p.train_layer) > 0 and t < last - 1
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                x, v = self._layer(t, theta, theta_h, y, x, v)
        h = torch.einsum("ng,bgf->bnf", self.dictionary, x)               # (BK, Nt, F)
        return {"h_hat": h.reshape(b, k, -1, 1, nf).to(y_pilots.dtype)}

    def _layer(self, t, theta, theta_h, y, x, v):
        L, nf = y.shape[1], y.shape[2]
        bmat = theta_h + torch.view_as_complex(self.delta[t])            # (F, G, L)
        r = x + torch.einsum("fgl,blf->bgf", bmat, v)
        s2 = (v.abs().square().sum(dim=(1, 2)) / (L * nf)).clamp_min(1e-10)[:, None, None]
        th1 = self.theta[t][0].abs().clamp_min(1e-6)
        th2 = self.theta[t][1]
        pi = 1.0 + s2 / th1
        psi = nf * torch.log1p(th1 / s2) + th2
        energy_g = r.abs().square().sum(dim=2, keepdim=True)             # (BK, G, 1)
        frac = torch.sigmoid(energy_g / (s2 * pi) - psi) / pi
        x = r * frac
        onsager = frac.sum(dim=1, keepdim=True) / L                      # (BK, 1, 1)
        v = y - torch.einsum("flg,bgf->blf", theta, x) + onsager * v
        return x, v

