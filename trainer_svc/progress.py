"""A terminal progress bar for people watching the run: loss, tokens/s and ETA.

Only the progress bar writes to the terminal; events are the record. Off with --no-progress and on
every rank but 0.
"""
from __future__ import annotations

from tqdm import tqdm


class ProgressBar:
    def __init__(self, total_steps: int, start_step: int, enabled: bool):
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not enabled)

    def update(self, loss: float, tokens_per_s: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
        self.bar.update(1)

    def paused(self, reason: str) -> None:
        """Say why the bar stands still."""
        self.bar.set_description_str(f"paused: {reason or 'no reason given'}"[:80], refresh=True)

    def resumed(self) -> None:
        self.bar.set_description_str("", refresh=True)

    def close(self) -> None:
        self.bar.close()
