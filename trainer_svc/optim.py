"""The trainer's optimizers: AdamW for embeddings and lm_head, Muon or AdamW for the block matrices.

Only the trainer updates weights, so this lives beside the training loop, not with the model.
"""
from __future__ import annotations

import functools

import torch

from shared.model.gpt import GPT

def zeropower_via_newtonschulz5(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximate orthogonalisation of G [..., m, n] (Muon's update), quintic Newton–Schulz as in
    modded-nanogpt; a stack of matrices is orthogonalised each on its own, in bf16 on CUDA."""
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


def muon_update(grads: torch.Tensor, momentum_buffer: torch.Tensor, momentum: float, nesterov: bool,
                ns_steps: int) -> torch.Tensor:
    """Muon's update of a stack of same-shape matrices [K, m, n]: momentum (in place), then
    orthogonalise. `grads` is a scratch stack and is overwritten."""
    momentum_buffer.lerp_(grads, 1 - momentum)
    g = grads.lerp_(momentum_buffer, momentum) if nesterov else momentum_buffer
    return zeropower_via_newtonschulz5(g, ns_steps)


@functools.cache
def compiled_muon_update():
    """One compiled graph per stack shape (momentum, Newton–Schulz and casts fused); CUDA only, since
    on the CPU compiling costs more than the step saves."""
    return torch.compile(muon_update, dynamic=False, fullgraph=True)


def same_shape_stacks(params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    stacks: dict[torch.Size, list[torch.Tensor]] = {}
    for p in params:
        stacks.setdefault(p.shape, []).append(p)
    return list(stacks.values())


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton–Schulz, for 2-D weight matrices only.

    Matrices of the same shape are updated as one stack: one batched Newton–Schulz (one compiled
    step per stack on CUDA) instead of one per matrix. The stack's momentum lives in the state of its
    first matrix, [K, m, n], so it round-trips through state_dict. A matrix without a gradient (frozen)
    keeps its weights and its momentum.
    """

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for stack in same_shape_stacks(group["params"]):
                self.step_stack(group, stack)

    def step_stack(self, group: dict, params: list[torch.Tensor]) -> None:
        live = [i for i, p in enumerate(params) if p.grad is not None]
        if not live:
            return
        buffer = self.momentum_buffer(params)
        grads = torch.stack([params[i].grad for i in live])
        whole = len(live) == len(params)
        live_buffer = buffer if whole else buffer[live]  # a copy: written back below
        update = compiled_muon_update() if grads.is_cuda else muon_update
        g = update(grads, live_buffer, group["momentum"], group["nesterov"], group["ns_steps"])
        if not whole:
            buffer[live] = live_buffer
        scale = max(1.0, params[0].size(-2) / params[0].size(-1)) ** 0.5
        torch._foreach_add_([params[i] for i in live], list(g.unbind(0)), alpha=-group["lr"] * scale)

    def momentum_buffer(self, params: list[torch.Tensor]) -> torch.Tensor:
        state = self.state[params[0]]
        buffer = state.get("momentum_buffer")
        if buffer is not None and buffer.dim() == params[0].dim():  # a checkpoint from per-matrix Muon
            buffer = torch.stack([self.state[p].pop("momentum_buffer", torch.zeros_like(p)) for p in params])
        elif buffer is None:
            buffer = torch.zeros(len(params), *params[0].shape, dtype=params[0].dtype, device=params[0].device)
        state["momentum_buffer"] = buffer
        return buffer


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
    adamw = torch.optim.AdamW(adam_groups, betas=(0.8, 0.95), eps=1e-10, weight_decay=weight_decay,
                              fused=model.lm_head.weight.is_cuda or None)  # one kernel for all tensors
    optimizers: list[torch.optim.Optimizer] = [adamw]
    if optimizer == "muon":
        optimizers.append(Muon(matrices, lr=matrix_lr))
    elif optimizer != "adamw":
        raise ValueError(f"unknown optimizer {optimizer!r}")
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers
