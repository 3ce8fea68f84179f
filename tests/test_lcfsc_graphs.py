"""Seed 000 graphs end to end: taps of the live mask, the CVAE -> encoder wiring, CBR, the proxy encoder.

(tests/test_graphs.py already validates every shipped graph in every preset and runs its
smoke preset; these tests look inside the LCFSC runs.)
"""
from pathlib import Path

import pytest
import torch

import blocks  # noqa: F401
from flowgraph.graph import load_graph
from flowgraph.run import Runner
from flowgraph.taps import TapHub

ROOT = Path(__file__).resolve().parents[1]
SEED000_GRAPHS = ["graphs/lcfsc.yaml", "graphs/cfsc.yaml", "graphs/witt_mimo.yaml",
                  "graphs/baselines/adjscc_mimo.yaml", "graphs/lcfsc_ablations/lcfsc_ls.yaml",
                  "graphs/lcfsc_ablations/lcfsc_perfect.yaml", "graphs/lcfsc_ablations/lcfsc_m01.yaml"]


def test_seed000_graphs_exist_with_three_presets():
    for g in SEED000_GRAPHS:
        spec = load_graph(ROOT / g)
        assert {"smoke", "quick", "paper"} <= set(spec.presets), g


def test_lcfsc_mask_tap_is_live_and_driven_by_the_cvae(tmp_path):
    hub = TapHub()
    got = {"enc.mask": [], "enc.m": [], "cvae.m": [], "enc.attn_stage1": []}
    subs = [hub.subscribe(name, lambda n, v, info: got[n].append(v), min_interval=0.0) for name in got]
    r = Runner(load_graph(ROOT / "graphs/lcfsc.yaml"), preset="smoke", overrides={"npn_steps": 1, "steps": 2},
               taps=hub, out=tmp_path / "r", quiet=True)
    r.train()
    res = r.evaluate(points=[{"snr_db": 5}, {"snr_db": 15}], images=2, write=False)
    r.close()
    for s in subs:
        s.close()
    assert got["enc.mask"] and len(got["enc.mask"]) == len(got["enc.m"]) == len(got["cvae.m"])
    d2 = 16 * 16                                            # smoke: stage 2, one 4x4 window
    for mask, m, m_cvae in zip(got["enc.mask"], got["enc.m"], got["cvae.m"]):
        assert torch.allclose(m, m_cvae)                    # the encoder used the CVAE's m*
        assert ((m >= 0.001 - 1e-7) & (m <= 0.015 + 1e-7)).all()
        zeros = (mask == 0).flatten(3).sum(-1)              # (B*nW, n_cfma, heads)
        nw = mask.shape[0] // m.shape[0]
        want = torch.round(m * d2).repeat_interleave(nw)
        assert (zeros == want[:, None, None]).all()
    assert got["enc.attn_stage1"][0].shape[-1] == 16       # D = 16 patches per window
    assert res["cbr"]["fraction"] == "1/16"
    for row in res["rows"]:
        assert 0.001 <= row["mbar"] <= 0.015 and row["psnr"] == row["psnr"]


def test_lcfsc_proxy_from_a_cfsc_run_via_init(tmp_path):
    """cfsc_ckpt set: the cfsc stage is skipped, init loads the CFSC run's codec and NPN,
    and the e2e stage copies its encoder into the frozen proxy (eq. 13)."""
    cfsc = Runner(load_graph(ROOT / "graphs/cfsc.yaml"), preset="smoke",
                  overrides={"npn_steps": 1, "steps": 1}, out=tmp_path / "cfsc", quiet=True)
    assert cfsc.train()
    cfsc.close()
    ckpt = tmp_path / "cfsc" / "checkpoints" / "last.pt"
    lc = Runner(load_graph(ROOT / "graphs/lcfsc.yaml"), preset="smoke",
                overrides={"cfsc_ckpt": str(ckpt), "npn_steps": 0, "steps": 0}, out=tmp_path / "lc", quiet=True)
    assert lc.train()
    assert "[cfsc] disabled" in (tmp_path / "lc" / "log.txt").read_text()
    trained = cfsc.scheduler
    for proxy, name in (("penc", "enc"), ("pmod", "mod"), ("enc", "enc"), ("dec", "dec"), ("npn", "npn")):
        a, b = lc.scheduler.block(proxy).state_dict(), trained.block(name).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), (proxy, name)
    lc.close()


def test_lcfsc_one_command_trains_the_cfsc_encoder_then_copies_it_into_the_proxy(tmp_path):
    """No cfsc_ckpt: the cfsc stage trains the codec at m = m_stable (the CVAE's fixed_m),
    and the e2e stage starts from a frozen copy of that encoder as the proxy."""
    hub = TapHub()
    ms = []
    hub.subscribe("cvae.m", lambda n, v, info: ms.append((info["stage"], v)), min_interval=0.0)
    r = Runner(load_graph(ROOT / "graphs/lcfsc.yaml"), preset="smoke", overrides={"npn_steps": 1, "steps": 2},
               taps=hub, out=tmp_path / "r", quiet=True)
    penc0 = {k: v.clone() for k, v in r.scheduler.block("penc").state_dict().items()}
    enc0 = {k: v.clone() for k, v in r.scheduler.block("enc").state_dict().items()}
    assert r.train(stop_after=3) is False          # npn_pretrain 1 + cfsc 2 steps; stops as e2e starts
    enc, penc = r.scheduler.block("enc").state_dict(), r.scheduler.block("penc").state_dict()
    assert all(torch.equal(enc[k], penc[k]) for k in enc)                 # copied at the e2e start
    assert any(not torch.equal(enc[k], enc0[k]) for k in enc)             # the cfsc stage trained it
    assert any(not torch.equal(penc[k], penc0[k]) for k in penc)
    cfsc_m = [m for stage, m in ms if stage == "cfsc"]
    assert cfsc_m and all(torch.allclose(m, torch.full_like(m, 0.009)) for m in cfsc_m)
    assert r.train(resume=True)                    # e2e: the CVAE's m* again, and the proxy stays frozen
    e2e_m = [m for stage, m in ms if stage == "e2e"]
    assert e2e_m and not all(torch.allclose(m, torch.full_like(m, 0.009)) for m in e2e_m)
    after = r.scheduler.block("penc").state_dict()
    assert all(torch.equal(after[k], penc[k]) for k in after)
    r.close()


def test_npn_pretraining_stage_trains_only_the_npn(tmp_path):
    r = Runner(load_graph(ROOT / "graphs/cfsc.yaml"), preset="smoke", overrides={"npn_steps": 2},
               out=tmp_path / "r", quiet=True)
    before = {k: v.clone() for k, v in r.scheduler.state_dict().items() if torch.is_tensor(v)}
    assert r.train(stop_after=2) is False          # the 2 NPN steps, then stops before e2e
    after = r.scheduler.state_dict()
    changed = {k.split(".")[1] for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])}
    assert changed == {"npn"}
    r.close()
