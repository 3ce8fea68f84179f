"""Seed 004 (SGD-JSCC) diffusion maths: the schedule of eq. (17) and its inverse (eq. 19),
DDIM (Algorithm 2, eq. 16) and DPM-Solver++(2M) with a perfect x0 predictor, and the
water-filling of Algorithm 3 (eqs. 22-24)."""
import math

import pytest
import torch

from blocks.sgdjscc import _schedule as S


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# the notes' table (../shared/specs/seed004.md 1.10), computed from eq. 17 with e=3, g=0, tau=0.7
TABLE = [(-20, 0.9901, 0.9280), (-15, 0.9693, 0.8235), (-10, 0.9091, 0.6513), (-5, 0.7597, 0.4426),
         (0, 0.5000, 0.2480), (5, 0.2403, 0.1111), (10, 0.0909, 0.0414), (15, 0.0307, 0.0139)]


@pytest.mark.parametrize("snr_db, bbar, m", TABLE)
def test_step_matching_values(snr_db, bbar, m):
    sched = S.Schedule("sigmoid", 3.0, 0.0, 0.7)
    d = S.d_of_snr_db(snr_db)
    assert abs(float(d) - bbar) < 1e-4
    assert abs(float(sched.t_of(d)) - m) < 1e-4
    assert abs(float(S.snr_db_of_d(d)) - snr_db) < 1e-9


@pytest.mark.parametrize("kind", ["sigmoid", "cosine"])
def test_schedule_endpoints_monotone_and_inverse_round_trip(kind):
    sched = S.Schedule(kind)
    t = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    b = sched.beta_bar(t)
    assert float(b[0]) == pytest.approx(0.0, abs=1e-12) and float(b[-1]) > 1 - 1e-5
    assert (b[1:] - b[:-1] >= 0).all() and (b[1:-1] - b[:-2] > 0).all()
    inner = t[5:-5]
    assert torch.allclose(sched.t_of(sched.beta_bar(inner)), inner, atol=1e-7)
    lv = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    assert torch.allclose(sched.beta_bar(sched.t_of(lv)), lv, atol=1e-9)


def test_schedule_rejects_bad_parameters():
    with pytest.raises(ValueError, match="e > g"):
        S.Schedule("sigmoid", e=0.0, g=1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        S.Schedule("linear")


def _exact_run(step_fn, x0, n, levels):
    """Run a sampler over the levels with an oracle x0 predictor; return every state."""
    f = torch.sqrt(1 - levels[0]) * x0 + torch.sqrt(levels[0]) * n
    states = [f]
    for bt, bs in zip(levels[:-1], levels[1:]):
        f = step_fn(f, x0, bt, bs)
        states.append(f)
    return states


def test_ddim_with_a_perfect_x0_predictor_stays_on_the_trajectory_and_returns_x0():
    sched = S.Schedule()
    x0, n = torch.randn(3, 4, 8, 8, dtype=torch.float64), torch.randn(3, 4, 8, 8, dtype=torch.float64)
    m = sched.t_of(torch.tensor(0.9))
    ts = torch.linspace(float(m), 0.0, 21, dtype=torch.float64)
    levels = sched.beta_bar(ts)
    states = _exact_run(lambda f, x, bt, bs: S.ddim_step(f, x, bt, bs), x0, n, levels)
    for f, b in zip(states, levels):           # deterministic DDIM keeps the noise direction n
        assert torch.allclose(f, torch.sqrt(1 - b) * x0 + torch.sqrt(b) * n, atol=1e-10)
    assert torch.allclose(states[-1], x0, atol=1e-12)


def test_ddim_eta_one_is_stochastic_but_unbiased_with_a_perfect_predictor():
    x0 = torch.randn(20000, dtype=torch.float64)
    f = math.sqrt(0.5) * x0 + math.sqrt(0.5) * torch.randn_like(x0)
    fs = S.ddim_step(f, x0, torch.tensor(0.5), torch.tensor(0.2), eta=1.0)
    resid = fs - math.sqrt(0.8) * x0
    assert abs(float(resid.var()) - 0.2) < 0.01            # still at level bbar_s = 0.2
    assert not torch.allclose(fs, S.ddim_step(f, x0, torch.tensor(0.5), torch.tensor(0.2)))


def test_dpmpp_2m_with_a_perfect_predictor_returns_x0():
    sched = S.Schedule()
    x0, n = torch.randn(2, 16, dtype=torch.float64), torch.randn(2, 16, dtype=torch.float64)
    levels = sched.beta_bar(torch.linspace(0.7, 0.0, 11, dtype=torch.float64))
    f = torch.sqrt(1 - levels[0]) * x0 + torch.sqrt(levels[0]) * n
    prev, b_prev = None, None
    for bt, bs in zip(levels[:-1], levels[1:]):
        dterm = S.dpmpp_2m_x0(x0, prev, bt.expand(2), bs.expand(2), None if b_prev is None else b_prev.expand(2))
        assert torch.allclose(dterm, x0)        # a constant x0 history: D = x0 exactly
        f = S.ddim_step(f, dterm, bt, bs)
        prev, b_prev = x0, bt
    assert torch.allclose(f, x0, atol=1e-12)


def test_dpmpp_2m_extrapolates_a_changing_prediction():
    a, b = torch.ones(1, 4), torch.zeros(1, 4)
    d = S.dpmpp_2m_x0(a, b, torch.tensor([0.5]), torch.tensor([0.3]), torch.tensor([0.7]))
    assert (d > a).all()                       # (1 + 1/2r) x0 - 1/2r x0_prev with x0 > x0_prev


def test_water_filling_brings_every_element_to_the_current_level():
    """Eq. (23): elements at levels b_i <= bbar_t become N(sqrt(1-bbar_t) f0, bbar_t)."""
    n_draws, n_el = 40000, 6
    f0 = torch.linspace(-1.5, 1.5, n_el, dtype=torch.float64)
    b = torch.tensor([0.0, 0.05, 0.2, 0.4, 0.55, 0.6], dtype=torch.float64)
    bt = 0.6
    f = torch.sqrt(1 - b) * f0 + torch.sqrt(b) * torch.randn(n_draws, n_el, dtype=torch.float64)
    g = S.water_fill(f, b.expand_as(f), torch.full((n_draws,), bt, dtype=torch.float64))
    assert torch.allclose(g.mean(0), math.sqrt(1 - bt) * f0, atol=0.02)
    assert torch.allclose(g.var(0), torch.full((n_el,), bt, dtype=torch.float64), atol=0.02)
    # an element already at the level is left unchanged (no noise added)
    assert torch.allclose(g[:, -1], f[:, -1], atol=1e-6)


def test_algorithm3_update_keeps_cleaner_elements_and_levels_below_the_target():
    """Lines 10-16 and footnote 4: after the update every level is at most bbar_s, and
    elements cleaner than bbar_s keep both value and level."""
    f = torch.randn(2, 5)
    b = torch.tensor([[0.1, 0.3, 0.5, 0.7, 0.2], [0.7, 0.7, 0.1, 0.05, 0.4]])
    g_s = torch.randn(2, 5)
    f_s, b_s = S.alg3_update(f, b, g_s, torch.tensor([0.35, 0.35]))
    assert (b_s <= 0.35 + 1e-12).all()
    cleaner = b < 0.35
    assert torch.equal(f_s[cleaner], f[cleaner]) and torch.equal(b_s[cleaner], b[cleaner])
    assert torch.equal(f_s[~cleaner], g_s[~cleaner]) and (b_s[~cleaner] == 0.35).all()


def test_code_water_filling_adds_less_noise_than_eq23():
    """The released code subtracts std's linearly (inferred deviation in the notes): its added
    noise std is at most eq. 23's, and zero for an element already at the level."""
    b = torch.tensor([0.1, 0.3, 0.5])
    st = math.sqrt(0.6)
    a = torch.sqrt(1 - b)
    code_std = (st - torch.sqrt(b) * math.sqrt(1 - st ** 2) / a).clamp_min(0)
    eq23_std = torch.sqrt(0.6 - b * 0.4 / (1 - b))
    assert (code_std < eq23_std).all()
    f = torch.randn(4, 3)
    g = S.water_fill_code(f, torch.full((4, 3), st), torch.full((4,), st))
    assert torch.allclose(g, f / f.pow(2).mean(1, keepdim=True).sqrt())
