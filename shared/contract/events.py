"""The event contract: every message on the bus is one of these msgspec Structs.

Each event carries `event_id` (also sent as the `Nats-Msg-Id` header, so JetStream drops resends
inside the duplicate window and the journal drops them forever), `run_id`, `step`, `ts` and a
schema version. Decoding is strict: unknown `kind`, wrong types or missing fields raise
`msgspec.ValidationError`, and the consumer helper dead-letters the message.

Changing a Struct is changing the contract: add optional fields with defaults and bump
`SCHEMA_VERSION`; never rename or retype a field in place.
"""
from __future__ import annotations

import hashlib
import math
import time
import uuid
from typing import Annotated, Literal, Union, get_args

import msgspec

SCHEMA_VERSION = 5  # 2: Detection.excerpt, Detection.excerpt_start; 3: grouped Detection
                    # (group_id, revision, samples, levels, occurrences), Coupling;
                    # 4: Status.command_id, Status.outcome (the trainer's answer to a command);
                    # 5: Detector "bias_probe" (a bias probe's score rising, from EvalResult "probe:...")

Severity = Literal["low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)  # in rising order
Detector = Literal["loop", "formatting", "motif", "bias", "bias_probe"]
DETECTORS: tuple[Detector, ...] = get_args(Detector)


def severity_rank(severity: Severity) -> int:
    """0 for low, 1 for medium, 2 for high: compare severities by rank."""
    return SEVERITIES.index(severity)

RunState = Literal["running", "paused", "stopped"]


# The journal stores steps as int8 and times as timestamptz: a value outside is refused here, on
# arrival, not by the database in the middle of a batch. -1 is "no step" (a human note, a command).
StepNumber = Annotated[int, msgspec.Meta(ge=-1, le=2**63 - 1)]
Timestamp = Annotated[float, msgspec.Meta(ge=0, lt=32503680000.0)]  # Unix seconds before year 3000
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


def new_event_id() -> str:
    return uuid.uuid4().hex


def stable_event_id(*parts: object) -> str:
    """An id derived from what the event is about, so a resend (outbox, retry) is de-duplicated."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


class Event(msgspec.Struct, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    event_id: str
    run_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]  # a subject token
    step: StepNumber
    ts: Timestamp = msgspec.field(default_factory=time.time)
    schema: int = SCHEMA_VERSION


# --- trainer_svc -----------------------------------------------------------------------------

class StepMetrics(Event, kw_only=True, tag="step"):
    loss: float  # NaN and ±inf travel (see encode): a diverging run must be seen, not dropped
    loss_smooth: float
    lr: NonNegative
    grad_norm: float
    tokens_per_s: float
    step_time_s: float
    mfu: float | None  # None where the device's peak FLOP/s is unknown, never a fake zero
    tokens_seen: Annotated[int, msgspec.Meta(ge=0)]
    data_mix: dict[str, float] = {}
    publish_lag_s: float = 0.0
    queue_depth: int = 0


class LayerStats(msgspec.Struct, forbid_unknown_fields=True):
    layer: int
    name: str  # e.g. "block.3.attn_out", "block.3.mlp_out", "block.3.resid"
    rms: float
    mean: float
    std: float
    max_abs: float
    max_channel: int
    dead_frac: float | None = None  # MLP layers only: share of units never active in the batch


class ActivationStats(Event, kw_only=True, tag="activations"):
    layers: list[LayerStats]


class Sample(Event, kw_only=True, tag="sample"):
    prompt: str
    text: str
    mode: Literal["greedy", "sampled"]
    temperature: float = 0.0
    top_k: int | None = None
    seed: int | None = None
    max_new_tokens: int = 0


class EvalResult(Event, kw_only=True, tag="eval"):
    name: str  # "val_bpb", "core:<task>" or "probe:<probe>[:<axis>]" (shared/contract/probes.py)
    value: float
    details: dict[str, float | int | str] = {}


class Checkpoint(Event, kw_only=True, tag="checkpoint"):
    object_name: str  # key in the NATS object store bucket
    size: int
    sha256: str
    local_path: str = ""
    reason: str = "interval"  # interval | pause | stop | final


CommandOutcome = Literal["", "applied", "rejected"]


class Status(Event, kw_only=True, tag="status"):
    """The trainer's state. A status that answers a control command names it (`command_id`, the
    command's event id) and says whether it was applied or rejected (`reason` says why)."""
    state: Literal["starting", "running", "paused", "stopped", "finished", "failed"]
    reason: str = ""
    detail: dict[str, float | int | str] = {}
    command_id: str = ""
    outcome: CommandOutcome = ""


class MixChange(Event, kw_only=True, tag="mix"):
    """The data mix changed: a source joined (or its weight changed) at this step."""
    weights: dict[str, float]
    reason: str = ""


# --- understanding_svc -----------------------------------------------------------------------

class Occurrence(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One raw per-sample finding inside a grouped Detection (for highlighting its span)."""
    source_event_id: str
    source_subject: str
    span_start: int
    span_end: int
    severity: Severity
    summary: str
    level: str = ""  # a loop's char | word | line
    count: int = 0  # a loop's repeats, a motif's samples
    excerpt: str = ""  # the source text around the span (see Detection.excerpt)
    excerpt_start: int = 0


class Detection(Event, kw_only=True, tag="detection"):
    """One problem in one round (the samples of one step, or one reflection), grouped over its
    samples and levels. Instances publish a new revision each time a sample adds to the group:
    `group_id` is stable, `event_id` = (group_id, revision), the highest revision is the whole
    group. The span and source fields name its most severe occurrence."""
    detector: Detector
    severity: Severity
    source_event_id: str
    source_subject: str
    span_start: int
    span_end: int
    summary: str
    details: dict = {}
    # the source text around the span, so a reader can quote it without another service's store;
    # excerpt_start is the excerpt's offset in the source text (the span's offsets stay the source's)
    excerpt: str = ""
    excerpt_start: int = 0
    group_id: str = ""
    revision: int = 0  # number of occurrences the group covers in this revision
    samples: int = 1  # distinct source events (samples) it covers
    levels: list[str] = []
    occurrences: list[Occurrence] = []


class Coupling(Event, kw_only=True, tag="coupling"):
    """Two series that move together over a window of steps: `follower` tracks `leader` `lag`
    observations (`lag_steps` steps) later, with Spearman rho `strength`."""
    leader: str  # "norm.3", "loop.count", "motif.occurrences", "probe.<name>", ...
    follower: str
    strength: float
    p_value: float
    lag: int
    lag_steps: int
    steps: list[int]  # the leader's steps the correlation rests on
    window_steps: int  # how far back it looked


class Health(Event, kw_only=True, tag="health"):
    status: Literal["healthy", "needs_attention", "unstable"]
    focus: Literal["early", "late", "balanced"]
    norms: list[float]  # per layer RMS of the residual stream
    notes: list[str] = []


class Shimmer(Event, kw_only=True, tag="shimmer"):
    """Step-to-step relative change of per-layer activation norms (the 'shimmer' of the seed log)."""
    per_layer: list[float]
    mean: float


class Concept(Event, kw_only=True, tag="concept"):
    feature: str  # "<layer name>:<channel>"
    tier: Literal["forming", "maturing", "candidate_to_freeze"]
    score: float
    first_step: int
    details: dict = {}


# --- selfplay_svc ----------------------------------------------------------------------------

class Reflection(Event, kw_only=True, tag="reflection"):
    text: str
    prompt_version: str
    prompt: str
    checkpoint: str  # object name
    checkpoint_sha256: str
    sampling: dict[str, float | int | str] = {}
    scores: dict[str, float] = {}
    supportive: bool = False  # the bias protocol's framing was added to the prompt


class Reply(Event, kw_only=True, tag="reply"):
    conversation_id: str
    question_event_id: str
    question: str
    answer: str
    checkpoint: str
    checkpoint_sha256: str


# --- journal and control ---------------------------------------------------------------------

class JournalEntry(Event, kw_only=True, tag="entry"):
    author: Literal["human", "model", "system"]
    entry_type: Literal[
        "note", "question", "counter_example", "explanation", "protocol", "prompt_change", "resume_note"
    ] = "note"
    title: str = ""
    body: str
    who: str = ""
    conversation_id: str | None = None
    refs: dict[str, str] = {}


class PauseCause(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What made a detector pause a run; a person's pause has none, whatever its reason says."""
    detector: Detector
    severity: Severity
    detection_id: str
    source_event_id: str
    summary: str = ""


_COMMAND = dict(tag_field="action", forbid_unknown_fields=True, frozen=True)
SourceName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]  # never a file name
Weight = Annotated[float, msgspec.Meta(gt=0, le=1e6)]  # JSON has no NaN; 0 would starve a source
Row = Annotated[int, msgspec.Meta(ge=0)]


class Pause(msgspec.Struct, tag="pause", **_COMMAND):
    cause: PauseCause | None = None


class Resume(msgspec.Struct, tag="resume", **_COMMAND):
    pass


class Stop(msgspec.Struct, tag="stop", **_COMMAND):
    pass


class Freeze(msgspec.Struct, tag="freeze", **_COMMAND):
    names: list[str] = []  # parameter name prefixes
    rows: dict[str, list[Row]] = {}  # parameter name -> rows (neurons) to keep as they are


class Mix(msgspec.Struct, tag="mix", **_COMMAND):
    weights: dict[SourceName, Weight]
    paths: dict[SourceName, str] = {}  # new sources read from the trainer's disk
    texts: dict[SourceName, list[str]] = {}  # new sources given inline (counter-examples)


Order = Union[Pause, Resume, Stop, Freeze, Mix]
ACTIONS: tuple[str, ...] = tuple(t.__struct_config__.tag for t in Order.__args__)


class ControlCommand(Event, kw_only=True, tag="command"):
    """One command to a run; what it orders, with its arguments, is `args` (one Struct per action)."""
    args: Order
    reason: str = ""
    who: str = ""
    note: str = ""

    @property
    def action(self) -> str:
        return self.args.__struct_config__.tag

    @property
    def detection_id(self) -> str | None:
        cause = getattr(self.args, "cause", None)
        return cause.detection_id if cause else None


AnyEvent = Union[
    StepMetrics, ActivationStats, Sample, EvalResult, Checkpoint, Status, MixChange,
    Detection, Coupling, Health, Shimmer, Concept, Reflection, Reply, JournalEntry, ControlCommand,
]

EVENT_TYPES: dict[str, type[Event]] = {t.__struct_config__.tag: t for t in AnyEvent.__args__}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)
_named_floats_decoder = msgspec.json.Decoder(AnyEvent, strict=False)  # "NaN" -> float('nan')
NON_FINITE_NAMES = (b'"NaN"', b'"Infinity"', b'"-Infinity"')


def _name_non_finite(obj):
    """JSON has no NaN or infinity (msgspec writes null, which a float field then refuses):
    write them as the strings "NaN", "Infinity", "-Infinity", as JavaScript and PostgreSQL do."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: _name_non_finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_name_non_finite(v) for v in obj]
    return obj


def encode(obj) -> bytes:
    """JSON for an event (or any value in one), non-finite floats named rather than nulled."""
    data = _encoder.encode(obj)
    if b"null" in data:  # a None, or a non-finite float msgspec wrote as null: look closer
        named = _name_non_finite(msgspec.to_builtins(obj))
        return _encoder.encode(named)
    return data


def decode(data: bytes) -> AnyEvent:
    """Strict decode of any event; raises msgspec.DecodeError/ValidationError on bad input.
    Only a message that names a non-finite float is decoded again accepting those names."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError:
        if not any(name in data for name in NON_FINITE_NAMES):
            raise
        return _named_floats_decoder.decode(data)


class DesiredState(msgspec.Struct, forbid_unknown_fields=True):
    """The value kept in the control KV bucket under the run id."""
    state: RunState
    reason: str = ""
    who: str = ""
    ts: float = msgspec.field(default_factory=time.time)
    command_id: str = ""
    detection_id: str | None = None
    paused_by: list[str] = []  # detections that paused this run: each pauses it at most once


class ReflectSchedule(msgspec.Struct, forbid_unknown_fields=True):
    """The value kept in the control KV bucket under `reflect_every.<run>` (`introspect prompt
    every N`): selfplay reflects on the run's checkpoints at multiples of `every`, so the trainer
    checkpoints at those steps too; it answers `command_id` with a Status when it follows it."""
    every: Annotated[int, msgspec.Meta(ge=1)]
    who: str = ""
    ts: float = msgspec.field(default_factory=time.time)
    command_id: str = ""
