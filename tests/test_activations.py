"""Activation statistics from the forward pass itself: equal to a direct (hook-based) computation of
the same outputs, one host transfer, and the forward's result unchanged by measuring."""
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


def test_one_host_transfer(monkeypatch):
    model, idx = model_and_batch()
    calls = []
    original = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: calls.append(1) or original(self))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail("per-value .item() transfer"))
    activation_stats(model, idx)
    assert len(calls) == 1


def test_measuring_does_not_change_the_loss_or_its_gradients():
    model, idx = model_and_batch()
    targets = torch.roll(idx, -1, dims=1)
    plain = model(idx, targets)
    plain.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    measured, stats = model(idx, targets, with_stats=True)
    measured.backward()
    assert torch.equal(plain, measured) and stats.requires_grad is False
    assert all(torch.allclose(g, p.grad) for g, p in zip(grads, model.parameters()))
