"""The learning-rate schedule: linear warmup, a long constant phase, linear warmdown to zero.

A pure function of the step, so a resumed run continues on exactly the same curve.
"""
from __future__ import annotations


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, warmdown_frac: float) -> float:
    """Multiplier of each group's initial lr at 0-based `step` of `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    warmdown_steps = round(warmdown_frac * total_steps)
    if warmdown_steps > 0 and step >= total_steps - warmdown_steps:
        return max(0.0, (total_steps - step) / warmdown_steps)
    return 1.0
