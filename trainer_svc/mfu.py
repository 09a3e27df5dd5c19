"""Model FLOPs utilisation: achieved training FLOP/s over the card's dense peak.

The peak is looked up by the CUDA device name. Where it is unknown (a CPU, an unlisted card) MFU
is None, never 0, so a dashboard shows "unknown" rather than a false "idle".
"""
from __future__ import annotations

import torch

# (name fragment, dense bf16 FLOP/s, dense fp32 FLOP/s); more specific fragments first
PEAK_FLOPS: list[tuple[str, float, float]] = [
    ("gb200", 2.5e15, 80e12),
    ("b200", 2.25e15, 80e12),
    ("gh200", 989e12, 67e12),
    ("h200", 989e12, 67e12),
    ("h100 pcie", 756e12, 51e12),
    ("h100 nvl", 835e12, 60e12),
    ("h100", 989e12, 67e12),  # SXM
    ("h800", 989e12, 67e12),
    ("a100", 312e12, 19.5e12),
    ("a800", 312e12, 19.5e12),
    ("l40s", 362e12, 91.6e12),
    ("l40", 181e12, 90.5e12),
    ("l4", 121e12, 30.3e12),
    ("a10g", 70e12, 35e12),
    ("a10", 125e12, 31.2e12),
    ("a6000", 155e12, 38.7e12),
    ("rtx 6000 ada", 365e12, 91e12),
    ("4090", 165e12, 82.6e12),
    ("3090", 71e12, 35.6e12),
    ("v100", 125e12, 15.7e12),  # fp16 tensor cores (no bf16)
    ("t4", 65e12, 8.1e12),
    ("mi300x", 1307e12, 163e12),
]


def peak_flops(device_name: str, dtype: torch.dtype = torch.bfloat16) -> float | None:
    name = device_name.lower()
    for fragment, bf16, fp32 in PEAK_FLOPS:
        if fragment in name:
            return bf16 if dtype in (torch.bfloat16, torch.float16) else fp32
    return None


def device_peak_flops(device: torch.device | str, dtype: torch.dtype) -> float | None:
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return peak_flops(torch.cuda.get_device_name(device), dtype)


def mfu(flops_per_token: float, tokens_per_s: float, peak: float | None, n_devices: int = 1) -> float | None:
    if not peak or tokens_per_s <= 0:
        return None
    return flops_per_token * tokens_per_s / (peak * n_devices)
