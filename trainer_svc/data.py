"""Training data: named text sources, a held-out split per source, and a resumable mixed stream.

A source is a .txt/.md file, a folder of them, or parquet shards with a `text` column. Each
document is cut into blocks at line ends; every k-th block (k = 1/val_fraction) is held out, so the
validation set is spread over the whole source, is fixed by the text alone, and never overlaps
training. Sources are tokenized on first use and the ids cached.

The stream draws each row of a batch from a source chosen by weight, with a generator seeded by
(seed, batch index), and reads that source sequentially from its cursor. The whole position is a
few integers, so `state_dict()` / `load_state_dict()` resume it exactly. New sources can join at a
step (`--mix`) or at run time (`add_source`, `set_weights`).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

import torch

from shared.model.tokenizer import BPETokenizer

TEXT_SUFFIXES = {".txt", ".md"}


def read_parquet_texts(path: Path) -> list[str]:
    import pyarrow.parquet as pq
    return [t for t in pq.read_table(path, columns=["text"]).column("text").to_pylist() if t]


def read_documents(path: str | Path) -> list[str]:
    """Documents of a file, a parquet shard, or a folder of either (sorted, recursive)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES | {".parquet"})
        return [doc for f in files for doc in read_documents(f)]
    if path.suffix == ".parquet":
        return read_parquet_texts(path)
    return [path.read_text(encoding="utf-8", errors="replace")]


def split_blocks(text: str, block_chars: int) -> list[str]:
    """Consecutive line-aligned blocks of at least block_chars characters (the last may be shorter)."""
    blocks, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        size += len(line)
        if size >= block_chars:
            blocks.append("".join(current))
            current, size = [], 0
    if current:
        blocks.append("".join(current))
    return blocks


def split_train_val(documents: list[str], val_fraction: float) -> tuple[list[list[str]], list[str]]:
    """(train blocks per document, held-out blocks): every k-th block of the source is held out."""
    block_chars = min(4096, max(256, sum(map(len, documents)) // 200))
    every = max(2, round(1 / val_fraction)) if val_fraction > 0 else 0
    train, val, index = [], [], 0
    for doc in documents:
        kept = []
        for block in split_blocks(doc, block_chars):
            (val if every and index % every == every - 1 else kept).append(block)
            index += 1
        train.append(kept)
    if every and not val and index >= 2:  # too few blocks for the stride: hold out the last one
        last = max(i for i, kept in enumerate(train) if kept)
        val.append(train[last].pop())
    return train, val


class TextSource:
    """One named source: its split text, then its cached token ids (train stream, val stream)."""

    def __init__(self, name: str, path: str | None = None, texts: list[str] | None = None,
                 val_fraction: float = 0.05):
        self.name, self.path, self.texts, self.val_fraction = name, path, texts, val_fraction
        documents = texts if texts is not None else read_documents(path)
        if not any(documents):
            raise ValueError(f"source {name!r} ({path}) holds no text")
        self.train_blocks, self.val_blocks = split_train_val(documents, val_fraction)
        self.train_tokens: torch.Tensor | None = None
        self.val_tokens: torch.Tensor | None = None

    def train_text(self) -> Iterator[str]:
        for blocks in self.train_blocks:
            yield from blocks

    def tokenize(self, tokenizer: BPETokenizer) -> None:
        """Train stream: <|bos|> + the document's kept blocks; val stream: <|bos|> + each held-out block."""
        if self.train_tokens is not None:
            return
        flat = [b for blocks in self.train_blocks for b in blocks]
        encoded, train, i = tokenizer.encode_batch(flat), [], 0
        for blocks in self.train_blocks:
            if blocks:
                train.append(tokenizer.bos_id)
                for ids in encoded[i:i + len(blocks)]:
                    train.extend(ids)
                i += len(blocks)
        val = [t for ids in tokenizer.encode_batch(self.val_blocks) for t in (tokenizer.bos_id, *ids)]
        self.train_tokens = torch.tensor(train, dtype=torch.int64)
        self.val_tokens = torch.tensor(val, dtype=torch.int64)
        self.train_blocks = self.val_blocks = None  # the ids are all we need from now on

    def spec(self) -> dict:
        return {"path": self.path, "texts": self.texts}


class MixedTokenLoader:
    """(x, y) batches of shape [batch_size, seq_len] drawn from weighted sources, resumable exactly.

    With world_size > 1 every rank draws the same global batch and keeps its own slice of rows, so
    all ranks hold the same position and rank 0's state_dict resumes them all."""

    def __init__(self, batch_size: int, seq_len: int, seed: int = 0, val_fraction: float = 0.05,
                 tokenizer: BPETokenizer | None = None, rank: int = 0, world_size: int = 1):
        self.batch_size, self.seq_len, self.seed, self.val_fraction = batch_size, seq_len, seed, val_fraction
        self.tokenizer, self.rank, self.world_size = tokenizer, rank, world_size
        self.sources: dict[str, TextSource] = {}
        self.weights: dict[str, float] = {}  # sources in the mix now
        self.pending: dict[str, tuple[int, float]] = {}  # name -> (joining step, weight)
        self.cursors: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.batch_index = 0

    def add_source(self, name: str, path_or_texts: str | Path | list[str], weight: float = 1.0,
                   start_step: int = 0) -> None:
        if name in self.sources:
            raise ValueError(f"source {name!r} already exists")
        if isinstance(path_or_texts, (str, Path)):
            source = TextSource(name, path=str(path_or_texts), val_fraction=self.val_fraction)
        else:
            # inline texts are a person's few sentences (counter-examples): all of them train
            source = TextSource(name, texts=list(path_or_texts), val_fraction=0.0)
        self.sources[name] = source
        self.cursors.setdefault(name, 0)
        self.epochs.setdefault(name, 0)
        if start_step > 0:
            self.pending[name] = (start_step, weight)
        else:
            self.weights[name] = weight

    def prepare(self, name: str) -> None:
        """Tokenize a source now and check it is long enough (raises ValueError if not)."""
        self._tokens(name)

    def describe(self, name: str) -> str:
        """'name (N texts|path, M tokens)': what a source brings, for the mix event."""
        source = self._tokens(name)
        what = f"{len(source.texts)} texts" if source.texts is not None else source.path
        return f"{name} ({what}, {source.train_tokens.numel()} tokens a pass)"

    def remove_source(self, name: str) -> None:
        for table in (self.sources, self.weights, self.pending, self.cursors, self.epochs):
            table.pop(name, None)

    def set_weights(self, weights: dict[str, float]) -> None:
        unknown = set(weights) - set(self.sources)
        if unknown:
            raise KeyError(f"unknown sources {sorted(unknown)}")
        for name, weight in weights.items():
            self.pending.pop(name, None)
            self.weights[name] = float(weight)

    def activate_due(self, step: int) -> list[str]:
        """Bring scheduled sources whose step has come into the mix; returns their names."""
        due = sorted(name for name, (start, _) in self.pending.items() if start <= step)
        for name in due:
            self.weights[name] = self.pending.pop(name)[1]
        return due

    def mix(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {name: w / total for name, w in sorted(self.weights.items())} if total else {}

    def train_text(self, max_chars: int) -> Iterator[str]:
        """Training blocks of the sources in the mix now, for tokenizer training."""
        used = 0
        for name in sorted(self.weights):
            for block in self.sources[name].train_text():
                if used >= max_chars:
                    return
                used += len(block)
                yield block

    def _tokens(self, name: str) -> TextSource:
        source = self.sources[name]
        source.tokenize(self.tokenizer)
        if source.train_tokens.numel() == 0:
            raise ValueError(f"source {name!r} has no training tokens")
        return source

    def _row(self, name: str) -> torch.Tensor:
        """The next seq_len + 1 tokens of the source, read as a ring: a row that runs past the end
        goes on at its start (a new epoch), so no tail is ever skipped, and a source shorter than a
        row (a few counter-examples) is repeated within it, its documents BOS-separated."""
        tokens, T = self._tokens(name).train_tokens, self.seq_len
        n, start = tokens.numel(), self.cursors[name]
        if start + T >= n:
            self.epochs[name] += 1
        self.cursors[name] = (start + T) % n
        if start + T + 1 <= n:
            return tokens[start:start + T + 1]  # a view; the index below copies
        return tokens[torch.arange(start, start + T + 1) % n]

    def next_batch(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        names = sorted(n for n, w in self.weights.items() if w > 0)
        if not names:
            raise RuntimeError("no source with positive weight in the mix")
        rng = random.Random(f"{self.seed}:{self.batch_index}")
        chosen = rng.choices(names, weights=[self.weights[n] for n in names],
                             k=self.batch_size * self.world_size)
        rows = torch.stack([self._row(name) for name in chosen])
        self.batch_index += 1
        mine = rows[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        pin = torch.device(device).type == "cuda"
        mine = mine.pin_memory() if pin else mine
        return (mine[:, :-1].to(device, non_blocking=pin), mine[:, 1:].to(device, non_blocking=pin))

    def val_batches(self, name: str, max_tokens: int, batch_size: int,
                    device: str | torch.device = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed validation rows of one source: the first max_tokens held-out tokens, seq_len a row."""
        tokens, T = self._tokens(name).val_tokens, self.seq_len
        if tokens.numel() < 2:
            return
        if tokens.numel() < T + 1:
            T = tokens.numel() - 1
        n_rows = max(1, min(max_tokens // T, (tokens.numel() - 1) // T))
        rows = torch.stack([tokens[i * T:i * T + T + 1] for i in range(n_rows)])
        for start in range(0, n_rows, batch_size):
            chunk = rows[start:start + batch_size].to(device)
            yield chunk[:, :-1], chunk[:, 1:]

    def state_dict(self) -> dict:
        return {
            "seed": self.seed, "batch_index": self.batch_index, "val_fraction": self.val_fraction,
            "sources": {name: s.spec() for name, s in self.sources.items()},
            "weights": dict(self.weights),
            "pending": {name: [start, w] for name, (start, w) in self.pending.items()},
            "cursors": dict(self.cursors), "epochs": dict(self.epochs),
        }

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.batch_index, self.val_fraction = state["seed"], state["batch_index"], state["val_fraction"]
        self.sources, self.weights, self.pending = {}, {}, {}
        for name, spec in state["sources"].items():
            self.add_source(name, spec["path"] if spec["texts"] is None else spec["texts"], 0.0)
        self.weights = {name: float(w) for name, w in state["weights"].items()}
        self.pending = {name: (int(start), float(w)) for name, (start, w) in state["pending"].items()}
        self.cursors, self.epochs = dict(state["cursors"]), dict(state["epochs"])
