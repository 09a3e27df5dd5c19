"""Data sources, the held-out split, the resumable loader and the mix schedule."""
import random

import pyarrow as pa
import pytest
import pyarrow.parquet as pq
import torch

from shared.model.tokenizer import BPETokenizer
from trainer_svc.data import MixedTokenLoader, TextSource, read_documents, split_train_val

WORDS = "the king queen said to be or not that is question of love death night day sword crown".split()


def text(n_lines=150, seed=0):
    rng = random.Random(seed)
    return "\n".join(f"{i} " + " ".join(rng.choices(WORDS, k=8)) for i in range(n_lines)) + "\n"


def tokenizer():
    return BPETokenizer.train([text(300, seed=9)], vocab_size=300)


def test_reads_txt_folder_and_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.md").write_text("beta\n")
    (folder / "sub" / "c.txt").write_text("gamma\n")
    (folder / "ignored.json").write_text("{}")
    pq.write_table(pa.table({"text": ["delta", "", "epsilon"], "id": [1, 2, 3]}), folder / "d.parquet")
    assert read_documents(tmp_path / "a.txt") == ["alpha\n"]
    assert read_documents(folder) == ["beta\n", "delta", "epsilon", "gamma\n"]
    assert read_documents(folder / "d.parquet") == ["delta", "epsilon"]


def test_val_split_is_disjoint_deterministic_and_spread():
    documents = [text(200, seed=1), text(100, seed=2)]
    train, val = split_train_val(documents, 0.1)
    train_blocks = [b for blocks in train for b in blocks]
    assert val and not set(val) & set(train_blocks)
    assert "".join(train_blocks + val).count("\n") == 300  # nothing lost
    assert (train, val) == split_train_val(documents, 0.1)
    assert split_train_val(documents, 0.0)[1] == []


def test_tiny_source_still_holds_out_a_block():
    train, val = split_train_val(["a line\n" * 80], 0.05)
    assert len(val) == 1 and train[0]


def make_loader(tmp_path, seed=0, batch_size=4, n_lines=300):
    (tmp_path / "a.txt").write_text(text(n_lines, seed=1))
    (tmp_path / "b.txt").write_text(text(n_lines, seed=2))
    loader = MixedTokenLoader(batch_size, 16, seed=seed, val_fraction=0.1, tokenizer=tokenizer())
    loader.add_source("a", tmp_path / "a.txt")
    loader.add_source("b", tmp_path / "b.txt", weight=0.5)
    return loader


def test_batches_shapes_and_shift(tmp_path):
    loader = make_loader(tmp_path)
    x, y = loader.next_batch()
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    val = list(loader.val_batches("a", max_tokens=64, batch_size=2))
    assert val and all(vx.shape[1] == 16 for vx, _ in val)


def test_state_roundtrip_gives_identical_next_batches(tmp_path):
    loader = make_loader(tmp_path, n_lines=60)
    for _ in range(7):
        loader.next_batch()
    state = loader.state_dict()
    expected = [loader.next_batch() for _ in range(80)]  # long enough to wrap around a source
    resumed = MixedTokenLoader(4, 16, seed=123, val_fraction=0.3, tokenizer=loader.tokenizer)
    resumed.load_state_dict(state)
    for (x, y), (rx, ry) in zip(expected, (resumed.next_batch() for _ in range(80))):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    assert max(loader.epochs.values()) >= 1


def test_same_seed_same_stream_other_seed_other_stream(tmp_path):
    a = make_loader(tmp_path, seed=1)
    b = make_loader(tmp_path, seed=1)
    c = make_loader(tmp_path, seed=2)
    xa, xb, xc = ([l.next_batch()[0] for _ in range(5)] for l in (a, b, c))
    assert all(torch.equal(p, q) for p, q in zip(xa, xb))
    assert not all(torch.equal(p, q) for p, q in zip(xa, xc))


def test_source_joins_at_step_and_weights_change(tmp_path):
    loader = make_loader(tmp_path)
    loader.add_source("philosophy", ["Know thyself. " * 40 + "\n"] * 20, weight=2.0, start_step=5)
    assert loader.mix() == {"a": 2 / 3, "b": 1 / 3}
    assert loader.activate_due(4) == []
    assert loader.activate_due(5) == ["philosophy"]
    assert loader.mix() == pytest.approx({"a": 1 / 3.5, "b": 0.5 / 3.5, "philosophy": 2 / 3.5})
    loader.set_weights({"a": 0.0, "b": 0.0})
    x, _ = loader.next_batch()
    assert "Know thyself" in loader.tokenizer.decode(x[0].tolist())
    assert "king" not in loader.tokenizer.decode(x.flatten().tolist())


def test_pending_source_survives_state_roundtrip(tmp_path):
    loader = make_loader(tmp_path)
    loader.add_source("late", tmp_path / "a.txt", weight=1.0, start_step=10)
    resumed = MixedTokenLoader(4, 16, tokenizer=loader.tokenizer)
    resumed.load_state_dict(loader.state_dict())
    assert resumed.pending == {"late": (10, 1.0)} and "late" not in resumed.weights
    assert resumed.activate_due(10) == ["late"]


def test_a_short_source_is_packed_and_repeated_to_fill_rows(tmp_path):
    loader = MixedTokenLoader(2, 64, tokenizer=tokenizer())
    loader.add_source("short", ["just a few words\n", "and a few more\n"])
    loader.prepare("short")
    stream = loader.sources["short"].train_tokens.tolist()  # one pass: each document after a BOS
    assert stream.count(loader.tokenizer.bos_id) == 2 and len(stream) < 65
    row = loader._row("short").tolist()
    assert len(row) == 65 and row[:len(stream)] == stream and row[len(stream):2 * len(stream)] == stream
    try:
        loader.add_source("empty", [""])
    except ValueError as error:
        assert "empty" in str(error)
    else:
        raise AssertionError("expected ValueError")
    assert TextSource("t", texts=["x\n"]).spec() == {"path": None, "texts": ["x\n"]}


def test_rows_read_a_source_as_a_ring_so_no_tail_is_skipped():
    loader = MixedTokenLoader(1, 16, tokenizer=tokenizer())
    loader.add_source("two", ["Neighbours help each other.\n", "Strangers become friends.\n"])
    stream = loader._tokens("two").train_tokens.tolist()
    assert len(stream) > 17 and len(stream) % 16  # rows do not tile the stream exactly
    read = [t for _ in range(len(stream)) for t in loader._row("two").tolist()[:16]]  # inputs of each row
    assert read[:len(stream) * 16] == (stream * 16)[:len(stream) * 16]  # every token, in order, each pass
    assert loader.epochs["two"] == 16
