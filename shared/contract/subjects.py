"""Every subject, stream, durable consumer and bucket name in one place.

One subject tree per concern with the run id second, so `train.*.step` watches every run and
`*.r42.>` watches one run.
"""
from __future__ import annotations

import re

# stream name -> subjects it captures
STREAMS: dict[str, list[str]] = {
    "TRAIN": ["train.>"],
    "UNDERSTANDING": ["understanding.>"],
    "SELFPLAY": ["selfplay.>"],
    "JOURNAL": ["journal.>"],
    "CONTROL": ["control.>"],
    "DLQ": ["dlq.>"],
}

CONTROL_BUCKET = "run_state"  # KV: run id -> DesiredState; reflect_every.<run id> -> ReflectSchedule
CHECKPOINT_BUCKET = "checkpoints"  # object store, keys from shared.model.checkpoint.object_name

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_run_id(run_id: str) -> str:
    """A run id becomes a subject token and a KV key: no dots, spaces or wildcards."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run_id {run_id!r} must match {_RUN_ID.pattern}")
    return run_id


def reflect_schedule_key(run_id: str) -> str:
    """The run's reflection schedule in the control bucket (beside its desired state, key = run id)."""
    return f"reflect_every.{check_run_id(run_id)}"


def is_run_key(key: str) -> bool:
    """A control-bucket key that is a run's desired state (the others name what they hold first)."""
    return bool(_RUN_ID.match(key))


def train(run_id: str, kind: str) -> str:
    return f"train.{run_id}.{kind}"


def understanding(run_id: str, kind: str) -> str:
    return f"understanding.{run_id}.{kind}"


def selfplay(run_id: str, kind: str) -> str:
    return f"selfplay.{run_id}.{kind}"


def journal(run_id: str) -> str:
    return f"journal.{run_id}.entry"


def control(run_id: str, action: str) -> str:
    return f"control.{run_id}.{action}"


def dlq(service: str) -> str:
    return f"dlq.{service}"


# event kind -> the subject tree it is published in
ROOT_FOR_KIND: dict[str, str] = {
    **dict.fromkeys(("step", "activations", "sample", "eval", "checkpoint", "status", "mix"), "train"),
    **dict.fromkeys(("detection", "coupling", "health", "shimmer", "concept"), "understanding"),
    **dict.fromkeys(("reflection", "reply"), "selfplay"),
    "entry": "journal", "command": "control",
}


def subject_for(event) -> str:
    """The subject an event is published on, from its kind."""
    kind = type(event).__struct_config__.tag
    root = ROOT_FOR_KIND.get(kind)
    if root is None:
        raise ValueError(f"no subject for event kind {kind!r}")
    if kind == "command":
        return control(event.run_id, event.action)
    return f"{root}.{event.run_id}.{kind}"


def filter_for_kind(kind: str, run_id: str = "*") -> str:
    """The subject filter that sees every event of `kind` for one run (or every run: "*")."""
    root = ROOT_FOR_KIND.get(kind)
    if root is None:
        raise ValueError(f"unknown event kind {kind!r}; one of {', '.join(ROOT_FOR_KIND)}")
    return f"{root}.{run_id}.>" if kind == "command" else f"{root}.{run_id}.{kind}"


def stream_for(subject: str) -> str:
    root = subject.split(".", 1)[0]
    for name, subjects in STREAMS.items():
        if subjects[0].split(".", 1)[0] == root:
            return name
    raise ValueError(f"no stream captures {subject!r}")


# Durable consumers: (stream, durable name, filter subjects). Instances of one service bind the
# same durable and share its messages.
JOURNAL_CONSUMERS = [(stream, f"journal_{stream.lower()}", subjects)
                     for stream, subjects in STREAMS.items() if stream != "DLQ"]
UNDERSTANDING_SAMPLES = ("TRAIN", "understanding_samples", ["train.*.sample"])
UNDERSTANDING_REFLECTIONS = ("SELFPLAY", "understanding_reflections", ["selfplay.*.reflection"])
UNDERSTANDING_ACTIVATIONS = ("TRAIN", "understanding_activations", ["train.*.activations"])
UNDERSTANDING_EVALS = ("TRAIN", "understanding_evals", ["train.*.eval"])  # bias probes' trends
SELFPLAY_CHECKPOINTS = ("TRAIN", "selfplay_checkpoints", ["train.*.checkpoint"])
SELFPLAY_QUESTIONS = ("JOURNAL", "selfplay_questions", ["journal.*.entry"])
SELFPLAY_DETECTIONS = ("UNDERSTANDING", "selfplay_detections", ["understanding.*.detection"])
SELFPLAY_CONTROL = ("CONTROL", "selfplay_control", ["control.*.pause", "control.*.resume"])


def trainer_control(run_id: str) -> tuple[str, str, list[str]]:
    """The trainer's own durable for its run's freeze and mix commands (pause, resume and stop
    are read from the control bucket)."""
    return "CONTROL", f"trainer_{check_run_id(run_id)}", [control(run_id, "freeze"), control(run_id, "mix")]

UNDERSTANDING_STATE_BUCKET = "understanding_state"  # KV: per-run tracker state (motifs, trends)
SELFPLAY_STATE_BUCKET = "selfplay_state"  # KV: latest checkpoint, bias protocol, claims
