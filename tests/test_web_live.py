"""Live pages over a real bus: server-sent events carry what is published on a run's subjects, a
slow browser loses the oldest events (and is told), streams end on shutdown (SIGTERM included),
the resume form refuses a resume without a note, and a person's command is marked where the
trainer applied it."""
import asyncio
import os
import signal
import time

import aiohttp
import msgspec
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from introspect.servers import free_port
from journal_svc import run_view
from journal_svc.live import ClientQueue, LiveHub, sse
from journal_svc.web import make_app
from journal_svc.writer import JournalWriter
from processes import Processes
from shared import bus
from shared.bus import control
from shared.contract import events


def test_a_full_queue_drops_the_oldest_and_counts_them():
    queue = ClientQueue(limit=3)
    for i in range(5):
        queue.put(b"%d" % i)
    assert queue.take() == ([b"2", b"3", b"4"], 2)
    assert queue.take() == ([], 0) and not queue.ready.is_set()


async def read_events(response, until: str, timeout: float = 10) -> list[tuple[str, dict | None]]:
    """(event name, data) pairs off a text/event-stream, up to and including `until`; comments
    come back as (":", None)."""
    seen, name = [], None
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith(":"):
                seen.append((":", None))
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen.append((name, msgspec.json.decode(line.removeprefix("data: "))))
                if name == until:
                    return seen


async def journal_a_run(pool, run: str) -> None:
    writer = await JournalWriter.create(pool)
    status = events.Status(event_id=events.new_event_id(), run_id=run, step=3, state="running")
    await writer.write([(status, f"train.{run}.status", events.encode(status))])


def step_event(run: str, step: int, loss: float) -> events.StepMetrics:
    return events.StepMetrics(event_id=events.new_event_id(), run_id=run, step=step, loss=loss,
                              loss_smooth=loss, lr=0.01, grad_norm=1.0, tokens_per_s=100.0,
                              step_time_s=0.1, mfu=None, tokens_seen=step * 64)


async def test_the_stream_carries_the_runs_events_and_ends_on_shutdown(nc, pool):
    await journal_a_run(pool, "l1")
    js = nc.jetstream()
    async with TestClient(TestServer(make_app(pool, js, nc=nc))) as client:
        stream = await client.get("/events", params={"run": "l1"})
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await read_events(stream, "hello"))[-1] == ("hello", {"run_id": "l1"})
        await bus.publish(js, step_event("l1", 4, float("nan")))  # NaN travels as null
        await bus.publish(js, step_event("other", 4, 2.0))  # another run's: not on this stream
        await bus.publish(js, events.JournalEntry(event_id=events.new_event_id(), run_id="l1", step=4,
                                                  author="human", body="<b>look</b>", who="web"))
        seen = await read_events(stream, "entry")
        (step,) = [data for name, data in seen if name == "step"]
        assert step["step"] == 4 and step["loss"] is None
        entry = seen[-1][1]
        assert "&lt;b&gt;look&lt;/b&gt;" in entry["html"] and "<details" in entry["html"]
        await client.app.shutdown()  # what SIGTERM does through the service's runner
        assert (await read_events(stream, "bye"))[-1][0] == "bye"
        assert (await stream.content.read()).strip() == b""  # and the response is over (EOF)


async def test_a_slow_browser_is_told_how_many_events_it_lost_and_an_idle_stream_beats(nc):
    hub = LiveHub(nc, heartbeat_s=0.2, queue_limit=3)
    app = web.Application()

    async def stream_l2(request):
        return await hub.stream(request, "l2")
    app.router.add_get("/e", stream_l2)
    async with TestClient(TestServer(app)) as client:
        stream = await client.get("/e")
        await read_events(stream, "hello")
        assert await stream.content.readline() == b"\n"  # the end of the hello event
        assert await stream.content.readline() == b": heartbeat\n"  # nothing happened for 0.2 s
        (queue,) = hub.clients
        for step in range(6):  # six events before the stream could send one: it keeps the newest
            queue.put(sse("step", {"step": step}))
        seen = [event for event in await read_events(stream, "step") if event[0] != ":"]
        assert seen[0] == ("dropped", {"count": 3}) and seen[1] == ("step", {"step": 3})
        stream.close()
        for _ in range(50):  # the next heartbeat finds the browser gone, and unsubscribes
            if not hub.clients:
                break
            await asyncio.sleep(0.1)
        assert not hub.clients


async def test_a_resume_without_a_note_is_refused_and_beyond_localhost_needs_the_token(nc, pool):
    await journal_a_run(pool, "l3")
    app = make_app(pool, nc.jetstream(), token="s3cret", token_required=True, nc=nc)
    async with TestClient(TestServer(app)) as client:
        page = await (await client.get("/run", params={"run": "l3"})).text()
        assert 'class="resume-form"' in page and 'id="paused" hidden' in page  # shown live when paused
        assert 'src="/static/live.js"' in page and (await client.get("/static/live.js")).status == 200
        no_token = await client.post("/resume", params={"run": "l3"}, data={"note": "fixed"})
        assert no_token.status == 403
        empty = await client.post("/resume", params={"run": "l3"}, data={"note": "  ", "token": "s3cret"},
                                  headers={"Accept": "application/json"})
        assert empty.status == 400 and "needs a note" in (await empty.json())["text"]


async def test_a_persons_command_is_marked_where_the_trainer_answered_it(pool):
    writer = await JournalWriter.create(pool)
    pause = control.command("l4", events.Pause(), reason="look", who="ann")  # sent at step -1
    answer = events.Status(event_id=events.new_event_id(), run_id="l4", step=7, state="paused",
                           reason="look", command_id=pause.event_id, outcome="applied")
    await writer.write([(e, "x", events.encode(e)) for e in (pause, answer)])
    (marked,) = [r for r in (await run_view.read_run(pool, "l4"))["story"] if r["kind"] == "command"]
    assert (marked["step"], marked["what"]) == (7, "pause")
    shapes = run_view.figure(await run_view.read_run(pool, "l4")).layout.shapes
    assert {(s.x0, s.line.color) for s in shapes} == {(7, "red")}  # one per plot row


async def test_sigterm_ends_open_streams_with_bye_and_the_journal_exits(settings, nc, pool, tmp_path):
    await journal_a_run(pool, "l5")
    port = free_port()
    env = {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url,
           "INTROSPECT_WEB_PORT": str(port), "INTROSPECT_STATE_DIR": str(tmp_path / "state")}
    processes = Processes(env, tmp_path)
    processes.start("journal_svc", "journal_svc")
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            for _ in range(150):  # the service starts in a few seconds
                try:
                    stream = await http.get("/events", params={"run": "l5"})
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            await read_events(stream, "hello")
            processes.procs["journal_svc"].send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert (await read_events(stream, "bye"))[-1][0] == "bye"
        assert await asyncio.to_thread(processes.procs["journal_svc"].wait, 15) == 0
        assert time.monotonic() - started < 10, "an open stream held the shutdown"
    finally:
        await processes.stop_all()
