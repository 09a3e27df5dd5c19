"""Give the journal's roles the passwords in their URLs (JOURNAL_DATABASE_URL, READER_DATABASE_URL),
connected as the owner (DATABASE_URL). Run after the migrations, at every start of the `migrate`
job, so a changed password takes effect without a new revision:

    python -m shared.role_passwords

The server receives a SCRAM-SHA-256 verifier, never the password, as psql's `\\password` does:
an ALTER ROLE with the plain password would land in the server log under `log_statement = ddl`.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from urllib.parse import unquote, urlsplit

import asyncpg

from shared.contract import db_roles
from shared.contract.settings import load_settings

SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a scram-sha-256 password (RFC 5802/7677)."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def role_password(url: str) -> tuple[str, str] | None:
    """(role, password) when the URL names one of the journal's roles with a password."""
    parts = urlsplit(url)
    if parts.username in db_roles.ROLES and parts.password:
        return parts.username, unquote(parts.password)
    return None


async def set_passwords(owner_url: str, role_urls) -> list[str]:
    """ALTER ROLE … PASSWORD for each URL with a role and a password; returns the roles changed."""
    wanted = dict(filter(None, map(role_password, role_urls)))
    if not wanted:
        return []
    conn = await asyncpg.connect(owner_url)
    try:
        for role, password in wanted.items():
            # utility statements take no parameters: format() quotes the name and the verifier
            sql = await conn.fetchval("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
                                      role, scram_verifier(password))
            await conn.execute(sql)
    finally:
        await conn.close()
    return sorted(wanted)


def main() -> None:
    settings = load_settings()
    changed = asyncio.run(set_passwords(settings.database_url,
                                        [settings.journal_database_url, settings.reader_database_url]))
    print(f"passwords set for {', '.join(changed)}" if changed else
          "no role URL carries a password: the roles keep theirs")


if __name__ == "__main__":
    main()
