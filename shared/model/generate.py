"""Text from a model: the trainer's samples and selfplay's reflections both come through here.

No KV cache: the models are small and samples are short, so re-running the window each token keeps
this obviously correct. Sampling uses its own seeded generator, so a sample is reproducible from
(checkpoint, prompt, settings) and never disturbs the training RNG.
"""
from __future__ import annotations

import torch

from shared.model.gpt import GPT
from shared.model.tokenizer import BPETokenizer


def next_token(logits: torch.Tensor, temperature: float, top_k: int | None,
               generator: torch.Generator | None) -> int:
    if temperature == 0.0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate_ids(model: GPT, ids: list[int], max_new_tokens: int, temperature: float = 0.0,
                 top_k: int | None = None, seed: int | None = None, stop_id: int | None = None
                 ) -> list[int]:
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
        token = next_token(logits, temperature, top_k, generator)
        if token == stop_id:
            break
        out.append(token)
    return out


def generate(model: GPT, tokenizer: BPETokenizer, prompt: str, max_new_tokens: int,
             temperature: float = 0.0, top_k: int | None = None, seed: int | None = None) -> str:
    """The continuation of `prompt` (without the prompt). Greedy when temperature is 0."""
    ids = tokenizer.encode(prompt, prepend_bos=True)
    out = generate_ids(model, ids, max_new_tokens, temperature, top_k, seed, stop_id=tokenizer.bos_id)
    return tokenizer.decode(out)
