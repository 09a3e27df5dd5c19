"""Run every text detector on one text and return its findings in the shape of a Detection.

The service handler (and a notebook) calls analyse_text on a sample or reflection; each Finding
maps one-to-one onto shared.contract.events.Detection's fields (detector, severity, span, summary, details),
so the handler only adds ids and publishes. Motifs need memory across samples: pass the service's
MotifTracker and the motifs that reach its sample threshold with this text come back as findings.
"""
from __future__ import annotations


import msgspec

from shared.contract.events import Detector, Severity
from understanding_svc.bias import assess_bias
from understanding_svc.formatting import FormattingChannel, describe_formatting
from understanding_svc.loops import find_loops
from understanding_svc.motifs import MotifTracker



class Finding(msgspec.Struct, frozen=True):
    detector: Detector
    severity: Severity
    span_start: int
    span_end: int
    summary: str
    details: dict = {}


def analyse_text(text: str, motifs: MotifTracker | None = None, step: int = 0,
                 sample_id: str = "") -> list[Finding]:
    """Loops, formatting channel, bias and (given a tracker) newly recurring motifs in `text`."""
    findings = [_loop_finding(loop) for loop in find_loops(text)]
    channel = describe_formatting(text)
    if channel is not None:
        findings.append(_formatting_finding(channel))
    findings += [_bias_finding(b) for b in assess_bias(text)]
    if motifs is not None:
        spans = [(f.span_start, f.span_end) for f in findings if f.detector == "loop"]
        findings += [_motif_finding(m, text) for m in motifs.feed(step, sample_id, text, spans)]
    return findings


def _loop_finding(loop) -> Finding:
    return Finding("loop", loop.severity, loop.start, loop.end,
                   f"{loop.level}-level loop: {loop.raw_unit[:60]!r} x{loop.count}"
                   + (" (runs to the end)" if loop.to_end else ""), msgspec.to_builtins(loop))


def _formatting_finding(channel: FormattingChannel) -> Finding:
    strong = channel.density >= 0.4 or (channel.alternation is not None and channel.alternation.copies >= 10)
    return Finding("formatting", "medium" if strong else "low", channel.start, channel.end,
                   "formatting channel: " + "; ".join(channel.reasons), msgspec.to_builtins(channel))


def _bias_finding(finding) -> Finding:
    spans = [finding.group] + ([finding.predicate] if finding.predicate else [])
    return Finding("bias", finding.severity, min(s.start for s in spans), max(s.end for s in spans),
                   f"{finding.severity} {finding.axis} generalisation: {finding.explanation}",
                   msgspec.to_builtins(finding))


def _motif_finding(motif, text: str) -> Finding:
    start = max(0, text.find(motif.text))
    return Finding("motif", "medium" if motif.co_occurs_with_loops else "low", start, start + len(motif.text),
                   f"motif {motif.text!r} recurs in {motif.samples} samples since step {motif.first_step}"
                   + (f", {motif.loop_share:.0%} of it inside loops" if motif.in_loop else ""),
                   msgspec.to_builtins(motif) | {"loop_share": motif.loop_share,
                                                 "co_occurs_with_loops": motif.co_occurs_with_loops})
