"""Deep JSCBF: joint semantic coding and beamforming for the airship-borne massive-MIMO downlink (seed 001).

Seed 001 = Wu, Gao, Wang, Niyato, Karagiannidis, Chen, "Deep Joint Semantic Coding and
Beamforming for Near-Space Airship-Borne Massive MIMO Network" (../shared/seeds/001_*.txt).
This package follows the paper's equations; where it follows the authors' notebook instead
(the paper leaves the detail open) the block docstrings say so, and docs/results/jscbf.md
lists every departure. ../shared/specs/seed001.md is the close reading both rest on.

Downlink: an airship BS with an N_y x N_z UPA (Nt antennas) serves K single-antenna UEs, one
image each, over N_c subcarriers and Q data OFDM symbols; the channel (eqs. 5-6,
``channel.sparse_mimo_ofdm`` with ``model: seed001``) is static over the frame. Tensor
layout (the OFDM family's, ``blocks.ofdm``; batch first, one example = one frame of K images):

    image   (B, K, 3, H, W)     one image per UE
    h       (B, K, Nt, 1, F)    channel row h^H[k, n] per UE and subcarrier (S = 1: static)
    pilots  (B, Nt, L, F)       the L hybrid pilot OFDM symbols
    s       (B, K, F, 2Q)       per-UE image semantics, one row of 2Q reals per subcarrier
    c       (B, F, D_c)         CSI semantics per subcarrier (Fig. 4)
    w       (B, K, Q, F)        fused complex semantic features W_s (eq. 9), W_s[n] = w[..., n]
    x       (B, Nt, Q, F)       transmit grid X (eqs. 27-29); X[n] of the paper = x[..., n]
    y       (B, K, Q, F)        received grid Y[k] (eq. 3)

F = N_c subcarriers, Q = data OFDM symbols, L = pilot OFDM symbols. Modules:

    lamp         csirs.hybrid_pilots, estimator.gmmv_lamp (Sec. IV-B, Table I, ref. [49])
    encoder      extractor.jscbf_image (Fig. 3), extractor.jscbf_csi (Fig. 4, eq. 8),
                 extractor.jscbf_fusion (Fig. 5, eq. 9)
    beamforming  precoder.jscbf_data (Fig. 6), precoder.jscbf_wmmse (Fig. 7, eqs. 10-27),
                 precoder.jscbf_combine (eqs. 28-29)
    decoder      decoder.jscbf_rx, decoder.jscbf_swin (Fig. 8)
    complexity   parameter counts beside the authors' model

Shared pieces: ``_transformer`` (the sequence transformer of Figs. 4-8), the Swin blocks of
``blocks.lcfsc._swin`` and eq. 26's K x K solve ``blocks.mimo.precoders.wmmse_beamformer``.
"""
from . import beamforming, decoder, encoder, lamp  # noqa: F401  (register the blocks; complexity is a tool)
