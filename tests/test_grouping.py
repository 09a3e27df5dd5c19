"""Findings of one round group into one Detection per problem, whatever the order of the samples."""
import itertools

from understanding_svc.analysis import analyse_text
from understanding_svc.grouping import add_sample, grouped_detection, problem_key

LOOP = "[Biode:high quality, " + "quality, " * 40 + "]"
LINES = "\n".join(["quality, quality, quality, quality"] * 6)


def round_after(samples):
    state, keys = None, set()
    for source_id, text in samples:
        state, touched = add_sample(source_id, "train.r.sample", analyse_text(text))(state)
        keys |= set(touched)
    return state, keys


def test_one_loop_at_two_levels_in_three_samples_is_one_group():
    state, keys = round_after([("a", LOOP), ("b", LINES), ("c", LOOP)])
    loops = [k for k in keys if k.startswith("loop:")]
    assert loops == ["loop:quality"]
    d = grouped_detection(state, "loop:quality", "r", "samples", 100)
    assert d.samples == 3 and len(d.occurrences) == d.revision >= 3
    assert {o.source_event_id for o in d.occurrences} == {"a", "b", "c"}
    assert all(LOOP[o.span_start:o.span_end] or LINES[o.span_start:o.span_end] for o in d.occurrences)


def test_the_final_group_is_the_same_in_any_order():
    samples = [("a", LOOP), ("b", LINES), ("c", "Immigrants are criminals. " + LOOP)]
    finals = []
    for order in itertools.permutations(samples):
        state, keys = round_after(order)
        groups = {k: grouped_detection(state, k, "r", "samples", 7) for k in keys}
        finals.append({k: (d.group_id, d.revision, d.severity, d.samples,
                           sorted((o.source_event_id, o.span_start) for o in d.occurrences))
                       for k, d in groups.items()})
    assert all(f == finals[0] for f in finals)


def test_a_redelivered_sample_adds_nothing_and_returns_its_groups_again():
    state, _ = round_after([("a", LOOP)])
    before = grouped_detection(state, "loop:quality", "r", "samples", 1)
    state, keys = add_sample("a", "train.r.sample", analyse_text(LOOP))(state)
    again = grouped_detection(state, "loop:quality", "r", "samples", 1)
    assert "loop:quality" in keys and again.event_id == before.event_id and again.revision == before.revision


def test_new_revision_has_a_new_event_id_and_the_same_group_id():
    state, _ = round_after([("a", LOOP)])
    first = grouped_detection(state, "loop:quality", "r", "samples", 1)
    state, _ = round_after([("a", LOOP), ("b", LOOP)])
    second = grouped_detection(state, "loop:quality", "r", "samples", 1)
    assert first.group_id == second.group_id and first.event_id != second.event_id
    assert second.revision > first.revision


def test_bias_groups_by_axis_and_group_term():
    findings = analyse_text("Immigrants are criminals. Later: immigrants are lazy.")
    assert {problem_key(f) for f in findings if f.detector == "bias"} == {"bias:nationality:immigrants"}


def test_a_group_pauses_once_and_its_claimer_may_send_again_on_redelivery():
    from shared.contract import events
    from understanding_svc.handlers import group_into_round
    from understanding_svc.policy import parse_policy

    def handle(event_id, state):
        event = events.Sample(event_id=event_id, run_id="r", step=3, prompt="p", mode="greedy",
                              text="Immigrants are criminals.")
        change = group_into_round(event, "train.r.sample", analyse_text(event.text), parse_policy("bias:high"))
        state, (_, _, pause) = change(state)
        return state, pause

    state, first = handle("a", None)
    state, second = handle("b", state)
    state, again = handle("a", state)
    assert first is not None and first.detector == "bias" and second is None
    assert again is not None and again.group_id == first.group_id
