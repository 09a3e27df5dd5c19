"""Is a failure the message's fault, or a dependency's? Each dependency's module says which of its
errors mean "down right now" and which mean "this value is refused" (shared/db.py registers
PostgreSQL's when imported), so the consumer helper decides without importing any of them: the
trainer's image, which has no database driver, loads none.
"""
from __future__ import annotations

from typing import Callable

Check = Callable[[BaseException], bool]
_unavailable: list[Check] = []
_bad_data: list[Check] = []


def register(unavailable: Check, bad_data: Check) -> None:
    _unavailable.append(unavailable)
    _bad_data.append(bad_data)


def unavailable(err: BaseException) -> bool:
    return any(check(err) for check in _unavailable)


def bad_data(err: BaseException) -> bool:
    return isinstance(err, (ValueError, OverflowError, TypeError)) or any(c(err) for c in _bad_data)
