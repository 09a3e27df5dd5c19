"""The journal's schema: alembic upgrade and downgrade over `migrations/`. Used by `introspect up`,
the tests and the benchmarks; the services never migrate (the compose job `migrate` does), so
their images need no alembic."""
from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str):
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    return config


def migrate(url: str, revision: str = "head") -> None:
    """alembic upgrade; blocking, so call it outside an event loop or through `migrate_async`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def migrate_async(url: str, revision: str = "head") -> None:
    # alembic's async env runs its own event loop, which cannot nest inside ours
    await asyncio.to_thread(migrate, url, revision)
