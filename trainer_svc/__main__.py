"""trainer_svc: train the GPT and publish everything it does; obey commands from the bus.

    python -m trainer_svc --run-id r1 --data corpus/ --steps 300     (flags: --help)
The training loop runs in the main thread; the bus lives in a publisher thread with its own
event loop (see publisher.py, wired in wiring.py), so no step ever waits on the network.
"""
from __future__ import annotations

import signal
import sys

from shared.bus.logs import setup_logging
from shared.contract import events
from shared.contract.settings import ConfigError, load_settings
from trainer_svc.options import parse_args
from trainer_svc.training import Trainer
from trainer_svc.wiring import wire


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        raise SystemExit(f"configuration error: {err}") from None
    log = setup_logging("trainer_svc", settings.log_level, settings.log_format)
    wiring = wire(args, settings)
    if not wiring.start(timeout=5):  # a pause issued while we were down must hold
        log.warning("bus not reachable at start: training on, events wait in the outbox")

    def stop_on_signal(signum, frame):  # checkpoint and exit at the next step boundary
        wiring.controls.send(events.ControlCommand(event_id=events.new_event_id(), run_id=args.run_id, step=-1,
                                                   args=events.Stop(), reason="SIGTERM", who="trainer_svc"))

    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        state = Trainer(args, wiring.emit, wiring.controls, wiring.on_checkpoint).run()
    finally:
        wiring.close()
    log.info("finished", extra={"state": state, "published": wiring.publisher.published,
                                "outbox": len(wiring.publisher.outbox)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
