"""The bias-probe trend rule: a rise beyond the margin over the recent mean, or a threshold crossing,
graded low / medium / high; flat, falling or thinly sampled scores are no news. On real NATS, eval
events with a rising probe give a bias_probe Detection, which pauses only when the policy says so."""
import asyncio

import nats.errors
import pytest

from shared import bus
from shared.bus import control
from shared.bus import kv_state as state
from shared.contract import events, subjects
from shared.contract.probes import probe_name
from shared.contract.settings import load_settings
from understanding_svc.handlers import evals_binding
from understanding_svc.policy import parse_policy, pauses
from understanding_svc.probe_trends import TrendRule, assess_probe

RULE = TrendRule(window=3, margin=0.05, threshold=0.65, min_examples=50)


def severity(earlier, score, n=100, rule=RULE):
    finding = assess_probe(earlier, score, n, rule)
    return finding.severity if finding else None


def test_a_flat_or_falling_score_is_no_news():
    assert severity([0.52, 0.50, 0.51], 0.53) is None  # +0.02: inside the margin
    assert severity([0.60, 0.58, 0.59], 0.50) is None


@pytest.mark.parametrize("score, expected", [(0.46, "low"), (0.51, "medium"), (0.56, "high"), (0.64, "high")])
def test_the_rise_over_the_recent_mean_is_graded_in_margins(score, expected):
    assert severity([0.40, 0.40, 0.40], score) == expected


def test_only_the_last_window_values_make_the_mean():
    # the old 0.30s would make 0.56 a big rise; the window (3) only sees the 0.54s
    assert severity([0.30, 0.30, 0.30, 0.54, 0.54, 0.54], 0.56) is None
    assert severity([0.54, 0.54, 0.54, 0.30, 0.30, 0.30], 0.56) == "high"


def test_crossing_the_threshold_is_medium_and_high_when_also_rising():
    crossed = assess_probe([0.62, 0.63, 0.64], 0.66, 100, RULE)
    assert crossed.crossed and crossed.severity == "medium"  # +0.03 alone would be nothing
    assert severity([0.58, 0.58, 0.58], 0.66) == "high"  # crossed and rose +0.08
    assert severity([], 0.70) == "medium"  # the first value already above it


def test_staying_above_the_threshold_is_not_a_new_crossing():
    assert severity([0.70, 0.70, 0.70], 0.71) is None


def test_a_score_over_too_few_comparisons_is_not_trended():
    assert severity([0.40, 0.40, 0.40], 0.90, n=49) is None
    assert severity([0.40, 0.40, 0.40], 0.90, n=50) == "high"


def test_the_first_value_below_the_threshold_is_no_news():
    assert severity([], 0.60) is None


def test_the_rule_comes_from_settings_and_bias_probes_do_not_pause_by_default():
    settings = load_settings({"INTROSPECT_BIAS_PROBE_WINDOW": "7", "INTROSPECT_BIAS_PROBE_RISE_MARGIN": "0.1",
                              "INTROSPECT_BIAS_PROBE_THRESHOLD": "0.7", "INTROSPECT_BIAS_PROBE_MIN_EXAMPLES": "20"})
    assert TrendRule.from_settings(settings) == TrendRule(window=7, margin=0.1, threshold=0.7, min_examples=20)
    default = parse_policy(load_settings({}).pause_policy)
    assert not pauses(default, "bias_probe", "high")
    assert pauses(parse_policy("bias_probe:medium"), "bias_probe", "high")


def test_a_margin_outside_0_to_1_is_a_config_error_naming_the_variable():
    with pytest.raises(ValueError, match="INTROSPECT_BIAS_PROBE_RISE_MARGIN"):
        load_settings({"INTROSPECT_BIAS_PROBE_RISE_MARGIN": "0"})


def probe_eval(run: str, step: int, value: float, probe: str = "crows_pairs", n: int = 100) -> events.EvalResult:
    return events.EvalResult(event_id=events.new_event_id(), run_id=run, step=step, name=probe_name(probe),
                             value=value, details={"probe": probe, "axis": "all", "n": n})


async def detections_after(nc, run_bindings, settings, run: str, published: list[events.EvalResult],
                           policy: str) -> tuple[list[events.Detection], object]:
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    state_kv = await state.state_bucket(js, subjects.UNDERSTANDING_STATE_BUCKET)
    run_bindings("understanding_svc", [evals_binding(js, kv, state_kv, parse_policy(policy), RULE, "understanding")])
    for event in published:
        await bus.publish(js, event)
    sub = await js.pull_subscribe(subjects.understanding(run, "detection"), stream="UNDERSTANDING")
    found = []
    try:
        while True:
            found += await sub.fetch(10, timeout=1.5)
    except (nats.errors.TimeoutError, asyncio.TimeoutError):  # nothing more within 1.5 s
        pass
    desired, _ = await control.read_state(kv, run)
    return [events.decode(m.data) for m in found], desired


async def test_a_rising_probe_on_the_bus_is_a_detection_that_does_not_pause_by_default(nc, settings,
                                                                                        run_bindings):
    rising = [probe_eval("bp1", step, value) for step, value in [(50, 0.50), (100, 0.51), (150, 0.50),
                                                                 (200, 0.59)]]
    others = [probe_eval("bp1", 200, 0.95, probe="stereoset_lms"),  # quality, not a bias direction
              events.EvalResult(event_id=events.new_event_id(), run_id="bp1", step=200, name="val_bpb", value=9.0)]
    found, desired = await detections_after(nc, run_bindings, settings, "bp1", rising + others,
                                            load_settings({}).pause_policy)
    assert [(d.detector, d.severity, d.step, d.source_event_id) for d in found] == [
        ("bias_probe", "low", 200, rising[-1].event_id)]
    assert found[0].details["probe"] == "crows_pairs" and "crows_pairs" in found[0].summary
    assert desired is None  # the default policy does not pause on bias_probe


async def test_a_policy_that_names_bias_probe_pauses_the_run(nc, settings, run_bindings):
    crossing = [probe_eval("bp2", 50, 0.55), probe_eval("bp2", 100, 0.72)]  # +0.17 and over 0.65: high
    found, desired = await detections_after(nc, run_bindings, settings, "bp2", crossing, "bias_probe:high")
    assert [d.severity for d in found] == ["high"]
    assert desired.state == "paused" and desired.detection_id == found[0].event_id
