"""Training health from per-layer activation statistics, said in plain words.

The seed log's readings were "late-focused (high activity in layers 6 and 11)", "very high
activation norms in later layers (6: ~28k, 11: ~69k)" and a status of "needs attention"; this
module produces exactly those three things from one interval of LayerStats: a status (healthy,
needs_attention, unstable), a focus (where activation concentrates across depth) and notes.
Unstable means something broke between intervals: NaN/inf, or a layer's RMS or max |x| jumping by
a large factor since the previous interval (pass that interval as `history`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import msgspec

from shared.contract.events import LayerStats

Status = Literal["healthy", "needs_attention", "unstable"]
Focus = Literal["early", "late", "balanced"]


class HealthReport(msgspec.Struct, frozen=True):
    status: Status
    focus: Focus
    norms: list[float]  # per layer (by index) RMS of the residual stream, as in shared.contract.events.Health
    max_abs: list[float]  # per layer largest |activation|
    layers: list[int]  # the layer index of each entry above
    notes: list[str] = []


def layer_norms(layers: Sequence[LayerStats]) -> dict[int, LayerStats]:
    """One entry per layer index: its residual stream if reported, else its largest-RMS output."""
    chosen: dict[int, LayerStats] = {}
    for stats in layers:
        current = chosen.get(stats.layer)
        if current is None or _rank(stats) > _rank(current):
            chosen[stats.layer] = stats
    return dict(sorted(chosen.items()))


def _rank(stats: LayerStats) -> tuple[bool, float]:
    rms = stats.rms if math.isfinite(stats.rms) else math.inf
    return "resid" in stats.name, rms


def assess_health(layers: Sequence[LayerStats], history: Sequence[Sequence[LayerStats]] | None = None,
                  *, high_max_abs: float = 1e4, high_rms: float = 100.0, jump_factor: float = 3.0,
                  dead_limit: float = 0.5, focus_margin: float = 0.1) -> HealthReport:
    """Status, focus and notes for one interval; `history` holds earlier intervals, oldest first.

    high_max_abs / high_rms: norms above these need attention. jump_factor: a layer's RMS or max
    |x| changing by more than this factor since the previous interval is unstable. dead_limit:
    share of dead MLP units that needs attention. focus_margin: how far the activation-weighted
    mean depth must sit from the middle to call the focus early or late.
    """
    per_layer = layer_norms(layers)
    indices = list(per_layer)
    norms = [per_layer[i].rms for i in indices]
    peaks = [per_layer[i].max_abs for i in indices]
    unstable = _nonfinite_notes(layers)
    if history:
        unstable += _jump_notes(per_layer, layer_norms(history[-1]), jump_factor)
    attention = _norm_notes(per_layer, high_max_abs, high_rms) + _dead_notes(layers, dead_limit)
    status: Status = "unstable" if unstable else "needs_attention" if attention else "healthy"
    focus = activation_focus(norms, peaks, focus_margin)
    notes = unstable + attention + ([f"activation is {focus}-focused across {len(indices)} layers"] if indices else [])
    return HealthReport(status, focus, [_finite(x) for x in norms], [_finite(x) for x in peaks],
                        indices, notes)


def activation_focus(norms: Sequence[float], peaks: Sequence[float], margin: float = 0.1) -> Focus:
    """Where RMS and max |x| concentrate: the weighted mean depth, 0 = first layer, 1 = last."""
    depths = [_centre(values) for values in (norms, peaks)]
    depths = [d for d in depths if d is not None]
    if not depths:
        return "balanced"
    depth = sum(depths) / len(depths)
    return "late" if depth > 0.5 + margin else "early" if depth < 0.5 - margin else "balanced"


def _centre(values: Sequence[float]) -> float | None:
    weights = [v if math.isfinite(v) and v > 0 else 0.0 for v in values]
    if len(weights) < 2 or sum(weights) == 0:
        return None
    return sum(i * w for i, w in enumerate(weights)) / sum(weights) / (len(weights) - 1)


def _nonfinite_notes(layers: Sequence[LayerStats]) -> list[str]:
    bad = sorted({s.name for s in layers if not all(map(math.isfinite, (s.rms, s.max_abs, s.mean, s.std)))})
    return [f"non-finite activations (NaN/inf) in {', '.join(bad)}"] if bad else []


def _jump_notes(now: dict[int, LayerStats], before: dict[int, LayerStats], factor: float) -> list[str]:
    notes = []
    for index in now.keys() & before.keys():
        for field in ("rms", "max_abs"):
            a, b = getattr(before[index], field), getattr(now[index], field)
            if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b) and max(a / b, b / a) > factor:
                notes.append(f"layer {index}: {field} jumped from {human(a)} to {human(b)} in one interval")
    return sorted(notes)


def _norm_notes(per_layer: dict[int, LayerStats], high_max_abs: float, high_rms: float) -> list[str]:
    high = [i for i, s in per_layer.items() if s.max_abs >= high_max_abs or s.rms >= high_rms]
    if not high:
        return []
    order = list(per_layer)
    depths = [order.index(i) / max(1, len(order) - 1) for i in high]
    where = "later" if min(depths) > 0.5 else "earlier" if max(depths) < 0.5 else "several"
    listed = ", ".join(f"layer {i}: {human(per_layer[i].max_abs)}" for i in high)
    return [f"very high activation norms in {where} layers ({listed})"]


def _dead_notes(layers: Sequence[LayerStats], limit: float) -> list[str]:
    dead = [s for s in layers if s.dead_frac is not None and s.dead_frac >= limit]
    return [f"{s.name}: {s.dead_frac:.0%} of MLP units never active" for s in dead]


def human(value: float) -> str:
    """28000 -> "28k", 69400 -> "69k", 1.2e6 -> "1.2M": numbers as the seed log wrote them."""
    if not math.isfinite(value):
        return str(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.0f}{suffix}" if abs(scaled) >= 10 else f"{scaled:.1f}{suffix}"
    return f"{value:.3g}"


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -1.0  # the Health event cannot carry NaN; -1 is never a norm
