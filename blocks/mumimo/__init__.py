"""Seed 003: scenario-adaptive MU-MIMO OFDM semantic communication with an asymmetric network.

Li, Zhang, Liu, "Scenario-Adaptive MU-MIMO OFDM Semantic Communication With Asymmetric
Neural Network" (../shared/seeds/003_e25feb2856eb9e73.txt). The authors released no code;
docs/results/mumimo_ofdm.md maps every paper element to the block that implements it.

Downlink: a BS with N_m = Nt antennas serves N_k = K single-antenna UEs, each with its own
image. Tensor layout (the OFDM family's, see ``blocks.ofdm``; batch first, complex64):

    image     (B, K, 3, H, W)     one image per user (``source.digits`` / ``source.multiuser``)
    h         (B, K, Nt, S, F)    CSI per user, Tx antenna, OFDM symbol, subcarrier
    data      (B, K, D)           each user's semantic symbols, D = N_st * N_sf
    s         (B, K, S, F)        user-symbol grid S_ofdm (data + pilots, ``csirs.ofdm_grid``
                                  with n_streams = K)
    x         (B, Nt, S, F)       precoded transmit grid X
    y         (B, K, S, F)        received grid, one row per UE
    pilot_ref (B, K, S, F)        sparse pilot reference Y_p (pilots at pilot REs, zeros elsewhere)

S = N_t OFDM symbols (14), F = N_f subcarriers ({32, 64, 128}); N_sf = F and N_st = S minus
the pilot symbols [2, 11] (12). Blocks:

    channel.ofdm_draw          draw the 38.901 UMi/UMa/RMa CSI for a batch (known at the BS)
    (channel.apply of blocks.glue then sends the precoded grid through that h, eq. 1)
    extractor.asymmetric_encoder  BS encoder with noise and scenario adaptation (Sec. III-A)
    precoder.residual_rzf      learnable RZF + residual CNN (eqs. 7-9, Sec. III-B)
    decoder.pilot_guided       lightweight UE decoder with pilot-guided attention (Sec. III-C)
    extractor.deepjscc_mu / decoder.deepjscc_mu   the DJSCC baseline per user (Sec. IV)
    source.multiuser           K labelled images per example (digits or CIFAR-10)
    sink.user_psnr / sink.accuracy  per-image PSNR averaged over users; fraction classified right

``parameter_counts()`` (``blocks.mumimo.complexity``) prints the Table III comparison.
"""
