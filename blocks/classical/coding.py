"""5G NR LDPC coding and QAM (de)mapping through Sionna (seed 003, Sec. IV benchmark).

Seed 003, Sec. IV: "5G New Radio (NR) Low-Density Parity-Check (LDPC) codes for channel
error correction ... the equalized symbols are processed by a demapper to compute
Log-Likelihood Ratios, which are then fed into the LDPC decoder to recover the information
bits." Bits are real tensors of 0.0/1.0; LLRs follow Sionna's logit convention
llr = ln(P(b=1)/P(b=0)) (positive means 1).

All blocks accept any leading dims between the batch and the last dim ("..."), e.g.
(B, Nbits) for one user or (B, K, Nbits) for K users.
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ..ofdm._sionna import DeviceCache, noise_var, sionna_state_safe

CRC_LEN = {"none": 0, "CRC24A": 24, "CRC24B": 24, "CRC24C": 24, "CRC16": 16, "CRC11": 11, "CRC6": 6}


def _ldpc_params() -> dict:
    return {"k": Param(int, 512, "information bits per codeword (incl. CRC), 12..8448"),
            "n": Param(int, 1024, "codeword bits after rate matching (rate r = k/n)"),
            "n_blocks": Param(int, 1, "codewords per example (last dim = n_blocks * payload)"),
            "crc": Param(str, "none", "CRC appended to each block's payload before encoding "
                                      "(38.212 polynomials); its failure flags the block",
                         choices=tuple(CRC_LEN))}


def _ldpc_dims(p) -> dict:
    pay = int(p["k"]) - CRC_LEN[p["crc"]]
    return {"Nb": int(p["n_blocks"]) * pay, "Nc": int(p["n_blocks"]) * int(p["n"])}


def _check_ldpc(where, p):
    k, n = int(p["k"]), int(p["n"])
    if not 12 <= k <= 8448 or n <= k:
        raise ValueError(f"{where}: need 12 <= k <= 8448 and n > k, got k={k}, n={n}")
    if k - CRC_LEN[p["crc"]] < 1 or p["n_blocks"] < 1:
        raise ValueError(f"{where}: k must exceed the CRC length and n_blocks >= 1")


def _split_blocks(where, t, n_blocks, length):
    if t.shape[-1] != n_blocks * length:
        raise ValueError(f"{where}: last dim {t.shape[-1]} != n_blocks * {length} = {n_blocks * length}")
    return t.reshape(*t.shape[:-1], n_blocks, length)


class _LDPCBlock(Block):
    """Shared set-up of the 5G LDPC encoder and decoder: param checks, Sionna objects per
    device (built once on the CPU so a bad k/n fails at build time), and the N dims."""

    def __init__(self, **params):
        super().__init__(**params)
        _check_ldpc(self.type_id, self.p)
        self._sn = DeviceCache(self._build)
        self._sn.get("cpu")

    @classmethod
    def bind_dims(cls, p):
        return _ldpc_dims(p)


@register("classical.ldpc_encode")
class LDPCEncode(_LDPCBlock):
    """5G NR LDPC encoder (3GPP TS 38.212; Sionna ``LDPC5GEncoder``), seed 003 Sec. IV.

    The last dim is cut into ``n_blocks`` payloads of k - crc_len bits; each gets an optional
    CRC (Sionna ``CRCEncoder``), is LDPC-encoded with base-graph selection, puncturing of the
    first 2Z systematic bits and rate matching to n bits, and the codewords are concatenated.

    Shapes: bits real (B, ..., Nb) -> c real (B, ..., Nc),
            Nb = n_blocks * (k - crc_len), Nc = n_blocks * n.
    """
    inputs = {"bits": Port("real", ("B", "...", "Nb"), tag="bits", doc="0/1 payload bits")}
    outputs = {"c": Port("real", ("B", "...", "Nc"), tag="bits", doc="0/1 codeword bits")}
    params = _ldpc_params()

    def _build(self, device):
        from sionna.phy.fec.crc import CRCEncoder
        from sionna.phy.fec.ldpc import LDPC5GEncoder
        crc = None if self.p.crc == "none" else CRCEncoder(self.p.crc, device=device)
        return {"enc": LDPC5GEncoder(int(self.p.k), int(self.p.n), device=device), "crc": crc}

    @sionna_state_safe
    def forward(self, bits):
        objs = self._sn.get(bits.device)
        pay = int(self.p.k) - CRC_LEN[self.p.crc]
        u = _split_blocks(self.type_id, bits.float(), int(self.p.n_blocks), pay)
        if objs["crc"] is not None:
            u = objs["crc"](u)
        c = objs["enc"](u)
        return {"c": c.reshape(*bits.shape[:-1], -1)}


def _checked_decoder_class():
    """``LDPC5GDecoder`` that also reports, per codeword, whether the BP output satisfies
    every parity check (a syndrome check on the full, lifted codeword incl. punctured bits).

    A mixin placed between ``LDPC5GDecoder`` and ``LDPCBPDecoder`` in the MRO wraps the
    generic BP ``call`` that ``LDPC5GDecoder.call`` reaches with ``super().call``; the
    5G-specific rate (de)matching is untouched.
    """
    import numpy as np
    from sionna.phy.fec.ldpc import LDPC5GDecoder
    from sionna.phy.fec.ldpc.decoding import LDPCBPDecoder

    class _SyndromeHook(LDPCBPDecoder):
        def call(self, llr_ch, /, *, num_iter=None, msg_v2c=None):
            out = super().call(llr_ch, num_iter=num_iter, msg_v2c=msg_v2c)
            x = out[0] if isinstance(out, tuple) else out          # hard bits [batch, n_vn]
            h = self._syndrome_pcm(x.device)
            s = torch.sparse.mm(h, x.reshape(-1, x.shape[-1]).t().float())   # [m, batch]
            self.last_parity_ok = (torch.remainder(s, 2.0) == 0).all(dim=0)
            return out

        def _syndrome_pcm(self, device):
            cache = self.__dict__.setdefault("_pcm_t", {})
            key = str(device)
            if key not in cache:
                coo = self.pcm.tocoo()
                idx = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
                cache[key] = torch.sparse_coo_tensor(idx, torch.ones(coo.nnz), coo.shape,
                                                     device=device,
                                                     check_invariants=True).coalesce()
            return cache[key]

    class CheckedLDPC5GDecoder(LDPC5GDecoder, _SyndromeHook):
        pass

    return CheckedLDPC5GDecoder


@register("classical.ldpc_decode")
class LDPCDecode(_LDPCBlock):
    """5G NR LDPC belief-propagation decoder (Sionna ``LDPC5GDecoder``), seed 003 Sec. IV.

    Input LLRs (logits, from ``classical.qam_demap``) are cut into ``n_blocks`` codewords of n
    and decoded with ``num_iter`` flooding BP iterations. A block FAILS when its CRC does not
    match (``crc`` set, as in 5G) or, without CRC, when the BP output violates a parity check
    (syndrome != 0 on the lifted codeword; this also flags the rare blocks whose payload is
    right but whose parity bits did not converge);
    ``failed`` is true for an example if any of its blocks failed (seed 003: the image is then
    lost and scores 0 dB, see ``sink.psnr_sscc``). Never raises on bad LLRs.

    Shapes: llr real (B, ..., Nc) -> bits_hat real (B, ..., Nb) hard 0/1, failed bool (B, ...);
            Nb = n_blocks * (k - crc_len), Nc = n_blocks * n.
    """
    inputs = {"llr": Port("real", ("B", "...", "Nc"), tag="logits", doc="channel LLRs ln(P1/P0)")}
    outputs = {"bits_hat": Port("real", ("B", "...", "Nb"), tag="bits", doc="decoded payload bits"),
               "failed": Port("bool", ("B", "..."), tag="mask", doc="parity/CRC failure of any block")}
    params = {**_ldpc_params(),
              "num_iter": Param(int, 20, "BP iterations"),
              "cn_update": Param(str, "boxplus-phi", "check-node update rule",
                                 choices=("boxplus-phi", "boxplus", "minsum", "offset-minsum"))}

    def _build(self, device):
        from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
        from sionna.phy.fec.ldpc import LDPC5GEncoder
        enc = LDPC5GEncoder(int(self.p.k), int(self.p.n), device=device)
        dec = _checked_decoder_class()(enc, cn_update=self.p.cn_update, hard_out=True,
                                       return_infobits=True, num_iter=int(self.p.num_iter),
                                       device=device)
        crc = None
        if self.p.crc != "none":
            crc = CRCDecoder(CRCEncoder(self.p.crc, device=device), device=device)
        return {"dec": dec, "crc": crc}

    @sionna_state_safe
    def forward(self, llr):
        objs = self._sn.get(llr.device)
        nb = int(self.p.n_blocks)
        lead = llr.shape[:-1]
        z = _split_blocks(self.type_id, llr.float(), nb, int(self.p.n))
        z = torch.nan_to_num(z, nan=0.0, posinf=1e3, neginf=-1e3)
        u = objs["dec"](z)                                               # [..., nb, k]
        if objs["crc"] is not None:
            u, crc_ok = objs["crc"](u)
            ok = crc_ok[..., 0]
        else:
            ok = objs["dec"].last_parity_ok.reshape(*lead, nb)
        return {"bits_hat": u.reshape(*lead, -1), "failed": ~ok.all(dim=-1)}


@register("classical.qam_map")
class QAMMap(Block):
    """Gray-labelled square QAM mapper (Sionna ``Mapper("qam", m)``), unit average energy.

    Seed 003, Sec. IV: 4QAM and 16QAM with modulation order m bits per symbol (eq. 10).
    Groups of m consecutive bits (first bit most significant) become one symbol.

    Shapes: bits real (B, ..., Nb) -> x complex (B, ..., Ns), Ns = Nb / m.
    """
    inputs = {"bits": Port("real", ("B", "...", "Nb"), tag="bits", doc="0/1 bits, Nb multiple of m")}
    outputs = {"x": Port("complex", ("B", "...", "Ns"), tag="symbols", doc="QAM symbols, Es = 1")}
    params = {"bits_per_symbol": Param(int, 2, "m: 2 = QPSK/4QAM, 4 = 16QAM, 6 = 64QAM, ...")}

    def __init__(self, **params):
        super().__init__(**params)
        m = self.p.bits_per_symbol
        if m < 2 or m % 2:
            raise ValueError(f"classical.qam_map: bits_per_symbol must be even >= 2, got {m}")
        self._sn = DeviceCache(self._build)
        self._sn.get("cpu")

    def _build(self, device):
        from sionna.phy.mapping import Mapper
        return Mapper("qam", int(self.p.bits_per_symbol), device=device)

    @sionna_state_safe
    def forward(self, bits):
        m = int(self.p.bits_per_symbol)
        if bits.shape[-1] % m:
            raise ValueError(f"classical.qam_map: last dim {bits.shape[-1]} is not a multiple of m={m}")
        return {"x": self._sn.get(bits.device)(bits.float())}


@register("classical.qam_demap")
class QAMDemap(Block):
    """Soft QAM demapper (Sionna ``Demapper``): per-bit LLRs ln(P(b=1|y)/P(b=0|y)).

    app:    exact LLR over the constellation, exp(-|y - c|^2 / N0) likelihoods;
    maxlog: max-log approximation. ``hard_out`` returns 0/1 decisions instead.
    N0 is the ``no`` input if connected (e.g. ``combiner.lmmse_ofdm``'s ``no_eff``), else
    10^(-snr_db/10). Differentiable in y (soft output).

    Shapes: y complex (B, ..., Ns), no real (B, ..., Ns) optional -> llr real (B, ..., Nb),
            Nb = m * Ns.
    """
    inputs = {"y": Port("complex", ("B", "...", "Ns"), tag="symbols", doc="received/equalized symbols"),
              "no": Port("real", ("B", "...", "Ns"), optional=True, doc="noise variance per symbol")}
    outputs = {"llr": Port("real", ("B", "...", "Nb"), tag="logits", doc="bit LLRs or hard bits")}
    params = {"bits_per_symbol": Param(int, 2, "m bits per symbol"),
              "method": Param(str, "app", "app or maxlog", choices=("app", "maxlog")),
              "hard_out": Param(bool, False, "output hard 0/1 decisions instead of LLRs"),
              "snr_db": Param(float, 10.0, "SNR = Es/N0 in dB used when 'no' is unconnected; "
                                           "N0 = 10^(-snr_db/10)", runtime=True)}

    def __init__(self, **params):
        super().__init__(**params)
        m = self.p.bits_per_symbol
        if m < 2 or m % 2:
            raise ValueError(f"classical.qam_demap: bits_per_symbol must be even >= 2, got {m}")
        self._sn = DeviceCache(self._build)
        self._sn.get("cpu")

    def _build(self, device):
        from sionna.phy.mapping import Demapper
        return Demapper(self.p.method, "qam", int(self.p.bits_per_symbol),
                        hard_out=bool(self.p.hard_out), device=device)

    @sionna_state_safe
    def forward(self, y, no=None):
        if no is None:
            no = torch.tensor(noise_var(self.p.snr_db), dtype=torch.float32, device=y.device)
        else:
            no = no.float().clamp_min(1e-12)
        return {"llr": self._sn.get(y.device)(y.to(torch.complex64), no)}
