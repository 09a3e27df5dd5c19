"""What two or more Introspect services need, one reason to change per sub-package:

- `shared.contract`: the event schemas, subject/stream/bucket names and settings (the contract);
- `shared.bus`: the bus kit (connect, provision, publish; consumer helper, service life, run
  control, per-run KV state, structured logs);
- `shared.model`: the GPT, its tokenizer, the checkpoint format and generation (trainer, selfplay);
- `shared.db`: the PostgreSQL pool; `shared.schema`: the alembic migrations (for `introspect up`,
  tests and benchmarks; the services never migrate).
"""
