"""`introspect export --run R --format jsonl|csv|tensorboard`: a run's journal as files other
tools read.

- jsonl: every event of the run as the bus carried it (`events.jsonl`, in step order) and the
  shimmer history (`shimmer_history.jsonl`: step, mean, per layer).
- csv: `metrics.csv` (one row per step: loss, smoothed loss, lr, grad norm, tokens/s, MFU, and the
  last val bpb) and `shimmer_history.csv`.
- tensorboard: event files written by tensorboardX (a small, well-kept writer that needs no
  TensorFlow): train/* scalars per step, eval/<name>, shimmer/mean and shimmer/layer_<i>, so
  `tensorboard --logdir DIR` shows the run as TensorBoard users expect.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import asyncpg

METRICS = ("loss", "loss_smooth", "lr", "grad_norm", "tokens_per_s", "mfu")
FORMATS = ("jsonl", "csv", "tensorboard")


async def read_run(database_url: str, run_id: str) -> dict[str, list]:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        return {
            "events": await conn.fetch("SELECT payload::text AS payload FROM events WHERE run_id = $1 "
                                       "ORDER BY step, ts", run_id),
            "steps": await conn.fetch("SELECT s.step, s.loss, s.loss_smooth, s.lr, s.grad_norm, s.tokens_per_s, "
                                      "s.mfu, l.val_bpb FROM steps s JOIN loss_by_step l USING (run_id, step) "
                                      "WHERE run_id = $1 ORDER BY step", run_id),
            "evals": await conn.fetch("SELECT step, name, value FROM evals WHERE run_id = $1 ORDER BY step",
                                      run_id),
            "shimmer": await conn.fetch("SELECT step, mean, per_layer FROM shimmer WHERE run_id = $1 ORDER BY step",
                                        run_id),
        }
    finally:
        await conn.close()


def shimmer_rows(rows) -> list[dict]:
    return [{"step": r["step"], "mean": r["mean"], "per_layer": list(r["per_layer"] or [])} for r in rows]


def write_jsonl(run: dict, out: Path) -> list[Path]:
    events, shimmer = out / "events.jsonl", out / "shimmer_history.jsonl"
    events.write_text("".join(r["payload"] + "\n" for r in run["events"]))
    shimmer.write_text("".join(json.dumps(r) + "\n" for r in shimmer_rows(run["shimmer"])))
    return [events, shimmer]


def write_csv(run: dict, out: Path) -> list[Path]:
    metrics, shimmer = out / "metrics.csv", out / "shimmer_history.csv"
    with metrics.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *METRICS, "val_bpb"])
        writer.writerows([r["step"], *(r[m] for m in METRICS), r["val_bpb"]] for r in run["steps"])
    layers = max((len(r["per_layer"] or []) for r in run["shimmer"]), default=0)
    with shimmer.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "mean", *(f"layer_{i}" for i in range(layers))])
        writer.writerows([r["step"], r["mean"], *(r["per_layer"] or [])] for r in run["shimmer"])
    return [metrics, shimmer]


def write_tensorboard(run: dict, out: Path) -> list[Path]:
    from tensorboardX import SummaryWriter
    writer = SummaryWriter(logdir=str(out), flush_secs=3600)
    try:
        for r in run["steps"]:
            for name in METRICS:
                if r[name] is not None:
                    writer.add_scalar(f"train/{name}", r[name], r["step"])
        for r in run["evals"]:
            if r["value"] is not None:
                writer.add_scalar(f"eval/{r['name']}", r["value"], r["step"])
        for r in shimmer_rows(run["shimmer"]):
            writer.add_scalar("shimmer/mean", r["mean"], r["step"])
            for i, value in enumerate(r["per_layer"]):
                writer.add_scalar(f"shimmer/layer_{i}", value, r["step"])
    finally:
        writer.close()
    return sorted(out.glob("events.out.tfevents.*"))


async def export(database_url: str, run_id: str, fmt: str, out: Path) -> list[Path]:
    """Write the run's files under `out`; the paths written. ValueError for an unknown run."""
    try:
        run = await read_run(database_url, run_id)
    except (OSError, TimeoutError, asyncpg.PostgresError) as err:
        raise ValueError(f"the journal database did not answer ({err})") from None
    if not run["events"]:
        raise ValueError(f"run {run_id!r} has no events in the journal")
    out.mkdir(parents=True, exist_ok=True)
    return {"jsonl": write_jsonl, "csv": write_csv, "tensorboard": write_tensorboard}[fmt](run, out)
