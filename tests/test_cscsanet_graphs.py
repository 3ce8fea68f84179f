"""Seed 002 (CSC-SA-Net) graphs: the ablation files, the three stages (settings, batch sizes,
resume), NOMA/OMA channel uses and CBR, the separated baseline's deployed decoder, and the
paper preset beside Table II. Every shipped graph's smoke preset also runs in tests/test_graphs.py."""
from pathlib import Path

import pytest
import torch

from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph
from flowgraph.run import Runner

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "graphs/csc_sanet.yaml"
SEPARATED = ROOT / "graphs/baselines/csc_separated.yaml"
ABLATIONS = {"csc_oma": {"access": "oma"}, "csc_no_sfa": {"sfa": False}, "csc_single_stage": {"stages": "single"},
             "csc_code": {"pilot_noise": False, "rf_param": "free", "csirs_power": "rx_agc", "quant_bits": 4,
                          "phase_param": "project", "pos_embedding": "learned", "se_reduce": "min",
                          "se_symbols": "first", "se_snr_db": 13, "msf_power": "baseband", "noise_at": "rf",
                          "symbol_map": "code_real_only", "oma_combine": "sum"}}


def _runner(path, tmp_path, name="r", resume=False, **overrides):
    return Runner(load_graph(path), preset="smoke", overrides=overrides, out=tmp_path / name, quiet=True,
                  resume=resume)


def test_ablation_files_differ_from_the_full_graph_only_in_their_variables():
    full = load_graph(FULL).to_dict()
    for name, changes in ABLATIONS.items():
        d = load_graph(ROOT / f"graphs/csc_ablations/{name}.yaml").to_dict()
        for key in set(full) | set(d):
            if key in ("name", "description"):
                continue
            if key == "variables":
                assert {k: d[key][k] for k in changes} == changes, name
                assert {**d[key], **{k: full[key][k] for k in changes}} == full[key], name
            else:
                assert d.get(key) == full.get(key), f"{name}: '{key}' differs from csc_sanet.yaml"


def test_three_stages_settings_and_batch_sizes(tmp_path):
    """Sec. III-H: Stage I over the identity channel without CSI, Stage II on the SE with batch
    128, Stage III on cross-entropy; Sec. IV-C: batches 16 / 128 / 16."""
    spec = load_graph(FULL)
    assert [s["stage"] for s in spec.train] == ["semantic", "physical", "joint"]
    r = Runner(spec, out=tmp_path / "r", quiet=True)
    names = [r.stage_settings(i) for i in range(3)]
    assert names[0]["variables"]["ideal_channel"] is True and names[0]["variables"]["use_csi"] is False
    assert set(names[0]["trainable"]) == {"msf1", "msf2", "dec"}
    assert set(names[1]["trainable"]) == {"csirs", "ue1", "ue2", "bs"}
    assert set(names[2]["trainable"]) == {"csirs", "ue1", "ue2", "bs", "msf1", "msf2", "dec"}
    assert [names[i]["batch"] for i in range(3)] == [16, 128, 16]
    r.close()


def test_single_stage_ablation_trains_only_the_joint_stage():
    """Ablation 5 (Sec. III-H: "single-stage E2E training from scratch"): stages I and II off."""
    full = compile_graph(load_graph(FULL), preset="smoke")
    single = compile_graph(load_graph(ROOT / "graphs/csc_ablations/csc_single_stage.yaml"), preset="smoke")
    assert full.stages_enabled == [True, True, True] and single.stages_enabled == [False, False, True]


def test_smoke_runs_every_stage_and_resume_equals_uninterrupted(tmp_path):
    full = _runner(FULL, tmp_path, "a", steps_joint=4)
    full.train()
    part = _runner(FULL, tmp_path, "b", steps_joint=4)
    assert part.train(stop_after=5) is False                      # stops inside Stage III
    again = _runner(FULL, tmp_path, "b", resume=True, steps_joint=4)
    assert again.train(resume=True)
    a, b = full.scheduler.state_dict(), again.scheduler.state_dict()
    for k, v in a.items():
        if torch.is_tensor(v) and v.is_floating_point():
            assert torch.equal(v, b[k]), k
    for r in (full, part, again):
        r.close()


@pytest.mark.parametrize("access,uses", [("noma", 2 * 2 * 1 * 4), ("oma", 2 * 2 * 1 * 2)])
def test_channel_uses_and_cbr(tmp_path, access, uses):
    """NOMA: both UEs on all Q x N_c REs (2 streams each); OMA: each on N_c / 2 subcarriers.
    smoke: Q = 1, N_c = 4, 32 x 32 RGB + thermal = 4096 source values."""
    r = _runner(FULL, tmp_path, access=access)
    res = r.evaluate(write=False)
    r.close()
    assert res["cbr"]["channel_uses"] == uses
    assert res["cbr"]["source_values"] == 4 * 32 * 32
    assert res["cbr"]["cbr"] == pytest.approx(uses / 4096)
    assert {"miou", "miou_standard", "se"} <= set(res["metrics"])


def test_separated_baseline_deploys_the_awgn_trained_decoder(tmp_path):
    r = _runner(SEPARATED, tmp_path)
    assert r.train()
    sch = r.scheduler
    a, b = sch.block("dec_awgn").state_dict(), sch.block("dec").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    res = r.evaluate(write=False)
    r.close()
    assert res["cbr"]["channel_uses"] == 2 * (1 + 1) * 4          # one stream per UE: DMRS + data symbol


@pytest.mark.slow
def test_paper_preset_builds_beside_table_ii(tmp_path):
    """480 x 640, N_c = 100, MFNet widths, the code's CSANet sizes: 54.2 M parameters with the
    paper's options (Table II: 50.1 M; the code's options give 37.6 M, see
    blocks/cscsanet/complexity.py)."""
    cg = compile_graph(load_graph(FULL), preset="paper", overrides={"dataset": "synthetic", "num_train": 2,
                                                                     "num_val": 2, "num_eval": 2})
    assert cg.problems == []
    r = Runner(load_graph(FULL), preset="paper", out=tmp_path / "r", quiet=True,
               overrides={"dataset": "synthetic", "num_train": 2, "num_val": 2, "num_eval": 2})
    n = sum(p.numel() for p in r.scheduler.parameters())
    r.close()
    assert abs(n / 1e6 - 54.17) < 0.05
