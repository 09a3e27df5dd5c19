"""Which findings pause training: `detector:severity` pairs, each meaning that severity or worse.

    parse_policy("bias:high,loop:high")   ->  bias high, loop high pause
"""
from __future__ import annotations

RANK = {"low": 0, "medium": 1, "high": 2}


def parse_policy(text: str) -> dict[str, int]:
    policy = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        detector, _, severity = item.partition(":")
        if detector not in ("loop", "formatting", "motif", "bias") or severity not in RANK:
            raise ValueError(f"INTROSPECT_PAUSE_POLICY: {item!r} is not detector:low|medium|high")
        policy[detector] = RANK[severity]
    return policy


def pauses(policy: dict[str, int], detector: str, severity: str) -> bool:
    return detector in policy and RANK[severity] >= policy[detector]
