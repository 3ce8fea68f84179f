"""CSC-SA-Net: multimodal semantic non-orthogonal transmission and fusion over hybrid massive MIMO (seed 002).

Seed 002 = Wu, Gao, "E2E Learning Massive MIMO for Multimodal Semantic Non-Orthogonal
Transmission and Fusion" (../shared/seeds/002_aedd076013fb2eee.txt); the authors' notebook
and its departures from the text are read in ../shared/specs/seed002.md. The blocks follow
the paper; the code's choices are options, named in each docstring.

Uplink, two UEs (UE 1: RGB camera, UE 2: thermal camera) with N_t = 8 antennas and
N_RF,t = 2 RF chains each, a BS with N_r = 64 antennas and N_RF,r = 2 RF chains, N_c
subcarriers. Tensor layout (batch first, complex64):

    h       (B, Nr, K*Nt, L+Q, F)  one channel draw: CSI-RS symbols 0..L-1, data L..L+Q-1
    y_p     (B, K, F, L, N_RF,t)   received CSI-RS per UE
    f_rf    (B, Nt, N_RF,t)        UE analog precoder, |entries| = 1
    bits    (B, Bfb)               feedback bits per UE
    w_rf    (B, N_RF,r, Nr)        BS analog combiner, |entries| = 1
    s_csi   (B, F, D_csi)          channel semantic features (UE side, BS side)
    s_bb    (B, N_RF,t, Q, Fk)     baseband symbols per UE (Fk = F, or F/2 under OMA)
    y       (B, N_RF,r, Q, F)      combined baseband signal at the BS

Blocks (the five sub-networks, the link, the data and the objective):

    csirs.bs_csirsnet      BS-CSIRS-Net, learnable CSI-RS (Sec. III-B, eqs. 9, 12-14)
    estimator.ue_csanet    UE-CSANet: F_RF, feedback bits, S_CSI,UE (Sec. III-C, eqs. 15-17)
    combiner.bs_csanet     BS-CSANet: W_RF, S_CSI,BS (Sec. III-D, eqs. 18-19)
    extractor.ue_msfnet    UE-MSFNet: MFNet encoder + SFA -> S_BB (Sec. III-E, eqs. 20-21)
    channel.hybrid_uplink  eqs. 2-4, NOMA or OMA (``access``), Stage I's identity channel
    decoder.bs_msfnet      BS-MSFNet: SFA + MFNet decoder -> 9-class logits (Sec. III-F)
    sink.hybrid_se         eqs. 30-31, the Stage II objective
    source.rgbt            RGB-thermal scenes (procedural) or MFNet by path
    precoder.pca_hybrid    the separated baselines' PCA analog beams (ref. [55])

The channel is ``channel.sparse_draw`` (``blocks/ofdm/sparse.py``, ``model: seed002``).
Shared layers: ``_mfnet`` (MFNet encoder/decoder, SFA), ``_csanet`` (Transformers,
straight-through quantizer), ``_scenes`` (the scene generator), ``_common``.
"""
from . import baseline, csanet, csirs, msfnet, sinks, source, uplink  # noqa: F401  (register the blocks)
