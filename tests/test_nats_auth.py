"""NATS users and their permissions (shared.bus.permissions), on a real nats-server started with
the generated config: what each role may not do is refused by the server, what it must do works,
and the journal names a command's sender from the authenticated user."""
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest

from journal_svc.handlers import journal_bindings
from journal_svc.writer import JournalWriter
from shared import bus
from shared.bus import control, permissions
from shared.bus.consumer import Consumer
from shared.contract import events, subjects
from shared.contract.settings import load_settings
from support import wait_row

ROOT = Path(__file__).resolve().parent.parent
DENIED_WAIT_S = 0.5  # a denied request is never answered: it times out
NON_ADMINS = [role for role in permissions.USERS if role != "admin"]


@pytest.fixture
async def connect_as(auth_nats, database_url):
    """`await connect_as(role)`: (settings, connection) as that user; the admin provisioned first."""
    base = load_settings({}, database_url=database_url, web_port=0, ack_wait_s=2.0, instance="test")
    connections = []

    async def connect(role: str):
        settings = auth_nats.settings(base, role)
        connections.append(await bus.connect(settings, f"test-{role}"))
        return settings, connections[-1]
    settings, admin = await connect("admin")
    await bus.provision(admin.jetstream(), settings)
    yield connect
    for nc in connections:
        await nc.close()


async def refused(request) -> None:
    """The server drops a denied request (its log says "Publish Violation"): no answer comes."""
    with pytest.raises(asyncio.TimeoutError):  # nats.errors.TimeoutError is one too
        await asyncio.wait_for(request, DENIED_WAIT_S * 2)  # delete_msg has no timeout argument


def pause_for_detection(run_id: str, who: str = "understanding_svc") -> events.ControlCommand:
    cause = events.PauseCause(detector="bias", severity="high", detection_id="d1", source_event_id="s1")
    return control.command(run_id, events.Pause(cause=cause), reason="bias high", who=who)


async def control_subjects(admin, run_id: str) -> list[str]:
    sub = await admin.jetstream().pull_subscribe(f"control.{run_id}.>", stream="CONTROL")
    try:
        return [m.subject for m in await sub.fetch(10, timeout=1)]
    except nats.errors.TimeoutError:
        return []


def state(name: str, command_id: str = "") -> events.DesiredState:
    return events.DesiredState(state=name, command_id=command_id)


@pytest.mark.parametrize("operator, services, holds", [
    ((None, 0), [(state("paused"), 3)], "paused"),                     # a service's pause
    ((state("running"), 5), [(state("paused"), 3)], "running"),        # resumed after it
    ((state("stopped"), 2), [(state("paused"), 3)], "stopped"),        # a stop holds
    ((state("paused"), 2), [(state("running"), 3)], "paused"),         # a lift never ends the operator's pause
    ((state("running"), 2), [(state("paused"), 3), (state("running", "lift"), 4)], "paused"),  # nor another's
    ((None, 0), [(state("running", "lift"), 4)], "running"),           # a service lifts its own pause
    ((state("running"), 2), [(state("stopped"), 3)], "running"),       # a service's key cannot stop
])
def test_the_operators_word_and_the_services_pauses_combine(operator, services, holds):
    assert control.effective(operator, services)[0].state == holds


async def test_a_client_without_a_user_or_with_a_wrong_password_is_refused(auth_nats):
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(auth_nats.url, allow_reconnect=False)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(auth_nats.url, user="operator", password="guess", allow_reconnect=False)


async def test_understanding_pauses_but_cannot_resume_stop_mix_or_write_the_run_state(connect_as):
    settings, understanding = await connect_as("understanding")
    _, admin = await connect_as("admin")
    js = understanding.jetstream(timeout=DENIED_WAIT_S)
    for action in ("resume", "stop", "mix", "freeze"):
        await refused(js.publish(subjects.control("u1", action, "understanding"), b"{}"))
    await refused(js.publish(subjects.control("u1", "pause", "operator"), b"{}"))  # not in another's name
    kv = await bus.control_bucket(js, settings)
    await refused(kv.put("u1", msgspec.json.encode(events.DesiredState(state="stopped"))))
    await refused(kv.put(subjects.pause_key("u1", "trainer"), msgspec.json.encode(events.DesiredState(state="paused"))))
    await kv.put(subjects.pause_key("u1", "understanding"), msgspec.json.encode(events.DesiredState(state="stopped")))
    assert (await control.read_state(kv, "u1"))[0] is None  # its own key cannot stop a run
    with pytest.raises(PermissionError):  # the kit says so before the server has to
        await control.send(js, kv, control.command("u1", events.Stop()), "understanding")

    assert await control.send(js, kv, pause_for_detection("u1"), "understanding")
    assert (await control.read_state(kv, "u1"))[0].state == "paused"
    assert await control_subjects(admin, "u1") == ["control.u1.pause.understanding"]


async def test_the_operators_resume_overrides_a_services_pause_and_the_detection_cannot_repause(connect_as):
    u_settings, understanding = await connect_as("understanding")
    o_settings, operator = await connect_as("operator")
    u_js, o_js = understanding.jetstream(), operator.jetstream()
    u_kv, o_kv = await bus.control_bucket(u_js, u_settings), await bus.control_bucket(o_js, o_settings)
    assert await control.send(u_js, u_kv, pause_for_detection("u2"), "understanding")
    assert await control.send(o_js, o_kv, control.command("u2", events.Resume(), who="ana"), "operator")
    assert (await control.read_state(u_kv, "u2"))[0].state == "running"
    assert not await control.send(u_js, u_kv, pause_for_detection("u2"), "understanding")  # redelivered
    assert (await control.read_state(o_kv, "u2"))[0].state == "running"


async def test_only_the_trainer_publishes_train_events_and_it_sends_no_operator_command(connect_as):
    _, trainer = await connect_as("trainer")
    _, understanding = await connect_as("understanding")
    step = events.StepMetrics(event_id="s1", run_id="t1", step=1, loss=2.0, loss_smooth=2.0, lr=0.01,
                              grad_norm=1.0, tokens_per_s=1.0, step_time_s=0.1, mfu=None, tokens_seen=1)
    await bus.publish(trainer.jetstream(), step)
    await refused(bus.publish(understanding.jetstream(), step, timeout=DENIED_WAIT_S))
    js = trainer.jetstream(timeout=DENIED_WAIT_S)
    for action in ("stop", "resume", "mix", "freeze"):
        await refused(js.publish(subjects.control("t1", action, "operator"), b"{}"))
    await refused(js.publish(subjects.control("t1", "stop", "trainer"), b"{}"))


async def test_a_viewer_reads_and_publishes_nothing(connect_as):
    settings, viewer = await connect_as("viewer")
    _, trainer = await connect_as("trainer")
    steps = await viewer.subscribe("train.*.step")
    await viewer.flush()  # the server has the subscription before the trainer publishes
    await trainer.publish("train.v1.step", b"{}")
    await trainer.flush()  # on a loaded machine the client's own flusher came later than 2 s once
    assert (await steps.next_msg(timeout=10)).subject == "train.v1.step"
    js = viewer.jetstream(timeout=DENIED_WAIT_S)
    assert await control.read_state(await bus.control_bucket(js, settings), "v1") == (None, 0)
    await refused(js.publish("journal.v1.entry", b"{}"))
    await refused(js.publish(subjects.control("v1", "pause", "viewer"), b"{}"))


async def test_the_trainer_uploads_checkpoints_again_and_selfplay_reads_them(connect_as, tmp_path):
    t_settings, trainer = await connect_as("trainer")
    s_settings, selfplay = await connect_as("selfplay")
    _, understanding = await connect_as("understanding")
    store = await bus.checkpoint_store(trainer.jetstream(), t_settings)
    await store.put("c1/step_1.pt", b"first")
    await store.put("c1/step_1.pt", b"weights" * 1000)  # the same name again: old chunks purged
    readable = await bus.checkpoint_store(selfplay.jetstream(), s_settings)
    with open(tmp_path / "got.pt", "wb") as f:
        await readable.get("c1/step_1.pt", writeinto=f)
    assert (tmp_path / "got.pt").read_bytes() == b"weights" * 1000
    u_store = await bus.checkpoint_store(understanding.jetstream(timeout=DENIED_WAIT_S), s_settings)
    await refused(u_store.put("c1/step_2.pt", b"not a checkpoint"))


async def test_no_one_but_the_admin_purges_or_deletes_a_stream(connect_as):
    _, admin = await connect_as("admin")
    await admin.jetstream().publish(subjects.dlq("journal_svc"), b"dead letter")
    denied = []
    for role in NON_ADMINS:
        _, nc = await connect_as(role)
        js = nc.jetstream(timeout=DENIED_WAIT_S)
        denied += [js.purge_stream("DLQ"), js.delete_stream("DLQ"), js.delete_msg("DLQ", 1)]
    await asyncio.gather(*map(refused, denied))
    assert (await admin.jetstream().stream_info("DLQ")).state.messages == 1
    assert await admin.jetstream().purge_stream("DLQ")


async def test_a_command_is_journaled_under_its_senders_user_not_the_name_it_claims(connect_as, pool):
    o_settings, operator = await connect_as("operator")
    j_settings, journal = await connect_as("journal")
    writer = await JournalWriter.create(pool)
    consumers = [Consumer(journal.jetstream(), b, "journal_svc", j_settings) for b in journal_bindings(writer)]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        js = operator.jetstream()
        claimed = control.command("j1", events.Pause(), reason="look", who="understanding_svc")
        await control.send(js, await bus.control_bucket(js, o_settings), claimed, "operator")
        row = await wait_row(pool, "SELECT who FROM commands WHERE run_id = 'j1'")
        assert row["who"] == "operator"
    finally:
        for consumer in consumers:
            consumer.stop()
        await asyncio.gather(*tasks)


async def test_the_trainer_lifts_its_own_monitor_pause_but_not_an_operators(connect_as):
    t_settings, trainer = await connect_as("trainer")
    o_settings, operator = await connect_as("operator")
    t_js, o_js = trainer.jetstream(), operator.jetstream()
    t_kv, o_kv = await bus.control_bucket(t_js, t_settings), await bus.control_bucket(o_js, o_settings)
    assert await control.send(t_js, t_kv, control.command("m1", events.Pause(), who="monitor"), "trainer")
    assert (await control.read_state(t_kv, "m1"))[0].state == "paused"
    assert await control.send(t_js, t_kv, control.command("m1", events.Resume(), who="monitor"), "trainer")
    assert (await control.read_state(t_kv, "m1"))[0].state == "running"
    assert await control.send(o_js, o_kv, control.command("m1", events.Pause(), who="ana"), "operator")
    assert await control.send(t_js, t_kv, control.command("m1", events.Resume(), who="monitor"), "trainer")
    assert (await control.read_state(t_kv, "m1"))[0].state == "paused"  # the operator's pause holds


async def test_the_cli_finds_its_user_in_the_state_folder_operator_or_admin(auth_nats, connect_as, database_url):
    """No NATS_USER: the CLI reads <state>/nats-users.json, as `up` leaves it."""
    env = {**os.environ, "NATS_URL": auth_nats.url, "DATABASE_URL": database_url,
           "INTROSPECT_STATE_DIR": str(auth_nats.state_dir)}
    env.pop("NATS_USER", None)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "introspect", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    done = await asyncio.to_thread(cli, "pause", "--run", "c1", "--wait", "0", "--who", "ana")
    assert done.returncode == 0, done.stderr
    _, admin = await connect_as("admin")
    assert await control_subjects(admin, "c1") == ["control.c1.pause.operator"]
    await admin.jetstream().publish(subjects.dlq("journal_svc"), b"{}", headers={
        "Introspect-Subject": "train.c1.step", "Introspect-Error": "test"})
    done = await asyncio.to_thread(cli, "dlq", "replay")  # republish and delete: the admin's alone
    assert done.returncode == 0, done.stderr
    assert (await admin.jetstream().stream_info("DLQ")).state.messages == 0


async def test_the_web_journal_resumes_as_its_own_user_and_may_not_stop(connect_as):
    settings, web = await connect_as("web")
    _, admin = await connect_as("admin")
    js = web.jetstream(timeout=DENIED_WAIT_S)
    kv = await bus.control_bucket(js, settings)
    cmd = control.command("w1", events.Resume(), who="web", note="checked")
    assert (await control.send_and_wait(web, js, kv, cmd, timeout_s=0)).outcome == "sent"
    assert await control_subjects(admin, "w1") == ["control.w1.resume.web"]
    assert (await control.read_state(kv, "w1"))[0].state == "running"
    for action in ("stop", "mix", "freeze"):
        await refused(js.publish(subjects.control("w1", action, "web"), b"{}"))


def test_the_committed_compose_config_is_the_generated_one():
    assert (ROOT / "nats-server.conf").read_text() == permissions.server_config()


def test_compose_gives_each_service_its_own_user_and_the_server_every_password():
    import yaml
    from introspect.launcher import SERVICES, TRAINER
    from introspect.nats_auth import role_of
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in (*SERVICES, TRAINER):
        env = services[name]["environment"]
        role = role_of(name)
        assert env["NATS_USER"] == role
        assert env["NATS_PASSWORD"].startswith("${" + permissions.password_variable(role) + ":?")
    nats_service = services["nats"]
    assert "./nats-server.conf:/etc/nats/nats-server.conf:ro" in nats_service["volumes"]
    assert nats_service["command"][:2] == ["-c", "/etc/nats/nats-server.conf"]
    assert set(nats_service["environment"]) == {permissions.password_variable(r) for r in permissions.USERS}
    assert services["provision"]["environment"]["NATS_USER"] == "admin"


@pytest.mark.parametrize("mix, refused", [
    (events.Mix(weights={"mitigation": 0.1}, texts={"mitigation": ["a counter-example"]}), False),
    (events.Mix(weights={"main": 0.0001}), True),  # another source's weight
    (events.Mix(weights={"x": 0.5}, paths={"x": "/data/other.txt"}), True),  # a file
])
def test_selfplays_mix_may_only_add_its_own_texts(mix, refused):
    from trainer_svc.controls import texts_only_refusal
    command = control.command("s1", mix, who="selfplay_svc")
    assert bool(texts_only_refusal(command, "selfplay")) == refused
    assert texts_only_refusal(command, "operator") is None


async def test_a_command_line_refused_by_the_server_says_so_and_what_to_set(auth_nats):
    settings = load_settings({}, nats_url=auth_nats.url)
    with pytest.raises(bus.Unreachable, match="refused NATS user 'anonymous'.*NATS_USER"):
        await bus.connect(settings, "test-cli", timeout=2)
