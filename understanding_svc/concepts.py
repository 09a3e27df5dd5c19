"""Feature-level concept tiers: channels that keep holding a layer's largest activation.

The seed log planned "feature-level, tiered concept freezing (forming -> maturing ->
candidate_to_freeze)" and ended the phase with "No concepts ready yet". A feature here is
(layer name, channel). Each interval's LayerStats name the channel with the largest |x| in every
layer; a channel that keeps that place interval after interval, at a steady magnitude, is a
candidate concept. Tiers:

- forming: held the max for >= forming_after intervals;
- maturing: >= maturing_after intervals and magnitude coefficient of variation <= maturing_cv;
- candidate_to_freeze: >= freeze_after intervals and CV <= freeze_cv.

A feature that loses the max for more than max_gap consecutive intervals is dropped. feed()
reports only tier changes. State is plain JSON (to_dict/from_dict) so tiers survive a restart.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import msgspec

from shared.contract.events import LayerStats

Tier = Literal["forming", "maturing", "candidate_to_freeze"]


class Feature(msgspec.Struct):
    name: str  # "<layer name>:<channel>", as in shared.contract.events.Concept.feature
    layer_name: str
    channel: int
    first_step: int
    last_step: int
    intervals: int = 0  # intervals it held the layer's max
    misses: int = 0  # consecutive intervals it did not
    magnitudes: list[float] = []  # recent max |x| while holding, newest last
    tier: Tier | None = None


class ConceptChange(msgspec.Struct, frozen=True):
    feature: str
    tier: Tier | None  # None: the feature was dropped (no Concept event for it)
    previous: Tier | None
    score: float  # 0..1, persistence times stability
    first_step: int
    step: int
    intervals: int
    cv: float  # coefficient of variation of its magnitude
    mean_abs: float


class ConceptTracker:
    def __init__(self, forming_after: int = 2, maturing_after: int = 5, freeze_after: int = 10,
                 maturing_cv: float = 0.25, freeze_cv: float = 0.1, max_gap: int = 1, window: int = 20):
        self.forming_after = forming_after
        self.maturing_after = maturing_after
        self.freeze_after = freeze_after
        self.maturing_cv = maturing_cv
        self.freeze_cv = freeze_cv
        self.max_gap = max_gap  # intervals a feature may lose the max and keep its streak
        self.window = window  # magnitudes kept per feature for the stability measure
        self.features: dict[str, Feature] = {}

    def feed(self, step: int, layers: Sequence[LayerStats]) -> list[ConceptChange]:
        """Count one interval; returns the features whose tier changed."""
        holders = {f"{s.name}:{s.max_channel}": s for s in layers if math.isfinite(s.max_abs)}
        changes = []
        for name, stats in holders.items():
            feature = self.features.get(name) or Feature(name, stats.name, stats.max_channel, step, step)
            self.features[name] = feature
            feature.intervals, feature.misses, feature.last_step = feature.intervals + 1, 0, step
            feature.magnitudes = (feature.magnitudes + [abs(stats.max_abs)])[-self.window:]
            changes += self._retier(feature, step)
        layer_names = {s.name for s in layers}
        for feature in list(self.features.values()):
            if feature.name not in holders and feature.layer_name in layer_names:
                feature.misses += 1
                if feature.misses > self.max_gap:
                    changes += self._drop(feature, step)
        return changes

    def concepts(self, tier: Tier | None = None) -> list[Feature]:
        """Features with a tier (or with the given tier), longest-held first."""
        held = [f for f in self.features.values() if f.tier and (tier is None or f.tier == tier)]
        return sorted(held, key=lambda f: -f.intervals)

    def tier_of(self, feature: Feature) -> Tier | None:
        cv = coefficient_of_variation(feature.magnitudes)
        if feature.intervals >= self.freeze_after and cv <= self.freeze_cv:
            return "candidate_to_freeze"
        if feature.intervals >= self.maturing_after and cv <= self.maturing_cv:
            return "maturing"
        return "forming" if feature.intervals >= self.forming_after else None

    def score(self, feature: Feature) -> float:
        persistence = min(1.0, feature.intervals / self.freeze_after)
        return round(persistence / (1.0 + coefficient_of_variation(feature.magnitudes)), 4)

    def _retier(self, feature: Feature, step: int) -> list[ConceptChange]:
        tier = self.tier_of(feature)
        if tier == feature.tier:
            return []
        previous, feature.tier = feature.tier, tier
        return [self._change(feature, previous, step)]

    def _drop(self, feature: Feature, step: int) -> list[ConceptChange]:
        del self.features[feature.name]
        if feature.tier is None:
            return []
        previous, feature.tier = feature.tier, None
        return [self._change(feature, previous, step)]

    def _change(self, feature: Feature, previous: Tier | None, step: int) -> ConceptChange:
        mags = feature.magnitudes
        cv = coefficient_of_variation(mags)
        return ConceptChange(feature.name, feature.tier, previous, self.score(feature), feature.first_step,
                             step, feature.intervals, round(cv, 4) if math.isfinite(cv) else -1.0,
                             sum(mags) / len(mags) if mags else 0.0)

    def to_dict(self) -> dict:
        settings = {k: v for k, v in vars(self).items() if k != "features"}
        return settings | {"features": [msgspec.to_builtins(f) for f in self.features.values()]}

    @classmethod
    def from_dict(cls, state: dict) -> ConceptTracker:
        tracker = cls(**{k: v for k, v in state.items() if k != "features"})
        for item in state["features"]:
            feature = msgspec.convert(item, Feature)
            tracker.features[feature.name] = feature
        return tracker


def coefficient_of_variation(values: Sequence[float]) -> float:
    """std / mean; infinite for fewer than two values, so a new feature is never 'stable'."""
    if len(values) < 2:
        return math.inf
    mean = sum(values) / len(values)
    if mean <= 0:
        return math.inf
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean
