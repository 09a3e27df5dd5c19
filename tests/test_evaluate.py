"""Evaluation: bits per byte by hand, CORE-style scoring, and surviving out-of-memory."""
import json
import math
import random

import pytest
import torch

from shared.model.gpt import build_model, config_for_depth
from shared.model.tokenizer import BPETokenizer
from trainer_svc.evaluate import (centered_accuracy, choice_rows, evaluate_bpb, evaluate_core, load_bundle,
                                  run_in_chunks, summarize_choices)

torch.set_num_threads(2)
WORDS = "the king queen said to be or not that is question of love death night day sword crown".split()


def tokenizer_and_model():
    rng = random.Random(0)
    tok = BPETokenizer.train(["\n".join(" ".join(rng.choices(WORDS, k=8)) for _ in range(200))], 300)
    torch.manual_seed(0)
    return tok, build_model(config_for_depth(1, tok.vocab_size, 32))


def test_bpb_equals_manual_computation():
    tok, model = tokenizer_and_model()
    ids = torch.tensor([tok.encode("the king said to be or not to be, that is the question " * 3, prepend_bos=True)[:33]])
    x, y = ids[:, :-1], ids[:, 1:]
    y[0, 5] = tok.bos_id  # a zero-byte target counts for neither nats nor bytes
    token_bytes = tok.token_bytes()
    bpb = evaluate_bpb(model, [(x, y), (x, y)], token_bytes)
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model(x)[0].double(), y[0], reduction="none")
    keep = token_bytes[y[0]] > 0
    expected = losses[keep].sum().item() / (math.log(2) * token_bytes[y[0]].sum().item())
    assert bpb == pytest.approx(expected, rel=1e-5)


def test_centered_accuracy():
    assert centered_accuracy(0.25, 4) == 0.0
    assert centered_accuracy(1.0, 4) == 1.0
    assert centered_accuracy(0.625, 4) == pytest.approx(0.5)
    assert centered_accuracy(0.0, 2) == -1.0
    examples = [{"choices": ["a", "b"], "gold": 1}, {"choices": ["a", "b", "c", "d"], "gold": 0}]
    result = summarize_choices(examples, [0, 0, 1, 1, 1, 1], [2.0, 1.0, 3.0, 0.5, 1.0, 2.0])
    assert result["accuracy"] == 0.5 and result["chance"] == pytest.approx(0.375)
    assert result["centered"] == pytest.approx((0.5 - 0.375) / 0.625)


def test_choice_rows_mask_the_context():
    tok, _ = tokenizer_and_model()
    [(x, y)] = choice_rows(tok, {"context": "the king", "choices": ["said"], "gold": 0}, "", " ", 32)
    n_choice = len(tok.encode(" said"))
    assert len(x) == len(y) and y[-n_choice:] == tok.encode(" said") and set(y[:-n_choice]) == {-1}
    [(x, y)] = choice_rows(tok, {"context": "the king " * 40, "choices": ["said"], "gold": 0}, "", " ", 32)
    assert len(x) == 32  # cut from the left to fit


def test_run_in_chunks_halves_on_oom():
    sizes = []

    def score(start, end):
        sizes.append(end - start)
        if end - start > 3:
            raise torch.OutOfMemoryError("fake")
        return list(range(start, end))

    chunks = run_in_chunks(score, 10, 16)
    assert [i for c in chunks for i in c] == list(range(10))
    assert sizes[:3] == [10, 8, 4] and max(sizes[3:]) <= 2
    assert run_in_chunks(lambda s, e: (_ for _ in ()).throw(torch.OutOfMemoryError("x")), 3, 2) is None


class OOMAbove(torch.nn.Module):
    """A model that 'runs out of memory' on batches larger than `limit` rows."""

    def __init__(self, model, limit):
        super().__init__()
        self.model, self.limit, self.batches = model, limit, []

    def forward(self, x, *args, **kwargs):
        self.batches.append(x.size(0))
        if x.size(0) > self.limit:
            raise torch.OutOfMemoryError("fake")
        return self.model(x, *args, **kwargs)


def write_bundle(path):
    path.mkdir()
    rng = random.Random(1)
    lines = [{"context": f"the {a} said", "choices": ["to be", "or not", "love"], "gold": rng.randrange(3)}
             for a in WORDS]
    (path / "pick.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    (path / "bundle.json").write_text(json.dumps({"pick": {"few_shot": 2, "delimiter": " "}}))


def test_core_survives_oom_by_halving(tmp_path):
    tok, model = tokenizer_and_model()
    write_bundle(tmp_path / "bundle")
    plain = evaluate_core(model, tok, load_bundle(tmp_path / "bundle"), 32, "cpu", batch_size=16)
    small = OOMAbove(model, 3)
    halved = evaluate_core(small, tok, load_bundle(tmp_path / "bundle"), 32, "cpu", batch_size=16)
    assert halved == plain and max(b for b in small.batches if b <= 3) <= 3
    result = plain["pick"]
    assert result["examples"] == len(WORDS) and result["chance"] == pytest.approx(1 / 3)
    assert result["centered"] == pytest.approx(centered_accuracy(result["accuracy"], 3))
    assert evaluate_core(OOMAbove(model, 0), tok, load_bundle(tmp_path / "bundle"), 32, "cpu") == {}
    x = torch.randint(0, 300, (4, 8))
    assert evaluate_bpb(OOMAbove(model, 1), [(x, x)], tok.token_bytes()) == pytest.approx(
        evaluate_bpb(model, [(x, x)], tok.token_bytes()))
