"""Byte-level BPE trained on the run's own corpus with HuggingFace `tokenizers`.

The tokenizer travels inside every checkpoint as a JSON string, so a service that downloads a
checkpoint decodes exactly as the trainer encoded. `token_bytes` gives the UTF-8 length of each
token, which turns a loss in nats into bits per byte, a number comparable across vocabularies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS = "<|bos|>"
SPECIAL_TOKENS = [BOS]
TOKENIZER_FILE = "tokenizer.json"


class BPETokenizer:
    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.bos_id = tokenizer.token_to_id(BOS)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> "BPETokenizer":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable
        )
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer)

    @classmethod
    def from_json(cls, data: str) -> "BPETokenizer":
        return cls(Tokenizer.from_str(data))

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "BPETokenizer":
        return cls.from_json((Path(directory) / TOKENIZER_FILE).read_text())

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str, prepend_bos: bool = False) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if prepend_bos else ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token_bytes(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """UTF-8 bytes per token id; 0 for special tokens. Each character of a byte-level token
        string stands for exactly one byte, so the length of the token string is its byte count."""
        counts = torch.zeros(self.vocab_size, dtype=torch.int64)
        special = set(SPECIAL_TOKENS)
        for token, idx in self.tokenizer.get_vocab().items():
            counts[idx] = 0 if token in special else len(token)
        return counts.to(device)
