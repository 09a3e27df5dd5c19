"""The web journal in a real browser (Debian's chromium driven by playwright), over a real trainer,
bus, journal writer and database: the run page draws the loss with points that keep coming, a
pause shows its marker and the PAUSED banner without reload, a note posted from the journal page
appears live, and the banner's resume form resumes the run and says the trainer's answer.
Screenshots go to $INTROSPECT_ARTIFACTS (default tests/artifacts/)."""
import asyncio
import os
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from journal_svc.web import make_app
from processes import ROOT
from shared import bus
from shared.bus import control
from shared.contract import events
from support import Running, trainer_on, wait_row
from trainer_svc.wiring import wire

import plotly.subplots  # noqa: F401  (loaded here, not while the trainer holds the interpreter)

playwright = pytest.importorskip("playwright.async_api", reason="the test group's playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    not CHROMIUM, reason="no chromium on PATH: `apt-get install chromium` (scripts/bootstrap.sh does it as root)")

WAIT_MS = 20_000
GRAPH = "document.querySelector('.plotly-graph-div')"
LOSS_POINTS = f"{GRAPH}.data.find(t => t.name === 'loss').x.length"


async def until(page, expression: str) -> None:
    """Wait for a JavaScript expression to hold, polling (not on animation frames, which a page
    in the background does not get)."""
    await page.wait_for_function(expression, polling=100)


def artifacts() -> Path:
    folder = Path(os.environ.get("INTROSPECT_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser():
    async with playwright.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        await chromium.close()


@pytest.fixture
async def journal_web(nc, pool, journal_running):
    """The web journal, live, on a real local port (as journal_svc serves it)."""
    server = TestServer(make_app(pool, nc.jetstream(), nc=nc), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_a_run_seen_paused_noted_and_resumed_in_a_browser(
        settings, nc, pool, trainer_args, journal_web, browser):
    run = "web1"
    args = trainer_args("--steps", "100000", "--eval-every", "40", "--activations-every", "50", run_id=run)
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    async with Running(trainer_on(wiring, args), wiring):
        await wait_row(pool, "SELECT 1 FROM steps WHERE run_id = $1 AND step >= 5", run, timeout=60)
        page = await browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        script_errors = []
        page.on("pageerror", lambda error: script_errors.append(error))
        await page.goto(str(journal_web.make_url(f"/run?run={run}")))

        # the loss is drawn with points, and new points arrive without reload
        await until(page, f"{LOSS_POINTS} >= 5")
        assert await page.locator(".plotly-graph-div .scatterlayer .trace path.js-line").first.get_attribute("d")
        drawn = await page.evaluate(LOSS_POINTS)
        await until(page, f"{LOSS_POINTS} > {drawn}")
        assert await page.locator("#paused").is_hidden()

        # a pause (as the CLI sends it): the banner and the marker appear live
        kv = await bus.control_bucket(nc.jetstream(), settings)
        pause = control.command(run, events.Pause(), reason="look at the samples", who="operator ann")
        assert (await control.send_and_wait(nc, nc.jetstream(), kv, pause)).outcome == "applied"
        banner = page.locator("#paused")
        await banner.wait_for(state="visible")
        assert "look at the samples" in await banner.inner_text() and "operator ann" in await banner.inner_text()
        await until(page, f"({GRAPH}.layout.shapes || []).some(s => s.line.color === 'red')")
        await until(page, 
            f"{GRAPH}.data.some(t => t.name === 'events' && t.hovertext.some(h => h.startsWith('pause')))")
        await wait_row(pool, "SELECT 1 FROM commands WHERE run_id = $1 AND action = 'pause'", run)
        await wait_row(pool, "SELECT 1 FROM events WHERE kind = 'status' AND payload->>'command_id' = $1",
                       pause.event_id)  # the journal has what places the pause on the step axis
        await page.reload()  # and the page rendered from the journal shows them too
        await banner.wait_for(state="visible")
        await until(page, f"(({GRAPH} || {{}}).layout || {{}}).shapes")
        assert await page.evaluate(f"{GRAPH}.layout.shapes.some(s => s.line.color === 'red')")
        await page.screenshot(path=artifacts() / "run-page-paused.png", full_page=True)  # docs/run-page.png

        # a note posted from the journal page appears there live (the page is not reloaded)
        journal = await browser.new_page()
        journal.set_default_timeout(WAIT_MS)
        journal.on("pageerror", lambda error: script_errors.append(error))
        await journal.goto(str(journal_web.make_url(f"/journal?run={run}")))
        await until(journal, "window.introspectLive && window.introspectLive.source.readyState === 1")
        await journal.evaluate("window.stayed = true")
        await journal.fill("form.entry-form textarea", "The samples look <fine> to me.")
        await journal.click("form.entry-form button")
        posted = journal.locator("[data-live-key] .body", has_text="The samples look <fine> to me.")
        await posted.wait_for()
        assert await journal.evaluate("window.stayed === true")
        await journal.screenshot(path=artifacts() / "journal-live.png")

        # resume from the banner: the note is required, the trainer's answer is shown, the banner goes
        await page.click("form.resume-form button")  # no note: the browser refuses to send it
        assert await page.locator("form.resume-form output").inner_text() == ""
        await page.fill("form.resume-form [name=note]", "samples checked, nothing biased")
        await page.click("form.resume-form button")
        answer = page.locator("form.resume-form output[data-outcome]")
        await answer.wait_for(state="attached")
        assert await answer.get_attribute("data-outcome") == "applied", await answer.inner_text()
        await banner.wait_for(state="hidden")
        resumed = await page.evaluate(LOSS_POINTS)
        await until(page, f"{LOSS_POINTS} > {resumed}")  # training goes on, drawn live
        note = await wait_row(pool, "SELECT who, body FROM journal_entries WHERE run_id = $1 "
                                    "AND entry_type = 'resume_note'", run)
        assert (note["who"], note["body"]) == ("web", "samples checked, nothing biased")
        await page.screenshot(path=artifacts() / "run-page-resumed.png")
        assert not script_errors
