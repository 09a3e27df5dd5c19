"""The web journal over a real database and bus: pages render the journal, and a note posted
from the page is published as a journal entry."""
import pytest
from aiohttp.test_utils import TestClient, TestServer

from journal_svc.web import make_app
from journal_svc.writer import JournalWriter
from shared.contract import events


@pytest.fixture
async def journaled_run(pool):
    """Run w2 in the journal, as journal_svc would have written it."""
    writer = await JournalWriter.create(pool)
    status = events.Status(event_id=events.new_event_id(), run_id="w2", step=3, state="running")
    await writer.write([(status, "train.w2.status", events.encode(status))])
    return "w2"


async def test_pages_show_the_run_and_a_posted_note_goes_to_the_bus(nc, pool, one_of_each, reader_pool):
    js = nc.jetstream()
    writer = await JournalWriter.create(pool)
    sample = one_of_each(run_id="w1", step=17800)
    sample.append(events.JournalEntry(event_id=events.new_event_id(), run_id="w1", step=17800,
                                      author="human", title="<b>bias</b>",
                                      body="Training stopped for the word 'criminal' <script>"))
    await writer.write([(e, "x", events.encode(e)) for e in sample])
    entries = await nc.subscribe("journal.w1.entry")
    async with TestClient(TestServer(make_app(reader_pool, js))) as client:
        index = await (await client.get("/")).text()
        assert "w1" in index
        journal = await (await client.get("/journal", params={"run": "w1"})).text()
        assert "<details" in journal and "17,800" in journal and "method=\"post\"" in journal
        assert "&lt;script&gt;" in journal and "<script>" not in journal.split("</style>")[-1]
        model = await (await client.get("/model", params={"run": "w1"})).text()
        assert "I am learning" in model and "v1.3" in model
        posted = await client.post("/journal", params={"run": "w1"}, allow_redirects=False,
                                   data={"body": "Context matters here.", "entry_type": "explanation"})
        assert posted.status == 303
        entry = events.decode((await entries.next_msg(timeout=5)).data)
        assert (entry.author, entry.entry_type, entry.body) == ("human", "explanation",
                                                                "Context matters here.")
        assert entry.step == 17800  # stamped with the run's last journaled step
        refused = await client.post("/journal", params={"run": "w1"}, data={"entry_type": "protocol"})
        assert refused.status == 400


async def test_a_cross_origin_post_is_refused_and_a_same_origin_one_accepted(nc, reader_pool, journaled_run):
    async with TestClient(TestServer(make_app(reader_pool, nc.jetstream()))) as client:
        forged = await client.post("/journal", params={"run": "w2"}, data={"body": "hi"},
                                   headers={"Origin": "http://evil.example"}, allow_redirects=False)
        assert forged.status == 403 and "cross-origin" in await forged.text()
        own = f"http://{client.host}:{client.port}"
        accepted = await client.post("/journal", params={"run": "w2"}, data={"body": "hi"},
                                     headers={"Origin": own}, allow_redirects=False)
        assert accepted.status == 303


async def test_beyond_localhost_writing_needs_the_operator_token(nc, reader_pool, journaled_run):
    entries = await nc.subscribe("journal.w2.entry")
    app = make_app(reader_pool, nc.jetstream(), token="s3cret", token_required=True)
    async with TestClient(TestServer(app)) as client:
        page = await (await client.get("/journal", params={"run": "w2"})).text()
        assert 'name="token"' in page
        refused = await client.post("/journal", params={"run": "w2"}, data={"body": "hi", "token": "guess"})
        assert refused.status == 403
        ok = await client.post("/journal", params={"run": "w2"}, allow_redirects=False,
                               data={"body": "with the token", "token": "s3cret"})
        assert ok.status == 303
        assert events.decode((await entries.next_msg(timeout=5)).data).body == "with the token"
    unset = make_app(reader_pool, nc.jetstream(), token="", token_required=True)
    async with TestClient(TestServer(unset)) as client:
        off = await client.post("/journal", params={"run": "w2"}, data={"body": "x", "token": ""})
        assert off.status == 403 and "INTROSPECT_WEB_TOKEN" in await off.text()


async def test_bad_input_is_a_400_and_an_unknown_run_a_404(nc, reader_pool, journaled_run):
    async with TestClient(TestServer(make_app(reader_pool, nc.jetstream()))) as client:
        assert (await client.get("/journal", params={"run": "nobody"})).status == 404
        assert (await client.get("/model", params={"run": "a.b"})).status == 400
        bad_run = await client.post("/journal", params={"run": "../x"}, data={"body": "hi"})
        assert bad_run.status == 400 and "run_id" in await bad_run.text()
        nul = await client.post("/journal", params={"run": "w2"}, data={"body": "a\x00b"})
        assert nul.status == 400 and "NUL" in await nul.text()


def test_the_web_journal_listens_on_localhost_by_default():
    from shared.contract.settings import load_settings
    from journal_svc.web_guard import beyond_localhost
    assert not beyond_localhost(load_settings({}).web_host)
    assert beyond_localhost(load_settings({"INTROSPECT_WEB_HOST": "0.0.0.0"}).web_host)


async def test_the_run_page_plots_the_run_with_plotly_served_locally(nc, pool, one_of_each, reader_pool):
    writer = await JournalWriter.create(pool)
    run = [e for e in one_of_each(run_id="w3", step=5)]
    paused = events.Status(event_id=events.new_event_id(), run_id="w3", step=6, state="paused",
                           reason="bias high: a stereotype", detail={"who": "understanding_svc"})
    await writer.write([(e, "x", events.encode(e)) for e in [*run, paused]])
    async with TestClient(TestServer(make_app(reader_pool, nc.jetstream()))) as client:
        page = await (await client.get("/run", params={"run": "w3"})).text()
        assert 'src="/static/plotly.min.js"' in page and "cdn" not in page.lower()
        assert '"name":"loss"' in page.replace(" ", "")  # a trace with the run's loss
        assert "PAUSED" in page and "bias high: a stereotype" in page and "understanding_svc" in page
        js = await client.get("/static/plotly.min.js")
        assert js.status == 200 and "plotly" in (await js.text())[:2000].lower()
