"""bench/time_to_quality.py end to end on a tiny labelled folder (the real run uses CIFAR-10)."""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import time_to_quality  # noqa: E402


def test_time_to_quality_scores_both_sides_at_every_budget(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for c in ("ant", "bee"):
        d = tmp_path / "train" / c
        d.mkdir(parents=True)
        for i in range(6):
            Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(d / f"{i:04d}.png")
    time_to_quality.main(["--data", str(tmp_path), "--test-per-class", "2", "--budgets", "0.2", "0.5",
                          "--preset", "smoke", "--chunk", "2"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 0.")]
    assert len(rows) == 2, out                                  # one row per budget
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        recipe, hand, diff = (float(c.split("±")[0].strip("* ")) for c in cells[1:4])
        assert 5 < recipe < 40 and 5 < hand < 40
        assert abs(diff - (recipe - hand)) < 0.02              # the paired difference is A - B
        steps_recipe, steps_hand = cells[4].replace("(finished)", "").split("/")
        assert int(steps_recipe) > 0 and int(steps_hand) > 0
    fitted = [int(line.rsplit("--set steps=", 1)[1]) for line in out.splitlines() if line.startswith("A quick")]
    assert len(fitted) == 2 and 0 < fitted[0] <= fitted[1]      # one recipe run per budget, steps ~ budget
    assert "n = 4" in out                                       # 2 held-out images per class
    early = [line for line in out.splitlines() if line.strip().startswith("recipe - hand at")]
    assert len(early) == 2                                      # each budget's difference, as it comes
