"""Per-layer activation statistics, computed on the device and moved to the host in one transfer.

Forward hooks are attached only for the forward pass that measures (attach, run, detach), so
ordinary steps pay nothing. Each hook reduces its output to a handful of scalars on the device;
all of them are stacked into one tensor and copied to the host once, because a per-layer `.item()`
would stall the GPU once per number.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from shared.contract.events import LayerStats
from shared.model.gpt import GPT


def summarize(h: torch.Tensor) -> torch.Tensor:
    """[rms, mean, std, max |x|, channel of max |x|] of an output [..., C], as one float tensor."""
    h = h.detach().float()
    per_channel_max = h.abs().flatten(0, -2).amax(dim=0)
    max_abs, channel = per_channel_max.max(dim=0)
    return torch.stack([h.square().mean().sqrt(), h.mean(), h.std(), max_abs, channel.float()])


def dead_fraction(hidden: torch.Tensor) -> torch.Tensor:
    """Share of MLP hidden units that are never > 0 anywhere in the batch."""
    ever_active = (hidden.detach().flatten(0, -2) > 0).any(dim=0)
    return 1.0 - ever_active.float().mean()


def watched_modules(model: GPT) -> list[tuple[int, str, torch.nn.Module]]:
    """(layer, stat name, module) for every output we summarise, in a fixed order."""
    watched = []
    for i, block in enumerate(model.transformer.h):
        watched += [(i, f"block.{i}.attn_out", block.attn), (i, f"block.{i}.mlp_out", block.mlp),
                    (i, f"block.{i}.resid", block)]
    return watched


@torch.no_grad()
def activation_stats(model: GPT, idx: torch.Tensor, autocast=None) -> list[LayerStats]:
    """Run one forward pass on idx with hooks attached and return stats for every block output."""
    watched = watched_modules(model)
    summaries: dict[str, torch.Tensor] = {}
    dead: dict[int, torch.Tensor] = {}

    def summary_hook(name):
        return lambda module, args, output: summaries.__setitem__(name, summarize(output))

    def dead_hook(layer):
        return lambda module, args, output: dead.__setitem__(layer, dead_fraction(output))

    handles = [module.register_forward_hook(summary_hook(name)) for _, name, module in watched]
    handles += [block.mlp.act.register_forward_hook(dead_hook(i)) for i, block in enumerate(model.transformer.h)]
    try:
        with autocast or nullcontext():
            model(idx)
    finally:
        for handle in handles:
            handle.remove()
    n_layers = len(model.transformer.h)
    stacked = torch.cat([torch.stack([summaries[name] for _, name, _ in watched]).flatten(),
                         torch.stack([dead[i] for i in range(n_layers)])])
    values = stacked.tolist()  # the one device-to-host transfer
    return build_layer_stats(watched, values, n_layers)


def build_layer_stats(watched: list[tuple[int, str, torch.nn.Module]], values: list[float],
                      n_layers: int) -> list[LayerStats]:
    dead = values[-n_layers:]
    stats = []
    for k, (layer, name, _) in enumerate(watched):
        rms, mean, std, max_abs, channel = values[5 * k:5 * k + 5]
        stats.append(LayerStats(layer=layer, name=name, rms=rms, mean=mean, std=std, max_abs=max_abs,
                                max_channel=int(channel),
                                dead_frac=dead[layer] if name.endswith("mlp_out") else None))
    return stats
