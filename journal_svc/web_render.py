"""The web journal as pure functions from database rows (plain dicts) to HTML pages.

The seed log asked for collapsible entries, step badges and a model journal view. Each entry is a
`<details>` element, so collapsing needs no JavaScript; every value that came from a person or a
model is escaped with `html.escape` before it reaches the page. Routes are the web handler's
concern; the pages link to JOURNAL_PATH and MODEL_PATH with `?run=<id>`.
"""
from __future__ import annotations

import html
import time
from typing import Iterable
from urllib.parse import quote

JOURNAL_PATH = "/journal"
MODEL_PATH = "/model"
RUN_PATH = "/run"  # the run at a glance: plots on one step axis
SAMPLES_PATH = "/samples"  # what the model wrote, flagged spans highlighted (samples_view)
COMPARE_PATH = "/compare"  # several runs' loss and val bpb overlaid (compare_view)
SHORT_ENTRY_CHARS = 280  # an entry shorter than this is shown open; a longer one starts collapsed
PLOTLY_PATH = "/static/plotly.min.js"  # served from the plotly wheel: no CDN, works offline
LIVE_JS_PATH = "/static/live.js"  # journal_svc/static/live.js: points, entries, banner, live
EVENTS_PATH = "/events"  # server-sent events of one run (journal_svc/live.py)
RESUME_PATH = "/resume"
SCORE_KEYS = ("distinct_2", "seq_rep_4", "compression_ratio", "uncertainty_share", "structure_ratio")

CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
header{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;border-bottom:1px solid #ddd}
h1{font-size:1.3rem;margin:.5rem 0} a{color:#2456a6}
details{border:1px solid #ddd;border-left:4px solid #999;border-radius:4px;margin:.6rem 0;padding:.3rem .7rem}
summary{cursor:pointer;display:flex;gap:.5rem;align-items:baseline;flex-wrap:wrap}
.author-human{border-left-color:#2a7ab8}.author-model{border-left-color:#8a4fbf;background:#faf7fd}
.author-system{border-left-color:#c98a12;background:#fffaf0}
.badge{font-size:.8rem;background:#eee;border-radius:3px;padding:0 .4rem;white-space:nowrap}
.who{font-weight:600}.author-model .who{color:#6b3a99}.author-system .who{color:#8a5d00}
.type,.time,.meta{color:#666;font-size:.85rem}.title{font-weight:500}
.supportive{background:#e3f4e1;color:#25632a}.sev-high{background:#f8d7d3}.sev-medium{background:#fbe9c6}
.body{white-space:pre-wrap;margin:.5rem 0}
.sev-low{background:#fff3a8}mark.sev-medium{background:#fbd38d}mark.sev-high{background:#f6a89e}
pre.text{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:.4rem .6rem;margin:.2rem 0 .8rem}
ul.occurrences{padding-left:1.2rem;margin:.3rem 0}ul.occurrences q{color:#444;white-space:pre-wrap}
label.pick{margin-right:.6rem}
.paused{background:#fde8e6;border:2px solid #c0392b;border-radius:4px;padding:.6rem .9rem;margin:.8rem 0}
.paused[hidden]{display:none}.resume-form{margin:.4rem 0}output{margin-left:.5rem;font-weight:600}
main.wide{margin:0 -8rem}
.turn{margin:.4rem 0;padding:.3rem .6rem;border-radius:4px;white-space:pre-wrap}
.turn.q{background:#eef4fb}.turn.a{background:#f4eefb}
table.scores{border-collapse:collapse;font-size:.85rem}table.scores td{padding:0 .6rem 0 0}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else ""


def step_badge(step: int | None) -> str:
    # a negative step means "not tied to a step" (written before the run reported one)
    return f'<span class="badge">step {int(step):,}</span>' if step is not None and step >= 0 else ""


def run_link(path: str, run_id: str) -> str:
    return f"{path}?run={quote(str(run_id), safe='')}"


def page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def run_selector(runs: Iterable[dict], current: str, path: str) -> str:
    """A plain GET form (no JS): pick a run, press Show."""
    ids = [r["run_id"] for r in runs]
    ids += [] if current in ids else [current]
    options = "".join(
        f'<option value="{esc(i)}"{" selected" if i == current else ""}>{esc(i)}</option>' for i in ids)
    return (f'<form method="get" action="{path}"><label>Run <select name="run">{options}</select>'
            f"</label> <button>Show</button></form>")


def header(title: str, run_id: str, runs: Iterable[dict], path: str) -> str:
    return (f'<header><h1>{esc(title)}</h1><a href="/">runs</a>'
            f'<a href="{esc(run_link(RUN_PATH, run_id))}">plots</a>'
            f'<a href="{esc(run_link(JOURNAL_PATH, run_id))}">journal</a>'
            f'<a href="{esc(run_link(MODEL_PATH, run_id))}">model journal</a>'
            f'<a href="{esc(run_link(SAMPLES_PATH, run_id))}">samples</a>'
            f"{run_selector(runs, run_id, path)}</header>")


def details(author: str, summary_parts: list[str], inner: str, open_: bool = False) -> str:
    return (f'<details class="entry author-{esc(author)}"{" open" if open_ else ""}>'
            f'<summary>{" ".join(p for p in summary_parts if p)}</summary>{inner}</details>')


def conversation_turns(conv: dict) -> str:
    return (f'<div class="turn q"><span class="who">human</span>\n{esc(conv.get("question"))}</div>'
            f'<div class="turn a"><span class="who">model</span>\n{esc(conv.get("answer"))}</div>'
            + (f'<div class="meta">checkpoint {esc(conv["checkpoint"])}</div>' if conv.get("checkpoint") else ""))


def render_entry(entry: dict, conversations: dict[str, dict]) -> str:
    author = entry.get("author") or "system"
    who = entry.get("who") or author
    conv = conversations.get(entry.get("conversation_id") or "")
    inner = f'<div class="body">{esc(entry.get("body"))}</div>' if entry.get("body") else ""
    if conv:
        inner += conversation_turns(conv)
    length = len(entry.get("body") or "") + (len(f"{conv.get('question')}{conv.get('answer')}") if conv else 0)
    return details(author, [
        step_badge(entry.get("step")),
        f'<span class="who">{esc(who)}</span>',
        f'<span class="type">{esc(entry.get("entry_type") or "note")}</span>',
        f'<span class="title">{esc(entry.get("title"))}</span>',
        f'<span class="time">{esc(fmt_time(entry.get("ts")))}</span>',
    ], inner, open_=length < SHORT_ENTRY_CHARS)


def render_conversation(conv: dict) -> str:
    """A conversation that no journal entry points to, shown on its own."""
    question = str(conv.get("question") or "")
    return details("human", [
        step_badge(conv.get("step")), '<span class="who">conversation</span>',
        f'<span class="title">{esc(question[:80] + ("…" if len(question) > 80 else ""))}</span>',
        f'<span class="time">{esc(fmt_time(conv.get("ts")))}</span>',
    ], conversation_turns(conv))


def render_detection(det: dict) -> str:
    """One card per finding (a row of `detection_groups`), with its levels, samples and counts."""
    from journal_svc.detection_cards import render_group  # it builds on this module's helpers
    return render_group(det)


def render_pause(pause: dict) -> str:
    from journal_svc.pause_cards import render_pause as card  # it builds on this module's helpers
    return card(pause)


def newest_first(items: list[tuple[dict, str]]) -> list[str]:
    items.sort(key=lambda it: (it[0].get("step") or 0, it[0].get("ts") or 0.0), reverse=True)
    return [html_ for _, html_ in items]


def render_journal(run_id: str, entries: Iterable[dict], runs: Iterable[dict],
                   conversations: Iterable[dict] = (), detections: Iterable[dict] = (),
                   ask_token: bool = False, pauses: Iterable[dict] = ()) -> str:
    """The journal of one run: human, model and system entries, newest first, each collapsible."""
    runs = list(runs)
    convs = {c["conversation_id"]: c for c in conversations if c.get("conversation_id")}
    entries = list(entries)
    linked = {e.get("conversation_id") for e in entries}
    items = [(e, render_entry(e, convs)) for e in entries]
    items += [(c, render_conversation(c)) for cid, c in convs.items() if cid not in linked]
    items += [(d, render_detection(d)) for d in detections]
    items += [(p, render_pause(p)) for p in pauses]
    body = "\n".join(newest_first(items)) or '<p class="meta">No journal entries yet.</p>'
    return page(f"Journal · {run_id}", header(f"Journal · {run_id}", run_id, runs, JOURNAL_PATH)
                + f"\n<main>\n{entry_form(run_id, ask_token)}\n{body}\n</main>\n{live_script(run_id)}")


ENTRY_TYPES = {"note": "note", "counter_example": "counter-example", "explanation": "explanation",
               "question": "question for the model"}


def entry_form(run_id: str, ask_token: bool = False) -> str:
    """Write to the journal: a note, a counter-example or explanation (bias protocol), a question.
    With `ask_token` (the journal listens beyond localhost) the form asks for the operator token."""
    options = "".join(f'<option value="{k}">{esc(v)}</option>' for k, v in ENTRY_TYPES.items())
    token = token_field(ask_token)
    return (f'<form method="post" action="{run_link(JOURNAL_PATH, run_id)}" class="entry-form">'
            f'<textarea name="body" rows="3" cols="80" required placeholder="Write to the journal"></textarea>'
            f'<br><select name="entry_type">{options}</select>{token} <button type="submit">Add</button></form>')


def scores_table(scores: dict) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.3f}</td></tr>" if isinstance(v, (int, float))
                   else f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in sorted(scores.items()))
    return f'<table class="scores">{rows}</table>' if rows else ""


def render_reflection(ref: dict) -> str:
    scores = ref.get("scores") or {}
    brief = " ".join(f"{k} {scores[k]:.2f}" for k in SCORE_KEYS if isinstance(scores.get(k), (int, float)))
    inner = (f'<div class="body">{esc(ref.get("text"))}</div>{scores_table(scores)}'
             + (f'<div class="meta">checkpoint {esc(ref["checkpoint"])}</div>' if ref.get("checkpoint") else ""))
    return details("model", [
        step_badge(ref.get("step")), '<span class="who">model</span>',
        f'<span class="badge">prompt {esc(ref.get("prompt_version"))}</span>',
        '<span class="badge supportive">supportive framing</span>' if ref.get("supportive") else "",
        f'<span class="meta">{esc(brief)}</span>',
        f'<span class="time">{esc(fmt_time(ref.get("ts")))}</span>',
    ], inner)


def render_model_journal(run_id: str, reflections: Iterable[dict], runs: Iterable[dict] = ()) -> str:
    """What the model wrote: its self-play reflections, newest first, with prompt version and scores."""
    body = "\n".join(newest_first([(r, render_reflection(r)) for r in reflections]))
    body = body or '<p class="meta">No reflections yet.</p>'
    return page(f"Model journal · {run_id}",
                header(f"Model journal · {run_id}", run_id, runs, MODEL_PATH) + f"\n<main>\n{body}\n</main>")


def index_item(run: dict) -> str:
    run_id = run["run_id"]
    state = f'<span class="badge">{esc(run["state"])}</span>' if run.get("state") else ""
    return (f'<li><a href="{esc(run_link(JOURNAL_PATH, run_id))}">{esc(run_id)}</a> {state} '
            f'{step_badge(run.get("last_step", run.get("step")))} '
            f'<a href="{esc(run_link(MODEL_PATH, run_id))}">model journal</a></li>')


def token_field(ask_token: bool) -> str:
    return ' <input type="password" name="token" required placeholder="operator token">' if ask_token else ""


def live_script(run_id: str) -> str:
    """The script that keeps a page live (journal_svc/static/live.js, served by the journal)."""
    return f'<script src="{LIVE_JS_PATH}" data-run="{esc(run_id)}" defer></script>'


def paused_banner(run_id: str, pause: dict | None, ask_token: bool = False) -> str:
    """A clear PAUSED banner with why, who, at which step, and a resume form whose note is
    required; hidden (for the live script to show) when the run is not paused."""
    pause = pause or {}
    step = f'{int(pause["step"]):,}' if pause.get("step") is not None else ""
    return (f'<div class="paused" id="paused"{"" if pause else " hidden"}><strong>PAUSED</strong> at step '
            f'<span data-field="step">{step}</span> by <span data-field="who">{esc(pause.get("who") or "unknown")}'
            f'</span>: <span data-field="reason">{esc(pause.get("reason"))}</span>'
            f'<form method="post" action="{esc(run_link(RESUME_PATH, run_id))}" class="resume-form">'
            f'<input name="note" required size="50" placeholder="why it may go on (kept in the journal)">'
            f'{token_field(ask_token)} <button type="submit">Resume</button> <output></output></form>'
            f'<span class="meta">or <code>introspect resume --run {esc(run_id)} --note "…"</code></span></div>')


def render_run(run_id: str, plot_html: str, runs: Iterable[dict], pause: dict | None = None,
               ask_token: bool = False) -> str:
    """The run page: the PAUSED banner (shown when paused), then every plot on one step axis, kept
    live by the live script. `plot_html` is plotly's own markup for the figure (it loads plotly.js
    from PLOTLY_PATH)."""
    body = (header(f"Run · {run_id}", run_id, list(runs), RUN_PATH)
            + paused_banner(run_id, pause, ask_token))
    return page(f"Run · {run_id}", f'{body}\n<main class="wide">{plot_html}</main>\n{live_script(run_id)}')


def render_index(runs: Iterable[dict]) -> str:
    """Every run with links to its journal and model journal."""
    items = "".join(index_item(r) for r in runs)
    body = f"<ul>{items}</ul>" if items else '<p class="meta">No runs yet.</p>'
    return page("Introspect journal", f'<header><h1>Introspect journal</h1><a href="{COMPARE_PATH}">compare runs</a>'
                                      f"</header>\n<main>\n{body}\n</main>")
