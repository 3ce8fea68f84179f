"""SGD-JSCC: semantics-guided diffusion for deep JSCC, pilot-free and over fast fading (seed 004).

Seed 004 = Zhang, Wu, Zhu, Jin, Chen, Gündüz, "Semantics-Guided Diffusion for Deep Joint
Source-Channel Coding in Wireless Image Transmission" (../shared/seeds/004_*.txt). The
authors' release is inference only (CUDA, hub weights); this package follows the paper and
says where it follows the code instead (docs/results/sgd_jscc.md).

Modules (each registers its blocks; ``blocks/__init__`` imports them all):

* ``edges``       -- ``extractor.edge_map`` (weights-free batched Canny; MuGE stand-in) and
                     the edge JSCC pair ``extractor.edge_jscc`` / ``decoder.edge_jscc`` (Fig. 2)
* ``caption``     -- ``extractor.caption_tokens`` (BLIP-2 + CLIP stand-in: a fixed vocabulary)
                     and ``sink.caption_agreement`` (CLIP-score stand-in)
* ``receiver``    -- ``combiner.vp_mmse`` (eqs. 5-9, 19, 22) and ``estimator.snr_blind``
                     (pilot-free SNR estimation, eq. 21, Table I)
* ``diffusion``   -- ``decoder.sgd_diffusion``: the DiT denoiser (``_dit``), Algorithms 1-3
                     with the schedule and sampler maths in ``_schedule``
* ``autoencoder`` -- ``extractor.sgd_autoencoder`` / ``decoder.sgd_autoencoder``, the paper-scale
                     JSCC in the released code's AutoencoderKL shape
* ``sinks``       -- ``sink.edge_f1``, ``sink.snr_error``

Generic pieces live outside: ``blocks/classifiers.py`` (the judge classifier) and
``blocks/fid.py`` (``sink.fid`` with user weights, built on ``sink.frechet``).
"""
from . import autoencoder, caption, diffusion, edges, receiver, sinks  # noqa: F401  (register the blocks)
