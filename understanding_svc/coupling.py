"""Which signals move together, and which moves first: lagged rank correlation between series.

The seed read its detections together ("high norms -> repetition -> 0-0 motif"). Here that reading
is a measurement: over the last `window` steps, for each pair of named series from different
families (`norm.3` is family "norm", `loop.count` family "loop", `probe.honesty` family "probe"),
the Spearman correlation of one with the other shifted by 0..max_lag observations. The lag with
the strongest significant correlation is the coupling: `leader` moves first, `follower` `lag`
steps later. Any named series can join (probe scores from issue 11 included): `record` it.

Series are sampled at different steps (activations every N steps, samples every M); they are
put on the union of their steps in the window, each carrying its last value forward up to its
latest observation, so a lag
counts positions on that grid and is reported in steps as well. Pure: no NATS, no SQL.
"""
from __future__ import annotations

import math

import msgspec
import numpy as np
from scipy.stats import spearmanr

WINDOW_STEPS = 2000  # how far back the correlation looks
MAX_LAG = 5  # in grid positions
MIN_POINTS = 8  # overlapping observations a correlation must rest on
MIN_STRENGTH = 0.6  # |rho|
MAX_P = 0.01


class Coupling(msgspec.Struct, frozen=True):
    leader: str
    follower: str
    strength: float  # Spearman rho of leader[t] with follower[t + lag]
    p_value: float
    lag: int  # grid positions
    lag_steps: int  # the same lag in training steps (median gap)
    steps: list[int]  # the leader's steps the correlation rests on


def family(name: str) -> str:
    return name.split(".", 1)[0]


def record(step: int, values: dict[str, float], window: int = WINDOW_STEPS):
    """A change function for kv_state.update: put `values` at `step` in the run's series, keeping
    the larger value when the step is already there (a round's counts only grow, and two
    instances may write a smaller and a larger view of it in any order); forget old steps."""
    def change(saved):
        series = (saved or {}).get("series", {})
        for name, value in values.items():
            points = series.setdefault(name, {})
            key = str(step)
            points[key] = max(points.get(key, value), value)
        newest = max((int(s) for points in series.values() for s in points), default=step)
        series = {n: {s: v for s, v in p.items() if int(s) > newest - window} for n, p in series.items()}
        return {**(saved or {}), "series": series}, None
    return change


def grid(series: dict[str, dict[int, float]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every series on the union of their steps, forward-filled between its observations (NaN
    before its first and after its last)."""
    steps = np.array(sorted({s for points in series.values() for s in points}), dtype=np.int64)
    filled = {}
    for name, points in series.items():
        at = sorted(points)
        idx = np.searchsorted(np.array(at), steps, side="right") - 1
        values = np.array([points[s] for s in at], dtype=float)
        inside = (idx >= 0) & (steps <= at[-1])  # never carried past its last observation
        filled[name] = np.where(inside, values[np.maximum(idx, 0)], np.nan)
    return steps, filled


def find_couplings(series: dict[str, dict[int, float]], max_lag: int = MAX_LAG, min_points: int = MIN_POINTS,
                   min_strength: float = MIN_STRENGTH, max_p: float = MAX_P) -> list[Coupling]:
    """The strongest significant lagged rank correlation of each cross-family pair, strongest first."""
    steps, filled = grid(series)
    names = sorted(filled)
    found = []
    for a in names:
        for b in names:
            if family(a) == family(b):
                continue
            best = _best_lag(steps, filled[a], filled[b], max_lag, min_points, max_p)
            if best and abs(best.strength) >= min_strength:
                found.append(msgspec.structs.replace(best, leader=a, follower=b))
    return _one_per_pair(sorted(found, key=lambda c: -abs(c.strength)))


def _best_lag(steps, x, y, max_lag, min_points, max_p) -> Coupling | None:
    best = None
    for lag in range(0, max_lag + 1):
        a, b = (x[:-lag], y[lag:]) if lag else (x, y)
        ok = ~(np.isnan(a) | np.isnan(b))
        # a stretch where either side is flat says nothing; spearmanr would return NaN
        if ok.sum() < min_points or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
            continue
        rho, p = spearmanr(a[ok], b[ok])
        if math.isnan(rho) or p > max_p:
            continue
        if best is None or abs(rho) > abs(best.strength) + 1e-9:
            at = np.flatnonzero(ok)
            gaps = steps[at + lag] - steps[at]
            best = Coupling("", "", round(float(rho), 4), float(p), lag, int(np.median(gaps)),
                            [int(s) for s in steps[at]])
    return best


def _one_per_pair(found: list[Coupling]) -> list[Coupling]:
    """a->b and b->a at lag 0 are the same finding; keep the first (strongest) of each pair."""
    seen, out = set(), []
    for c in found:
        pair = frozenset((c.leader, c.follower))
        if pair in seen:
            continue
        seen.add(pair)
        out.append(c)
    return out
