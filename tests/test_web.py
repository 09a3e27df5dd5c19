"""The web journal over a real database and bus: pages render the journal, and a note posted
from the page is published as a journal entry."""
from aiohttp.test_utils import TestClient, TestServer

from journal_svc.web import make_app
from journal_svc.writer import JournalWriter
from shared.contract import events


async def test_pages_show_the_run_and_a_posted_note_goes_to_the_bus(nc, pool, one_of_each):
    js = nc.jetstream()
    writer = await JournalWriter.create(pool)
    sample = one_of_each(run_id="w1", step=17800)
    sample.append(events.JournalEntry(event_id=events.new_event_id(), run_id="w1", step=17800,
                                      author="human", title="<b>bias</b>",
                                      body="Training stopped for the word 'criminal' <script>"))
    await writer.write([(e, "x", events.encode(e)) for e in sample])
    entries = await nc.subscribe("journal.w1.entry")
    async with TestClient(TestServer(make_app(pool, js))) as client:
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
