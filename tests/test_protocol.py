import msgspec
import pytest

from selfplay_svc.protocol import is_bias_pause, mitigation_mix, pause_entry
from shared.contract.events import ControlCommand, Detection

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


def test_is_bias_pause():
    assert is_bias_pause(cmd(action="pause", reason="bias detection (high)"))
    assert is_bias_pause(cmd(action="pause", params={"detector": "bias"}))
    assert is_bias_pause({"action": "pause", "reason": "", "params": {"detector": "bias"}})
    assert not is_bias_pause(cmd(action="pause", reason="loop detection"))
    assert not is_bias_pause(cmd(action="resume", reason="bias reviewed"))


def test_mitigation_mix_params():
    params = mitigation_mix(["a", "b"], "r1", 0.05)
    assert params["weights"] == {"mitigation": 0.05}
    assert params["texts"] == {"mitigation": ["a", "b"]}
    ControlCommand(event_id="m", run_id="r1", step=1, action="mix", params=params)  # fits the contract
    with pytest.raises(ValueError):
        mitigation_mix([], "r1", 0.05)
    with pytest.raises(ValueError):
        mitigation_mix(["a"], "r1", 0.0)
