"""Log lines for people by default (time, level, service, message, `extra` fields as k=v), or
one JSON object per line for log collectors (INTROSPECT_LOG_FORMAT=json, `up --log-format json`)."""
from __future__ import annotations

import logging
import sys

import msgspec

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_encode = msgspec.json.Encoder().encode


class JsonLines(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname, "svc": self.service,
                "logger": record.name, "msg": record.getMessage()}
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class Readable(JsonLines):
    """`12:04:05 WARNING trainer_svc: mix command rejected: ... key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = (f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {self.service}: "
                f"{record.getMessage()}{' ' + extra if extra else ''}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class WithoutTraceback(logging.Filter):
    """The error in one line: a library retrying a connection during an outage logs a warning at
    each try, and a traceback each time says nothing the first line did not."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.error = repr(record.exc_info[1])[:300]
            record.exc_info = None
        return True


def setup_logging(service: str, level: str = "INFO", fmt: str = "text") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(service) if fmt == "json" else Readable(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("asyncpg.pool").addFilter(WithoutTraceback())  # floor restore while PG is down
    return logging.getLogger(service)
