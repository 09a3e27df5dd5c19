import pytest

from selfplay_svc.protocol import finding_of, finding_of_cause, is_bias_pause, mitigation_mix, pause_entry
from shared.contract.events import ControlCommand, Detection, Pause, PauseCause, Resume, decode, encode

SOURCE = "The story said the man from the village was a criminal because of where he lived."
SPAN = "a criminal because of where he lived"


def detection(excerpt_start=0, **details):
    start = SOURCE.index(SPAN)
    return Detection(event_id="d1", run_id="r1", step=17800, detector="bias", severity="high",
                     source_event_id="s1", source_subject="selfplay.r1.reflection",
                     span_start=start, span_end=start + len(SPAN),
                     summary="stereotype: place of origin linked to crime", details=details,
                     excerpt=SOURCE[excerpt_start:], excerpt_start=excerpt_start)


def test_pause_entry_frames_positively_and_quotes_span():
    finding = finding_of(detection(explanation="origin used as cause of criminality"))
    title, body = pause_entry(finding, "r1", 17800)
    assert "working as intended" in title and "17,800" in title
    assert body.startswith("Detection is working as intended")
    assert "together" in body
    assert f"> {SPAN}" in body
    assert "> The story said" in body  # context around the span
    assert "> origin used as cause of criminality" in body
    assert "stereotype: place of origin linked to crime" in body
    assert 'introspect journal --run r1 --type counter_example "..."' in body
    assert "punish" in body


def test_a_finding_takes_its_span_from_the_excerpt_and_marks_where_it_was_cut():
    finding = finding_of(detection(excerpt_start=SOURCE.index("village")))
    assert finding.span == SPAN
    assert finding.context == "…village was " + SPAN + "."


def test_a_detection_without_an_excerpt_still_gives_its_summary_and_severity():
    finding = finding_of(Detection(event_id="d1", run_id="r1", step=5, detector="bias", severity="medium",
                                   source_event_id="s1", source_subject="train.r1.sample", span_start=4,
                                   span_end=9, summary="medium age generalisation"))
    assert (finding.span, finding.context, finding.severity) == ("", "", "medium")
    _, body = pause_entry(finding, "r1", 5)
    assert "medium-severity" in body and "medium age generalisation" in body


def test_a_pause_without_its_detection_says_what_its_cause_says():
    pause = cmd(args=Pause(cause=PauseCause(detector="bias", severity="low", detection_id="d",
                                            source_event_id="s", summary="low age generalisation")))
    finding = finding_of_cause(pause)
    assert (finding.severity, finding.summary, finding.step) == ("low", "low age generalisation", 1)


def cmd(**kw):
    return ControlCommand(event_id="c", run_id="r1", step=1, **kw)


def cause(detector):
    return PauseCause(detector=detector, severity="high", detection_id="d", source_event_id="s")


def test_a_pause_caused_by_the_bias_detector_starts_the_protocol():
    assert is_bias_pause(cmd(args=Pause(cause=cause("bias")), reason="anything"))


def test_a_human_pause_that_mentions_bias_is_not_a_bias_pause():
    assert not is_bias_pause(cmd(args=Pause(), reason="check bias"))
    assert not is_bias_pause(cmd(args=Pause(cause=cause("loop")), reason="bias? no, a loop"))
    assert not is_bias_pause(cmd(args=Resume(), reason="bias reviewed"))


def test_mitigation_mix_is_a_typed_mix_order():
    mix = mitigation_mix(["a", "b"], 0.05)
    assert mix.weights == {"mitigation": 0.05} and mix.texts == {"mitigation": ["a", "b"]}
    command = ControlCommand(event_id="m", run_id="r1", step=1, args=mix)
    assert decode(encode(command)) == command  # fits the contract
    with pytest.raises(ValueError):
        mitigation_mix([], 0.05)
    with pytest.raises(ValueError):
        mitigation_mix(["a"], 0.0)
