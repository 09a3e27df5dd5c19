"""MotifTracker: symbol tokens that recur across samples, with loop overlap, surviving a restart."""
from understanding_svc.motifs import MotifTracker, motif_tokens, primitive_root


def test_motif_tokens_skip_prose_words_and_numbers():
    found = [m for m, _, _ in motif_tokens("In 1990 (briefly) e.g. the U.S. — well-known 0-0 **")]
    assert found == ["0-0", "**"]


def test_motif_reported_after_k_samples_with_loop_overlap():
    tracker = MotifTracker(min_samples=3)
    reported = []
    for step, sample in ((100, "a"), (200, "b"), (300, "c"), (400, "d")):
        text = "Reflect: 0-0 0-0 0-0 0-0"
        reported += tracker.feed(step, sample, text, [(9, len(text))])
    assert [m.text for m in reported] == ["0-0"]  # once, when the third sample arrives
    motif = tracker.reported()[0]
    assert (motif.first_step, motif.samples, motif.count) == (100, 4, 16)
    assert motif.sample_ids == ["a", "b", "c", "d"] and motif.co_occurs_with_loops


def test_motif_tracker_survives_a_restart():
    tracker = MotifTracker(min_samples=2)
    tracker.feed(1, "a", "x 0-0 y")
    restored = MotifTracker.from_dict(tracker.to_dict())
    assert [m.text for m in restored.feed(2, "b", "0-0 again")] == ["0-0"]
    assert not restored.reported()[0].co_occurs_with_loops


def test_primitive_root_keeps_single_symbols_apart():
    assert primitive_root("0-00-00-0") == "0-0"
    assert primitive_root("**") == "**"
    assert primitive_root("abc") == "abc"
