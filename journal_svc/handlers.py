"""journal_svc handlers: every stream's events, written in batches, acked after commit."""
from __future__ import annotations

from nats.aio.msg import Msg

from journal_svc.writer import JournalWriter
from shared.contract import events, subjects
from shared.bus.consumer import Binding


def journal_bindings(writer: JournalWriter, batch_size: int | None = None) -> list[Binding]:
    async def write_batch(batch: list[tuple[events.Event, Msg]]) -> None:
        await writer.write([(event, msg.subject, msg.data) for event, msg in batch])

    return [Binding(stream, durable, filters, batch_handler=write_batch, pipelined=True,
                    batch_size=batch_size)
            for stream, durable, filters in subjects.JOURNAL_CONSUMERS]
