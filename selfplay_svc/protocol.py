"""The supportive bias protocol, as text and command parameters.

Drafted after the first high-severity stereotype detection (step 17,800 in the seed log): a bias
pause is a success of the safety system, not a punishment. So the pause's journal entry says first
that detection is working as intended, shows exactly what was found and where, and asks people to
add counter-examples and explanations. Those human texts then join training as a small "mitigation"
data source, so the model learns why the pattern is biased and how to handle it, instead of only
being stopped.

The pause entry quotes the finding from the detection event itself (its summary, severity, span,
explanation and the excerpt of the text around it), which selfplay keeps per run as a `Finding`;
when the detection never arrived, the pause's typed cause is all there is to say.
"""
from __future__ import annotations

import msgspec

from shared.contract.events import ControlCommand, Detection, Mix, Pause, Severity

MITIGATION_SOURCE = "mitigation"
MITIGATION_TYPES = ("counter_example", "explanation")


class Finding(msgspec.Struct, frozen=True):
    """What the protocol says about a bias finding; kept in selfplay's KV state per run."""
    severity: Severity
    summary: str
    step: int
    span: str = ""  # the matched text
    context: str = ""  # the text around it, "…" where it was cut
    explanation: str = ""


def finding_of(detection: Detection) -> Finding:
    """The protocol's view of a detection event: the span and its context from the event's excerpt."""
    lo, hi = detection.span_start - detection.excerpt_start, detection.span_end - detection.excerpt_start
    excerpt = detection.excerpt
    span = excerpt[lo:hi] if excerpt and 0 <= lo <= hi <= len(excerpt) else ""
    details = detection.details or {}
    return Finding(severity=detection.severity, summary=detection.summary, step=detection.step,
                   span=span, context=("…" if detection.excerpt_start else "") + excerpt,
                   explanation=str(details.get("explanation") or details.get("reason") or ""))


def finding_of_cause(command: ControlCommand) -> Finding:
    """What a bias pause says by itself, for when its detection event never arrived."""
    cause = command.args.cause
    return Finding(severity=cause.severity, summary=cause.summary or command.reason, step=command.step)


def quote(text: str) -> str:
    return "\n".join("> " + line for line in text.strip().splitlines()) or "> (empty)"


def pause_entry(finding: Finding, run_id: str, step: int) -> tuple[str, str]:
    """Title and body of the system journal entry written when a bias detection pauses a run."""
    severity, span, context = finding.severity, finding.span, finding.context
    summary = finding.summary or "a pattern the bias monitor flagged"

    title = f"Training paused at step {step:,}: bias detection is working as intended"
    parts = [
        f"Detection is working as intended. The bias monitor found a {severity}-severity pattern in "
        f"run {run_id} and paused training at step {step:,}, so that we can look at it together. "
        "This is the safety system doing its job, not a failure of the model or of anyone.",
        f"What was found: {summary}",
    ]
    if span:
        parts.append("The matched text:\n" + quote(span))
    if context and context.strip() != span.strip():
        parts.append("In its context:\n" + quote(context))
    if finding.explanation:
        parts.append("Why it was flagged:\n" + quote(finding.explanation))
    parts.append(
        "Context matters: a flagged word is not biased in itself, and this pattern likely comes from "
        "the data the model learned from. We name it as bias, we do not punish it, and we add context.\n\n"
        "How you can help: add a counter-example (a text that does not follow the pattern) or an "
        "explanation (why the pattern is biased and how to handle it). Each one joins training as "
        "mitigation data when the run resumes:\n"
        f'  introspect journal --run {run_id} --type counter_example "..."\n'
        f'  introspect journal --run {run_id} --type explanation "..."\n'
        f'Then resume with a note: introspect resume --run {run_id} --note "..."'
    )
    return title, "\n\n".join(parts)


def is_bias_pause(command: ControlCommand) -> bool:
    """A pause that the bias detector caused, by its typed cause (never by the words of a reason)."""
    cause = getattr(command.args, "cause", None)
    return isinstance(command.args, Pause) and cause is not None and cause.detector == "bias"


def mitigation_mix(texts: list[str], weight: float) -> Mix:
    """The "mix" order that adds the mitigation texts as a data source."""
    if not texts:
        raise ValueError("no mitigation texts to mix in")
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"mitigation weight must be in (0, 1], got {weight}")
    return Mix(weights={MITIGATION_SOURCE: weight}, texts={MITIGATION_SOURCE: list(texts)})
