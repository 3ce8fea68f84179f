"""OFDM blocks: 3GPP TR 38.901 channels (Sionna), resource grid, LS/LMMSE, sparse MIMO-OFDM.

OFDM tensor layout (one layout for the whole family, batch first, complex64):

    x        (B, Nt, S, F)       transmit grid: Tx antennas (or streams) x OFDM symbols x subcarriers
    y        (B, K,  S, F)       received grid, one row per single-antenna UE (or Rx antenna)
    h        (B, K,  Nt, S, F)   frequency response: y[b,k,s,f] = sum_n h[b,k,n,s,f] x[b,n,s,f] + n
    data     (B, Nt, D)          data symbols of one stream, in resource-grid order (symbol-major,
                                 pilot OFDM symbols skipped), D = (S - #pilot symbols) * F
    pilot_ref(B, Nt, S, F)       known pilots at pilot REs, zeros at data REs (seed 003, Fig. 5)

S = OFDM symbols (seed 003's N_t), F = subcarriers (seed 003's N_f), Nt = BS antennas (N_m),
K = users (N_k). Seed 003 writes H as N_f x N_t x N_k x N_m; we keep the subcarrier axis last
(Sionna's order) so that (S, F) is an image-like trailing pair for convolutional decoders.
Sionna's own layouts ([B, num_tx, num_tx_ant, S, F] and
[B, num_rx, num_rx_ant, num_tx, num_tx_ant, S, F]) are reached with views (no copies).

Power/SNR convention (as ``channel.mimo_flat``): channels with ``normalize: per_link`` (the
default) have unit average gain E|h|^2 = 1 per (UE, Tx antenna) link; the input is expected
to carry total energy 1 per resource element summed over the Nt antennas (a power-normalizing
precoder); then snr_db is Es/N0 per receive antenna and the noise is CN(0, N0),
N0 = 10^(-snr_db/10). With ``normalize: per_drop`` the unit gain holds for the mean over the
K links of a drop, so snr_db is Es/N0 per receive antenna averaged over the drop's users.

Sionna is imported lazily (first block construction), so importing ``blocks`` stays fast.
Sionna objects are built per device on first use and kept out of ``state_dict``.
"""
