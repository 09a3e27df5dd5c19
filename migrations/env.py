"""Alembic async environment: raw SQL migrations run over SQLAlchemy's asyncpg driver."""
import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def sqlalchemy_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise RuntimeError("DATABASE_URL is not set and sqlalchemy.url is empty")
    scheme, rest = url.split("://", 1)
    return f"postgresql+asyncpg://{rest}"


def run_with(connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(sqlalchemy_url())
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=sqlalchemy_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_online())
