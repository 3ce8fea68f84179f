"""Flat-fading MIMO physical-layer blocks (issue "PHY block library", flat-MIMO part).

Modules: ``channel`` (channel.mimo_flat), ``pilots`` (csirs.pilots), ``estimators``
(estimator.ls / lmmse / perfect / noisy_csi), ``precoders`` (precoder.zf / rzf / mrt /
svd / wmmse), ``combiners`` (combiner.zf / mmse / svd) and ``sinks`` (sink.nmse /
spectral_efficiency / sum_rate). Shared linear algebra lives in ``_common``.

Power and SNR convention (DESIGN.md), used by every block here
-----------------------------------------------------------------
* The transmit signal x (B, Nt, T) has average energy 1 per channel use *summed over
  the Nt transmit antennas*: E||x_t||^2 = 1 (per example, averaged over the T symbol
  times / resource elements used). Precoders guarantee this by normalizing their
  precoding matrix per example to mean_RE ||W||_F^2 = 1 (unit-energy independent
  streams s give E||W s_t||^2 = ||W||_F^2 = 1); with ``normalize: signal`` they scale
  x itself to exactly mean_t ||x_t||^2 = 1.
* Channel entries are CN(0, 1) after large-scale normalization (also under Kronecker
  correlation, whose correlation matrices have unit diagonal), so each receive antenna
  collects average signal energy E|h_i x_t|^2 = sum_j E|h_ij|^2 E|x_j|^2 = 1.
* SNR = Es/N0 per receive antenna = 1/N0; noise is CN(0, N0) i.i.d. per receive
  antenna and symbol, N0 = 10^(-snr_db/10).
* Consequently a single stream sent with all power from one antenna has per-antenna
  energy 1, and Nt equal-power streams have 1/Nt each (the MMSE combiner's
  ``stream_power`` default). Rate sinks use the same normalization: log2 det(I +
  H W W^H H^H / N0) with ||W||_F^2 = 1.

Pilots follow the same convention (energy ``power`` per pilot symbol time summed over
antennas), so the pilot SNR per receive antenna equals the data SNR unless ``power``
is changed.
"""
from . import channel, combiners, estimators, pilots, precoders, sinks  # noqa: F401  (register)
