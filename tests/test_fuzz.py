"""Fuzzing `semflow validate` as an attacker and a careless user would (issue 18.7).

Every generated case (tests/fuzz_graphs.py: mutations of every shipped graph in ten
classes) must either validate or give one-line errors that start with the case's file
and a location, within the per-case time limit, and no case may execute code (the
attacks try to create a marker file). A few hundred cases run in the normal test run,
thousands under `-m slow`.
"""
import pytest

import fuzz_graphs as F

TIME_LIMIT = 20.0       # seconds per case; a case that takes longer is a hang


def _run(tmp_path, n):
    marker = tmp_path / F.MARKER
    cases = F.generate(F.seed_graphs(), n, seed=0, marker=str(marker))
    assert sum(str(marker) in str(c.files) for c in cases) > n // 100    # the attacks aim at the marker
    outcomes = F.run_cases(cases, tmp_path, timeout=TIME_LIMIT)
    failures = [f"[{o.status}] [{o.case.kind}] {o.case.name}: {o.detail}" for o in outcomes
                if o.status not in ("ok", "error")]
    assert failures == [], "\n".join(failures[:20])
    assert not marker.exists(), "a case executed code"
    by_kind = {k: [o.status for o in outcomes if o.case.kind == k] for k in F.KINDS}
    for kind in ("deep_nesting", "hierarchy_path"):
        assert by_kind[kind] and all(s == "error" for s in by_kind[kind]), (kind, by_kind[kind])
    # a standard tag that makes a value the key accepts (!!str 5 as a description, !!null x
    # for an optional key) is a valid graph; every other tag is refused
    made = ("= !!str 5", "= !!null x")
    tagged = [o for o in outcomes if o.case.kind == "yaml_tag"]
    assert tagged and all(o.status == "error" or o.case.name.endswith(made) for o in tagged), \
        [(o.case.name, o.status) for o in tagged if o.status != "error"]
    return outcomes


def test_fuzz_cases_give_one_located_line_each(tmp_path):
    outcomes = _run(tmp_path, 300)
    assert {o.status for o in outcomes} == {"ok", "error"}


@pytest.mark.slow
def test_fuzz_thousands(tmp_path):
    _run(tmp_path, 3000)


def test_the_generator_is_deterministic():
    graphs = F.seed_graphs()
    a = F.generate(graphs, 40, seed=3)
    b = F.generate(graphs, 60, seed=3)[:40]
    assert [(c.kind, c.name, c.files) for c in a] == [(c.kind, c.name, c.files) for c in b]
    assert {c.kind for c in a} == set(F.KINDS)
