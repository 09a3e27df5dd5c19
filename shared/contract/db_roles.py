"""The journal's PostgreSQL roles and the URL each service connects with.

The migration owner (DATABASE_URL) keeps DDL and runs `migrate` and `up`; journal_svc writes as
WRITER; whatever only reads (the web journal, selfplay_svc's prompt look-ups, the operator's
queries) connects as READER. Migration 0009 creates both roles and their grants.
"""
from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

WRITER = "introspect_writer"  # journal_svc: read and insert into the journal's tables, update `runs`
READER = "introspect_reader"  # SELECT only
ROLES = (WRITER, READER)


def role_url(url: str, role: str, password: str = "") -> str:
    """`url` with `role` (and `password`, or none) as its user: same host, port, database, options."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = role + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
