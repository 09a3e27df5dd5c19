"""assess_health and ShimmerHistory on per-layer LayerStats, as the trainer publishes them."""
import math

from shared.contract.events import LayerStats
from understanding_svc.health import assess_health, human
from understanding_svc.shimmer import ShimmerHistory


def stats(rms_by_layer, max_abs=None, name="resid", **extra):
    max_abs = max_abs or [r * 8 for r in rms_by_layer]
    return [LayerStats(layer=i, name=f"block.{i}.{name}", rms=r, mean=0.0, std=r, max_abs=m,
                       max_channel=7, **extra) for i, (r, m) in enumerate(zip(rms_by_layer, max_abs))]


def test_calm_balanced_network_is_healthy():
    report = assess_health(stats([1.0] * 12))
    assert (report.status, report.focus) == ("healthy", "balanced")
    assert report.norms == [1.0] * 12 and report.layers == list(range(12))


def test_seed_log_reading_late_focus_with_very_high_norms():
    peaks = [50.0] * 12
    peaks[6], peaks[11] = 28_000.0, 69_000.0
    report = assess_health(stats([1, 1, 1, 1, 2, 3, 20, 5, 6, 8, 10, 40], peaks))
    assert (report.status, report.focus) == ("needs_attention", "late")
    assert "very high activation norms in later layers (layer 6: 28k, layer 11: 69k)" in report.notes


def test_early_focus():
    assert assess_health(stats([30, 20, 5, 1, 1, 1])).focus == "early"


def test_nan_or_jump_is_unstable():
    broken = stats([1.0, float("nan"), 1.0])
    report = assess_health(broken)
    assert report.status == "unstable" and report.norms[1] == -1.0
    jumped = assess_health(stats([1.0, 10.0, 1.0]), history=[stats([1.0, 1.0, 1.0])])
    assert jumped.status == "unstable" and any("layer 1: rms jumped" in n for n in jumped.notes)


def test_residual_stream_is_the_layer_norm_when_several_outputs_are_reported():
    layers = stats([5.0, 5.0], name="attn_out") + stats([1.0, 2.0], name="resid")
    assert assess_health(layers).norms == [1.0, 2.0]


def test_human_numbers():
    assert [human(28_000), human(69_400), human(1.2e6), human(3.5)] == ["28k", "69k", "1.2M", "3.5"]


def test_shimmer_relative_change_and_restart():
    history = ShimmerHistory(max_points=2)
    assert history.feed(100, stats([1.0, 2.0])) is None
    point = history.feed(200, stats([1.5, 1.0]))
    assert point.per_layer == [0.5, 0.5] and point.mean == 0.5 and point.since_step == 100
    restored = ShimmerHistory.from_dict(history.to_dict())
    restored.feed(300, stats([1.5, 1.0]))
    restored.feed(400, stats([3.0, 1.0]))
    assert [p.step for p in restored.points] == [300, 400]  # bounded
    assert restored.points[-1].per_layer == [1.0, 0.0]


def test_shimmer_ignores_non_finite_norms():
    history = ShimmerHistory()
    history.feed(1, stats([1.0, 1.0]))
    point = history.feed(2, stats([math.inf, 2.0]))
    assert point.per_layer == [0.0, 1.0]
