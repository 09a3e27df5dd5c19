"""understanding_svc on real NATS: a stereotype in a sample pauses the run once; instances share
the work; activations give health, shimmer and concepts."""
import asyncio

import msgspec
import nats.errors

from shared import bus
from shared.bus import control
from shared.contract import events, subjects
from shared.bus.consumer import Consumer
from shared.bus import kv_state as state
from understanding_svc.analysis import Finding
from understanding_svc.grouping import EXCERPT_CHARS, add_sample, grouped_detection
from understanding_svc.handlers import activations_binding, text_binding
from understanding_svc.policy import parse_policy

STEREOTYPE = "The model wrote this. Immigrants are criminals and they are lazy."


def sample(text: str, run: str = "u1", step: int = 100) -> events.Sample:
    return events.Sample(event_id=events.new_event_id(), run_id=run, step=step, prompt="p",
                         text=text, mode="sampled")


def test_a_detection_carries_the_text_around_its_span():
    span = "Immigrants are criminals"
    text = "x" * 500 + f" {span}. " + "y" * 500
    start = text.index(span)
    found = Finding("bias", "high", start, start + len(span), "high nationality generalisation")
    source = sample(text)
    state, keys = add_sample(source.event_id, "train.u1.sample", [found], text)(None)
    d = grouped_detection(state, keys[0], "u1", "samples", 100)
    assert d.excerpt_start == start - EXCERPT_CHARS and len(d.excerpt) == len(span) + 2 * EXCERPT_CHARS
    assert d.excerpt[d.span_start - d.excerpt_start:d.span_end - d.excerpt_start] == span
    assert events.decode(events.encode(d)) == d  # fits the contract


async def start(nc, settings, instances=1):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    state_kv = await state.state_bucket(js, subjects.UNDERSTANDING_STATE_BUCKET)
    consumers = []
    for _ in range(instances):
        bindings = text_binding(js, kv, state_kv, parse_policy("bias:high"), "understanding")
        bindings.append(activations_binding(js, state_kv))
        consumers += [Consumer(js, b, "understanding_svc", settings) for b in bindings]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    return js, kv, consumers, tasks


async def stop(consumers, tasks):
    for c in consumers:
        c.stop()
    await asyncio.gather(*tasks)


async def collect(js, subject, stream, n, timeout=5):
    sub = await js.pull_subscribe(subject, stream=stream)
    got = []
    try:
        while len(got) < n:
            got += await sub.fetch(n - len(got), timeout=timeout)
    except (nats.errors.TimeoutError, asyncio.TimeoutError):  # fewer than n arrived
        pass
    return got


async def test_stereotype_pauses_the_run_once_and_neutral_text_does_not(nc, settings):
    js, kv, consumers, tasks = await start(nc, settings)
    neutral = sample("The criminal defense attorney met the court. The sky was grey.", run="u1", step=90)
    await bus.publish(js, neutral)
    biased = sample(STEREOTYPE)
    await bus.publish(js, biased)
    # the same source seen again (re-published under another msg id) must not pause twice
    subject, data, _ = bus.publish_args(biased)
    await js.publish(subject, data, headers={"Nats-Msg-Id": "again"})
    for _ in range(100):
        desired, _ = await control.read_state(kv, "u1")
        if desired:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    await stop(consumers, tasks)
    assert desired.state == "paused" and desired.who == "understanding_svc"
    pauses = await collect(js, "control.u1.pause.understanding", "CONTROL", 2, timeout=1)
    assert len(pauses) == 1
    command = events.decode(pauses[0].data)
    assert command.detection_id == desired.detection_id and "bias high" in command.reason
    found = [events.decode(m.data) for m in await collect(js, "understanding.u1.detection",
                                                          "UNDERSTANDING", 10, timeout=1)]
    bias = [d for d in found if d.detector == "bias"]
    assert bias and all(d.source_event_id == biased.event_id for d in bias)
    assert any(d.event_id == command.detection_id for d in bias)
    span = STEREOTYPE[bias[0].span_start:bias[0].span_end]
    assert "Immigrants" in span


async def test_three_instances_share_the_samples_each_handled_once(nc, settings):
    settings = msgspec.structs.replace(settings, batch_size=2)  # small fetches, so all three get some
    js, kv, consumers, tasks = await start(nc, settings, instances=3)
    loops = [sample("observe it, or " * 30, run="u2", step=i) for i in range(30)]
    for s in loops:
        await bus.publish(js, s)
    text_consumers = [c for c in consumers if c.binding.durable == "understanding_samples"]
    for _ in range(200):
        if sum(c.handled for c in text_consumers) >= 30:
            break
        await asyncio.sleep(0.05)
    await stop(consumers, tasks)
    assert sum(c.handled for c in text_consumers) == 30
    assert sum(1 for c in text_consumers if c.handled) >= 2  # the work really was shared
    found = await collect(js, "understanding.u2.detection", "UNDERSTANDING", 200, timeout=1)
    loop_sources = {events.decode(m.data).source_event_id for m in found
                    if events.decode(m.data).detector == "loop"}
    assert loop_sources == {s.event_id for s in loops}


async def test_activations_give_health_shimmer_and_concepts(nc, settings):
    js, kv, consumers, tasks = await start(nc, settings)
    for i, step in enumerate(range(10, 130, 10)):
        layers = [events.LayerStats(layer=l, name=f"block.{l}.resid", rms=(1.0 + l ** 3) * (1 + 0.01 * i),
                                    mean=0.0, std=1.0, max_abs=5.0 * (1 + l ** 3), max_channel=7)
                  for l in range(4)]
        await bus.publish(js, events.ActivationStats(event_id=events.new_event_id(), run_id="u3",
                                                     step=step, layers=layers))
    got = await collect(js, "understanding.u3.>", "UNDERSTANDING", 200, timeout=3)
    await stop(consumers, tasks)
    kinds = [events.decode(m.data) for m in got]
    health = [e for e in kinds if isinstance(e, events.Health)]
    shimmer = [e for e in kinds if isinstance(e, events.Shimmer)]
    concepts = [e for e in kinds if isinstance(e, events.Concept)]
    assert len(health) == 12 and len(shimmer) == 11
    assert [h.step for h in health] == sorted(h.step for h in health)  # in order
    assert {c.tier for c in concepts} >= {"forming", "maturing"}
    assert health[-1].focus == "late"


async def test_one_loop_in_a_round_is_one_grouped_finding_across_instances(nc, settings):
    settings = msgspec.structs.replace(settings, batch_size=1)
    js, kv, consumers, tasks = await start(nc, settings, instances=2)
    texts = ["observe it, or " * 30, "\n".join(["observe it, or observe it, or"] * 8)]
    round_ = [sample(texts[i % 2], run="u4", step=500) for i in range(8)]
    for s in round_:
        await bus.publish(js, s)
    found = [events.decode(m.data) for m in await collect(js, "understanding.u4.detection",
                                                          "UNDERSTANDING", 200, timeout=2)]
    await stop(consumers, tasks)
    loops = [d for d in found if d.detector == "loop"]
    assert len({d.group_id for d in loops}) == 1
    latest = max(loops, key=lambda d: d.revision)
    assert latest.samples == 8 and {o.source_event_id for o in latest.occurrences} == {s.event_id for s in round_}
    assert len({d.event_id for d in loops}) == len(loops)  # every revision is its own event


async def test_norms_that_rise_with_loops_are_reported_as_a_coupling(nc, settings):
    js, kv, consumers, tasks = await start(nc, settings)
    steps = list(range(100, 1300, 100))
    for i, step in enumerate(steps):  # loops grow with the step: i+3 repeats
        await bus.publish(js, sample("observe it, or " * (i + 3) + "end.", run="u5", step=step))
    await collect(js, "understanding.u5.detection", "UNDERSTANDING", len(steps), timeout=3)
    for i, step in enumerate(steps):
        layers = [events.LayerStats(layer=0, name="block.0.resid", rms=1.0 + i * (1 + (i % 3) * 0.1),
                                    mean=0.0, std=1.0, max_abs=5.0, max_channel=1)]
        await bus.publish(js, events.ActivationStats(event_id=events.new_event_id(), run_id="u5",
                                                     step=step, layers=layers))
    got = await collect(js, "understanding.u5.coupling", "UNDERSTANDING", 1, timeout=5)
    await stop(consumers, tasks)
    c = events.decode(got[0].data)
    assert isinstance(c, events.Coupling) and "norm.0" in (c.leader, c.follower)
    assert {c.leader, c.follower} - {"norm.0"} <= {"loop.count", "loop.severity"}
    assert c.strength > 0.9 and c.lag == 0 and set(c.steps) <= set(steps)
