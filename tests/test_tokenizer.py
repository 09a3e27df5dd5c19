"""The BPE tokenizer: roundtrip, bytes per token, and serialisation into checkpoints."""
import random

import torch

from shared.model.generate import generate
from shared.model.gpt import build_model, config_for_depth
from shared.model.tokenizer import BPETokenizer

WORDS = "the king queen said to be or not that is question of love death night day sword crown".split()


def corpus(n_lines=200, seed=0):
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choices(WORDS, k=8)).capitalize() + "." for _ in range(n_lines))


def test_roundtrip_and_token_bytes():
    tok = BPETokenizer.train([corpus()], vocab_size=300)
    assert tok.vocab_size == 300 and tok.bos_id is not None
    text = "The king said: Ünïcödé ☃ 日本語 — not in training!\n\n\ttabs  "
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    token_bytes = tok.token_bytes()
    assert int(token_bytes[ids].sum()) == len(text.encode("utf-8"))
    assert token_bytes[tok.bos_id] == 0
    assert tok.encode(text, prepend_bos=True)[0] == tok.bos_id
    assert tok.decode(tok.encode(text, prepend_bos=True)) == text


def test_json_and_directory_roundtrip(tmp_path):
    tok = BPETokenizer.train([corpus()], vocab_size=280)
    text = corpus(5, seed=1)
    assert BPETokenizer.from_json(tok.to_json()).encode(text) == tok.encode(text)
    tok.save(tmp_path)
    assert BPETokenizer.load(tmp_path).encode(text) == tok.encode(text)


def test_generate_returns_continuation_text():
    tok = BPETokenizer.train([corpus()], vocab_size=300)
    torch.manual_seed(0)
    model = build_model(config_for_depth(1, tok.vocab_size, 32))
    out = generate(model, tok, "The king", 5, temperature=0.9, top_k=10, seed=7)
    assert isinstance(out, str)
    assert out == generate(model, tok, "The king", 5, temperature=0.9, top_k=10, seed=7)
