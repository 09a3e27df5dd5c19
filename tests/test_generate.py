"""Generation with a KV cache, batched: the same tokens as the uncached original, reproducible samples."""
import pytest
import torch

from shared.model.generate import (GREEDY, Sampling, generate_batch, generate_texts,
                                   reference_generate_ids)
from shared.model.gpt import build_model, config_for_depth

torch.set_num_threads(1)
VOCAB, WINDOW = 300, 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model(config_for_depth(2, VOCAB, WINDOW))
    with torch.no_grad():  # spread the logits: a fresh init makes them nearly equal
        for p in model.parameters():
            p.normal_(0.0, 0.05)
        model.lm_head.weight.normal_(0.0, 0.5)
    return model


PROMPTS = [list(range(1, 6)), list(range(7, 30)), [5], list(range(40, 52))]


def test_greedy_batch_equals_uncached_reference_token_for_token(model):
    expected = [reference_generate_ids(model, p, 20) for p in PROMPTS]
    assert generate_batch(model, PROMPTS, 20, [GREEDY] * len(PROMPTS)) == expected


def test_seeded_sample_is_reproducible_and_independent_of_other_rows(model):
    sampling = [Sampling(1.0, 20, seed=3), Sampling(0.8, None, seed=4), GREEDY]
    first = generate_batch(model, PROMPTS[:3], 16, sampling)
    assert first == generate_batch(model, PROMPTS[:3], 16, sampling)
    assert first[0] == generate_batch(model, PROMPTS[:1], 16, sampling[:1])[0]
    assert first[1] == generate_batch(model, [PROMPTS[2], PROMPTS[1]], 16, [GREEDY, sampling[1]])[1]
    assert first[2] == reference_generate_ids(model, PROMPTS[2], 16)
    other_seed = generate_batch(model, PROMPTS[:1], 16, [Sampling(1.0, 20, seed=5)])[0]
    assert other_seed != first[0]


def test_top_k_of_one_samples_the_greedy_tokens(model):
    assert generate_batch(model, PROMPTS, 12, [Sampling(1.5, 1, seed=9)] * 4) == \
        generate_batch(model, PROMPTS, 12, [GREEDY] * 4)


def test_long_prompt_keeps_its_last_tokens_so_the_continuation_fits_the_window(model):
    prompt = list(range(1, 120))  # longer than the window
    assert generate_batch(model, [prompt], 10, [GREEDY]) == \
        [reference_generate_ids(model, prompt[-(WINDOW - 10):], 10)]


def test_a_continuation_past_the_window_goes_in_quarter_window_segments(model):
    prompt, quarter = list(range(1, 120)), WINDOW // 4
    out = generate_batch(model, [prompt], 40, [GREEDY])[0]
    assert len(out) == 40
    for start in (0, quarter, 2 * quarter):  # each segment sees the latest (window - its length) tokens
        n = min(quarter, 40 - start)
        context = (prompt + out[:start])[-(WINDOW - n):]
        assert out[start:start + n] == reference_generate_ids(model, context, n)


def test_more_new_tokens_than_the_window_go_in_segments(model):
    out = generate_batch(model, [PROMPTS[0], PROMPTS[1]], 150, [GREEDY, Sampling(1.0, 50, seed=1)])
    assert [len(row) for row in out] == [150, 150]
    first_segment = WINDOW - len(PROMPTS[1])  # the longest prompt fills the window in the first one
    assert out[0][:first_segment] == reference_generate_ids(model, PROMPTS[0], first_segment)


def test_each_row_stops_before_the_stop_token(model):
    free = reference_generate_ids(model, PROMPTS[1], 20)
    stop = free[5]
    rows = generate_batch(model, [PROMPTS[1], PROMPTS[0]], 20, [GREEDY, GREEDY], stop_id=stop)
    assert rows[0] == free[:free.index(stop)] == reference_generate_ids(model, PROMPTS[1], 20, stop_id=stop)
    assert rows[1] == reference_generate_ids(model, PROMPTS[0], 20, stop_id=stop)


def test_texts_come_back_in_request_order(model):
    from shared.model.tokenizer import BPETokenizer
    tokenizer = BPETokenizer.train(["the king said to the queen " * 50], vocab_size=VOCAB)
    requests = [("the king", GREEDY), ("the queen", Sampling(0.9, 10, seed=7)), ("the king", GREEDY)]
    texts = generate_texts(model, tokenizer, requests, 8)
    assert len(texts) == 3 and texts[0] == texts[2]
    assert texts == generate_texts(model, tokenizer, requests, 8)
