"""What a web journal request asks for, checked: a bad value is a 400 that says why, a run the
journal does not know is a 404 page. Shared by every page's handler."""
from __future__ import annotations

from typing import Iterable

from aiohttp import web

from journal_svc import web_render
from shared.contract import subjects


def known_run(run: str) -> str:
    """The run id of a request, or 400 with the reason (it becomes a subject token)."""
    try:
        return subjects.check_run_id(run)
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None


def unknown_runs_page(runs: list[str]) -> web.HTTPNotFound:
    names = ", ".join(web_render.esc(r) for r in runs)
    page = web_render.page("Unknown run", f"<main><h1>No run {names}</h1><p>The journal has no run of that name."
                                          ' <a href="/">All runs</a></p></main>')
    return web.HTTPNotFound(text=page, content_type="text/html")


async def journaled_runs(pool, runs: Iterable[str]) -> list[str]:
    """Every run checked (400) and known to the journal (else a 404 page naming the unknown ones)."""
    runs = list(dict.fromkeys(known_run(r) for r in runs))
    known = {r["run_id"] for r in await pool.fetch("SELECT run_id FROM runs WHERE run_id = ANY($1::text[])", runs)}
    if unknown := [r for r in runs if r not in known]:
        raise unknown_runs_page(unknown)
    return runs


async def journaled_run(pool, request) -> str:
    """The request's run, which the journal must know (else a 404 page)."""
    return (await journaled_runs(pool, [request.query.get("run", "")]))[0]


def choice(request, name: str, allowed: Iterable[str]) -> str:
    """An optional form value that must be one of `allowed` ("" = any), else a 400 naming them."""
    value, allowed = request.query.get(name, ""), tuple(allowed)
    if value and value not in allowed:
        raise web.HTTPBadRequest(text=f"{name} {value[:64]!r} is not one of: {', '.join(allowed)}")
    return value
