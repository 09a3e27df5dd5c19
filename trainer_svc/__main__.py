"""trainer_svc: train the GPT and publish everything it does; obey commands from the bus.

    python -m trainer_svc --run-id r1 --data corpus/ --steps 300     (flags: --help)
The training loop runs in the main thread; the bus lives in a publisher thread with its own
event loop (see publisher.py), so no step ever waits on the network.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from shared.contract import events
from shared.model.checkpoint import object_name
from shared.bus.logs import setup_logging
from shared.contract.settings import ConfigError, load_settings
from trainer_svc.controls import BusControls
from trainer_svc.options import parse_args
from trainer_svc.publisher import BusPublisher
from trainer_svc.training import Trainer


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        raise SystemExit(f"configuration error: {err}") from None
    log = setup_logging("trainer_svc", settings.log_level)
    run_dir = Path(args.out_dir) / args.run_id
    publisher = BusPublisher(settings, run_dir)
    controls = BusControls(args.run_id, settings, run_dir, args.require_monitor, args.monitor_timeout)
    publisher.on_connect.append(controls.attach)
    publisher.on_connect.append(lambda nc, js: register_discovery(nc, settings))
    publisher.start()
    if not controls.state_read.wait(timeout=5):  # a pause issued while we were down must hold
        log.warning("bus not reachable at start: training on, events wait in the outbox")

    def on_checkpoint(path: str, step: int, size: int, sha256: str, reason: str) -> None:
        publisher.emit_checkpoint(events.Checkpoint(
            event_id=events.stable_event_id(args.run_id, "checkpoint", step, sha256),
            run_id=args.run_id, step=step, object_name=object_name(args.run_id, step), size=size,
            sha256=sha256, local_path=path, reason=reason), path)

    def stop_on_signal(signum, frame):  # checkpoint and exit at the next step boundary
        controls.send(events.ControlCommand(event_id=events.new_event_id(), run_id=args.run_id,
                                            step=-1, args=events.Stop(), reason="SIGTERM", who="trainer_svc"))

    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        state = Trainer(args, emit=publisher.emit, controls=controls, on_checkpoint=on_checkpoint).run()
    finally:
        publisher.close()
    log.info("finished", extra={"state": state, "published": publisher.published,
                                "outbox": len(publisher.outbox)})
    return 0


async def register_discovery(nc, settings) -> None:
    from nats.micro import add_service
    from shared.bus.service import VERSION
    await add_service(nc, name="trainer_svc", version=VERSION, description="Introspect trainer",
                      metadata={"instance": settings.instance})


if __name__ == "__main__":
    sys.exit(main())
