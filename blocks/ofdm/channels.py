"""3GPP TR 38.901 OFDM channels through Sionna: UMi, UMa, RMa (system level), CDL and TDL.

Seed 003, Sec. II and Table II: downlink MU-MIMO OFDM, BS with N_m = 4 antennas (1 x 2
panel, dual cross-polarized, 38.901 element pattern), N_k = 4 single-antenna UEs (vertical
polarization, omni pattern), 2.6 GHz carrier, 15 kHz spacing, 14 OFDM symbols, CP 20,
topologies redrawn for every batch ("user locations and propagation geometry are randomly
generated at each training"). Per RE (eq. 1): y_{f,t} = H_{f,t} x_{f,t} + n_{f,t}.

Sionna does the physics (topology drop, LSPs, rays, CIR, frequency response, AWGN); the
blocks only convert between our layout and Sionna's with views (see ``blocks.ofdm``):

    x (B, Nt, S, F) -> Sionna [B, 1, Nt, S, F]
    h (B, K, Nt, S, F) <- Sionna [B, K, 1, 1, Nt, S, F]
    y (B, K, S, F) <- Sionna [B, K, 1, S, F]

Randomness: topology, rays and noise come from Sionna's RNG (``sionna.phy.config``); set
``sionna.phy.config.seed`` for reproducible runs (the global torch seed does not reach it).
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._sionna import DeviceCache, noise_var, sionna_state_safe

_SNR = Param(float, 10.0, "SNR = Es/N0 per receive antenna in dB; N0 = 10^(-snr_db/10)",
             runtime=True)

#: channel normalizations (param ``normalize``); see :func:`normalize_gain`
NORMALIZE = ("per_link", "per_drop", "none")


def normalize_gain(h: torch.Tensor, mode: str) -> torch.Tensor:
    """Scale a channel in Sionna's layout [B, K, 1, 1, Nt, S, F] (one transmitter) to unit gain.

    per_link: E|h|^2 = 1 per example and UE link, the mean over antennas, OFDM symbols and
              subcarriers (what Sionna's ``normalize_channel`` does; the SNR is then Es/N0
              per receive antenna for every user, and path loss plays no part).
    per_drop: the same mean taken over all K links of the example (one 38.901 drop), so
              the users keep their relative path loss and shadowing; the SNR is then
              Es/N0 per receive antenna averaged over the drop's users.
    none:     unchanged (with path loss on, the SNR is a transmit SNR).
    """
    if mode == "none":
        return h
    dims = (2, 4, 5, 6) if mode == "per_link" else (1, 2, 3, 4, 5, 6)
    c = h.abs().square().mean(dim=dims, keepdim=True).sqrt()
    return torch.where(c > 0, h / c.clamp_min(1e-30), h)


def _common_params() -> dict:
    return {
        "carrier_frequency": Param(float, 2.6e9, "carrier frequency [Hz] (seed 003: 2.6 GHz)"),
        "subcarrier_spacing": Param(float, 15e3, "subcarrier spacing [Hz] (seed 003: 15 kHz)"),
        "n_subcarriers": Param(int, 64, "subcarriers F = N_f (seed 003: 32, 64 or 128)"),
        "n_symbols": Param(int, 14, "OFDM symbols S = N_t (seed 003: 14)"),
        "cyclic_prefix": Param(int, 20, "cyclic prefix [samples]; sets the OFDM symbol duration "
                                        "(1 + cp/F)/spacing used to sample time variation"),
        "n_users": Param(int, 4, "single-antenna UEs K = N_k (seed 003: 4)"),
        "min_speed": Param(float, 0.0, "minimum UE speed [m/s]"),
        "max_speed": Param(float, 0.0, "maximum UE speed [m/s] (uniform in [min, max])"),
        "snr_db": _SNR,
        "add_noise": Param(bool, True, "add CN(0, N0) noise; false gives y = H x exactly"),
        "normalize": Param(str, "per_link", "per_link: every UE link of an example to unit average gain "
                                            "E|h|^2 = 1 over antennas, symbols and subcarriers; per_drop: the "
                                            "mean over the drop's K links = 1 (the users' large-scale "
                                            "differences stay); none: raw gains", choices=NORMALIZE),
    }


def _array_params() -> dict:
    return {
        "bs_rows": Param(int, 1, "BS panel rows (seed 003: 1)"),
        "bs_cols": Param(int, 2, "BS panel columns (seed 003: 2)"),
        "bs_polarization": Param(str, "dual", "BS polarization (seed 003: dual)",
                                 choices=("single", "dual")),
        "bs_polarization_type": Param(str, "cross", "V/H for single, VH/cross for dual "
                                                    "(seed 003: cross)",
                                      choices=("V", "H", "VH", "cross")),
        "bs_pattern": Param(str, "38.901", "BS element pattern (seed 003: 38.901)",
                            choices=("38.901", "omni")),
    }


def _num_bs_ant(p) -> int:
    return int(p["bs_rows"]) * int(p["bs_cols"]) * (2 if p["bs_polarization"] == "dual" else 1)


def _arrays(p, device):
    from sionna.phy.channel.tr38901 import PanelArray
    fc = float(p["carrier_frequency"])
    bs = PanelArray(num_rows_per_panel=int(p["bs_rows"]), num_cols_per_panel=int(p["bs_cols"]),
                    polarization=p["bs_polarization"], polarization_type=p["bs_polarization_type"],
                    antenna_pattern=p["bs_pattern"], carrier_frequency=fc, device=device)
    ut = PanelArray(num_rows_per_panel=1, num_cols_per_panel=1, polarization="single",
                    polarization_type="V", antenna_pattern="omni", carrier_frequency=fc,
                    device=device)
    return bs, ut


def _plain_grid(p, device):
    """A pilot-less ResourceGrid: GenerateOFDMChannel only reads S, F, spacing and CP."""
    from sionna.phy.ofdm import ResourceGrid
    return ResourceGrid(num_ofdm_symbols=int(p["n_symbols"]), fft_size=int(p["n_subcarriers"]),
                        subcarrier_spacing=float(p["subcarrier_spacing"]),
                        cyclic_prefix_length=int(p["cyclic_prefix"]), device=device)


def rms_delay_spread(a: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """RMS delay spread [s] per link from a Sionna CIR (power-delay profile, TR 38.901 7.5).

    a:   [B, num_rx, num_rx_ant, num_tx, num_tx_ant, P, T] path coefficients
    tau: [B, num_rx, num_tx, P] delays [s]
    -> [B, num_rx, num_tx]: sqrt(sum p tau^2 / sum p - (sum p tau / sum p)^2), with the path
    power p averaged over antennas and time steps.
    """
    pw = a.abs().square().mean(dim=(2, 4, 6))                       # [B, rx, tx, P]
    pw = pw / pw.sum(-1, keepdim=True).clamp_min(1e-30)
    tau = tau.to(pw.dtype)
    mean = (pw * tau).sum(-1)
    return ((pw * tau.square()).sum(-1) - mean.square()).clamp_min(0.0).sqrt()


class _OFDMChannel(Block):
    """Common machinery: layout views, noise, per-device Sionna objects (see module doc)."""
    inputs = {"x": Port("complex", ("B", "Nt", "S", "F"), tag="symbols",
                        doc="transmit grid; total energy 1 per RE summed over Nt")}
    outputs = {"y": Port("complex", ("B", "K", "S", "F"), tag="symbols", doc="received grid per UE"),
               "h": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi",
                         doc="channel frequency response per UE, Tx antenna, RE")}
    channel_input = "x"

    def __init__(self, **params):
        super().__init__(**params)
        if self.p.n_users < 1 or self.p.n_symbols < 1 or self.p.n_subcarriers < 1:
            raise ValueError(f"{self.type_id}: n_users, n_symbols, n_subcarriers must be >= 1")
        if not 0.0 <= self.p.min_speed <= self.p.max_speed:
            raise ValueError(f"{self.type_id}: need 0 <= min_speed <= max_speed")
        self._sn = DeviceCache(self._build)
        self._sn.get("cpu")       # fail at construction on bad params, not mid-run

    @classmethod
    def num_tx_ant(cls, p) -> int:
        return _num_bs_ant(p)

    @classmethod
    def bind_dims(cls, p):
        return {"S": int(p["n_symbols"]), "F": int(p["n_subcarriers"]),
                "K": int(p["n_users"]), "Nt": cls.num_tx_ant(p)}

    # subclasses: _build(device) -> dict with at least "gen" and "apply"; _sample_h(objs, B)
    def _build(self, device):
        raise NotImplementedError

    def _sample_h(self, objs, batch: int) -> torch.Tensor:
        """Channel frequency response in Sionna's layout [B, K, 1, 1, Nt, S, F]."""
        raise NotImplementedError

    @sionna_state_safe
    def sample_h(self, batch: int, device="cpu") -> torch.Tensor:
        """Draw a channel alone, in our layout (B, K, Nt, S, F)."""
        objs = self._sn.get(device)
        h = normalize_gain(self._sample_h(objs, batch), self.p.normalize)
        return h.reshape(batch, self.p.n_users, self.num_tx_ant(self.p), self.p.n_symbols,
                         self.p.n_subcarriers)

    @sionna_state_safe
    def forward(self, x):
        b = x.shape[0]
        nt, s, f, k = self.num_tx_ant(self.p), self.p.n_symbols, self.p.n_subcarriers, self.p.n_users
        if tuple(x.shape[1:]) != (nt, s, f):
            raise ValueError(f"{self.type_id}: x {tuple(x.shape)} does not fit (B, Nt={nt}, "
                             f"S={s}, F={f})")
        objs = self._sn.get(x.device)
        h7 = normalize_gain(self._sample_h(objs, b), self.p.normalize)   # [B,K,1,1,Nt,S,F]
        no = noise_var(self.p.snr_db) if self.p.add_noise else None
        y = objs["apply"](x.unsqueeze(1), h7, no)                        # [B,K,1,S,F]
        return {"y": y.reshape(b, k, s, f), "h": h7.reshape(b, k, nt, s, f)}


class _SystemLevel(_OFDMChannel):
    """UMi / UMa / RMa: a fresh single-sector drop (Sionna ``gen_single_sector_topology``)
    per batch, then ``GenerateOFDMChannel`` + ``ApplyOFDMChannel``."""
    scenario: str = ""

    def _model(self, device, bs, ut):
        raise NotImplementedError

    def _build(self, device):
        from sionna.phy.channel import ApplyOFDMChannel, GenerateOFDMChannel
        bs, ut = _arrays(self.p, device)
        model = self._model(device, bs, ut)
        rg = _plain_grid(self.p, device)
        gen = GenerateOFDMChannel(model, rg, normalize_channel=False, device=device)   # normalize_gain
        return {"model": model, "rg": rg, "gen": gen, "apply": ApplyOFDMChannel(device=device),
                "device": device}

    def _drop(self, objs, batch: int):
        from sionna.phy.channel import gen_single_sector_topology
        topo = gen_single_sector_topology(batch, int(self.p.n_users), self.scenario,
                                          indoor_probability=float(self.p.indoor_probability),
                                          min_ut_velocity=float(self.p.min_speed),
                                          max_ut_velocity=float(self.p.max_speed),
                                          device=objs["device"])
        los = {"random": "random", "los": True, "nlos": False}[self.p.los]
        if objs.get("batch") not in (None, batch):
            # Sionna fixes the topology tensors' shapes at the first drop; evaluation batches
            # (or a last partial batch) of another size need a reset first
            objs["model"].reset_topology()
        objs["batch"] = batch
        objs["model"].set_topology(*topo, los=los)

    def _sample_h(self, objs, batch):
        self._drop(objs, batch)
        return objs["gen"](batch)

    @sionna_state_safe
    def sample_cir(self, batch: int, device="cpu"):
        """A fresh drop's CIR (a [B,K,1,1,Nt,P,S], tau [B,K,1,P]) for analysis (delay spread)."""
        objs = self._sn.get(device)
        self._drop(objs, batch)
        return objs["model"](int(self.p.n_symbols), 1.0 / objs["rg"].ofdm_symbol_duration)


def _system_level_params(indoor: float, o2i: bool) -> dict:
    p = {**_common_params(), **_array_params(),
         "pathloss": Param(bool, False, "apply 38.901 path loss (with normalize: per_drop the users keep "
                                        "their relative losses; with none SNR is a transmit SNR)"),
         "shadow_fading": Param(bool, False, "apply 38.901 shadow fading"),
         "los": Param(str, "random", "LoS state: random (38.901 LoS probability), los or nlos",
                      choices=("random", "los", "nlos")),
         "indoor_probability": Param(float, indoor, "probability that a UE is indoor "
                                                    "(38.901 drop default)")}
    if o2i:
        p["o2i_model"] = Param(str, "low", "outdoor-to-indoor loss model", choices=("low", "high"))
    return p


_SL_DOC = """ Per RE (seed 003, eq. 1):
    y[b,k,s,f] = sum_n h[b,k,n,s,f] x[b,n,s,f] + CN(0, N0), N0 = 10^(-snr_db/10).

    Shapes: x complex (B, Nt, S, F) -> y complex (B, K, S, F), h complex (B, K, Nt, S, F);
    Nt = bs_rows * bs_cols * (2 if dual-polarized) (default 4), K = n_users.
    snr_db is Es/N0 per receive antenna when x carries total energy 1 per RE (see
    ``blocks.ofdm``); ``normalize: per_link`` (default) gives E|h|^2 = 1 per example and UE
    link (Sionna's ``normalize_channel``), ``per_drop`` the same over the example's K links
    (with ``pathloss``/``shadow_fading`` on, the users keep their large-scale differences and
    snr_db is averaged over them), ``none`` leaves the gains. Not differentiable w.r.t. the channel (Sionna detaches h);
    gradients flow to x.
    """


@register("channel.umi")
class UMi(_SystemLevel):
    __doc__ = """3GPP TR 38.901 Urban Micro (street canyon) OFDM channel, downlink (seed 003, Sec. II,
    Table II; Sionna ``tr38901.UMi``). A new single-sector drop of K UEs (BS height 10 m,
    ISD 200 m, 80 % indoor) per batch.""" + _SL_DOC
    params = _system_level_params(0.8, True)
    scenario = "umi"

    def _model(self, device, bs, ut):
        from sionna.phy.channel.tr38901 import UMi as SionnaUMi
        return SionnaUMi(carrier_frequency=float(self.p.carrier_frequency),
                         o2i_model=self.p.o2i_model, ut_array=ut, bs_array=bs,
                         direction="downlink", enable_pathloss=bool(self.p.pathloss),
                         enable_shadow_fading=bool(self.p.shadow_fading), device=device)


@register("channel.uma")
class UMa(_SystemLevel):
    __doc__ = """3GPP TR 38.901 Urban Macro OFDM channel, downlink (seed 003, Sec. II, Table II;
    Sionna ``tr38901.UMa``). A new single-sector drop of K UEs (BS height 25 m, ISD 500 m,
    80 % indoor) per batch.""" + _SL_DOC
    params = _system_level_params(0.8, True)
    scenario = "uma"

    def _model(self, device, bs, ut):
        from sionna.phy.channel.tr38901 import UMa as SionnaUMa
        return SionnaUMa(carrier_frequency=float(self.p.carrier_frequency),
                         o2i_model=self.p.o2i_model, ut_array=ut, bs_array=bs,
                         direction="downlink", enable_pathloss=bool(self.p.pathloss),
                         enable_shadow_fading=bool(self.p.shadow_fading), device=device)


@register("channel.rma")
class RMa(_SystemLevel):
    __doc__ = """3GPP TR 38.901 Rural Macro OFDM channel, downlink (seed 003, Sec. II, Table II;
    Sionna ``tr38901.RMa``). A new single-sector drop of K UEs (BS height 35 m, ISD 5 km,
    50 % indoor, the rest in cars) per batch. Note: in TR 38.901 (Table 7.5-6) RMa has a
    *smaller* delay spread than UMi (lgDS about -7.4 vs -7.0); seed 003's "larger delay
    spreads" remark is about its simulated topology, not the standard's tables.""" + _SL_DOC
    params = _system_level_params(0.5, False)
    scenario = "rma"

    def _model(self, device, bs, ut):
        from sionna.phy.channel.tr38901 import RMa as SionnaRMa
        return SionnaRMa(carrier_frequency=float(self.p.carrier_frequency), ut_array=ut,
                         bs_array=bs, direction="downlink", enable_pathloss=bool(self.p.pathloss),
                         enable_shadow_fading=bool(self.p.shadow_fading), device=device)


class _LinkLevel(_OFDMChannel):
    """CDL / TDL: one independent link-level realization per UE (Sionna batch B*K)."""

    def _sample_h(self, objs, batch):
        k = int(self.p.n_users)
        h = objs["gen"](batch * k)                                   # [B*K, 1, 1, 1, Nt, S, F]
        return h.reshape(batch, k, *h.shape[2:])

    def _finish(self, model, device):
        from sionna.phy.channel import ApplyOFDMChannel, GenerateOFDMChannel
        rg = _plain_grid(self.p, device)
        gen = GenerateOFDMChannel(model, rg, normalize_channel=False, device=device)   # normalize_gain
        return {"model": model, "rg": rg, "gen": gen, "apply": ApplyOFDMChannel(device=device)}


@register("channel.cdl")
class CDL(_LinkLevel):
    """3GPP TR 38.901 clustered delay line (CDL-A..E) OFDM channel, downlink (Sionna ``tr38901.CDL``).

    Same port layout and arrays as ``channel.umi`` (seed 003, Table II arrays); each of the K
    UEs gets an independent CDL realization (Sionna's CDL is single-link), with UE speed
    uniform in [min_speed, max_speed] and the profile's delays scaled to ``delay_spread``.

    Shapes: x complex (B, Nt, S, F) -> y complex (B, K, S, F), h complex (B, K, Nt, S, F).
    """
    params = {**_common_params(), **_array_params(),
              "model": Param(str, "A", "CDL profile (A-C NLoS, D-E LoS)",
                             choices=("A", "B", "C", "D", "E")),
              "delay_spread": Param(float, 100e-9, "RMS delay spread [s] the profile is scaled to")}

    def _build(self, device):
        from sionna.phy.channel.tr38901 import CDL as SionnaCDL
        bs, ut = _arrays(self.p, device)
        model = SionnaCDL(self.p.model, float(self.p.delay_spread), float(self.p.carrier_frequency),
                          ut_array=ut, bs_array=bs, direction="downlink",
                          min_speed=float(self.p.min_speed), max_speed=float(self.p.max_speed),
                          device=device)
        return self._finish(model, device)


@register("channel.tdl")
class TDL(_LinkLevel):
    """3GPP TR 38.901 tapped delay line (TDL-A..E) OFDM channel, downlink (Sionna ``tr38901.TDL``).

    Same port layout as ``channel.umi``; no array geometry: the Nt = ``n_tx_ant`` transmit
    antennas are uncorrelated, each UE has one antenna and its own TDL realization, UE speed
    uniform in [min_speed, max_speed] (sum-of-sinusoids Doppler).

    Shapes: x complex (B, Nt, S, F) -> y complex (B, K, S, F), h complex (B, K, Nt, S, F).
    """
    params = {**_common_params(),
              "n_tx_ant": Param(int, 4, "BS transmit antennas Nt (seed 003: 4)"),
              "model": Param(str, "A", "TDL profile (A-C NLoS, D-E LoS)",
                             choices=("A", "B", "C", "D", "E")),
              "delay_spread": Param(float, 100e-9, "RMS delay spread [s] the profile is scaled to")}

    @classmethod
    def num_tx_ant(cls, p) -> int:
        return int(p["n_tx_ant"])

    def _build(self, device):
        from sionna.phy.channel.tr38901 import TDL as SionnaTDL
        model = SionnaTDL(self.p.model, float(self.p.delay_spread), float(self.p.carrier_frequency),
                          min_speed=float(self.p.min_speed), max_speed=float(self.p.max_speed),
                          num_rx_ant=1, num_tx_ant=int(self.p.n_tx_ant), device=device)
        return self._finish(model, device)
