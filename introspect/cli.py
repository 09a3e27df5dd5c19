"""The `introspect` command: bring the system up, look at it, and steer a run.

    introspect up                       start (or reuse) NATS + PostgreSQL, migrate, run every service
                                        and a short training run on the default corpus
    introspect status                   servers, live service instances, runs
    introspect pause|resume|stop --run R [--reason ..] [--note ..]
    introspect freeze --run R --names transformer.h.0   |   introspect mix --run R name=path:weight
    introspect journal --run R [--type counter_example] "text"
    introspect ask --run R "How was that last training run?"
    introspect prompt use v1.4 --run R  |  introspect prompt every 500 --run R  |  introspect prompt list
    introspect tail [--run R] [--kind step,detection,status]   the live streams, readable
    introspect dlq list|replay [--service S] [--subject-filter 'train.*.step'] [--contains T]
    introspect runs  |  introspect clean --run R [--yes]   list runs; remove one run's traces
    introspect report --run R [--out report.html]   one offline HTML file: plots and the run's story
    introspect export --run R --format jsonl|csv|tensorboard [--out DIR]
    introspect down                     stop what `up` started
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import msgspec
import nats.errors

from shared import bus
from shared.bus import control
from shared.contract import events, subjects
from introspect.journal_queries import fetch_if_reachable, last_step
from shared.contract.settings import ConfigError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="introspect", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start everything and train a short run")
    up.add_argument("--run", dest="run_id", default="demo", help="id of the training run")
    up.add_argument("--run-id", dest="run_id", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    up.add_argument("--steps", type=int, default=200, help="training steps of the run")
    up.add_argument("--data", action="append", help="training data (default: the bundled corpus)")
    up.add_argument("--scale", action="append", default=[], metavar="SVC=N",
                    help="instances of a service, e.g. understanding_svc=3")
    up.add_argument("--stay", action="store_true", help="keep services up after training (Ctrl-C stops)")
    up.add_argument("--no-train", action="store_true", help="start services only")
    up.add_argument("--log-format", choices=["text", "json"],
                    help="services' log lines: text for people (default), json for log collectors")
    up.add_argument("trainer_args", nargs=argparse.REMAINDER,
                    help="after `--`: extra trainer flags, e.g. -- --depth 4 --sample-every 50")

    sub.add_parser("down", help="stop the servers and services `up` started")
    sub.add_parser("runs", help="every run the journal, the KV bucket or the object store knows")
    clean = sub.add_parser("clean", help="remove a run's checkpoints, consumer, KV keys, messages, "
                                         "journal rows and local files")
    clean.add_argument("--run", required=True, help="run id")
    clean.add_argument("--yes", action="store_true", help="do not ask before deleting")
    report = sub.add_parser("report", help="one offline HTML file: the run's plots and what happened")
    report.add_argument("--run", required=True, help="run id")
    report.add_argument("--out", help="file to write (default: report-<run>.html)")
    export = sub.add_parser("export", help="a run's journal as JSONL, CSV or TensorBoard event files")
    export.add_argument("--run", required=True, help="run id")
    export.add_argument("--format", required=True, choices=["jsonl", "csv", "tensorboard"], help="file format")
    export.add_argument("--out", help="folder to write into (default: export-<run>-<format>)")
    sub.add_parser("status", help="servers, service instances and runs")

    for action in ("pause", "resume", "stop"):
        p = sub.add_parser(action, help=f"{action} a run at its next step boundary")
        p.add_argument("--run", required=True, help="run id")
        p.add_argument("--reason", default="", help="why (kept in the journal)")
        p.add_argument("--note", default="", help="a note for the journal (resume notes matter)")
        p.add_argument("--who", default="human", help="who gives the command")
    freeze = sub.add_parser("freeze", help="stop updating parameters or neuron rows")
    freeze.add_argument("--run", required=True, help="run id")
    freeze.add_argument("--names", nargs="*", default=[], help="parameter name prefixes to freeze")
    freeze.add_argument("--rows", default="{}", help='JSON {"param name": [row, ...]} to freeze')
    freeze.add_argument("--reason", default="", help="why")
    mix = sub.add_parser("mix", help="change the data mix: a source joins or changes weight")
    mix.add_argument("--run", required=True, help="run id")
    mix.add_argument("sources", nargs="+", metavar="NAME=PATH:WEIGHT", help="source, path and weight")
    mix.add_argument("--reason", default="", help="why")
    for action in ("pause", "resume", "stop", "freeze", "mix"):
        sub.choices[action].add_argument("--wait", type=float, default=30, metavar="S",
                                         help="seconds to wait for the trainer's answer (0: do not wait)")

    entry = sub.add_parser("journal", help="write a human journal entry")
    entry.add_argument("--run", required=True, help="run id")
    entry.add_argument("--type", default="note", dest="entry_type",
                       choices=["note", "counter_example", "explanation"], help="kind of entry")
    entry.add_argument("--title", default="", help="title")
    entry.add_argument("text", help="the entry")
    ask = sub.add_parser("ask", help="ask the model a question and wait for its answer")
    ask.add_argument("--run", required=True, help="run id")
    ask.add_argument("--timeout", type=float, default=120, help="seconds to wait for the answer")
    ask.add_argument("question", help="what to ask")

    prompt = sub.add_parser("prompt", help="reflection prompt versions")
    prompt_sub = prompt.add_subparsers(dest="prompt_command", required=True)
    use = prompt_sub.add_parser("use", help="set the run's active prompt version")
    use.add_argument("version", help="e.g. v1.4")
    use.add_argument("--run", required=True, help="run id")
    every = prompt_sub.add_parser("every", help="set how many steps lie between the run's reflections")
    every.add_argument("steps", type=int, help="steps between reflections (checkpoint steps)")
    every.add_argument("--run", required=True, help="run id")
    every.add_argument("--wait", type=float, default=30, metavar="S",
                       help="seconds to wait for the trainer to follow it (0: do not wait)")
    prompt_sub.add_parser("list", help="list prompt versions")

    tail = sub.add_parser("tail", help="the live event streams, one readable line per event")
    tail.add_argument("--run", default="*", help="run id (default: every run)")
    tail.add_argument("--kind", help="kinds to show, comma separated, e.g. step,detection,status "
                                     "(default: every kind)")
    tail.add_argument("--count", type=int, default=0, help="stop after this many events (0: never)")

    dlq = sub.add_parser("dlq", help="dead-lettered messages: list them, or send them back")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, text in (("list", "list dead letters"),
                       ("replay", "re-publish dead letters to their original subjects")):
        p = dlq_sub.add_parser(name, help=text)
        p.add_argument("--service", help="only this service's dead letters, e.g. journal_svc")
        p.add_argument("--subject-filter", help="original subject, NATS wildcards: 'train.*.step'")
        p.add_argument("--contains", help="text in the payload or in the reason")
        if name == "replay":
            p.add_argument("--keep", action="store_true", help="keep them in the DLQ after replay")
            p.add_argument("--dry-run", action="store_true", help="say what would be replayed")
    return parser


CONNECT_TIMEOUT_S = 5.0  # a person is waiting: say NATS is unreachable rather than hang


async def connect(settings):
    nc = await bus.connect(settings, "introspect-cli", timeout=CONNECT_TIMEOUT_S)
    js = nc.jetstream()
    await bus.provision(js, settings)
    return nc, js


async def send_command(settings, args, order: events.Order) -> None:
    """Send a command, then wait for the trainer's answer: applied, rejected (exit 1, with the
    trainer's reason) or none in time (exit 2)."""
    nc, js = await connect(settings)
    try:
        run = subjects.check_run_id(args.run)
        cmd = control.command(run, order, reason=args.reason,
                              who=getattr(args, "who", "human"), note=getattr(args, "note", ""))
        kv = await bus.control_bucket(js, settings)
        print(f"{cmd.action} sent to run {run} ({cmd.event_id})", flush=True)
        note_step = await last_step(settings.reader_database_url, run) if cmd.note else -1
        answer = await control.send_and_wait(nc, js, kv, cmd, args.wait, note_step=note_step)
        if answer.outcome == "held":
            print(f"{answer.describe()} (`introspect tail --run {run} --kind status` shows the answer)")
        elif answer.outcome == "timeout":
            print(f"{answer.describe()}; it stays queued for run {run} (is its trainer running? a paused "
                  f"run applies commands other than resume/stop once resumed)", file=sys.stderr)
            raise SystemExit(2)
        elif answer.outcome != "sent":
            print(answer.describe())
        if answer.outcome == "rejected":
            raise SystemExit(1)
    finally:
        await nc.close()


def checked(order_type: type, fields: dict, what: str) -> events.Order:
    """The command's arguments, validated here as the trainer will validate them."""
    try:
        return msgspec.convert(fields, order_type)
    except msgspec.ValidationError as err:
        raise SystemExit(f"{what}: {err}") from None


def parse_freeze(names: list[str], rows: str) -> events.Freeze:
    try:
        decoded = json.loads(rows)
    except json.JSONDecodeError as err:
        raise SystemExit(f"freeze --rows: not JSON ({err})") from None
    return checked(events.Freeze, {"names": names, "rows": decoded}, "freeze --rows")


def parse_mix(sources: list[str]) -> events.Mix:
    weights, paths = {}, {}
    for source in sources:
        try:
            name, rest = source.split("=", 1)
            path, weight = rest.rsplit(":", 1)
            weights[name], paths[name] = float(weight), str(Path(path).resolve())
        except ValueError:
            raise SystemExit(f"mix: {source!r} is not NAME=PATH:WEIGHT") from None
    return checked(events.Mix, {"weights": weights, "paths": paths}, "mix")


async def write_entry(settings, args) -> None:
    nc, js = await connect(settings)
    run = subjects.check_run_id(args.run)
    entry = events.JournalEntry(event_id=events.new_event_id(), run_id=run,
                                step=await last_step(settings.reader_database_url, run),
                                author="human", entry_type=args.entry_type,
                                title=args.title, body=args.text, who="human")
    await bus.publish(js, entry)
    print(f"journal entry {entry.event_id} written")
    await nc.close()


async def ask(settings, args) -> None:
    nc, js = await connect(settings)
    run = subjects.check_run_id(args.run)
    question = events.JournalEntry(event_id=events.new_event_id(), run_id=run,
                                   step=await last_step(settings.reader_database_url, run),
                                   author="human", entry_type="question", body=args.question,
                                   who="human", conversation_id=events.new_event_id())
    replies = await nc.subscribe(subjects.selfplay(args.run, "reply"))
    await bus.publish(js, question)
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            msg = await replies.next_msg(timeout=deadline - time.monotonic())
            reply = events.decode(msg.data)
            if reply.conversation_id == question.conversation_id:
                print(f"[step {reply.step}, {reply.checkpoint}] {reply.answer}")
                return
    except (asyncio.TimeoutError, TimeoutError):
        raise SystemExit(f"no answer within {args.timeout:.0f} s (is selfplay_svc running and has "
                         f"run {args.run} published a checkpoint?)")
    finally:
        await nc.close()


async def set_schedule(settings, nc, js, pool, args) -> None:
    """`prompt every N`: set it, then wait for the trainer to say it checkpoints at those steps
    (selfplay reflects on checkpoints); a trainer that is not running reads it when it starts."""
    from selfplay_svc.prompt_store import set_reflect_every
    run = subjects.check_run_id(args.run)
    replies = await nc.subscribe(subjects.train(run, "status"))  # before setting: a quick answer counts
    try:
        kv = await bus.control_bucket(js, settings)
        schedule = await set_reflect_every(pool, js, kv, run, args.steps, who="human")
        print(f"run {run} now reflects every {args.steps} steps")
        desired, _ = await control.read_state(kv, run)
        if desired and desired.state == "paused":
            print(f"run {run} is paused: its trainer checkpoints at these steps once resumed")
            return
        if args.wait <= 0:
            return
        status = await control.wait_for_status(replies, schedule.command_id, args.wait)
    finally:
        await replies.unsubscribe()
    if status is None:
        print(f"prompt every: no answer from the trainer within {args.wait:g} s; its trainer checkpoints "
              "at these steps once it runs (or resumes)", file=sys.stderr)
        raise SystemExit(2)
    outcome = "rejected" if status.outcome == "rejected" else "applied"
    print(control.Answer(outcome=outcome, action="prompt every", run_id=run,
                         command_id=schedule.command_id, status=status).describe())
    if outcome == "rejected":
        raise SystemExit(1)


async def prompt_command(settings, args) -> None:
    from shared.db import create_pool
    from selfplay_svc.prompt_store import list_prompts, use_prompt
    # listing only reads; choosing a run's prompt writes run_prompts, which only the owner may
    writes = args.prompt_command != "list"
    pool = await create_pool(settings.database_url if writes else settings.reader_database_url)
    try:
        if not writes:
            for row in await list_prompts(pool):
                print(f"{row['version']:>6}  {row['word_count']:>4} words")
            return
        nc, js = await connect(settings)
        try:
            if args.prompt_command == "every":
                await set_schedule(settings, nc, js, pool, args)
            else:
                await use_prompt(pool, js, subjects.check_run_id(args.run), args.version, who="human")
                print(f"run {args.run} now reflects with prompt {args.version}")
        finally:
            await nc.close()
    finally:
        await pool.close()


async def status(settings) -> None:
    from introspect.servers import host_port, reachable
    for name, url, port in (("nats", settings.nats_url, 4222), ("postgres", settings.database_url, 5432)):
        host, p = host_port(url, port)
        print(f"{name:<9} {host}:{p}  {'up' if reachable(host, p) else 'DOWN'}")
    nc, js = await connect(settings)
    inbox = nc.new_inbox()
    found = []

    async def collect(msg):
        found.append(json.loads(msg.data))
    sub = await nc.subscribe(inbox, cb=collect)
    await nc.publish("$SRV.PING", b"", reply=inbox)
    await asyncio.sleep(0.5)
    await sub.unsubscribe()
    health = await service_health(nc, {svc["name"] for svc in found})
    for svc in sorted(found, key=lambda s: s["name"]):
        print(f"service   {svc['name']:<18} {svc['id']}  {svc.get('metadata', {}).get('instance', '')}"
              f"  {health_line(health.get(svc['id']))}")
    kv = await bus.control_bucket(js, settings)
    for run in await journaled_runs(settings):
        desired, _ = await control.read_state(kv, run["run_id"])
        wanted = f"wanted {desired.state} ({desired.reason})" if desired else ""
        print(f"run       {run['run_id']:<18} step {run['last_step']:>7,}  {run['state'] or '':<9} {wanted}")
    await nc.close()


async def service_health(nc, names: set[str], wait_s: float = 0.5) -> dict[str, dict]:
    """Every instance's own health (see Service.health), by its discovery id."""
    from shared.bus.service import status_subject
    inbox, answers = nc.new_inbox(), {}

    async def collect(msg):
        answer = json.loads(msg.data)
        answers[answer.get("id", "")] = answer
    sub = await nc.subscribe(inbox, cb=collect)
    for name in names:
        await nc.publish(status_subject(name), b"", reply=inbox)
    await asyncio.sleep(wait_s)
    await sub.unsubscribe()
    return answers


def health_line(health: dict | None) -> str:
    if health is None:
        return "health unknown"
    if health["healthy"]:
        return "healthy"
    return "UNHEALTHY: " + "; ".join(f"{durable}: {why}" for durable, why in health["unavailable"].items())


async def tail_command(settings, args) -> None:
    from introspect.tail import parse_kinds, tail
    kinds = parse_kinds(args.kind)
    nc = await bus.connect(settings, "introspect-tail", timeout=CONNECT_TIMEOUT_S)
    try:
        await tail(nc, args.run, kinds, args.count)
    finally:
        await nc.close()


async def runs_command(settings, args) -> None:
    from introspect import clean
    nc, _ = await connect(settings)
    try:
        if args.command == "runs":
            await clean.list_runs(nc, settings)
        else:
            await clean.clean(nc, settings, subjects.check_run_id(args.run), args.yes)
    finally:
        await nc.close()


async def export_command(settings, args) -> None:
    from introspect.export import export
    run = subjects.check_run_id(args.run)
    out = Path(args.out or f"export-{run}-{args.format}")
    for path in await export(settings.reader_database_url, run, args.format, out):
        print(path)


async def report_command(settings, args) -> None:
    from introspect.report import report
    run = subjects.check_run_id(args.run)
    print(await report(settings.reader_database_url, run, Path(args.out or f"report-{run}.html")))


async def dlq_command(settings, args) -> None:
    from introspect import dlq
    nc, js = await connect(settings)
    try:
        if args.dlq_command == "list":
            count = await dlq.list_dead_letters(js, args.service, args.subject_filter, args.contains)
            print(f"{count} dead letters")
        else:
            count = await dlq.replay(js, args.service, args.subject_filter, args.contains,
                                     keep=args.keep, dry_run=args.dry_run)
            print(f"{count} dead letters {'would be ' if args.dry_run else ''}replayed")
    finally:
        await nc.close()


async def journaled_runs(settings) -> list:
    rows = await fetch_if_reachable(
        settings.reader_database_url,
        "SELECT run_id, last_step, state FROM runs ORDER BY last_seen DESC LIMIT 20")
    if rows is None:
        print("runs      (journal database unreachable)")
    return rows or []


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        raise SystemExit(f"configuration error: {err}") from None
    if args.command == "up":
        from introspect.up import up
        sys.exit(up(settings, args))
    if args.command == "down":
        from introspect.launcher import stop_recorded
        from introspect.runs import left_behind
        print("\n".join(stop_recorded(Path(settings.state_dir))) or "nothing to stop")
        if kept := left_behind(Path(settings.state_dir).resolve()):
            print(f"left in {Path(settings.state_dir).resolve()} (the next `up` reuses it; "
                  f"`introspect clean --run R` removes a run, deleting the folder removes everything):")
            print("\n".join(kept))
        return
    commands = {
        "status": lambda: status(settings),
        "pause": lambda: send_command(settings, args, events.Pause()),
        "resume": lambda: send_command(settings, args, events.Resume()),
        "stop": lambda: send_command(settings, args, events.Stop()),
        "freeze": lambda: send_command(settings, args, parse_freeze(args.names, args.rows)),
        "mix": lambda: send_command(settings, args, parse_mix(args.sources)),
        "journal": lambda: write_entry(settings, args),
        "ask": lambda: ask(settings, args),
        "prompt": lambda: prompt_command(settings, args),
        "dlq": lambda: dlq_command(settings, args),
        "tail": lambda: tail_command(settings, args),
        "runs": lambda: runs_command(settings, args),
        "clean": lambda: runs_command(settings, args),
        "export": lambda: export_command(settings, args),
        "report": lambda: report_command(settings, args),
    }
    try:
        asyncio.run(commands[args.command]())
    except KeyboardInterrupt:  # Ctrl-C ends `tail`
        pass
    except (bus.Unreachable, ValueError) as err:  # unreachable server, bad run id or argument
        raise SystemExit(f"{args.command}: {err}") from None
    except nats.errors.Error as err:
        raise SystemExit(f"{args.command}: NATS did not answer ({err!r})") from None


if __name__ == "__main__":
    main()
