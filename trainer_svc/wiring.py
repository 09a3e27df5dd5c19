"""The trainer on the bus, wired once for `python -m trainer_svc`, the tests and the benchmarks.

    wiring = wire(args, settings)       # publisher, controls, on_checkpoint; nothing started
    wiring.start(timeout=5)             # connect; True once the run's desired state was read
    Trainer(args, wiring.emit, wiring.controls, wiring.on_checkpoint).run()
    wiring.close()                      # flush to the bus, or to the outbox
Once connected, the publisher's loop attaches the controls (control bucket, freeze/mix consumer,
monitor watch) and registers the trainer for service discovery.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nats.micro import add_service

from shared.bus.service import VERSION
from shared.contract import events
from shared.contract.settings import Settings
from shared.model.checkpoint import object_name
from trainer_svc.controls import BusControls
from trainer_svc.hooks import OnCheckpoint
from trainer_svc.publisher import BusPublisher


@dataclass
class BusWiring:
    publisher: BusPublisher
    controls: BusControls
    on_checkpoint: OnCheckpoint

    @property
    def emit(self):
        return self.publisher.emit

    def start(self, timeout: float) -> bool:
        """Start publishing; True when the run's desired state was read within `timeout` s, so a
        pause issued while the trainer was down holds from the first step."""
        self.publisher.start()
        return self.controls.state_read.wait(timeout)

    def close(self) -> None:
        self.publisher.close()


def wire(args, settings: Settings) -> BusWiring:
    run_id = args.run_id
    run_dir = Path(args.out_dir) / run_id
    publisher = BusPublisher(settings, run_dir)
    controls = BusControls(run_id, settings, run_dir, args.require_monitor, args.monitor_timeout)
    publisher.on_connect.append(controls.attach)
    publisher.on_connect.append(lambda nc, js: register_discovery(nc, settings))

    def on_checkpoint(path: str, step: int, size: int, sha256: str, reason: str) -> None:
        """Upload the file, then announce it (the publisher keeps that order)."""
        publisher.emit_checkpoint(events.Checkpoint(
            event_id=events.stable_event_id(run_id, "checkpoint", step, sha256), run_id=run_id, step=step,
            object_name=object_name(run_id, step), size=size, sha256=sha256, local_path=path,
            reason=reason), path)

    return BusWiring(publisher, controls, on_checkpoint)


async def register_discovery(nc, settings: Settings) -> None:
    await add_service(nc, name="trainer_svc", version=VERSION, description="Introspect trainer",
                      metadata={"instance": settings.instance})
