"""understanding_svc handlers.

- text: every sample and reflection -> findings, grouped per round into one Detection per problem
  (grouping.py; round state in KV with compare-and-set, so shared by all instances, in any order);
  a group the pause policy names pauses the run, once per group.
- activations: per-run health, shimmer, concept tiers and couplings (coupling.py: layer norms
  against the rounds' loop, motif and bias series), in order (one message in flight across
  all instances), with tracker state in KV so any instance can continue after another dies.
- evals: each bias probe's score (EvalResult "probe:...") against its own recent values
  (probe_trends.py), in order, history in KV; a rise or a threshold crossing is a `bias_probe`
  Detection, which pauses only when the pause policy names bias_probe (the default does not).
"""
from __future__ import annotations

import logging

import msgspec

from shared import bus
from shared.bus import control
from shared.contract import events, subjects
from shared.bus.consumer import Binding
from shared.bus import kv_state as state
from understanding_svc import coupling, grouping
from understanding_svc.analysis import Finding, analyse_text
from understanding_svc.concepts import ConceptTracker
from understanding_svc.health import assess_health
from understanding_svc.motifs import MotifTracker
from understanding_svc.policy import pauses
from understanding_svc.probe_trends import TrendRule, assess_probe, describe
from shared.contract.probes import measures_stereotyping, parse_probe_name
from understanding_svc.shimmer import ShimmerHistory

log = logging.getLogger("understanding_svc")
REPORT_EVERY = coupling.WINDOW_STEPS // 4  # steps before an unchanged coupling is reported again


def analyse_with_motifs(event, text: str):
    """A change function for state.update: findings plus the run's motif tracker, fed once."""
    def change(saved):
        tracker = MotifTracker.from_dict(saved) if saved else MotifTracker()
        findings = analyse_text(text, tracker, event.step, event.event_id)
        return tracker.to_dict(), findings
    return change


def round_of(event: events.Sample | events.Reflection) -> tuple[str, str]:
    """(round name, KV key): the samples of one step are one round, a step's reflection another."""
    name = "samples" if isinstance(event, events.Sample) else "reflection"
    return name, f"round.{event.run_id}.{name}.{event.step}"


def group_into_round(event, subject: str, findings: list[Finding], policy: dict[str, int]):
    """A change function for state.update: the round with this event's findings; returns the full
    grouped Detection of every group the event belongs to, the round's series for coupling, and
    the detection to pause for, if any.

    One pause per group: the first event whose group meets the policy claims it in the round
    state (atomically with its findings, so no second round trip); a later revision of that group,
    say a sample handled after a human resumed, does not pause again. The claimer's own
    redelivery sends again (it may have crashed before sending), which control.send ignores while
    the run is paused."""
    name, _ = round_of(event)
    add = grouping.add_sample(event.event_id, subject, findings, event.text)

    def change(saved):
        state, keys = add(saved)
        grouped = [grouping.grouped_detection(state, k, event.run_id, name, event.step) for k in keys]
        pausing = [d for d in grouped if pauses(policy, d.detector, d.severity)]
        pause = max(pausing, key=lambda d: events.severity_rank(d.severity)) if pausing else None
        if pause is not None:
            group = state["groups"][pause.details["key"]]
            claimer = group.setdefault("paused_by", event.event_id)
            pause = pause if claimer == event.event_id else None
        return state, (grouped, grouping.round_series(state), pause)
    return change


def text_binding(js, kv, state_kv, policy: dict[str, int], sender: str) -> list[Binding]:
    """`sender`: this service's NATS user, the sender of its pauses (control.send)."""
    async def handle_text(event, msg) -> None:
        findings = await state.update(state_kv, f"motifs.{event.run_id}", analyse_with_motifs(event, event.text))
        detections, series, pause = await state.update(state_kv, round_of(event)[1],
                                                       group_into_round(event, msg.subject, findings, policy))
        for d in detections:
            await bus.publish(js, d)
        if pause is not None:
            await pause_for(js, kv, event, pause, sender)
        if isinstance(event, events.Sample):  # the samples' rounds are the text side of coupling
            await state.update(state_kv, f"series.{event.run_id}", coupling.record(event.step, series))

    return [Binding(*subjects.UNDERSTANDING_SAMPLES, handler=handle_text, accepts=(events.Sample,)),
            Binding(*subjects.UNDERSTANDING_REFLECTIONS, handler=handle_text,
                    accepts=(events.Reflection,))]


async def pause_for(js, kv, event, worst: events.Detection, sender: str) -> None:
    cause = events.PauseCause(detector=worst.detector, severity=worst.severity,
                              detection_id=worst.event_id, source_event_id=worst.source_event_id,
                              summary=worst.summary[:500])
    cmd = control.command(event.run_id, events.Pause(cause=cause), step=event.step, who="understanding_svc",
                          reason=f"{worst.detector} {worst.severity}: {worst.summary}"[:500])
    if await control.send(js, kv, cmd, sender):
        log.warning("paused run", extra={"run": event.run_id, "detection": worst.event_id})


def track_activations(event: events.ActivationStats):
    def change(saved):
        saved = saved or {}
        if saved.get("last_event_id") == event.event_id:  # redelivered after the state was saved:
            # publish its outputs again (stable ids: de-duplicated), they may never have gone out
            return saved, [events.decode(out.encode()) for out in saved.get("outputs", [])]
        shimmer = ShimmerHistory.from_dict(saved["shimmer"]) if "shimmer" in saved else ShimmerHistory()
        concepts = ConceptTracker.from_dict(saved["concepts"]) if "concepts" in saved else ConceptTracker()
        previous = [msgspec.convert(layer, events.LayerStats) for layer in saved.get("layers", [])]
        report = assess_health(event.layers, [previous] if previous else None)
        point = shimmer.feed(event.step, event.layers)
        changes = concepts.feed(event.step, event.layers)
        made = outputs(event, report, point, changes)
        new_state = {"last_event_id": event.event_id, "shimmer": shimmer.to_dict(),
                     "concepts": concepts.to_dict(),
                     "layers": [msgspec.to_builtins(layer) for layer in event.layers],
                     "outputs": [events.encode(out).decode() for out in made]}
        return new_state, made
    return change


def outputs(event, report, point, changes) -> list[events.Event]:
    ids = lambda kind, *p: events.stable_event_id(kind, event.event_id, *p)  # noqa: E731
    out: list[events.Event] = [events.Health(
        event_id=ids("health"), run_id=event.run_id, step=event.step, status=report.status,
        focus=report.focus, norms=report.norms, notes=report.notes)]
    if point is not None:
        out.append(events.Shimmer(event_id=ids("shimmer"), run_id=event.run_id, step=event.step,
                                  per_layer=list(point.per_layer), mean=point.mean))
    for c in changes:
        if c.tier is not None:
            out.append(events.Concept(
                event_id=ids("concept", c.feature, c.tier), run_id=event.run_id, step=event.step,
                feature=c.feature, tier=c.tier, score=c.score, first_step=c.first_step,
                details={"previous": c.previous, "intervals": c.intervals, "cv": c.cv,
                         "mean_abs": c.mean_abs}))
    return out


def couple(event: events.ActivationStats):
    """A change function for the run's series: add this step's layer norms, find the couplings
    over the window, and return those not reported in the last REPORT_EVERY steps (or whose lag
    changed), as events."""
    record = coupling.record(event.step, {f"norm.{layer.layer}": layer.rms for layer in event.layers})

    def change(saved):
        saved, _ = record(saved)
        series = {name: {int(s): v for s, v in points.items()} for name, points in saved["series"].items()}
        reported = saved.setdefault("reported", {})
        out = []
        for c in coupling.find_couplings(series):
            pair = f"{c.leader}|{c.follower}"
            last = reported.get(pair)
            if last and last["lag"] == c.lag and 0 < event.step - last["step"] < REPORT_EVERY:
                continue
            reported[pair] = {"step": event.step, "lag": c.lag}
            out.append(events.Coupling(
                event_id=events.stable_event_id("coupling", event.event_id, pair), run_id=event.run_id,
                step=event.step, leader=c.leader, follower=c.follower, strength=c.strength,
                p_value=c.p_value, lag=c.lag, lag_steps=c.lag_steps, steps=c.steps,
                window_steps=coupling.WINDOW_STEPS))
        return saved, out
    return change


def activations_binding(js, state_kv) -> Binding:
    async def handle_activations(event: events.ActivationStats, msg) -> None:
        for out in await state.update(state_kv, f"activity.{event.run_id}", track_activations(event)):
            await bus.publish(js, out)
        for out in await state.update(state_kv, f"series.{event.run_id}", couple(event)):
            await bus.publish(js, out)

    return Binding(*subjects.UNDERSTANDING_ACTIVATIONS, handler=handle_activations, ordered=True,
                   accepts=(events.ActivationStats,))


def trend_probe(event: events.EvalResult, subject: str, rule: TrendRule):
    """A change function for the run's probe history: record this score and return its Detection,
    or None. Redelivered, it finds the same earlier values and makes the same Detection (same id)."""
    probe, axis = parse_probe_name(event.name)
    n = event.details.get("n")

    def change(saved):
        saved = saved or {}
        history = {int(step): value for step, value in saved.get(event.name, {}).items()}
        earlier = [history[step] for step in sorted(history) if step < event.step]
        history[event.step] = event.value
        kept = sorted(history)[-(2 * rule.window + 1):]  # enough for the window, a few out of order
        saved[event.name] = {str(step): history[step] for step in kept}
        finding = assess_probe(earlier, event.value, n if isinstance(n, int) else 0, rule)
        if finding is None:
            return saved, None
        detection_id = events.stable_event_id("bias_probe", event.event_id)
        return saved, events.Detection(
            event_id=detection_id, run_id=event.run_id, step=event.step, detector="bias_probe",
            severity=finding.severity, source_event_id=event.event_id, source_subject=subject,
            span_start=0, span_end=0, summary=describe(probe, axis, finding, rule),
            details={"probe": probe, "axis": axis, "n": n, **msgspec.to_builtins(finding),
                     "window": rule.window, "margin": rule.margin, "threshold": rule.threshold},
            group_id=detection_id, revision=1)
    return change


def evals_binding(js, kv, state_kv, policy: dict[str, int], rule: TrendRule, sender: str) -> Binding:
    """`sender`: this service's NATS user, the sender of its pauses (as for text_binding)."""
    async def handle_eval(event: events.EvalResult, msg) -> None:
        probe = parse_probe_name(event.name)
        if probe is None or not measures_stereotyping(probe[0]):
            return  # val_bpb, CORE, the language-model score: not a bias direction
        detection = await state.update(state_kv, f"probes.{event.run_id}", trend_probe(event, msg.subject, rule))
        if detection is None:
            return
        await bus.publish(js, detection)
        if pauses(policy, detection.detector, detection.severity):
            await pause_for(js, kv, event, detection, sender)

    return Binding(*subjects.UNDERSTANDING_EVALS, handler=handle_eval, ordered=True, accepts=(events.EvalResult,))
