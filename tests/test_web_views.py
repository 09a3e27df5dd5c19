"""The web journal's compare and samples pages, grouped finding cards and pauses, over a real
database: every row is written by journal_svc's writer from real events, and the detections are
what understanding_svc's analysis and grouping make of the samples (each revision published, as
the service does)."""
import re
from html.parser import HTMLParser

import uuid

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from journal_svc.web import make_app
from journal_svc.web_render import render_journal
from journal_svc.writer import JournalWriter, create_staging_tables
from selfplay_svc import prompt_store
from shared import bus, db, schema
from shared.contract import events
from understanding_svc.analysis import analyse_text
from understanding_svc.grouping import add_sample, grouped_detection

LOOP = "The model said: " + "quality, " * 30 + "and then stopped."
LINES = "\n".join(["quality, quality, quality, quality"] * 6)
BIAS = "Immigrants are criminals, it wrote."
MILD = "Women are emotional."  # a medium-severity stereotype
HOSTILE = "<script>alert('x')</script> " + "again, " * 25


def step(run: str, at: int, loss: float, loss_smooth: float) -> events.StepMetrics:
    return events.StepMetrics(event_id=events.new_event_id(), run_id=run, step=at, loss=loss, loss_smooth=loss_smooth,
                              lr=1e-3, grad_norm=1.0, tokens_per_s=1e3, step_time_s=0.1, mfu=None, tokens_seen=0)


async def journal(pool, *evs: events.Event) -> None:
    writer = await JournalWriter.create(pool)
    await writer.write([(e, "test", events.encode(e)) for e in evs])


def samples_round(run: str, step: int, texts: list[str]) -> list[events.Event]:
    """The samples of one step and every detection revision understanding_svc would publish."""
    out, state = [], None
    for i, text in enumerate(texts):
        sample = events.Sample(event_id=events.new_event_id(), run_id=run, step=step, prompt=f"p{i}",
                               text=text, mode="greedy")
        state, keys = add_sample(sample.event_id, f"train.{run}.sample", analyse_text(text), text)(state)
        out += [sample, *(grouped_detection(state, key, run, "samples", step) for key in keys)]
    return out


@pytest.fixture
async def client(pool):
    async with TestClient(TestServer(make_app(pool, js=None))) as c:
        yield c


async def page(client, path: str, **params) -> str:
    response = await client.get(path, params=params)
    assert response.status == 200, await response.text()
    return await response.text()


class Marks(HTMLParser):
    """Each <pre class="text"> as plain text, and its <mark>s as (start, text, title)."""
    def __init__(self):
        super().__init__()
        self.texts, self.marks, self.in_text, self.mark = [], [], False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "pre" and attrs.get("class") == "text":
            self.in_text = True
            self.texts.append("")
            self.marks.append([])
        elif tag == "mark" and self.in_text:
            self.mark = [int(attrs["data-start"]), "", attrs["title"]]

    def handle_endtag(self, tag):
        if tag == "pre":
            self.in_text = False
        elif tag == "mark" and self.mark:
            self.marks[-1].append(tuple(self.mark))
            self.mark = None

    def handle_data(self, data):
        if self.in_text:
            self.texts[-1] += data
            if self.mark:
                self.mark[1] += data


def parse_marks(page_html: str) -> Marks:
    parser = Marks()
    parser.feed(page_html)
    return parser


async def test_compare_overlays_the_chosen_runs_loss_and_val_bpb(pool, client):
    for run, loss in (("ca", 3.25), ("cb", 4.75), ("cc", 5.5)):
        await journal(pool, *[step(run, s, loss + s / 1000, loss) for s in range(0, 40, 10)],
                      events.EvalResult(event_id=events.new_event_id(), run_id=run, step=30, name="val_bpb",
                                        value=loss / 3))
    body = await page(client, "/compare", run=["ca", "cb"])
    flat = body.replace(" ", "")
    for run, loss in (("ca", 3.25), ("cb", 4.75)):
        for trace in (f"{run} loss", f"{run} loss (smoothed)", f"{run} val bpb"):
            assert f'"name":"{trace}"'.replace(" ", "") in flat
        assert f"{loss + 0.03}" in body and f"{loss / 3}" in body
    assert "cc loss" not in body and 'src="/static/plotly.min.js"' in body
    assert 'value="ca" checked' in body and 'value="cc">' in body  # the picker, ca ticked, cc not
    assert 'href="/compare"' in await page(client, "/")


async def test_compare_refuses_a_bad_run_id_and_names_an_unknown_run(pool, client):
    await journal(pool, events.Status(event_id=events.new_event_id(), run_id="ca", step=1, state="running"))
    assert (await client.get("/compare", params={"run": "a.b"})).status == 400
    missing = await client.get("/compare", params=[("run", "ca"), ("run", "ghost")])
    assert missing.status == 404 and "ghost" in await missing.text()
    too_many = await client.get("/compare", params=[("run", f"r{i}") for i in range(9)])
    assert too_many.status == 400 and "at most" in await too_many.text()
    assert "Tick two or more runs" in await page(client, "/compare")


async def test_samples_page_marks_each_flagged_span_at_its_offsets(pool, client):
    evs = samples_round("sp", 50, [LOOP, BIAS, "A calm sentence."])
    await journal(pool, *evs)
    parsed = parse_marks(await page(client, "/samples", run="sp"))
    assert sorted(parsed.texts) == sorted([LOOP, BIAS, "A calm sentence."])
    finals = {}  # the latest revision of each group, as the detection_groups view keeps it
    for d in (e for e in evs if isinstance(e, events.Detection)):
        if d.revision >= finals.get(d.group_id, d).revision:
            finals[d.group_id] = d
    text_of = {e.event_id: e.text for e in evs if isinstance(e, events.Sample)}
    flagged = {}  # text -> every offset a finding covers
    for o in (o for d in finals.values() for o in d.occurrences):
        flagged.setdefault(text_of[o.source_event_id], set()).update(range(o.span_start, o.span_end))
    assert set(flagged) == {LOOP, BIAS}  # the loop and the stereotype were found
    for text, marks in zip(parsed.texts, parsed.marks):
        assert {i for start, seg, _ in marks for i in range(start, start + len(seg))} == flagged.get(text, set())
        for start, seg, title in marks:
            assert text[start:start + len(seg)] == seg and re.search(r"(loop|bias) · (low|medium|high)", title)


async def test_samples_filter_by_detector_and_severity_and_refuse_a_bad_filter(pool, client):
    await journal(pool, *samples_round("sf", 10, [LOOP, MILD]))  # a high loop, a medium stereotype

    async def shown(**filters) -> list[tuple[str, set[str]]]:
        parsed = parse_marks(await page(client, "/samples", run="sf", **filters))
        return [(text, {title.split(" ·")[0] for _, _, title in marks})
                for text, marks in zip(parsed.texts, parsed.marks)]
    assert await shown(detector="bias") == [(MILD, {"bias"})]
    assert await shown(detector="loop") == [(LOOP, {"loop"})]
    assert await shown(severity="high") == [(LOOP, {"loop"})]
    assert sorted(await shown(severity="medium")) == sorted([(LOOP, {"loop"}), (MILD, {"bias"})])
    assert await shown(detector="bias", severity="high") == []
    for bad in ({"detector": "<b>x"}, {"severity": "huge"}, {"before": "-1"}):
        refused = await client.get("/samples", params={"run": "sf", **bad})
        assert refused.status == 400 and refused.content_type == "text/plain"  # never read as markup
    refused = await client.get("/samples", params={"run": "sf", "detector": "nope"})
    assert "detector 'nope' is not one of: loop, formatting, motif, bias" in await refused.text()


async def test_one_loop_at_two_levels_in_three_samples_is_one_card(pool, client):
    evs = samples_round("g1", 50, [LOOP, LINES, LOOP])
    loops = [e for e in evs if isinstance(e, events.Detection) and e.detector == "loop"]
    assert len(loops) == 3 and loops[-1].revision == 3 and loops[-1].levels == ["line", "word"]  # revisions
    await journal(pool, *evs)
    journal_page = await page(client, "/journal", run="g1")
    assert journal_page.count("detection: loop") == 1
    assert "3 samples" in journal_page and "levels line+word" in journal_page
    assert (await page(client, "/samples", run="g1")).count("detection: loop") == 1


async def test_a_sample_that_holds_markup_is_shown_as_text(pool, client):
    await journal(pool, *samples_round("x1", 5, [HOSTILE]))
    for path in ("/samples", "/journal"):
        body = (await page(client, path, run="x1")).split("</style>")[-1]
        assert "<script>" not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in await page(client, "/samples", run="x1")


def test_short_entries_are_open_and_long_ones_collapsed():
    entries = [{"step": 1, "ts": 1.0, "author": "human", "body": "short note"},
               {"step": 2, "ts": 2.0, "author": "model", "body": "long " * 100}]
    cards = re.findall(r"<details[^>]*>", render_journal("r", entries, []))
    assert [" open" in c for c in cards] == [False, True]  # newest first: the long one, then the short


async def test_a_persons_pause_reason_is_in_the_pauses_view_and_on_the_page(pool, client):
    pause = events.ControlCommand(event_id=events.new_event_id(), run_id="hp", step=-1, args=events.Pause(),
                                  reason="checking the <loop> by hand", who="ana", note="back soon")
    applied = events.Status(event_id=events.new_event_id(), run_id="hp", step=42, state="paused",
                            reason=pause.reason, command_id=pause.event_id, outcome="applied")
    resume = events.ControlCommand(event_id=events.new_event_id(), run_id="hp", step=-1, args=events.Resume(),
                                   who="ana", note="it was fine", ts=pause.ts + 60)
    await journal(pool, pause, applied, resume)
    row = await pool.fetchrow("SELECT * FROM pauses WHERE run_id = 'hp'")
    assert (row["step"], row["sent_at_step"], row["why"], row["note"], row["who"], row["outcome"]) == (
        42, -1, "checking the <loop> by hand", "back soon", "ana", "applied")
    assert (row["resumed_by"], row["resume_note"]) == ("ana", "it was fine")
    body = await page(client, "/journal", run="hp")
    card = body[body.index("checking the &lt;loop&gt; by hand") - 600:]
    assert "step 42" in card and "author-human" in card and "back soon" in card and "it was fine" in card


async def test_a_prompt_change_carries_the_runs_step(nc, pool, settings):
    await journal(pool, step("pc", 1234, 1.0, 1.0))
    kv = await bus.control_bucket(nc.jetstream(), settings)
    entries = await nc.subscribe("journal.pc.entry")
    await prompt_store.use_prompt(pool, nc.jetstream(), "pc", "v1.4", who="ana")
    await prompt_store.set_reflect_every(pool, nc.jetstream(), kv, "pc", 25, who="ana")
    changes = [events.decode((await entries.next_msg(timeout=5)).data) for _ in range(2)]
    assert [(c.entry_type, c.step) for c in changes] == [("prompt_change", 1234)] * 2
    unseen = await nc.subscribe("journal.unseen.entry")
    await prompt_store.use_prompt(pool, nc.jetstream(), "unseen", "v1.3", who="ana")
    assert events.decode((await unseen.next_msg(timeout=5)).data).step == -1  # no step known yet


async def test_migrating_fills_the_step_of_earlier_pauses_and_prompt_changes(pg_server):
    """Rows journaled before 0011_pause_reasons: the pause takes the step from the trainer's answer
    (kept whole in `events`), the prompt change the run's last step at its time."""
    url = db.with_database(pg_server, f"introspect_mig_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    try:
        await schema.migrate_async(url, "0010_bias_probes")  # the revision before 0011
        pool = await db.create_pool(url, init=create_staging_tables)
        pause = events.ControlCommand(event_id=events.new_event_id(), run_id="old", step=-1, args=events.Pause(),
                                      reason="a look by hand", who="ana")
        change = events.JournalEntry(event_id=events.new_event_id(), run_id="old", step=-1, author="system",
                                     entry_type="prompt_change", body="prompt v1.4", ts=pause.ts + 10)
        answer = events.Status(event_id=events.new_event_id(), run_id="old", step=71, state="paused",
                               command_id=pause.event_id, outcome="applied", ts=pause.ts + 1)
        before, after = (msgspec.structs.replace(step("old", at, 2.0, 2.0), ts=pause.ts + dt)
                         for at, dt in ((70, -5), (90, 60)))
        await journal(pool, before, pause, answer, change, after)
        assert "command_id" not in (await pool.fetchrow("SELECT * FROM statuses")).keys()  # 0011 adds it
        await schema.migrate_async(url)
        assert await pool.fetchval("SELECT step FROM pauses") == 71
        assert await pool.fetchval("SELECT step FROM journal_entries WHERE entry_type = 'prompt_change'") == 70
        await pool.close()
    finally:
        await db.drop_database(url)
