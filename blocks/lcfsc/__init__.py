"""LCFSC: learnable CSI-fusion masking semantic communication over MIMO fading (seed 000).

Seed 000 = Xie, Wu, Shi, Zhang, Cui, Debbah, "Robust Image Semantic Coding with
Learnable CSI Fusion Masking over MIMO Fading Channels" (../shared/seeds/000_*.txt).
This package follows the paper's equations (Sections II-IV, V-A), not the authors'
released code, whose masking branch never runs; here the mask is live and the tests in
tests/test_lcfsc_*.py prove that switching it changes the output.

Modules (each registers its blocks; ``blocks/__init__`` imports them all):

* ``swin``    -- ``extractor.swin`` / ``decoder.swin`` (WITT-style Swin JSCC codec, Fig. 3a)
                 and ``extractor.swin_cfma`` (the CSI-fusion semantic encoder f_e with the
                 NI-CFMA module, Sec. III-A, eqs. 5-8, Figs. 3-5).
* ``modnet``  -- ``extractor.channel_modnet`` / ``decoder.channel_modnet`` (g_a / g_s, the
                 WITT Channel ModNet, Sec. III-C).
* ``cvae``    -- ``csirs.cvae_mask_ratio`` (recurrent condition generation, R-CVAE,
                 eqs. 13-19, 21-23, Fig. 8).
* ``npn``     -- ``estimator.npn`` (noise purified network, Sec. III-B, eqs. 11-12, Fig. 6;
                 its Algorithm 1 pretraining is a train stage of graphs/lcfsc.yaml).
* ``adjscc``  -- ``extractor.adjscc`` / ``decoder.adjscc`` (the ADJSCC baseline of Sec. V-A3
                 with SNR + flattened MIMO CSI as side information).
* ``glue``    -- ``sink.mask_ratio`` (reports m* per image). The codeword <-> Nt x C_L/Nt
                 reshape of eq. 1 is the generic ``tensor.stream_map`` / ``tensor.stream_unmap``
                 (blocks/glue.py).

Shared pieces: ``_swin`` (windows, attention, the CSI fusion masking model),
``_common`` (CSI to real channels).
"""
from . import adjscc, cvae, glue, modnet, npn, swin  # noqa: F401  (register the blocks)
