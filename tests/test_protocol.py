import msgspec
import pytest

from selfplay_svc.protocol import is_bias_pause, mitigation_mix, pause_entry
from shared.contract.events import ControlCommand, Detection, Pause, PauseCause, Resume, decode, encode

SOURCE = "The story said the man from the village was a criminal because of where he lived."


def detection(**details):
    start = SOURCE.index("a criminal because")
    return Detection(event_id="d1", run_id="r1", step=17800, detector="bias", severity="high",
                     source_event_id="s1", source_subject="selfplay.r1.reflection",
                     span_start=start, span_end=start + len("a criminal because of where he lived"),
                     summary="stereotype: place of origin linked to crime", details=details)


def test_pause_entry_frames_positively_and_quotes_span():
    title, body = pause_entry(detection(explanation="origin used as cause of criminality"), "r1", 17800,
                              source_text=SOURCE)
    assert "working as intended" in title and "17,800" in title
    assert body.startswith("Detection is working as intended")
    assert "together" in body
    assert "> a criminal because of where he lived" in body
    assert "> The story said" in body  # context around the span
    assert "> origin used as cause of criminality" in body
    assert "stereotype: place of origin linked to crime" in body
    assert 'introspect journal --run r1 --type counter_example "..."' in body
    assert "punish" in body


def test_pause_entry_from_a_db_row_with_details_span():
    row = msgspec.to_builtins(detection(span_text="a criminal", context="...was a criminal because..."))
    _, body = pause_entry(row, "r1", 17800)
    assert "> a criminal" in body and "> ...was a criminal because..." in body


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
