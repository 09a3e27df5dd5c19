"""selfplay_svc: the model writes reflections on a schedule and answers people; after a bias
pause, the supportive protocol.

    python -m selfplay_svc      (NATS_URL, READER_DATABASE_URL, INTROSPECT_REFLECT_EVERY; see README)
"""
import asyncio
from pathlib import Path

import torch

from selfplay_svc.handlers import SelfPlay, bindings
from selfplay_svc.models import ModelCache
from shared import bus
from shared.bus import kv_state
from shared.contract import subjects
from shared.db import create_pool, when_up
from shared.bus.logs import setup_logging
from shared.bus.service import Service
from shared.contract.settings import load_settings


async def main() -> None:
    settings = load_settings()
    setup_logging("selfplay_svc", settings.log_level, settings.log_format)
    torch.set_num_threads(1)  # generation shares the machine with the trainer
    # it only reads the prompts and each run's choice of them: the operator writes those
    pool = await when_up(lambda: create_pool(settings.reader_database_url), "selfplay pool")
    service = Service("selfplay_svc", "Reflections, conversations and the bias protocol", settings)
    await service.start()
    js = service.js
    models = ModelCache(await bus.checkpoint_store(js, settings),
                        Path(settings.state_dir) / "cache" / settings.instance)
    selfplay = SelfPlay(js, await bus.control_bucket(js, settings),
                        await kv_state.state_bucket(js, subjects.SELFPLAY_STATE_BUCKET,
                                                    settings.stream_replicas),
                        pool, models, settings)
    for binding in bindings(selfplay):
        service.consume(binding)
    await service.run()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
