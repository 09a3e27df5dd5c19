"""The trainer's optimizers: AdamW for embeddings and lm_head, Muon or AdamW for the block matrices.

Only the trainer updates weights, so this lives beside the training loop, not with the model.
"""
from __future__ import annotations

import torch

from shared.model.gpt import GPT

def zeropower_via_newtonschulz5(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximate orthogonalisation of G (Muon's update), quintic Newton–Schulz as in modded-nanogpt."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.bfloat16() if G.is_cuda else G.float()
    transposed = X.size(-2) > X.size(-1)
    if transposed:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return (X.mT if transposed else X).to(G.dtype)


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton–Schulz, for 2-D weight matrices only."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p.grad))
                buf.lerp_(p.grad, 1 - group["momentum"])
                g = p.grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
                g = zeropower_via_newtonschulz5(g, group["ns_steps"])
                scale = max(1.0, p.size(-2) / p.size(-1)) ** 0.5
                p.add_(g, alpha=-group["lr"] * scale)


def setup_optimizers(model: GPT, optimizer: str = "adamw", matrix_lr: float = 0.02,
                     embedding_lr: float = 0.2, unembedding_lr: float = 0.004,
                     weight_decay: float = 0.0) -> list[torch.optim.Optimizer]:
    """AdamW for embedding and lm_head (lr scaled by 1/sqrt(width/768), as nanochat); the block
    matrices go to Muon or to AdamW. Each group records `initial_lr` for the schedule."""
    scale = (model.config.n_embd / 768) ** -0.5
    matrices = [p for p in model.transformer.h.parameters()]
    adam_groups = [
        dict(params=[model.transformer.wte.weight], lr=embedding_lr * scale),
        dict(params=[model.lm_head.weight], lr=unembedding_lr * scale),
    ]
    if optimizer == "adamw":
        adam_groups.append(dict(params=matrices, lr=matrix_lr))
    adamw = torch.optim.AdamW(adam_groups, betas=(0.8, 0.95), eps=1e-10, weight_decay=weight_decay)
    optimizers: list[torch.optim.Optimizer] = [adamw]
    if optimizer == "muon":
        optimizers.append(Muon(matrices, lr=matrix_lr))
    elif optimizer != "adamw":
        raise ValueError(f"unknown optimizer {optimizer!r}")
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers
