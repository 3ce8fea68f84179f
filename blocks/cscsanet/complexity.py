"""Parameter counts of the seed-002 (CSC-SA-Net) blocks at the paper's size, beside Table II.

    .venv/bin/python -c "from blocks.cscsanet.complexity import main; main()"

Paper size: N_c = 100, 480 x 640 images, MFNet widths, CSANet Transformers of the authors'
code (d_model 192, 8 heads, 2 layers, MLP 768, d_CSI 192), B = 1024 feedback bits, Q = 4.
"paper" options follow the text (2-bit quantizer, exp(j Theta) phases, sinusoidal position
embedding, unit-modulus X_RF); "code" options follow the notebook (4-bit quantizer, z/|z|
projections, a learned position table, a free complex X_RF), which is what the notes'
33.30 M measurement of the code counts (../shared/specs/seed002.md Sec. 1.10).
"""
from __future__ import annotations

import argparse

from flowgraph import registry

#: Table II of seed 002, parameters in millions. Its "multimodal semantic fusion modules: 3.37M"
#: equals the MFNet encoders + decoder alone (the code's 3.371 M); 50.1 M = 45.8 + 3.37 + the
#: SFA modules and heads (about 0.96 M). Its MFNet baseline row is 3.23 M.
TABLE_II = {"physical": 45.8, "mfnet": 3.37, "total": 50.1}

_OPTIONS = {
    "paper": dict(quant_bits=2, phase_param="exp", pos_embedding="sine", rf_param="phase"),
    "code": dict(quant_bits=4, phase_param="project", pos_embedding="learned", rf_param="free"),
}


def _build(type_id: str, params: dict):
    import blocks  # noqa: F401  (registers the library)
    return registry.get(type_id)(**params)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(options: str = "paper", feedback_bits: int = 1024, q_symbols: int = 4) -> dict:
    """Parameters of each sub-network and of Table II's groups at the paper's size."""
    o = _OPTIONS[options]
    ue = dict(feedback_bits=feedback_bits, quant_bits=o["quant_bits"], phase_param=o["phase_param"],
              pos_embedding=o["pos_embedding"])
    bs = dict(feedback_bits=feedback_bits, quant_bits=o["quant_bits"], phase_param=o["phase_param"])
    msf = [_build("extractor.ue_msfnet", dict(in_channels=c, q_symbols=q_symbols)) for c in (3, 1)]
    dec = _build("decoder.bs_msfnet", dict(q_symbols=q_symbols))
    counts = {
        "BS-CSIRS-Net": _count(_build("csirs.bs_csirsnet", dict(rf_param=o["rf_param"]))),
        "UE-CSANet (x2)": 2 * _count(_build("estimator.ue_csanet", ue)),
        "BS-CSANet": _count(_build("combiner.bs_csanet", bs)),
        "UE-MSFNet RGB": _count(msf[0]),
        "UE-MSFNet thermal": _count(msf[1]),
        "BS-MSFNet": _count(dec),
    }
    counts["physical"] = counts["BS-CSIRS-Net"] + counts["UE-CSANet (x2)"] + counts["BS-CSANet"]
    counts["mfnet"] = _count(msf[0].encoder) + _count(msf[1].encoder) + _count(dec.decoder)
    counts["fusion"] = counts["UE-MSFNet RGB"] + counts["UE-MSFNet thermal"] + counts["BS-MSFNet"]
    counts["SFA + heads"] = counts["fusion"] - counts["mfnet"]
    counts["total"] = counts["physical"] + counts["fusion"]
    return counts


def format_counts(feedback_bits: int = 1024) -> str:
    both = {k: parameter_counts(k, feedback_bits) for k in _OPTIONS}
    lines = [f"seed 002 parameters at the paper's size (B = {feedback_bits}, Q = 4), millions",
             f"{'part':<22}{'paper options':>15}{'code options':>14}{'Table II':>10}"]
    for key in both["paper"]:
        ref = TABLE_II.get(key)
        lines.append(f"{key:<22}{both['paper'][key] / 1e6:>15.3f}{both['code'][key] / 1e6:>14.3f}"
                     f"{'' if ref is None else f'{ref:.2f}':>10}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feedback-bits", type=int, default=1024)
    print(format_counts(ap.parse_args(argv).feedback_bits))


if __name__ == "__main__":
    main()
