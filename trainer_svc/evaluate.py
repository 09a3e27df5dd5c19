"""How well the model does: validation bits per byte and a CORE-style in-context benchmark.

Bits per byte (sum of per-token nats / (ln 2 x sum of the tokens' UTF-8 bytes)) does not depend on
the vocabulary, so runs with different tokenizers compare. The CORE-style score (DCLM's CORE, as
nanochat computes it) asks which choice the model finds least surprising after the context (lowest
mean loss per choice token), and centres accuracy on chance, (acc - 1/n) / (1 - 1/n), so 0 means
chance and 1 means perfect.

A CORE bundle is a folder of `<task>.jsonl` files, one example a line:
    {"context": "The capital of France is", "choices": ["Paris", "Rome"], "gold": 0}
plus an optional `bundle.json`: {"<task>": {"few_shot": 3, "delimiter": " ", "examples": 32}}
(defaults 0, " " and all): each eval scores the task's first `examples` examples. Few-shot examples
are other examples of the same task, chosen by a generator seeded per example. The default bundle
is built from public sets by trainer_svc/core_bundle.py.

Evaluation must never kill training: on CUDA out-of-memory the batch is halved and the chunk
retried; if even one row does not fit, the evaluation is skipped (None).
"""
from __future__ import annotations

import json
import logging
import math
import random
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import torch

from shared.model.tokenizer import BPETokenizer

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_in_chunks(score: Callable[[int, int], T], n_items: int, batch_size: int) -> list[T] | None:
    """score(start, end) over [0, n_items) in chunks; halve the chunk on OOM; None if 1 row fails."""
    results, start = [], 0
    while start < n_items:
        end = min(n_items, start + batch_size)
        try:
            results.append(score(start, end))
            start = end
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if batch_size == 1:
                log.warning("evaluation skipped: one row does not fit in memory")
                return None
            batch_size = max(1, batch_size // 2)
            log.warning("evaluation out of memory; retrying with batch %d", batch_size)
    return results


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 token_bytes: torch.Tensor, autocast=None) -> float | None:
    """Bits per byte over the batches; targets of zero-byte (special) tokens count for neither sum."""
    total = None
    for x, y in batches:
        def score(start: int, end: int) -> torch.Tensor:
            with autocast or nullcontext():
                loss = model(x[start:end], y[start:end], loss_reduction="none")
            targets = y[start:end]
            n_bytes = token_bytes[targets.clamp(min=0)] * (targets >= 0)
            return torch.stack([(loss.double() * (n_bytes > 0)).sum(), n_bytes.sum().double()])
        chunks = run_in_chunks(score, x.size(0), x.size(0))
        if chunks is None:
            return None
        for chunk in chunks:
            total = chunk if total is None else total + chunk
    if total is None:
        return None
    nats, n_bytes = total.tolist()  # one transfer for the whole evaluation
    return nats / (math.log(2) * n_bytes) if n_bytes else None


def centered_accuracy(accuracy: float, n_choices: float) -> float:
    baseline = 1.0 / n_choices
    return (accuracy - baseline) / (1.0 - baseline)


def load_bundle(bundle_dir: str | Path) -> dict[str, dict]:
    """{task: {"examples": [...], "few_shot": k, "delimiter": d, "per_eval": n}} from a bundle
    folder; ValueError naming the file and line of an example that cannot be scored."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise ValueError(f"CORE bundle {bundle_dir} is not a folder")
    settings_file = bundle_dir / "bundle.json"
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    tasks = {}
    for path in sorted(bundle_dir.glob("*.jsonl")):
        examples = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                examples.append(checked_example(line, f"{path}:{number}"))
        task = settings.get(path.stem, {})
        tasks[path.stem] = {"examples": examples, "few_shot": task.get("few_shot", 0),
                            "delimiter": task.get("delimiter", " "),
                            "per_eval": task.get("examples") or len(examples)}
    return tasks


def checked_example(line: str, where: str) -> dict:
    try:
        example = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not JSON ({error})") from None
    if not isinstance(example, dict):
        raise ValueError(f"{where}: expected an object with context, choices and gold")
    choices, gold = example.get("choices"), example.get("gold")
    if not isinstance(example.get("context"), str) or not isinstance(choices, list) or len(choices) < 2 \
            or not all(isinstance(c, str) for c in choices):
        raise ValueError(f"{where}: expected a context string and at least two choice strings")
    if not isinstance(gold, int) or not 0 <= gold < len(choices):
        raise ValueError(f"{where}: gold {gold!r} is not the index of a choice")
    return example


def few_shot_prefix(examples: list[dict], index: int, k: int, delimiter: str) -> str:
    others = [j for j in range(len(examples)) if j != index]
    shots = random.Random(1234 + index).sample(others, min(k, len(others)))
    return "".join(f"{examples[j]['context']}{delimiter}{examples[j]['choices'][examples[j]['gold']]}\n\n"
                   for j in shots)


def choice_rows(tokenizer: BPETokenizer, example: dict, prefix: str, delimiter: str,
                seq_len: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, target ids with -1 outside the choice) for each choice, cut from the left."""
    context = tokenizer.encode(prefix + example["context"], prepend_bos=True)
    rows = []
    for choice in example["choices"]:
        continuation = tokenizer.encode(delimiter + choice)
        sequence = (context + continuation)[-(seq_len + 1):]
        n_context = len(sequence) - len(continuation)
        targets = [-1] * max(0, n_context - 1) + sequence[max(1, n_context):]
        rows.append((sequence[:-1], targets))
    return rows


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x, _ in rows)
    x = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in rows], device=device)
    y = torch.tensor([t + [-1] * (width - len(t)) for _, t in rows], device=device)
    return x, y


@torch.no_grad()
def score_task(model: torch.nn.Module, tokenizer: BPETokenizer, task: dict, seq_len: int,
               device, batch_size: int = 16, max_examples: int | None = None,
               autocast=None) -> dict | None:
    """The task's first `per_eval` examples (at most max_examples), each choice's mean loss over
    its own tokens; rows go to the model longest first, so a batch carries little padding."""
    examples = task["examples"][:min(task.get("per_eval") or len(task["examples"]), max_examples or math.inf)]
    rows, owners = [], []
    for i, example in enumerate(examples):
        prefix = few_shot_prefix(task["examples"], i, task["few_shot"], task["delimiter"])
        for row in choice_rows(tokenizer, example, prefix, task["delimiter"], seq_len):
            rows.append(row)
            owners.append(i)

    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))

    def mean_choice_loss(start: int, end: int) -> torch.Tensor:
        x, y = pad_rows([rows[i] for i in order[start:end]], tokenizer.bos_id, device)
        with autocast or nullcontext():
            loss = model(x, y, loss_reduction="none").float()
        counted = (y >= 0).float()
        return (loss * counted).sum(dim=1) / counted.sum(dim=1).clamp(min=1)

    if not rows:
        return None
    # a batch holds as many tokens as a training batch: short rows go many at a time
    rows_per_batch = max(batch_size, batch_size * seq_len // max(len(x) for x, _ in rows))
    chunks = run_in_chunks(mean_choice_loss, len(rows), rows_per_batch)
    if chunks is None:
        return None
    losses = [0.0] * len(rows)
    for i, loss in zip(order, torch.cat(chunks).tolist()):  # one transfer per task
        losses[i] = loss
    return summarize_choices(examples, owners, losses)


def summarize_choices(examples: list[dict], owners: list[int], losses: list[float]) -> dict:
    best: dict[int, tuple[float, int]] = {}
    position: dict[int, int] = {}
    for owner, loss in zip(owners, losses):
        k = position.get(owner, 0)
        position[owner] = k + 1
        if owner not in best or loss < best[owner][0]:
            best[owner] = (loss, k)
    correct = sum(best[i][1] == ex["gold"] for i, ex in enumerate(examples))
    accuracy = correct / len(examples)
    chance = sum(1 / len(ex["choices"]) for ex in examples) / len(examples)
    return {"accuracy": accuracy, "centered": centered_accuracy(accuracy, 1 / chance),
            "examples": len(examples), "chance": chance}


def evaluate_core(model: torch.nn.Module, tokenizer: BPETokenizer, tasks: dict[str, dict],
                  seq_len: int, device, batch_size: int = 16, max_examples: int | None = None,
                  autocast=None) -> dict[str, dict]:
    """{task: {accuracy, centered, examples, chance}} for the tasks load_bundle read; tasks that
    could not run are left out."""
    results = {}
    for name, task in tasks.items():
        scored = score_task(model, tokenizer, task, seq_len, device, batch_size, max_examples, autocast)
        if scored is not None:
            results[name] = scored
    return results
