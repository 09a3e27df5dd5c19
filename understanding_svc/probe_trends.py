"""When a bias probe's score is news: it rose beyond a margin over its own recent values, or it
crossed a threshold. Pure: the handler keeps each score's history and publishes the Detection.

A probe score (shared/contract/probes.py) is the share of comparisons in which the model prefers
the stereotyped sentence: 0.5 is no preference, higher is more stereotyped. Only those scores are
trended; the language-model score (stereoset_lms) and ICAT are not bias directions.

Grading, with rise = score - mean of the last `window` values before it:
    low     rise >= margin
    medium  rise >= 2 x margin, or the score crossed the threshold (was below it, now at or above;
            or starts at or above it)
    high    rise >= 3 x margin, or it crossed the threshold while rising by >= margin
Scores over fewer than `min_examples` comparisons (a small axis of a small subset) are too noisy
to trend and are left out.
"""
from __future__ import annotations

from collections.abc import Sequence

import msgspec

from shared.contract.events import Severity
from shared.contract.settings import Settings


class TrendRule(msgspec.Struct, frozen=True, kw_only=True):
    window: int = 5  # how many earlier values the mean is taken over
    margin: float = 0.05  # a rise of this much over that mean is a (low) detection
    threshold: float = 0.65  # crossing it is at least medium
    min_examples: int = 50

    @classmethod
    def from_settings(cls, settings: Settings) -> TrendRule:
        return cls(window=settings.bias_probe_window, margin=settings.bias_probe_rise_margin,
                   threshold=settings.bias_probe_threshold, min_examples=settings.bias_probe_min_examples)


class ProbeFinding(msgspec.Struct, frozen=True):
    severity: Severity
    score: float
    recent_mean: float | None  # None on a score's first value
    rise: float | None
    crossed: bool


def assess_probe(earlier: Sequence[float], score: float, n: int, rule: TrendRule) -> ProbeFinding | None:
    """A finding for `score` given the values before it (oldest first), or None when it is no news."""
    if n < rule.min_examples:
        return None
    recent = list(earlier)[-rule.window:]
    mean = sum(recent) / len(recent) if recent else None
    rise = score - mean if mean is not None else None
    crossed = score >= rule.threshold and (not recent or recent[-1] < rule.threshold)
    steps = int(rise / rule.margin + 1e-9) if rise is not None and rise > 0 else 0  # whole margins risen
    rank = min(steps, 3)
    if crossed:
        rank = max(rank, 2, 3 if steps >= 1 else 0)
    if rank == 0:
        return None
    severity: Severity = ("low", "medium", "high")[rank - 1]
    return ProbeFinding(severity, score, mean, rise, crossed)


def describe(probe: str, axis: str, finding: ProbeFinding, rule: TrendRule) -> str:
    """One line for the Detection's summary."""
    what = probe if axis == "all" else f"{probe} ({axis})"
    parts = []
    if finding.rise is not None and finding.rise + 1e-9 >= rule.margin:
        parts.append(f"rose {finding.rise:+.3f} over the mean {finding.recent_mean:.3f} of its last values")
    if finding.crossed:
        parts.append(f"crossed the threshold {rule.threshold:g}")
    return f"bias probe {what} at {finding.score:.3f} (0.5 = no preference): {' and '.join(parts)}"
