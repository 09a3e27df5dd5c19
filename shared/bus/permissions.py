"""Who may do what on NATS: one user per role, each with publish/subscribe allow lists.

This table is the single source of the permissions: `introspect up` renders it into its embedded
nats-server's config and `nats-server.conf` (compose) is the same rendering, committed
(`python -m shared.bus.permissions > nats-server.conf`; a test keeps them equal).

The rules (issue 13):
- only the trainer publishes `train.>`;
- a command's subject ends with its sender, `control.<run>.<action>.<user>`, and each user may
  publish only with its own name there, so the journal reads who sent it from the subject;
- only understanding and the operator pause; only the operator (and the `web` role acting for
  the operator) resumes, stops, freezes and mixes; selfplay may send one kind of mix, the bias
  protocol's mitigation (`control.*.mix.selfplay`): the trainer refuses a selfplay mix that names
  a file or weights another source (trainer_svc.controls.texts_only_refusal);
- only the operator (and `web`) writes a run's desired state `$KV.run_state.<run>`; a service
  that pauses writes its own key `$KV.run_state.<run>.pause.<user>` (see shared.bus.control);
- stream create/update/purge/delete and message delete are the admin's alone: `up` (or the
  compose `provision` job) provisions as admin, `introspect clean` and `dlq replay` run as admin.
  One exception, named here: the trainer may purge the checkpoint object store's own stream,
  because the object store purges an object's old chunks when the same name is uploaded again;
- every user has its own reply inbox `_INBOX.<user>.>` (bus.connect sets the prefix), so no user
  reads another's replies (KV values, object chunks, API answers).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from shared.contract import subjects

ANONYMOUS = subjects.ANONYMOUS
CB, SB, PB = subjects.CONTROL_BUCKET, subjects.SELFPLAY_STATE_BUCKET, subjects.UNDERSTANDING_STATE_BUCKET
OBJ = f"OBJ_{subjects.CHECKPOINT_BUCKET}"


def consumer_create(stream: str) -> list[str]:
    """Create a consumer: ephemeral (`...CREATE.<stream>`), named or filtered (`...CREATE.<stream>.>`),
    and ask about it (an ordered consumer, behind KV watchers and object reads, does)."""
    return [f"$JS.API.CONSUMER.CREATE.{stream}", f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.INFO.{stream}.>"]


def kv_read(bucket: str) -> list[str]:
    """Get a key (direct get or message get) and watch keys (an ordered push consumer)."""
    return [f"$JS.API.DIRECT.GET.KV_{bucket}.>", f"$JS.API.STREAM.MSG.GET.KV_{bucket}",
            *consumer_create(f"KV_{bucket}")]


def kv_write(bucket: str, keys: str = ">") -> list[str]:
    return [*kv_read(bucket), f"$KV.{bucket}.{keys}"]


def durable(stream: str) -> list[str]:
    """Bind and fetch from durable pull consumers on `stream`, and ack what they deliver."""
    return [*consumer_create(stream), f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>", f"$JS.ACK.{stream}.>"]


# Every authenticated client: account info, stream lookups (every stream and bucket: services check
# at start that they exist), flow control of push consumers.
BASE_PUBLISH = ["$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.FC.>"]
OBJECT_READ = [f"$JS.API.DIRECT.GET.{OBJ}.>", f"$JS.API.STREAM.MSG.GET.{OBJ}", *consumer_create(OBJ)]
DISCOVERY = ["$SRV.>", "introspect.*.status"]  # nats micro discovery and the services' status endpoint
EVENT_TREES = [*(s for names in subjects.STREAMS.values() for s in names)]


def command(actions: list[str], user: str) -> list[str]:
    return [subjects.control("*", action, user) for action in actions]


@dataclass(frozen=True)
class Role:
    summary: str
    publish: list[str]
    subscribe: list[str] = field(default_factory=list)


def _service(name: str, publish: list[str], streams: list[str], *, pauses: bool = False) -> list[str]:
    """A service: its own events, its DLQ, its durables, discovery; a pausing one its pause key."""
    own_pause = [subjects.control("*", "pause", name), f"$KV.{CB}.*.pause.{name}"] if pauses else []
    return [*BASE_PUBLISH, *publish, subjects.dlq(f"{name}_svc"), *kv_read(CB), *own_pause,
            *(p for s in streams for p in durable(s))]


ROLES: dict[str, Role] = {
    "trainer": Role(
        "publishes train.>, uploads checkpoints, reads its run's freeze/mix commands; pauses and "
        "resumes itself only under --require-monitor (its own pause key)",
        _service("trainer", ["train.>", "journal.*.entry", subjects.control("*", "resume", "trainer"),
                             f"$O.{subjects.CHECKPOINT_BUCKET}.>", f"$JS.API.STREAM.PURGE.{OBJ}",
                             *OBJECT_READ, "$SRV.PING.understanding_svc"],
                 ["CONTROL"], pauses=True),
        ["$SRV.>"]),
    "understanding": Role(
        "reads samples, reflections, activations; publishes understanding.>; pauses (its own key)",
        _service("understanding", ["understanding.>", *kv_write(PB)], ["TRAIN", "SELFPLAY"], pauses=True),
        DISCOVERY),
    "selfplay": Role(
        "reads checkpoints, questions, detections, pause/resume; publishes selfplay.>, protocol "
        "journal entries and the mitigation mix",
        _service("selfplay", ["selfplay.>", "journal.*.entry", subjects.control("*", "mix", "selfplay"),
                              *kv_write(SB), *OBJECT_READ], ["TRAIN", "JOURNAL", "UNDERSTANDING", "CONTROL"]),
        DISCOVERY),
    "journal": Role(
        "reads every stream into PostgreSQL; the web journal's notes and questions",
        _service("journal", ["journal.*.entry"],
                 [stream for stream, _, _ in subjects.JOURNAL_CONSUMERS]),
        DISCOVERY),
    "web": Role(
        "journal_svc's web journal, acting for the operator: notes, questions, pause and resume",
        [*BASE_PUBLISH, "journal.*.entry", *command(["pause", "resume"], "web"), *kv_write(CB, "*")],
        EVENT_TREES),  # live pages follow a run's events; a command waits for its status answer
    "operator": Role(
        "a person at the `introspect` CLI: every command, the desired state, notes, status, tail",
        [*BASE_PUBLISH, *command(["*"], "operator"), *kv_write(CB), "journal.*.entry", "$SRV.>",
         "introspect.*.status", *OBJECT_READ, "$JS.API.CONSUMER.INFO.>", "$JS.API.STREAM.MSG.GET.DLQ"],
        EVENT_TREES),
    "viewer": Role(
        "someone watching: subscribes to every event tree, reads run states, no publishing",
        [*BASE_PUBLISH, *kv_read(CB), "$SRV.PING", "$SRV.INFO", "$SRV.STATS"],
        EVENT_TREES),
    "admin": Role("provisioning, `introspect clean`, DLQ replay: everything", [">"], [">"]),
}
USERS = tuple(ROLES)


def password_variable(role: str) -> str:
    return f"INTROSPECT_NATS_{role.upper()}_PASSWORD"


def _quoted(items: list[str]) -> str:
    return ", ".join(f'"{s}"' for s in dict.fromkeys(items))  # order kept, duplicates dropped


def server_config(roles: dict[str, Role] = ROLES) -> str:
    """The `authorization` block for nats-server; each password is `$INTROSPECT_NATS_<ROLE>_PASSWORD`
    from the server's environment (a missing one stops the server at start)."""
    lines = ["# Generated from shared/bus/permissions.py; do not edit by hand.",
             "authorization {", "  users = ["]
    for name, role in roles.items():
        subscribe = [*role.subscribe, f"_INBOX.{name}.>"] if role.subscribe != [">"] else [">"]
        lines += [f"    # {name}: {role.summary}",
                  f"    {{user: {name}, password: ${password_variable(name)}, permissions: {{",
                  f"      publish: {{allow: [{_quoted(role.publish)}]}},",
                  f"      subscribe: {{allow: [{_quoted(subscribe)}]}},",
                  "      allow_responses: true}}"]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(server_config())
