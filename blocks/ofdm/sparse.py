"""Sparse multipath massive-MIMO OFDM channel of seeds 001 and 002, written in torch.

Seed 001 (airship-borne massive MIMO, downlink, K single-antenna UEs), eqs. (3), (5), (6):
    y[k,q,n] = h^H[k,n] x[q,n] + z,
    h[k,n]   = 1/sqrt(L) sum_l alpha_lk a_t(theta_lk, phi_lk) exp(-j 2 pi n tau_lk / (Nc Ts)),
    a_t      = [exp(j pi (n_y sin(theta) cos(phi) + n_z sin(phi)))]  (half-wavelength Ny x Nz UPA)
    alpha ~ CN(0, 1), theta ~ U[-pi, pi], phi ~ U[0, pi/4]; static over OFDM symbols.
    The authors' notebook (seed001.md Sec. 6, rows 6-7) draws both angles from U[0, 2 pi) and
    drops the 1/sqrt(L): ``angles: code`` and ``path_norm: false`` reproduce its channels.
Seed 002 (uplink, K UEs with Nu-antenna ULAs, BS with an Nr-antenna ULA), eqs. (3), (6)-(8):
    y[q,n]   = sum_k H[k,q,n] s[k,q,n] + n,
    H[k,q,n] = 1/sqrt(L) sum_l alpha a_r(theta_r) a_t^H(theta_t) exp(-j 2 pi n tau / (Nc Ts))
                                                                  exp(j 2 pi f_d q T_I),
    a(theta) = 1/sqrt(N) [exp(j pi i sin(theta))]_i  (half-wavelength ULA), 28 GHz,
    UE speeds uniform in 0-120 km/h.
Not stated by the seeds and chosen here: delays tau/Ts ~ U[0, max_delay] samples; Doppler
f_d = (v / lambda) cos(psi) with psi ~ U[-pi, pi] per path; T_I = (F + cp) / (F spacing).
"""
from __future__ import annotations

import math

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._sionna import noise_var

_C = 299_792_458.0


def _cn(shape, g_like_device, dtype=torch.float32):
    ab = torch.randn(*shape, 2, dtype=dtype, device=g_like_device)
    return torch.view_as_complex(ab) * math.sqrt(0.5)


def _uniform(shape, lo, hi, device):
    return torch.rand(*shape, device=device) * (hi - lo) + lo


@register("channel.sparse_mimo_ofdm")
class SparseMimoOFDM(Block):
    """Sparse multipath massive-MIMO OFDM channel (seed 001 eqs. 5-6; seed 002 eqs. 6-8).

    One layout for both models (the OFDM family's, see ``blocks.ofdm``), with generic
    receive rows Nr and transmit columns Nt:

      model = "seed001": downlink. Nt = bs_ny * bs_nz BS antennas (UPA, antenna index
              n_y * bs_nz + n_z), Nr = K = n_users single-antenna UEs; h[b, k, :, s, f] is the
              row h^H[k, n] of eq. (3), constant over the S OFDM symbols (returned as a
              broadcast view along S).
      model = "seed002": uplink. Nt = K * ue_antennas (the UEs' antennas stacked user-major:
              column k * Nu + u), Nr = bs_antennas; h[b, :, k*Nu:(k+1)*Nu, s, f] = H[k, s, f]
              of eq. (6), time-varying through per-path Doppler.

    y = sum_n h[:, :, n] x[:, n] + CN(0, N0), N0 = 10^(-snr_db/10). ``normalize`` (default)
    scales each example's per-user channel to mean |h|^2 = 1 over its entries (unit gain per
    link, as the 38.901 blocks); ``normalize: false`` keeps the equations' own scaling
    (seed 001: unit-modulus steering entries, E|h|^2 = 1; seed 002: 1/sqrt(N) steering
    vectors, E|h|^2 = 1/(Nr Nu)). Seed 001 options: ``angles`` (the paper's ranges or the
    authors' notebook's) and ``path_norm`` (the 1/sqrt(L) of eq. 5, which the notebook
    drops). Random draws use the global torch RNG. Differentiable in x.

    Shapes: x complex (B, Nt, S, F) -> y complex (B, Nr, S, F), h complex (B, Nr, Nt, S, F).
    """
    inputs = {"x": Port("complex", ("B", "Nt", "S", "F"), tag="symbols",
                        doc="transmit grid; total energy 1 per RE summed over Nt")}
    outputs = {"y": Port("complex", ("B", "Nr", "S", "F"), tag="symbols", doc="received grid"),
               "h": Port("complex", ("B", "Nr", "Nt", "S", "F"), tag="csi", doc="channel per RE")}
    params = {
        "model": Param(str, "seed001", "seed001 (downlink UPA, static) or seed002 (uplink ULAs, "
                                       "Doppler)", choices=("seed001", "seed002")),
        "n_users": Param(int, 4, "users K (seed 001: 4; seed 002: 2)"),
        "n_paths": Param(int, 2, "paths L per user (seed 001: 2)"),
        "bs_ny": Param(int, 8, "seed001: UPA columns N_y (8 x 8 in seed 001)"),
        "bs_nz": Param(int, 8, "seed001: UPA rows N_z"),
        "bs_antennas": Param(int, 64, "seed002: BS ULA antennas N_r (seed 002: 64)"),
        "ue_antennas": Param(int, 8, "seed002: antennas per UE ULA N_t (seed 002: 8)"),
        "n_subcarriers": Param(int, 64, "subcarriers F = N_c (seed 001: 64; seed 002: 100)"),
        "n_symbols": Param(int, 14, "OFDM symbols S = Q"),
        "max_delay": Param(float, 16.0, "path delays tau/Ts uniform in [0, max_delay] samples"),
        "carrier_frequency": Param(float, 28e9, "carrier [Hz] for the Doppler (seed 002: 28 GHz)"),
        "subcarrier_spacing": Param(float, 60e3, "subcarrier spacing [Hz] (T_I = (F+cp)/(F*spacing); "
                                                 "not stated by the seeds)"),
        "cyclic_prefix": Param(int, 0, "cyclic prefix [samples], only lengthens T_I"),
        "min_speed_kmh": Param(float, 0.0, "seed002: minimum UE speed [km/h]"),
        "max_speed_kmh": Param(float, 120.0, "seed002: maximum UE speed [km/h] (seed 002: 120)"),
        "snr_db": Param(float, 10.0, "SNR = Es/N0 per receive antenna in dB; N0 = 10^(-snr_db/10)",
                        runtime=True),
        "add_noise": Param(bool, True, "add CN(0, N0) noise"),
        "normalize": Param(bool, True, "unit average gain per example and user"),
        "angles": Param(str, "paper", "seed001: paper (theta ~ U[-pi, pi], phi ~ U[0, pi/4]) or code "
                                      "(the authors' notebook: both U[0, 2 pi))", choices=("paper", "code")),
        "path_norm": Param(bool, True, "seed001: the 1/sqrt(L) of eq. 5 (false: the notebook's "
                                       "channel, E|h|^2 = L)"),
    }
    channel_input = "x"

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        for k in ("n_users", "n_paths", "bs_ny", "bs_nz", "bs_antennas", "ue_antennas",
                  "n_subcarriers", "n_symbols"):
            if p[k] < 1:
                raise ValueError(f"channel.sparse_mimo_ofdm: {k} must be >= 1, got {p[k]}")
        if p.max_delay < 0 or not 0 <= p.min_speed_kmh <= p.max_speed_kmh:
            raise ValueError("channel.sparse_mimo_ofdm: need max_delay >= 0 and "
                             "0 <= min_speed_kmh <= max_speed_kmh")

    @classmethod
    def _dims(cls, p) -> tuple[int, int]:
        if p["model"] == "seed001":
            return int(p["n_users"]), int(p["bs_ny"]) * int(p["bs_nz"])
        return int(p["bs_antennas"]), int(p["n_users"]) * int(p["ue_antennas"])

    @classmethod
    def bind_dims(cls, p):
        nr, nt = cls._dims(p)
        return {"Nr": nr, "Nt": nt, "S": int(p["n_symbols"]), "F": int(p["n_subcarriers"])}

    def sample_h(self, batch: int, device="cpu") -> torch.Tensor:
        """Draw a channel (B, Nr, Nt, S, F), complex64."""
        if self.p.model == "seed001":
            return self._seed001(batch, device)
        return self._seed002(batch, device)

    def _delay_phase(self, shape, device):
        """exp(-j 2 pi f tau/(F Ts)) for f = 0..F-1: [..., F]."""
        f = int(self.p.n_subcarriers)
        d = _uniform(shape, 0.0, float(self.p.max_delay), device)
        fi = torch.arange(f, device=device, dtype=torch.float32)
        return torch.polar(torch.ones((), device=device), -2 * math.pi * d.unsqueeze(-1) * fi / f)

    def _seed001(self, b, device):
        p = self.p
        k, L, ny, nz, s = int(p.n_users), int(p.n_paths), int(p.bs_ny), int(p.bs_nz), int(p.n_symbols)
        alpha = _cn((b, k, L), device)
        if p.angles == "paper":
            theta = _uniform((b, k, L), -math.pi, math.pi, device)
            phi = _uniform((b, k, L), 0.0, math.pi / 4, device)
        else:                                          # notebook cell 2: fait, theatt ~ U[0, 2 pi)
            theta = _uniform((b, k, L), 0.0, 2 * math.pi, device)
            phi = _uniform((b, k, L), 0.0, 2 * math.pi, device)
        iy = torch.arange(ny, device=device, dtype=torch.float32)
        iz = torch.arange(nz, device=device, dtype=torch.float32)
        # eq. (6) with d = lambda/2: phase pi (n_y sin(theta) cos(phi) + n_z sin(phi))
        ph = (iy[:, None] * (torch.sin(theta) * torch.cos(phi))[..., None, None]
              + iz[None, :] * torch.sin(phi)[..., None, None])                  # [b,k,L,ny,nz]
        a = torch.polar(torch.ones((), device=device), math.pi * ph).reshape(b, k, L, ny * nz)
        e = self._delay_phase((b, k, L), device)                                # [b,k,L,F]
        h = torch.einsum("bkl,bkln,bklf->bknf", alpha, a, e)                  # eq. (5)
        if p.path_norm:
            h = h / math.sqrt(L)
        h = h.conj()                                   # row h^H[k, n] of eq. (3)
        if p.normalize:
            h = h / h.abs().square().mean(dim=(2, 3), keepdim=True).clamp_min(1e-30).sqrt()
        return h.unsqueeze(3).expand(b, k, ny * nz, s, int(p.n_subcarriers))

    def _seed002(self, b, device):
        p = self.p
        k, L, s = int(p.n_users), int(p.n_paths), int(p.n_symbols)
        nr, nu = int(p.bs_antennas), int(p.ue_antennas)
        f = int(p.n_subcarriers)
        alpha = _cn((b, k, L), device)
        th_t = _uniform((b, k, L), -math.pi, math.pi, device)
        th_r = _uniform((b, k, L), -math.pi, math.pi, device)
        ir = torch.arange(nr, device=device, dtype=torch.float32)
        iu = torch.arange(nu, device=device, dtype=torch.float32)
        a_r = torch.polar(torch.full((), 1 / math.sqrt(nr), device=device),
                          math.pi * ir * torch.sin(th_r)[..., None])            # eq. (8) [b,k,L,nr]
        a_t = torch.polar(torch.full((), 1 / math.sqrt(nu), device=device),
                          math.pi * iu * torch.sin(th_t)[..., None])            # eq. (7) [b,k,L,nu]
        # Doppler: f_d = v/lambda cos(psi), one speed per UE, one angle per path
        v = _uniform((b, k, 1), p.min_speed_kmh / 3.6, p.max_speed_kmh / 3.6, device)
        psi = _uniform((b, k, L), -math.pi, math.pi, device)
        fd = v * float(p.carrier_frequency) / _C * torch.cos(psi)               # [b,k,L]
        t_sym = (f + int(p.cyclic_prefix)) / (f * float(p.subcarrier_spacing))
        q = torch.arange(s, device=device, dtype=torch.float32)
        dop = torch.polar(torch.ones((), device=device), 2 * math.pi * fd[..., None] * q * t_sym)
        c = (alpha / math.sqrt(L))[..., None, None] * dop[..., :, None] \
            * self._delay_phase((b, k, L), device)[..., None, :]                # [b,k,L,S,F]
        h = torch.einsum("bklr,bklu,bklsf->brkusf", a_r, a_t.conj(), c)         # eq. (6)
        if p.normalize:
            h = h / h.abs().square().mean(dim=(1, 3, 4, 5), keepdim=True).clamp_min(1e-30).sqrt()
        return h.reshape(b, nr, k * nu, s, f)

    def forward(self, x):
        nr, nt = self._dims(self.p)
        s, f = int(self.p.n_symbols), int(self.p.n_subcarriers)
        if tuple(x.shape[1:]) != (nt, s, f):
            raise ValueError(f"channel.sparse_mimo_ofdm: x {tuple(x.shape)} does not fit "
                             f"(B, Nt={nt}, S={s}, F={f}) for model {self.p.model}")
        h = self.sample_h(x.shape[0], x.device).to(x.dtype if x.is_complex() else torch.complex64)
        y = torch.einsum("brnsf,bnsf->brsf", h, x)
        if self.p.add_noise:
            y = y + _cn(tuple(y.shape), y.device, y.real.dtype) * math.sqrt(noise_var(self.p.snr_db))
        return {"y": y, "h": h}
