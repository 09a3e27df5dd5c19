"""`introspect runs` and `introspect clean --run R`: list the runs every store knows, and remove
one run's traces after saying what they are (asks first; `--yes` does not)."""
from __future__ import annotations

import sys

from introspect import runs


async def list_runs(nc, settings) -> None:
    known = await runs.known_runs(nc, settings)
    if not known:
        print("no runs")
        return
    print(f"{'run':<20} {'journal state':<14} {'wanted':<9} {'last step':>10} {'checkpoints':>12}")
    for run_id, run in known.items():
        step = "-" if run["step"] is None else f"{run['step']:,}"
        print(f"{run_id:<20} {run['state'] or '-':<14} {run.get('wanted', '-'):<9} {step:>10} "
              f"{run['checkpoints']:>12}")


def confirmed(question: str) -> bool:
    if not sys.stdin.isatty() and sys.stdin.closed:
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def clean(nc, settings, run_id: str, yes: bool) -> None:
    found = await runs.survey(nc, settings, run_id)
    if found.empty():
        print(f"run {run_id}: nothing left anywhere")
        return
    print(f"run {run_id} left:")
    print("\n".join("  " + line for line in found.lines()))
    if not yes and not confirmed(f"delete all of this for run {run_id}? [y/N] "):
        raise SystemExit("nothing deleted")
    await runs.remove(nc, settings, found)
    print(f"run {run_id} cleaned (dead letters in the DLQ are kept: `introspect dlq list`)")
