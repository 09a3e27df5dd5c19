"""understanding_svc handlers.

- text: every sample and reflection -> detections; a finding the pause policy names pauses the run
  (once per source event). Shared by all instances, in any order.
- activations: per-run health, shimmer and concept tiers, in order (one message in flight across
  all instances), with tracker state in KV so any instance can continue after another dies.
"""
from __future__ import annotations

import logging

import msgspec

from shared import bus
from shared.bus import control
from shared.contract import events, subjects
from shared.bus.consumer import Binding
from shared.bus import kv_state as state
from understanding_svc.analysis import Finding, analyse_text
from understanding_svc.concepts import ConceptTracker
from understanding_svc.health import assess_health
from understanding_svc.motifs import MotifTracker
from understanding_svc.policy import pauses
from understanding_svc.shimmer import ShimmerHistory

log = logging.getLogger("understanding_svc")
EXCERPT_CHARS = 120  # source text carried either side of a finding's span


def detection(source: events.Sample | events.Reflection, subject: str, f: Finding) -> events.Detection:
    excerpt_start = max(0, f.span_start - EXCERPT_CHARS)
    return events.Detection(
        event_id=events.stable_event_id("detection", source.event_id, f.detector, f.span_start, f.span_end),
        run_id=source.run_id, step=source.step, detector=f.detector, severity=f.severity,
        source_event_id=source.event_id, source_subject=subject, span_start=f.span_start,
        span_end=f.span_end, summary=f.summary[:1000], details=f.details,
        excerpt=source.text[excerpt_start:f.span_end + EXCERPT_CHARS], excerpt_start=excerpt_start)


def analyse_with_motifs(event, text: str):
    """A change function for state.update: findings plus the run's motif tracker, fed once."""
    def change(saved):
        tracker = MotifTracker.from_dict(saved) if saved else MotifTracker()
        findings = analyse_text(text, tracker, event.step, event.event_id)
        return tracker.to_dict(), findings
    return change


def text_binding(js, kv, state_kv, policy: dict[str, int]) -> list[Binding]:
    async def handle_text(event, msg) -> None:
        text = event.text
        findings = await state.update(state_kv, f"motifs.{event.run_id}", analyse_with_motifs(event, text))
        detections = [detection(event, msg.subject, f) for f in findings]
        for d in detections:
            await bus.publish(js, d)
        pausing = [d for d in detections if pauses(policy, d.detector, d.severity)]
        if pausing:  # one pause per source event, for its most severe finding
            worst = max(pausing, key=lambda d: events.severity_rank(d.severity))
            cause = events.PauseCause(detector=worst.detector, severity=worst.severity,
                                      detection_id=worst.event_id, source_event_id=event.event_id,
                                      summary=worst.summary[:500])
            cmd = control.command(event.run_id, events.Pause(cause=cause), step=event.step,
                                  who="understanding_svc",
                                  reason=f"{worst.detector} {worst.severity}: {worst.summary}"[:500])
            if await control.send(js, kv, cmd):
                log.warning("paused run", extra={"run": event.run_id, "detection": worst.event_id})

    return [Binding(*subjects.UNDERSTANDING_SAMPLES, handler=handle_text, accepts=(events.Sample,)),
            Binding(*subjects.UNDERSTANDING_REFLECTIONS, handler=handle_text,
                    accepts=(events.Reflection,))]


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


def activations_binding(js, state_kv) -> Binding:
    async def handle_activations(event: events.ActivationStats, msg) -> None:
        for out in await state.update(state_kv, f"activity.{event.run_id}", track_activations(event)):
            await bus.publish(js, out)

    return Binding(*subjects.UNDERSTANDING_ACTIVATIONS, handler=handle_activations, ordered=True,
                   accepts=(events.ActivationStats,))
