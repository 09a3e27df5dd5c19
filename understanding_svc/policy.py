"""Which findings pause training: `detector:severity` pairs, each meaning that severity or worse.

    parse_policy("bias:high,loop:high")   ->  bias high, loop high pause
"""
from __future__ import annotations

from shared.contract.events import DETECTORS, SEVERITIES, severity_rank


def parse_policy(text: str) -> dict[str, int]:
    policy = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        detector, _, severity = item.partition(":")
        if detector not in DETECTORS or severity not in SEVERITIES:
            raise ValueError(f"INTROSPECT_PAUSE_POLICY: {item!r} is not "
                             f"{'|'.join(DETECTORS)}:{'|'.join(SEVERITIES)}")
        policy[detector] = severity_rank(severity)
    return policy


def pauses(policy: dict[str, int], detector: str, severity: str) -> bool:
    return detector in policy and severity_rank(severity) >= policy[detector]
