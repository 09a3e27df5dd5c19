"""Keys and values kept between forward passes, so each generated token costs one token's forward.

A cache serves a batch of rows whose prompts differ in length. The prompts are right-padded and
prefilled in one causal pass (a real token never sees the padding after it); then every row writes
its next token at its own position and attends only to the slots it has filled, so a row computes
exactly what it would alone. Positions and masks stay on the device; the host tracks only the
longest row, which it knows without asking the device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class KVCache:
    """Per-layer keys and values [B, H, capacity, D] of a batch of rows.

    The first forward through the cache is the prefill (every row's prompt, right-padded); each later
    forward takes one token per row.
    """

    def __init__(self, prompt_lengths: list[int], capacity: int, n_layer: int, device: torch.device):
        assert prompt_lengths and min(prompt_lengths) >= 1, "every row needs at least one prompt token"
        assert max(prompt_lengths) <= capacity, f"prompt of {max(prompt_lengths)} tokens over capacity {capacity}"
        self.capacity = capacity
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer
        self.prompt_lengths = torch.tensor(prompt_lengths, device=device)
        self.rows = torch.arange(len(prompt_lengths), device=device)
        self.lengths = torch.zeros_like(self.prompt_lengths)  # tokens each row holds
        self.longest = 0  # the same for the longest row, on the host: 0 until the prefill
        self.longest_prompt = max(prompt_lengths)
        self.mask: torch.Tensor | None = None  # of the current decode step, shared by every layer

    @property
    def prefilled(self) -> bool:
        return self.longest > 0

    def rotary(self, cos: torch.Tensor, sin: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary tables [1 or B, T, 1, D/2] of this forward's tokens; prepares the step's mask."""
        if not self.prefilled:
            assert T == self.longest_prompt, f"prefill of {T} tokens, prompts are {self.longest_prompt} long"
            return cos[:, :T], sin[:, :T]
        assert T == 1, "after the prefill the cache takes one token per row"
        assert self.longest < self.capacity, f"cache full ({self.capacity} tokens)"
        slots = torch.arange(self.longest + 1, device=self.lengths.device)
        self.mask = (slots[None, :] <= self.lengths[:, None])[:, None, None, :]  # [B, 1, 1, K]
        return cos[0, self.lengths][:, None], sin[0, self.lengths][:, None]

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Store this forward's k, v [B, H, T, D] for `layer` and attend q to everything the row holds."""
        if self.keys[layer] is None:
            B, H, _, D = k.shape
            # zeros, not empty: a masked slot still meets a zero weight, and 0 * NaN would be NaN
            self.keys[layer] = k.new_zeros(B, H, self.capacity, D)
            self.values[layer] = v.new_zeros(B, H, self.capacity, D)
        keys, values = self.keys[layer], self.values[layer]
        gqa = q.size(1) != k.size(1)
        if not self.prefilled:
            T = k.size(2)
            keys[:, :, :T], values[:, :, :T] = k, v
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        keys[self.rows, :, self.lengths] = k[:, :, 0]
        values[self.rows, :, self.lengths] = v[:, :, 0]
        K = self.longest + 1
        return F.scaled_dot_product_attention(q, keys[:, :, :K], values[:, :, :K], attn_mask=self.mask,
                                              enable_gqa=gqa)

    def advance(self, x: torch.Tensor) -> torch.Tensor:
        """After the layers: each row's hidden state at its last token [B, 1, C]; the rows move on."""
        if not self.prefilled:
            x = x[self.rows, self.prompt_lengths - 1][:, None]
            self.lengths = self.prompt_lengths.clone()
            self.longest = self.longest_prompt
        else:
            self.lengths = self.lengths + 1
            self.longest += 1
        return x
