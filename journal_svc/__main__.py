"""journal_svc: persist every event in PostgreSQL and serve the web journal.

    python -m journal_svc        (NATS_URL, JOURNAL_DATABASE_URL, READER_DATABASE_URL,
                                  INTROSPECT_WEB_PORT; see README)

It writes as introspect_writer; the web journal reads as introspect_reader, so nothing a page
does can change the journal (its notes go through the bus like every other entry).
"""
import asyncio

import msgspec

from journal_svc.handlers import journal_bindings
from journal_svc.writer import JournalWriter
from journal_svc.writer import create_staging_tables
from shared import bus
from shared.db import create_pool, when_up
from shared.bus.logs import setup_logging
from shared.bus.service import Service
from shared.contract.settings import load_settings


async def main() -> None:
    settings = load_settings()
    setup_logging("journal_svc", settings.log_level, settings.log_format)
    pool = await when_up(lambda: create_pool(settings.journal_database_url, max_size=settings.concurrency,
                                             init=create_staging_tables), "journal pool")
    service = Service("journal_svc", "Persists every Introspect event in PostgreSQL", settings)
    await service.start()
    writer = await when_up(lambda: JournalWriter.create(pool), "journal columns")
    for binding in journal_bindings(writer, settings.journal_batch_size):
        service.consume(binding)
    background, pools = [], [pool]
    if settings.web_port:
        from journal_svc.web import serve
        web_pool = await when_up(lambda: create_pool(settings.reader_database_url), "web journal pool")
        pools.append(web_pool)
        web_nc = await web_connection(settings, service)
        background.append(serve(web_pool, web_nc, settings.web_host, settings.web_port,
                                settings.web_token, service.stopping))
    await service.run(*background)
    if settings.web_port and web_nc is not service.nc:
        await web_nc.close()
    for p in pools:
        await p.close()


async def web_connection(settings, service):
    """The web journal acts for the operator (pause, resume, notes): with NATS users on it connects
    as its own user `web` (shared.bus.permissions), not as the journal's ingesting user."""
    if not settings.web_nats_password:
        return service.nc
    web = msgspec.structs.replace(settings, nats_user="web", nats_password=settings.web_nats_password)
    return await bus.connect(web, f"journal_svc-web:{settings.instance}")


if __name__ == "__main__":
    asyncio.run(main())
