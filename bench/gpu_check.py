"""GPU figures for issue 15 (prepared; NOT run yet: no GPU was available when it was written).

    .venv/bin/python bench/gpu_check.py [--data-path /data/kodak-or-imagenet] > gpu_check.txt

Times training steps of deepjscc_awgn and lcfsc at their ``quick`` and ``paper`` presets
on ``cuda``: --compile vs eager and --amp bf16 vs eager, each a ratio A/B (below 1: faster)
from interleaved chunks (bench/timing.py via bench/scale.py), and prints the GPU model and
torch/CUDA versions first. The paper presets read ``dataset: folder``: pass
``--data-path`` (any folder of images; throughput does not depend on which). Record the
output in docs/scale-out.md with the GPU model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402

CASES = [("graphs/deepjscc_awgn.yaml", "quick"), ("graphs/deepjscc_awgn.yaml", "paper"),
         ("graphs/lcfsc.yaml", "quick"), ("graphs/lcfsc.yaml", "paper")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-path", default=None, help="image folder for the paper presets")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--chunk", type=int, default=10)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench/gpu_check.py: no CUDA device here")
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    for graph, preset in CASES:
        sets = [f"data_path={a.data_path}"] if preset == "paper" and a.data_path else []
        args = scale.parser().parse_args(["--graph", graph, "--preset", preset, "--device", "cuda",
                                          "--pairs", str(a.pairs), "--chunk", str(a.chunk)]
                                         + [x for s in sets for x in ("--set", s)])
        for label, options in (("--compile", {"compile": True}), ("--amp bf16", {"amp": "bf16"})):
            try:
                print(scale.against_eager(args, label, **options), flush=True)
            except Exception as exc:      # one failing case must not hide the others
                print(f"{label} {graph} {preset}: FAILED {type(exc).__name__}: {exc}", flush=True)


if __name__ == "__main__":
    main()
