"""understanding_svc: watch what the model writes, how its activations evolve and where its bias
probes trend; pause on the findings the pause policy names.

    python -m understanding_svc     (NATS_URL, INTROSPECT_PAUSE_POLICY=bias:high; see README)
"""
import asyncio

from shared import bus
from shared.contract import subjects
from shared.bus.logs import setup_logging
from shared.bus.service import Service
from shared.contract.settings import load_settings
from shared.bus import kv_state as state
from understanding_svc import bias_model
from understanding_svc.handlers import activations_binding, evals_binding, text_binding
from understanding_svc.policy import parse_policy
from understanding_svc.probe_trends import TrendRule


async def main() -> None:
    settings = load_settings()
    policy = parse_policy(settings.pause_policy)  # fail at start on a bad policy
    setup_logging("understanding_svc", settings.log_level, settings.log_format)
    service = Service("understanding_svc", "Loop, formatting, motif, bias, bias-probe and activation analysis",
                      settings)
    await service.start()
    kv = await bus.control_bucket(service.js, settings)
    state_kv = await state.state_bucket(service.js, subjects.UNDERSTANDING_STATE_BUCKET, settings.stream_replicas)
    # the classifier trains in a thread at first use (rules only until it is ready)
    bias_model.install(None)
    asyncio.get_running_loop().run_in_executor(None, bias_model.prepare, settings.state_dir, settings.bias_model)
    for binding in text_binding(service.js, kv, state_kv, policy, bus.nats_user(settings)):
        service.consume(binding)
    service.consume(activations_binding(service.js, state_kv))
    service.consume(evals_binding(service.js, kv, state_kv, policy, TrendRule.from_settings(settings),
                                  bus.nats_user(settings)))
    await service.run()


if __name__ == "__main__":
    asyncio.run(main())
