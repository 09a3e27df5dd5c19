"""ConceptTracker: a channel that keeps the layer's max |x| at a steady size climbs the tiers."""
from shared.contract.events import LayerStats
from understanding_svc.concepts import ConceptTracker


def interval(channel, magnitude, name="block.6.resid"):
    return [LayerStats(layer=6, name=name, rms=1.0, mean=0.0, std=1.0, max_abs=magnitude,
                       max_channel=channel)]


def test_persistent_stable_channel_climbs_every_tier_once():
    tracker = ConceptTracker(forming_after=2, maturing_after=4, freeze_after=6)
    changes = []
    for step in range(1, 10):
        changes += tracker.feed(step * 100, interval(42, 1000.0 + step))
    assert [(c.feature, c.tier, c.step) for c in changes] == [
        ("block.6.resid:42", "forming", 200), ("block.6.resid:42", "maturing", 400),
        ("block.6.resid:42", "candidate_to_freeze", 600)]
    assert changes[-1].first_step == 100 and 0.9 < changes[-1].score <= 1.0


def test_unstable_magnitude_stays_forming():
    tracker = ConceptTracker(forming_after=2, maturing_after=3, freeze_after=5)
    tiers = [c.tier for step in range(8) for c in tracker.feed(step, interval(3, 10.0 if step % 2 else 1000.0))]
    assert tiers == ["forming"]


def test_losing_the_max_drops_after_the_gap():
    tracker = ConceptTracker(forming_after=2, max_gap=1)
    for step in range(3):
        tracker.feed(step, interval(1, 50.0))
    assert tracker.feed(3, interval(2, 50.0)) == []  # one miss is tolerated
    changes = tracker.feed(4, interval(2, 50.0))
    assert [(c.feature, c.tier, c.previous) for c in changes] == [
        ("block.6.resid:2", "forming", None), ("block.6.resid:1", None, "forming")]


def test_state_survives_a_restart():
    tracker = ConceptTracker(forming_after=2, maturing_after=3, freeze_after=10)
    for step in range(2):
        tracker.feed(step, interval(9, 70.0))
    restored = ConceptTracker.from_dict(tracker.to_dict())
    assert restored.maturing_after == 3 and [f.tier for f in restored.concepts()] == ["forming"]
    assert [c.tier for c in restored.feed(2, interval(9, 70.0))] == ["maturing"]
