"""The GPT that Introspect trains and every service loads: nanochat's shape, small enough to read.

Pre-norm blocks with a parameter-free RMSNorm, rotary attention with QK-norm, a ReLU² MLP, untied
input embedding and lm_head, no biases, and a tanh soft-cap on the logits. Submodules keep stable
names (`transformer.h[i].attn`, `.mlp`, `.mlp.act`) because activation hooks and freeze commands
address parameters and outputs by name.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from shared.model.kv_cache import KVCache

LOGIT_SOFTCAP = 15.0


@dataclass
class GPTConfig:
    sequence_len: int = 1024
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768

    def to_dict(self) -> dict:
        return asdict(self)


def config_for_depth(depth: int, vocab_size: int, sequence_len: int) -> GPTConfig:
    """nanochat's scaling rule: width = 64 per layer, heads of about 128 channels (even head_dim)."""
    n_embd = depth * 64
    n_head = max(1, math.ceil(n_embd / 128))
    while n_embd % n_head or (n_embd // n_head) % 2:
        n_head += 1
    return GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=depth,
                     n_head=n_head, n_kv_head=n_head, n_embd=n_embd)


def norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int = 0):
        super().__init__()
        self.layer = layer  # which slot of a KVCache is this layer's
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = config.n_embd // config.n_head
        self.c_q = nn.Linear(config.n_embd, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv_cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))  # QK-norm
        q, k, v = q.to(v.dtype).transpose(1, 2), k.to(v.dtype).transpose(1, 2), v.transpose(1, 2)
        if kv_cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               enable_gqa=self.n_head != self.n_kv_head)
        else:
            y = kv_cache.attend(self.layer, q, k, v)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


def activation_summary(h: torch.Tensor) -> torch.Tensor:
    """[rms, mean, std, max |x|, channel of max |x|] of an output [..., C], as one float tensor
    that stays on the device (the trainer moves every layer's summary to the host at once)."""
    h = h.detach().float()
    per_channel_max = h.abs().flatten(0, -2).amax(dim=0)
    max_abs, channel = per_channel_max.max(dim=0)
    return torch.stack([h.square().mean().sqrt(), h.mean(), h.std(), max_abs, channel.float()])


def dead_fraction(hidden: torch.Tensor) -> torch.Tensor:
    """Share of MLP hidden units that are never > 0 anywhere in the batch, as a 1-element tensor."""
    ever_active = (hidden.detach().flatten(0, -2) > 0).any(dim=0)
    return (1.0 - ever_active.float().mean())[None]


STATS_PER_LAYER = 16  # summaries of attn_out, mlp_out, resid (5 each), then the MLP's dead fraction


class ReLUSquared(nn.Module):
    """A module (not a function) so a hook can read the MLP's hidden units for the dead fraction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.act = ReLUSquared()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor, with_hidden: bool = False):
        """The output; with `with_hidden`, (output, hidden units) for the dead fraction."""
        hidden = self.act(self.c_fc(x))
        out = self.c_proj(hidden)
        return (out, hidden) if with_hidden else out


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int = 0):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv_cache: KVCache | None = None, stats: list | None = None) -> torch.Tensor:
        """The block's output; given a `stats` list, also appends its STATS_PER_LAYER values."""
        attn = self.attn(norm(x), cos, sin, kv_cache)
        x = x + attn
        if stats is None:
            return x + self.mlp(norm(x))
        mlp, hidden = self.mlp(norm(x), with_hidden=True)
        x = x + mlp
        stats += [activation_summary(attn), activation_summary(mlp), activation_summary(x),
                  dead_fraction(hidden)]
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        cos, sin = self._rotary_tables(config.sequence_len, config.n_embd // config.n_head)
        self.register_buffer("cos", cos, persistent=False)  # not in checkpoints: derived
        self.register_buffer("sin", sin, persistent=False)

    @staticmethod
    def _rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0):
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        return freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]

    @torch.no_grad()
    def init_weights(self) -> None:
        """nanochat's init: unit embeddings, tiny lm_head, uniform matrices, zero output projections."""
        nn.init.normal_(self.transformer.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        bound = math.sqrt(3) / math.sqrt(self.config.n_embd)
        for block in self.transformer.h:
            for linear in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_reduction: str = "mean", kv_cache: KVCache | None = None,
                with_stats: bool = False):
        """Logits [B, T, V] without targets; else the loss ('none' gives per-token loss [B, T]).
        Targets equal to -1 are ignored. With a `kv_cache` (generation): logits [B, 1, V] of each
        row's last token, the cache moved on by this forward's tokens. With `with_stats` (the
        trainer's measuring step): (that result, per-layer activation statistics as one device
        tensor of n_layer * STATS_PER_LAYER values), from this same forward pass."""
        T = idx.size(1)
        assert T <= self.config.sequence_len, f"sequence of {T} longer than {self.config.sequence_len}"
        if kv_cache is None:
            cos, sin = self.cos[:, :T], self.sin[:, :T]
        else:
            cos, sin = kv_cache.rotary(self.cos, self.sin, T)
        x = norm(self.transformer.wte(idx))
        stats = [] if with_stats else None
        for block in self.transformer.h:
            x = block(x, cos, sin, kv_cache, stats)
        if kv_cache is not None:
            x = kv_cache.advance(x)
        logits = self.lm_head(norm(x)).float()
        logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)
        if targets is None:
            out = logits
        else:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-1, reduction=loss_reduction)
            out = loss.view(targets.shape) if loss_reduction == "none" else loss
        return (out, torch.cat(stats)) if with_stats else out

    def matmul_params(self) -> int:
        """Parameters that take part in a matmul per token (everything except the embedding lookup)."""
        return sum(p.numel() for p in self.parameters()) - self.transformer.wte.weight.numel()

    def flops_per_token(self) -> int:
        """Training FLOPs per token, as nanochat's estimate_flops: 6·N_matmul + 12·L·H·Q·T."""
        c = self.config
        attention = 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * c.sequence_len
        return 6 * self.matmul_params() + attention


def build_model(config: GPTConfig, device: str | torch.device = "cpu") -> GPT:
    model = GPT(config).to(device)
    model.init_weights()
    return model
