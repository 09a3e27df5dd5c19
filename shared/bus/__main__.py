"""`python -m shared.bus`: create or update every stream and bucket, then exit. Compose's
`provision` job runs it as the admin before any service starts (only the admin may create or
update streams); `introspect up` does the same itself."""
import asyncio

from shared import bus
from shared.contract.settings import load_settings


async def main() -> None:
    settings = load_settings()
    nc = await bus.connect(settings, "provision", timeout=30)
    try:
        await bus.provision(nc.jetstream(), settings)
    finally:
        await nc.close()
    print(f"provisioned {', '.join(bus.subjects.STREAMS)} and the buckets as {bus.nats_user(settings)}")


if __name__ == "__main__":
    asyncio.run(main())
