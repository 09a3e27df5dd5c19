"""Who may write through the web journal (notes, questions): a page of this journal, never a
cross-origin form (CSRF), and, when the server listens beyond localhost, an operator who knows
the token (INTROSPECT_WEB_TOKEN). Reading needs nothing: bind to localhost to keep it private.
"""
from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from aiohttp import web

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def beyond_localhost(host: str) -> bool:
    return host not in LOOPBACK


def same_origin(request: web.Request) -> bool:
    """The Origin (else Referer) header, when a browser sent one, names this server. A client that
    sends neither is not a browser following a foreign page, so it cannot be a forged request."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if not claimed:
        return True
    parts = urlsplit(claimed)
    return parts.netloc == request.host and parts.scheme == request.scheme


async def presented_token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ")
    return str((await request.post()).get("token", ""))


def write_guard(token: str, token_required: bool):
    """aiohttp middleware: every POST passes the same-origin check and, if required, the token."""
    @web.middleware
    async def guard(request: web.Request, handler):
        if request.method == "POST":
            if not same_origin(request):
                raise web.HTTPForbidden(text="cross-origin write refused: post from this journal's own pages")
            if token_required:
                if not token:
                    raise web.HTTPForbidden(text="writing is off: this journal listens beyond localhost "
                                                 "and INTROSPECT_WEB_TOKEN is not set")
                if not hmac.compare_digest(await presented_token(request), token):
                    raise web.HTTPForbidden(text="writing needs the operator token (INTROSPECT_WEB_TOKEN)")
        return await handler(request)
    return guard
