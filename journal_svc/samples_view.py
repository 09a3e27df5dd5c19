"""What the model wrote at each step (its samples and reflections), with every span a detector
flagged highlighted, and the step's findings as one card each (detection_cards).

`/samples?run=R&detector=loop&severity=medium&before=N`: the filters keep the findings of one
detector and/or of at least one severity, and then only the texts that hold such a finding; the
page shows STEPS_PER_PAGE steps, newest first, and `before` pages back. A highlight is a `<mark>`
whose title names the detector, the severity and the finding; overlapping spans (a loop at word
and at line level) are cut into segments, each marked with every finding that covers it.
"""
from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlencode

from journal_svc import detection_cards, web_render
from journal_svc.web_render import esc, step_badge
from shared.contract import events

STEPS_PER_PAGE = 20

TEXTS_SQL = """
    SELECT event_id, step, ts, 'sample' AS source, prompt, text, mode, temperature FROM samples
    WHERE run_id = $1 AND step = ANY($2::bigint[])
    UNION ALL
    SELECT event_id, step, ts, 'reflection', prompt_version, text, NULL, NULL FROM reflections
    WHERE run_id = $1 AND step = ANY($2::bigint[])
    ORDER BY step DESC, source, ts"""


def group_filter(detector: str, severity: str, first: int = 2) -> tuple[str, list]:
    """SQL conditions on detection_groups for the chosen filters, and their arguments."""
    sql, args = "", []
    if detector:
        args.append(detector)
        sql += f" AND detector = ${first + len(args) - 1}"
    if severity:  # at least this severity
        args.append(list(events.SEVERITIES[events.severity_rank(severity):]))
        sql += f" AND severity = ANY(${first + len(args) - 1}::text[])"
    return sql, args


async def read_page(db, run_id: str, detector: str = "", severity: str = "", before: int | None = None) -> dict:
    """The steps of one page, their texts, and the findings (filtered) of those steps."""
    where, args = group_filter(detector, severity, first=3)
    before = 2**63 - 1 if before is None else before
    if detector or severity:  # only steps with a finding that passes the filters
        steps_sql = f"SELECT DISTINCT step FROM detection_groups WHERE run_id = $1 AND step < $2{where}"
    else:
        steps_sql = ("SELECT step FROM samples WHERE run_id = $1 AND step < $2 UNION "
                     "SELECT step FROM reflections WHERE run_id = $1 AND step < $2")
    steps = [r["step"] for r in await db.fetch(f"{steps_sql} ORDER BY step DESC LIMIT {STEPS_PER_PAGE}",
                                               run_id, before, *args)]
    groups = await db.fetch(f"SELECT * FROM detection_groups WHERE run_id = $1 AND step = ANY($2::bigint[]){where} "
                            "ORDER BY step DESC, ts", run_id, steps, *args)
    return {"steps": steps, "texts": [dict(r) for r in await db.fetch(TEXTS_SQL, run_id, steps)],
            "groups": [dict(g, ts=g["ts"].timestamp()) for g in groups]}


def spans_by_source(groups: list[dict]) -> dict[str, list[tuple[int, int, str, str]]]:
    """source event id -> its flagged spans as (start, end, severity, title)."""
    spans = defaultdict(list)
    for group in groups:
        for occ in detection_cards.occurrences(group):
            if occ.get("span_start") is None or occ.get("span_end") is None:
                continue  # a finding about the text as a whole: its card says so, nothing to mark
            spans[occ["source_event_id"]].append((occ["span_start"], occ["span_end"], occ["severity"],
                                                  detection_cards.mark_title(group["detector"], occ)))
    return spans


def highlight(text: str, spans: list[tuple[int, int, str, str]]) -> str:
    """The text, escaped, with each flagged span in a <mark>; overlapping spans are cut into
    segments, each marked with every finding covering it (the worst severity colours it)."""
    spans = [(max(0, a), min(len(text), b), sev, title) for a, b, sev, title in spans if a < b]
    cuts = sorted({0, len(text), *(a for a, *_ in spans), *(b for _, b, *_ in spans)})
    out = []
    for lo, hi in zip(cuts, cuts[1:]):
        covering = [(sev, title) for a, b, sev, title in spans if a <= lo and hi <= b]
        piece = esc(text[lo:hi])
        if covering:
            worst = max((sev for sev, _ in covering), key=events.severity_rank)
            titles = "\n".join(dict.fromkeys(title for _, title in covering))
            piece = f'<mark class="sev-{esc(worst)}" data-start="{lo}" title="{esc(titles)}">{piece}</mark>'
        out.append(piece)
    return "".join(out)


def render_text(row: dict, spans) -> str:
    if row["source"] == "sample":
        how = row["mode"] + (f" T={row['temperature']:g}" if row["mode"] == "sampled" and row["temperature"] else "")
        head = f'<span class="badge">sample</span> {esc(how)} <span class="meta">prompt</span> {esc(row["prompt"])}'
    else:
        head = f'<span class="badge">reflection</span> <span class="meta">prompt {esc(row["prompt"])}</span>'
    flagged = f' <span class="badge">{len(spans)} flagged span{"s" * (len(spans) > 1)}</span>' if spans else ""
    return (f'<div class="sample"><div class="meta">{head}{flagged}</div>'
            f'<pre class="text">{highlight(row["text"] or "", spans)}</pre></div>')


def filter_form(run_id: str, detector: str, severity: str) -> str:
    def select(name: str, label: str, values, chosen: str) -> str:
        options = "".join(f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v or "any")}</option>'
                          for v in ("", *values))
        return f'<label>{label} <select name="{name}">{options}</select></label>'
    return (f'<form method="get" action="{web_render.SAMPLES_PATH}" class="filters">'
            f'<input type="hidden" name="run" value="{esc(run_id)}">'
            f'{select("detector", "Detector", events.DETECTORS, detector)} '
            f'{select("severity", "Severity at least", events.SEVERITIES, severity)} <button>Filter</button></form>')


def render_samples(run_id: str, page: dict, runs, detector: str = "", severity: str = "") -> str:
    """Per step: the step's finding cards, then each text with its flagged spans highlighted."""
    spans = spans_by_source(page["groups"])
    groups_at, texts_at = defaultdict(list), defaultdict(list)
    for g in page["groups"]:
        groups_at[g["step"]].append(g)
    for t in page["texts"]:
        if spans.get(t["event_id"]) or not (detector or severity):  # filtered: only the flagged texts
            texts_at[t["step"]].append(t)
    sections = []
    for step in page["steps"]:
        cards = "".join(detection_cards.render_group(g) for g in groups_at[step])
        texts = "".join(render_text(t, spans.get(t["event_id"], [])) for t in texts_at[step])
        sections.append(f'<section id="step-{step}"><h2>{step_badge(step)}</h2>{cards}{texts}</section>')
    body = "\n".join(sections) or '<p class="meta">No samples here.</p>'
    if len(page["steps"]) == STEPS_PER_PAGE:
        query = {"run": run_id, "detector": detector, "severity": severity, "before": page["steps"][-1]}
        body += f'<p><a href="{web_render.SAMPLES_PATH}?{esc(urlencode(query))}">older steps</a></p>'
    title = f"Samples · {run_id}"
    return web_render.page(title, web_render.header(title, run_id, runs, web_render.SAMPLES_PATH)
                           + f"\n<main>\n{filter_form(run_id, detector, severity)}\n{body}\n</main>")
