"""Separate source-channel coding (SSCC) baseline: JPEG, 5G LDPC, QAM, capacity bound, sinks.

Seed 003 (Li, Zhang, Liu, "Scenario-Adaptive MU-MIMO OFDM Semantic Communication With
Asymmetric Neural Network"), Section IV: JPEG/BPG + 5G NR LDPC + QAM, bit budget eq. (10)
B_max = floor(N_st * N_sf * m * r); a transmission that fails (image too large for B_max at
the lowest quality, LDPC/CRC failure, undecodable bitstream) scores 0 dB PSNR.

Failure contract: every block on the path carries a ``failed`` bool (B,) port. The
reconstruction of a failed example is a mid-grey image (0.5) so downstream tensors stay
valid; ``sink.psnr_sscc`` turns ``failed`` into exactly 0 dB (``sink.psnr`` would instead
score the grey image, typically 8-12 dB, which is NOT the paper's convention).
"""
