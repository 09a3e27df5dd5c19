"""Which parameters stop changing: whole parameters by name prefix, or rows of one parameter.

The loop asks `zero_grads` after backward (frozen parameters get no gradient, frozen rows get
zeros), `kept_rows` before the optimizer step and `restore_rows` after it (momentum and weight
decay would still move a row whose gradient is zero). `Frozen` is a value: `with_added` returns a
new one, so a rejected command leaves the old one untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


def matches_prefix(name: str, prefix: str) -> bool:
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


@dataclass(frozen=True)
class Frozen:
    names: list[str] = field(default_factory=list)
    rows: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, saved: dict) -> Frozen:
        """From a checkpoint's "frozen" entry."""
        return cls(list(saved["names"]), {k: list(v) for k, v in saved["rows"].items()})

    def as_dict(self) -> dict:
        return {"names": list(self.names), "rows": {k: list(v) for k, v in self.rows.items()}}

    def with_added(self, model: torch.nn.Module, names: list[str], rows: dict[str, list[int]]) -> Frozen:
        """This set plus `names` and `rows`; KeyError naming the first that the model lacks."""
        params = dict(model.named_parameters())
        for prefix in names:
            if not any(matches_prefix(n, prefix) for n in params):
                raise KeyError(f"no parameter named {prefix!r}")
        for name, indices in rows.items():
            if name not in params or any(not 0 <= r < params[name].size(0) for r in indices):
                raise KeyError(f"bad rows for {name!r}")
        merged_rows = dict(self.rows)
        for name, indices in rows.items():
            merged_rows[name] = sorted(set(merged_rows.get(name, [])) | set(indices))
        return Frozen(sorted(set(self.names) | set(names)), merged_rows)

    def zero_grads(self, model: torch.nn.Module) -> None:
        """Frozen parameters get no gradient (so no optimizer update); frozen rows get zeros."""
        params = dict(model.named_parameters())
        for name, p in params.items():
            if any(matches_prefix(name, prefix) for prefix in self.names):
                p.grad = None
        for name, rows in self.rows.items():
            if params[name].grad is not None:
                params[name].grad[rows] = 0

    def kept_rows(self, model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(parameter, row index, values) of every frozen row, to put back after the step."""
        params = dict(model.named_parameters())
        kept = []
        for name, rows in self.rows.items():
            param = params[name]
            index = torch.tensor(rows, device=param.device, dtype=torch.long)
            kept.append((param, index, param.detach()[index].clone()))
        return kept


@torch.no_grad()
def restore_rows(kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
    for param, index, values in kept:
        param[index] = values
