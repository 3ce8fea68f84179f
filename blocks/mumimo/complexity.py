"""Parameter counts of the seed-003 blocks at paper widths, beside the paper's Table III.

    .venv/bin/python -m blocks.mumimo.complexity            # N_f = 128 (Table III's setting)
    .venv/bin/python -m blocks.mumimo.complexity --nf 32

Counts are trainable parameters (BatchNorm running statistics are buffers and are not
counted; Keras' ``count_params`` would add 2 per BN channel, a few hundred in total).
"""
from __future__ import annotations

import argparse

from flowgraph.testing import build

from ._layers import count_parameters

#: seed 003 Table III, parameters in millions: variant -> (encoder, precoder, decoder)
TABLE_III = {
    "Ours (Full)": (10.13, 0.061, 0.11),
    "Ours (w/o Pilot)": (10.13, 0.061, 0.078),
    "Ours (RZF)": (10.10, 0.0, 0.078),
    "DJSCC": (6.35, 0.061, 7.44),
}

#: switches of each variant (seed 003 Sec. IV, ablation list)
VARIANTS = {
    "Ours (Full)": dict(adapt=True, residual=True, learnable=True, pilot=True),
    "Ours (w/o Pilot)": dict(adapt=True, residual=True, learnable=True, pilot=False),
    "Ours (RZF)": dict(adapt=False, residual=False, learnable=False, pilot=False),
}


def parameter_counts(nf: int = 128, size: int = 32, n_users: int = 4, n_tx: int = 4,
                     n_symbols: int = 14, n_data_symbols: int = 12, djscc_filters: int = 32) -> dict:
    """Build every variant's encoder, precoder and decoder at paper widths and count parameters.

    Returns {variant: {"encoder": n, "precoder": n, "decoder": n}}; DJSCC uses
    ``extractor.deepjscc_mu`` / ``decoder.deepjscc_mu`` with c = 32 D / (H W) and the
    classical RZF precoder (0 parameters; Table III lists the neural precoder's 0.061 M for
    its DJSCC).
    """
    out = {}
    for name, v in VARIANTS.items():
        enc = build("extractor.asymmetric_encoder", dict(
            size=size, n_subcarriers=nf, n_data_symbols=n_data_symbols, n_tx=n_tx,
            noise_adaptation=v["adapt"], scenario_adaptation=v["adapt"]))
        pre = build("precoder.residual_rzf", dict(n_users=n_users, n_tx=n_tx, residual=v["residual"],
                                                  learnable_alpha=v["learnable"]))
        dec = build("decoder.pilot_guided", dict(size=size, n_subcarriers=nf, n_symbols=n_symbols,
                                                 pilot_guidance=v["pilot"]))
        out[name] = {"encoder": count_parameters(enc), "precoder": count_parameters(pre),
                     "decoder": count_parameters(dec)}
    c = 32 * nf * n_data_symbols // (size * size)
    enc = build("extractor.deepjscc_mu", dict(size=size, channels=c, filters=djscc_filters))
    dec = build("decoder.deepjscc_mu", dict(size=size, channels=c, filters=djscc_filters))
    out["DJSCC"] = {"encoder": count_parameters(enc), "precoder": 0, "decoder": count_parameters(dec)}
    return out


def format_counts(counts: dict, nf: int) -> str:
    """A Markdown table: ours beside Table III, in millions of parameters."""
    lines = [f"| N_f = {nf} | encoder (ours / paper) | precoder (ours / paper) | decoder (ours / paper) |",
             "|---|---|---|---|"]
    for name, c in counts.items():
        paper = TABLE_III[name]
        cells = [f"{c[k] / 1e6:.4g} M / {'—' if p == 0 else f'{p} M'}"
                 for k, p in zip(("encoder", "precoder", "decoder"), paper)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_parameter_counts(nf: int = 128, **kw) -> dict:
    counts = parameter_counts(nf=nf, **kw)
    print(format_counts(counts, nf))
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nf", type=int, default=128, help="subcarriers N_f (Table III: 128)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--djscc-filters", type=int, default=32)
    a = ap.parse_args(argv)
    print_parameter_counts(nf=a.nf, size=a.size, djscc_filters=a.djscc_filters)


if __name__ == "__main__":
    main()
