"""Shimmer: how much each layer's activation RMS flickers from one interval to the next.

The seed log's next phase asked for "shimmer history logging" (shimmer_history.jsonl): a record
of the step-to-step relative change of per-layer activation norms, so a calm network can be told
from one whose norms swing between intervals. ShimmerHistory is fed one interval at a time and
keeps a bounded history; its state is plain JSON so a restarted service continues the series.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import msgspec

from shared.contract.events import LayerStats
from understanding_svc.health import layer_norms


class ShimmerPoint(msgspec.Struct, frozen=True):
    step: int
    since_step: int  # the interval it is compared with
    layers: list[int]  # layer index of each entry in per_layer
    per_layer: list[float]  # |rms_now - rms_before| / rms_before, as in shared.contract.events.Shimmer
    mean: float


class ShimmerHistory:
    """Feed (step, layers) per interval; each feed after the first yields one ShimmerPoint."""

    def __init__(self, max_points: int = 1000):
        self.max_points = max_points
        self.points: deque[ShimmerPoint] = deque(maxlen=max_points)
        self.last_step: int | None = None
        self.last_rms: dict[int, float] = {}

    def feed(self, step: int, layers: Sequence[LayerStats]) -> ShimmerPoint | None:
        rms = {i: s.rms for i, s in layer_norms(layers).items()}
        point = None
        if self.last_step is not None:
            common = sorted(i for i in rms.keys() & self.last_rms.keys())
            changes = [relative_change(self.last_rms[i], rms[i]) for i in common]
            mean = sum(changes) / len(changes) if changes else 0.0
            point = ShimmerPoint(step, self.last_step, common, changes, mean)
            self.points.append(point)
        self.last_step, self.last_rms = step, rms
        return point

    def mean_series(self) -> list[tuple[int, float]]:
        return [(p.step, p.mean) for p in self.points]

    def to_dict(self) -> dict:
        return {"max_points": self.max_points, "last_step": self.last_step,
                "last_rms": {str(i): v for i, v in self.last_rms.items()},
                "points": [msgspec.to_builtins(p) for p in self.points]}

    @classmethod
    def from_dict(cls, state: dict) -> ShimmerHistory:
        history = cls(state["max_points"])
        history.last_step = state["last_step"]
        history.last_rms = {int(i): float(v) for i, v in state["last_rms"].items()}
        history.points.extend(msgspec.convert(p, ShimmerPoint) for p in state["points"])
        return history


def relative_change(before: float, now: float) -> float:
    """|now - before| / before; 0.0 where either is not a usable norm (health reports NaN/inf)."""
    if not (math.isfinite(before) and math.isfinite(now)) or before <= 0:
        return 0.0
    return abs(now - before) / before
