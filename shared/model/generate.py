"""Text from a model: the trainer's samples, selfplay's reflections and answers all come through here.

Every request of a round goes in one batch: the prompts are prefilled together into a KV cache, then
each step runs one token per row, so a token costs one token's forward instead of the whole window's.
Each row has its own sampling (greedy, or temperature / top-k with its own seeded generator), so a
row's text depends only on (model, prompt, sampling), never on the other rows or the training RNG.
Tokens stay on the device until the round ends and come to the host in one transfer.

The window: when prompt and continuation fit it, the tokens are exactly those of re-running the
model on the whole text each step. When they do not, the round goes in segments of at most a quarter
window of new tokens, each prefilled again from the rows' latest tokens, so every token still sees
at least three quarters of a window of context (the uncached original saw a full window, sliding).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from shared.model.gpt import GPT
from shared.model.kv_cache import KVCache
from shared.model.tokenizer import BPETokenizer


@dataclass(frozen=True)
class Sampling:
    """How one row picks its tokens: greedy at temperature 0, else sampled with its own seed."""
    temperature: float = 0.0
    top_k: int | None = None
    seed: int | None = None


GREEDY = Sampling()


class TokenChooser:
    """Picks the next token of every row from logits [B, V], each row with its own Sampling."""

    def __init__(self, sampling: list[Sampling], device: torch.device):
        self.sampled = [i for i, s in enumerate(sampling) if s.temperature > 0.0]
        self.greedy_rows = torch.tensor([s.temperature == 0.0 for s in sampling], device=device)
        self.temperature = torch.tensor([[s.temperature or 1.0] for s in sampling], device=device)
        self.generators = {i: torch.Generator(device=device).manual_seed(sampling[i].seed or 0)
                           for i in self.sampled}
        top_k = [sampling[i].top_k for i in self.sampled if sampling[i].top_k]
        self.max_top_k = max(top_k, default=0)
        # index of each row's k-th largest logit; rows without top-k take the threshold -inf
        self.kth = torch.tensor([[(s.top_k or 1) - 1] for s in sampling], device=device)
        self.no_top_k = torch.tensor([[not s.top_k] for s in sampling], device=device)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        greedy = logits.argmax(dim=-1)
        if not self.sampled:
            return greedy
        logits = logits.float() / self.temperature
        if self.max_top_k:
            top = torch.topk(logits, min(self.max_top_k, logits.size(-1))).values
            kth = top.gather(1, self.kth.clamp(max=top.size(-1) - 1))
            kth = kth.masked_fill(self.no_top_k, float("-inf"))
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        # an exponential race (argmax p / E, E ~ Exp(1)) draws from p; each row has its own generator
        race = torch.ones_like(probs)
        for i, generator in self.generators.items():
            race[i].exponential_(generator=generator)
        sampled = (probs / race).argmax(dim=-1)
        return torch.where(self.greedy_rows, greedy, sampled)


@torch.no_grad()
def continue_batch(model: GPT, contexts: list[list[int]], n: int, chooser: TokenChooser) -> list[list[int]]:
    """n new tokens for every context (each fits the window with its n tokens): one prefill, then
    one token per row per step, all on the device; one transfer to the host at the end."""
    device = next(model.parameters()).device
    lengths = [len(c) for c in contexts]
    longest = max(lengths)
    padded = torch.tensor([c + [0] * (longest - len(c)) for c in contexts], device=device)
    cache = KVCache(lengths, longest + n, model.config.n_layer, device)
    logits = model(padded, kv_cache=cache)[:, -1]
    tokens = torch.empty(len(contexts), n, dtype=torch.long, device=device)
    for t in range(n):
        tokens[:, t] = chooser(logits)
        if t + 1 < n:
            logits = model(tokens[:, t:t + 1], kv_cache=cache)[:, -1]
    return tokens.tolist()


def generate_batch(model: GPT, prompts: list[list[int]], max_new_tokens: int, sampling: list[Sampling],
                   stop_id: int | None = None) -> list[list[int]]:
    """The continuation ids of every prompt (without the prompt), each row stopping before `stop_id`."""
    assert len(prompts) == len(sampling) and all(prompts), "one Sampling per non-empty prompt"
    window = model.config.sequence_len
    chooser = TokenChooser(sampling, next(model.parameters()).device)
    out: list[list[int]] = [[] for _ in prompts]
    remaining = max_new_tokens
    while remaining > 0 and not (stop_id is not None and all(stop_id in o for o in out)):
        longest = max(len(p) + len(o) for p, o in zip(prompts, out))
        if longest + remaining <= window:
            n = remaining
        else:  # a segment: at most a quarter window of new tokens, unless the rows leave more room
            n = max(window - longest, min(remaining, max(1, window // 4)))
        keep = min(longest, window - n)  # context kept per row
        contexts = [(p + o)[-keep:] for p, o in zip(prompts, out)]
        for o, new in zip(out, continue_batch(model, contexts, n, chooser)):
            o += new
        remaining -= n
    if stop_id is not None:
        out = [o[:o.index(stop_id)] if stop_id in o else o for o in out]
    return out


def generate_texts(model: GPT, tokenizer: BPETokenizer, requests: list[tuple[str, Sampling]],
                   max_new_tokens: int) -> list[str]:
    """The continuation text of every (prompt, sampling), in one batch; a row stops at <|bos|>."""
    prompts = [tokenizer.encode(prompt, prepend_bos=True) for prompt, _ in requests]
    ids = generate_batch(model, prompts, max_new_tokens, [s for _, s in requests], stop_id=tokenizer.bos_id)
    return [tokenizer.decode(row) for row in ids]


def generate(model: GPT, tokenizer: BPETokenizer, prompt: str, max_new_tokens: int,
             temperature: float = 0.0, top_k: int | None = None, seed: int | None = None) -> str:
    """The continuation of `prompt` (without the prompt). Greedy when temperature is 0."""
    return generate_texts(model, tokenizer, [(prompt, Sampling(temperature, top_k, seed))], max_new_tokens)[0]


@torch.no_grad()
def reference_generate_ids(model: GPT, ids: list[int], max_new_tokens: int, temperature: float = 0.0,
                           top_k: int | None = None, seed: int | None = None, stop_id: int | None = None
                           ) -> list[int]:
    """The original generation without a cache: the whole window again for every token, one prompt,
    a host sync per token. Kept as the reference that tests and bench/generate_speed.py compare
    against; nothing else should call it."""
    device = next(model.parameters()).device
    generator = None
    if temperature > 0.0:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed if seed is not None else 0)
    window = model.config.sequence_len
    out: list[int] = []
    for _ in range(max_new_tokens):
        context = (ids + out)[-window:]  # truncate from the left to fit
        logits = model(torch.tensor([context], device=device))[0, -1]
        if temperature == 0.0:
            token = int(logits.argmax())
        else:
            logits = logits.float() / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            token = int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))
        if token == stop_id:
            break
        out.append(token)
    return out
