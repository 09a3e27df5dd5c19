"""Per-layer activation statistics, gathered from a forward pass the model runs anyway.

The trainer's measuring step asks its own forward for them (`GPT.forward(..., with_stats=True)`),
so no extra pass runs: each block reduces its outputs to a handful of scalars on the device, all of
them are concatenated into one tensor, and that tensor goes to the host once, because a per-layer
`.item()` would stall the GPU once per number.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from shared.contract.events import LayerStats
from shared.model.gpt import GPT, STATS_PER_LAYER

OUTPUTS = ("attn_out", "mlp_out", "resid")  # the order of a block's summaries in the stats tensor


def layer_stats(stats: torch.Tensor) -> list[LayerStats]:
    """LayerStats for every block output, from the forward's stats tensor (one host transfer)."""
    values = stats.tolist()  # the one device-to-host transfer
    layers = []
    for layer in range(len(values) // STATS_PER_LAYER):
        block = values[layer * STATS_PER_LAYER:(layer + 1) * STATS_PER_LAYER]
        dead = block[-1]
        for k, output in enumerate(OUTPUTS):
            rms, mean, std, max_abs, channel = block[5 * k:5 * k + 5]
            layers.append(LayerStats(layer=layer, name=f"block.{layer}.{output}", rms=rms, mean=mean,
                                     std=std, max_abs=max_abs, max_channel=int(channel),
                                     dead_frac=dead if output == "mlp_out" else None))
    return layers


@torch.no_grad()
def activation_stats(model: GPT, idx: torch.Tensor, autocast=None) -> list[LayerStats]:
    """Statistics of one forward pass on idx, for a model outside the training loop (a notebook)."""
    with autocast or nullcontext():
        _, stats = model(idx, with_stats=True)
    return layer_stats(stats)
