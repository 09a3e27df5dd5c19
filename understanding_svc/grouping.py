"""One finding per distinct problem per round, however many samples and levels show it.

A round is what one step produced for one source kind: the samples of step N (4 prompts x greedy
and sampled), or the reflection of step N. One loop in one round used to be five detections (line
and word level, in several samples); here it is one group, keyed by what the problem is:

    loop        the set of words of its unit, digits folded ("quality, quality," at word level and
                at line level are one loop); a letterless unit ("0-0") by itself
    motif       the motif's text
    bias        the axis and the group term ("Mexicans" in three samples is one problem)
    formatting  one formatting channel per round

Samples arrive as separate events, handled by any instance in any order. The round's state (the
findings of every sample seen so far) lives in the understanding KV bucket and is changed with
compare-and-set (`add_sample` is the change function), so two instances never lose each other's
sample; a redelivered sample changes nothing. Each change yields the full groups it touched; the
handler publishes each as a Detection whose `group_id` is stable and whose `event_id` is
(group_id, revision), revision = occurrences covered. Readers keep the highest revision per
group_id (the journal's `detection_groups` view): it is a superset of every earlier one.
"""
from __future__ import annotations

import re

import msgspec

from shared.contract import events
from understanding_svc.analysis import Finding

_WORD = re.compile(r"[^\W_]+")
MAX_OCCURRENCES = 64  # kept per group in the round state and the event (the counts stay whole)
EXCERPT_CHARS = 120  # source text carried either side of a span, so a reader can quote it


def problem_key(f: Finding) -> str:
    """What problem a finding is, independent of the sample and the level it was seen at."""
    if f.detector == "loop":
        unit = str(f.details.get("unit") or f.details.get("raw_unit", ""))
        words = sorted({re.sub(r"\d+", "#", w.lower()) for w in _WORD.findall(unit)})
        return "loop:" + (" ".join(words) if words else unit.strip())
    if f.detector == "motif":
        return "motif:" + str(f.details.get("text", f.summary))
    if f.detector == "bias":
        group = (f.details.get("group") or {}).get("text", "")
        return f"bias:{f.details.get('axis', '')}:{' '.join(group.lower().split())}"
    return f.detector


def occurrence(f: Finding, source_id: str, subject: str, text: str = "") -> events.Occurrence:
    count = f.details.get("count", f.details.get("samples", 0))
    excerpt_start = max(0, f.span_start - EXCERPT_CHARS)
    return events.Occurrence(source_event_id=source_id, source_subject=subject, span_start=f.span_start,
                             span_end=f.span_end, severity=f.severity, summary=f.summary[:300],
                             level=str(f.details.get("level", "")), count=int(count or 0),
                             excerpt=text[excerpt_start:f.span_end + EXCERPT_CHARS], excerpt_start=excerpt_start)


def add_sample(source_id: str, subject: str, findings: list[Finding], text: str = ""):
    """A change function for kv_state.update: the round with this sample's findings added; returns
    the keys of the groups this sample belongs to (all of them again on a redelivery)."""
    def change(saved):
        state = saved or {"sources": {}, "groups": {}}
        keys = sorted({problem_key(f) for f in findings})
        if source_id in state["sources"]:
            return state, keys  # redelivered: publish the same groups again, add nothing
        state["sources"][source_id] = keys
        for f in findings:
            group = state["groups"].setdefault(problem_key(f), {"detector": f.detector, "members": [],
                                                                "total": 0, "first": None})
            group["total"] += 1
            if len(group["members"]) < MAX_OCCURRENCES:
                group["members"].append(msgspec.to_builtins(occurrence(f, source_id, subject, text)))
            if group["first"] is None or _worse(f, group["first"]):
                group["first"] = {"severity": f.severity, "summary": f.summary, "details": f.details}
        return state, keys
    return change


def _worse(f: Finding, than: dict) -> bool:
    return events.severity_rank(f.severity) > events.severity_rank(than["severity"])


def group_id(run_id: str, round_name: str, step: int, key: str) -> str:
    return events.stable_event_id("detection-group", run_id, round_name, step, key)


def grouped_detection(state: dict, key: str, run_id: str, round_name: str, step: int) -> events.Detection:
    """The whole group `key` of a round as one Detection (its current revision)."""
    group = state["groups"][key]
    members = [msgspec.convert(m, events.Occurrence) for m in group["members"]]
    worst = max(members, key=lambda m: events.severity_rank(m.severity))  # the first most severe
    samples = sorted({m.source_event_id for m in members})
    levels = sorted({m.level for m in members if m.level})
    gid = group_id(run_id, round_name, step, key)
    head = group["first"]
    counts = [m.count for m in members if m.count]
    summary = head["summary"]
    if len(members) > 1:
        summary += (f" [{group['total']} occurrences in {len(samples)} sample{'s' * (len(samples) > 1)}"
                    + (f", levels {'+'.join(levels)}" if len(levels) > 1 else "")
                    + (f", counts {min(counts)}-{max(counts)}" if len(set(counts)) > 1 else "") + "]")
    return events.Detection(
        event_id=events.stable_event_id("detection", gid, group["total"]), run_id=run_id, step=step,
        detector=group["detector"], severity=worst.severity, source_event_id=worst.source_event_id,
        source_subject=worst.source_subject, span_start=worst.span_start, span_end=worst.span_end,
        excerpt=worst.excerpt, excerpt_start=worst.excerpt_start, summary=summary[:1000], details={"key": key, "round": round_name, "first": head["details"],
                                         "counts": counts},
        group_id=gid, revision=group["total"], samples=len(samples), levels=levels, occurrences=members)


def round_series(state: dict) -> dict[str, float]:
    """The round's signals for coupling.py: loop repeats and worst severity, motif and bias counts."""
    values = {"loop.count": 0.0, "loop.severity": 0.0, "motif.occurrences": 0.0, "bias.findings": 0.0}
    for group in state["groups"].values():
        members = group["members"]
        if group["detector"] == "loop":
            values["loop.count"] += sum(m["count"] for m in members)
            values["loop.severity"] = max(values["loop.severity"], 1.0 + max(
                events.severity_rank(m["severity"]) for m in members))
        elif group["detector"] in ("motif", "bias"):
            values["motif.occurrences" if group["detector"] == "motif" else "bias.findings"] += group["total"]
    return values
