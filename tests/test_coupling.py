"""Lagged rank correlation: a planted lag is found with its direction and size; noise is not."""
import numpy as np

from understanding_svc.coupling import find_couplings, record


def planted(lag: int, n: int = 60, every: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    norm = rng.normal(size=n + lag)
    loops = norm[:n] + 0.2 * rng.normal(size=n)  # loops follow norms `lag` observations later
    steps = [i * every for i in range(n)]
    return {"norm.3": {s: float(v) for s, v in zip(steps, norm[lag:])},
            "loop.count": {s: float(v) for s, v in zip(steps, loops)},
            "motif.occurrences": {s: float(v) for s, v in zip(steps, rng.normal(size=n))}}


def test_a_planted_lagged_correlation_is_found_with_its_lag():
    found = find_couplings(planted(lag=3))
    assert len(found) == 1
    c = found[0]
    assert (c.leader, c.follower, c.lag, c.lag_steps) == ("norm.3", "loop.count", 3, 30)
    assert c.strength > 0.9 and c.p_value < 1e-6 and len(c.steps) == 57


def test_unrelated_series_give_no_coupling():
    series = planted(lag=0)
    del series["loop.count"]
    assert find_couplings(series) == []


def test_series_of_one_family_are_not_paired():
    series = planted(lag=0)
    series["loop.severity"] = dict(series["loop.count"])
    assert {frozenset((c.leader, c.follower)) for c in find_couplings(series)} == {
        frozenset(("norm.3", "loop.count")), frozenset(("norm.3", "loop.severity"))}


def test_series_on_different_steps_meet_on_a_forward_filled_grid():
    series = planted(lag=2)
    series["loop.count"] = {s + 5: v for s, v in series["loop.count"].items()}  # samples 5 steps later
    c = find_couplings(series)[0]
    assert (c.leader, c.follower) == ("norm.3", "loop.count") and c.lag_steps in (15, 25)


def test_record_keeps_the_larger_view_of_a_step_and_forgets_old_steps():
    state, _ = record(100, {"loop.count": 3.0})(None)
    state, _ = record(100, {"loop.count": 1.0})(state)  # an older view of the same round
    assert state["series"]["loop.count"] == {"100": 3.0}
    state, _ = record(5000, {"loop.count": 0.0}, window=2000)(state)
    assert state["series"]["loop.count"] == {"5000": 0.0}
