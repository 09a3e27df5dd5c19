"""journal_svc: persist every event in PostgreSQL and serve the web journal.

    python -m journal_svc        (NATS_URL, JOURNAL_DATABASE_URL, READER_DATABASE_URL,
                                  INTROSPECT_WEB_PORT; see README)

It writes as introspect_writer; the web journal reads as introspect_reader, so nothing a page
does can change the journal (its notes go through the bus like every other entry).
"""
import asyncio

from journal_svc.handlers import journal_bindings
from journal_svc.writer import JournalWriter
from journal_svc.writer import create_staging_tables
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
        background.append(serve(web_pool, service.nc, settings.web_host, settings.web_port,
                                settings.web_token, service.stopping))
    await service.run(*background)
    for p in pools:
        await p.close()


if __name__ == "__main__":
    asyncio.run(main())
