"""Activation statistics: equal to a direct computation, one host transfer, no hooks left behind."""
import pytest
import torch

from shared.contract.events import LayerStats
from shared.model.gpt import build_model, config_for_depth
from trainer_svc.activations import activation_stats

torch.set_num_threads(2)


def model_and_batch():
    torch.manual_seed(0)
    model = build_model(config_for_depth(2, 300, 32))
    with torch.no_grad():
        for block in model.transformer.h:  # output projections start at zero; give them values
            block.attn.c_proj.weight.normal_(std=0.05)
            block.mlp.c_proj.weight.normal_(std=0.05)
    return model, torch.randint(0, 300, (4, 32))


def reference(model, idx):
    outputs = {}
    hooks = []
    for i, block in enumerate(model.transformer.h):
        for name, module in ((f"block.{i}.attn_out", block.attn), (f"block.{i}.mlp_out", block.mlp),
                             (f"block.{i}.resid", block), (f"hidden.{i}", block.mlp.act)):
            hooks.append(module.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out)))
    with torch.no_grad():
        model(idx)
    for h in hooks:
        h.remove()
    return outputs


def test_stats_match_direct_computation():
    model, idx = model_and_batch()
    stats = activation_stats(model, idx)
    outputs = reference(model, idx)
    assert [s.name for s in stats] == [f"block.{i}.{k}" for i in range(2) for k in ("attn_out", "mlp_out", "resid")]
    for s in stats:
        assert isinstance(s, LayerStats)
        h = outputs[s.name]
        channel_max = h.abs().reshape(-1, h.size(-1)).amax(0)
        assert s.rms == pytest.approx(h.pow(2).mean().sqrt().item(), rel=1e-5)
        assert s.mean == pytest.approx(h.mean().item(), abs=1e-6)
        assert s.std == pytest.approx(h.std().item(), rel=1e-5)
        assert s.max_abs == pytest.approx(h.abs().max().item(), rel=1e-6)
        assert s.max_channel == int(channel_max.argmax())
        if s.name.endswith("mlp_out"):
            hidden = outputs[f"hidden.{s.layer}"].reshape(-1, h.size(-1) * 4)
            assert s.dead_frac == pytest.approx(1 - (hidden > 0).any(0).float().mean().item())
        else:
            assert s.dead_frac is None


def test_one_host_transfer_and_hooks_removed(monkeypatch):
    model, idx = model_and_batch()
    calls = []
    original = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: calls.append(1) or original(self))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail("per-value .item() transfer"))
    activation_stats(model, idx)
    assert len(calls) == 1
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_removed_even_when_forward_fails():
    model, _ = model_and_batch()
    with pytest.raises(AssertionError):
        activation_stats(model, torch.zeros(1, 64, dtype=torch.long))  # longer than sequence_len
    assert all(not m._forward_hooks for m in model.modules())
