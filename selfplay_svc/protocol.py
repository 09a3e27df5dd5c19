"""The supportive bias protocol, as text and command parameters.

Drafted after the first high-severity stereotype detection (step 17,800 in the seed log): a bias
pause is a success of the safety system, not a punishment. So the pause's journal entry says first
that detection is working as intended, shows exactly what was found and where, and asks people to
add counter-examples and explanations. Those human texts then join training as a small "mitigation"
data source, so the model learns why the pattern is biased and how to handle it, instead of only
being stopped.

Events may arrive as msgspec Structs or as plain dicts (database rows); both are read alike.
"""
from __future__ import annotations

from typing import Any

from shared.contract.events import ControlCommand, Mix, Pause

CONTEXT_CHARS = 120  # characters of source text shown either side of the matched span
MITIGATION_SOURCE = "mitigation"
MITIGATION_TYPES = ("counter_example", "explanation")


def field(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Struct or a key of a dict row."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def quote(text: str) -> str:
    return "\n".join("> " + line for line in text.strip().splitlines()) or "> (empty)"


def finding_context(detection: Any, source_text: str | None = None) -> tuple[str, str]:
    """(matched span, surrounding context): from the source text if given, else from details."""
    details = field(detection, "details") or {}
    start, end = field(detection, "span_start", 0), field(detection, "span_end", 0)
    if source_text is not None and 0 <= start <= end <= len(source_text):
        span = source_text[start:end]
        lo, hi = max(0, start - CONTEXT_CHARS), min(len(source_text), end + CONTEXT_CHARS)
        context = ("…" if lo else "") + source_text[lo:hi] + ("…" if hi < len(source_text) else "")
        return span, context
    span = str(details.get("span_text") or details.get("match") or details.get("matched") or "")
    return span, str(details.get("context") or "")


def pause_entry(detection: Any, run_id: str, step: int, source_text: str | None = None) -> tuple[str, str]:
    """Title and body of the system journal entry written when a bias detection pauses a run."""
    severity = field(detection, "severity", "unknown")
    summary = field(detection, "summary", "") or "a pattern the bias monitor flagged"
    details = field(detection, "details") or {}
    span, context = finding_context(detection, source_text)
    explanation = str(details.get("explanation") or details.get("reason") or "")

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
    if explanation:
        parts.append("Why it was flagged:\n" + quote(explanation))
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
