"""Configuration from environment variables, validated once at start-up.

A bad value fails loudly with the name of the variable, e.g.
`INTROSPECT_BATCH_SIZE: Expected int >= 1, got 0`, before any connection is made.
"""
from __future__ import annotations

import os
import socket
from typing import Annotated, Literal

import msgspec

from shared.contract import db_roles

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class ConfigError(ValueError):
    pass


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: Annotated[str, msgspec.Meta(pattern=r"^(nats|tls|ws|wss)://")] = "nats://127.0.0.1:4222"
    database_url: Annotated[str, msgspec.Meta(pattern=r"^postgres(ql)?://")] = (
        "postgresql://postgres@127.0.0.1:5432/introspect")  # the owner: migrations, `up`, `clean`
    # journal_svc's writes / every read-only use; "" = DATABASE_URL as introspect_writer / _reader
    journal_database_url: Annotated[str, msgspec.Meta(pattern=r"^(postgres(ql)?://|$)")] = ""
    reader_database_url: Annotated[str, msgspec.Meta(pattern=r"^(postgres(ql)?://|$)")] = ""
    state_dir: str = ".state"
    log_level: Annotated[str, msgspec.Meta(pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log collectors
    stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    stream_max_age_s: PositiveFloat = 7 * 24 * 3600.0
    duplicate_window_s: PositiveFloat = 120.0
    batch_size: PositiveInt = 256
    journal_batch_size: PositiveInt = 1000  # bulk COPY amortises per-batch round trips
    concurrency: PositiveInt = 8
    ack_wait_s: PositiveFloat = 30.0
    max_deliver: PositiveInt = 5
    pause_policy: str = "bias:high"  # detector:severity pairs that pause, comma separated (not bias_probe)
    # understanding's bias-probe trend (understanding_svc/probe_trends.py): a probe score rising by
    # this margin over the mean of its last `window` values, or crossing the threshold, is detected
    bias_probe_window: PositiveInt = 5
    bias_probe_rise_margin: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.05
    bias_probe_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.65
    bias_probe_min_examples: PositiveInt = 50  # scores over fewer comparisons are not trended
    web_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080  # journal web; 0 = off
    web_host: str = "127.0.0.1"  # beyond localhost, writing through the web needs web_token
    web_token: str = ""  # the operator token for web writes (notes, questions)
    reflect_every: PositiveInt = 1000  # steps between self-play reflections (checkpoint steps)
    reflect_tokens: PositiveInt = 120  # tokens per reflection or answer
    # understanding's stereotype classifier: train (at first use, cached under state_dir),
    # cached (use one only if already cached), off (rules only)
    bias_model: Annotated[str, msgspec.Meta(pattern=r"^(train|cached|off)$")] = "train"
    instance: str = ""


# field name -> environment variable
ENV_NAMES = {
    "nats_url": "NATS_URL",
    "database_url": "DATABASE_URL",
    "journal_database_url": "JOURNAL_DATABASE_URL",
    "reader_database_url": "READER_DATABASE_URL",
    **{f: "INTROSPECT_" + f.upper() for f in Settings.__struct_fields__
       if f not in ("nats_url", "log_level") and not f.endswith("database_url")},
    "log_level": "LOG_LEVEL",
}


def load_settings(env: dict[str, str] | None = None, **overrides) -> Settings:
    """Read Settings from `env` (default os.environ); overrides win over the environment."""
    env = os.environ if env is None else env
    raw = {field: env[name] for field, name in ENV_NAMES.items() if name in env}
    raw.update(overrides)
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as err:
        raise ConfigError(_name_the_field(str(err))) from None
    if not settings.instance:
        settings = msgspec.structs.replace(settings, instance=f"{socket.gethostname()}-{os.getpid()}")
    return with_role_urls(settings)


def with_role_urls(settings: Settings) -> Settings:
    """Role URLs not given are DATABASE_URL's server as the role, without a password: enough where
    the server trusts local connections (dev, CI, `up`'s embedded server)."""
    owner, role_url = settings.database_url, db_roles.role_url
    return msgspec.structs.replace(
        settings, journal_database_url=settings.journal_database_url or role_url(owner, db_roles.WRITER),
        reader_database_url=settings.reader_database_url or role_url(owner, db_roles.READER))


def _name_the_field(message: str) -> str:
    # msgspec says "... - at `$.batch_size`"; users know the variable, not the field
    for field, name in ENV_NAMES.items():
        if message.endswith(f"`$.{field}`"):
            return f"{name}: {message.rsplit(' - at ', 1)[0]}"
    return message
