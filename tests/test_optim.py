"""Muon's stacked step: the same math as one matrix at a time, frozen matrices kept, state that round-trips."""
import copy

import torch

from shared.model.gpt import build_model, config_for_depth
from trainer_svc.optim import Muon, zeropower_via_newtonschulz5

torch.set_num_threads(1)


def reference_muon_step(params, state, lr=0.02, momentum=0.95, ns_steps=5):
    """The per-matrix Muon this stacked one replaced: Nesterov momentum, Newton–Schulz, scaled step."""
    for p in params:
        if p.grad is None:
            continue
        buf = state.setdefault(p, torch.zeros_like(p))
        buf.lerp_(p.grad, 1 - momentum)
        g = zeropower_via_newtonschulz5(p.grad.lerp(buf, momentum), ns_steps)
        p.data.add_(g, alpha=-lr * max(1.0, p.size(-2) / p.size(-1)) ** 0.5)


def matrices_with_grads(seed):
    torch.manual_seed(seed)
    model = build_model(config_for_depth(2, 300, 16))
    params = list(model.transformer.h.parameters())
    for p in params:
        p.data.normal_(0, 0.05)
        p.grad = torch.randn_like(p)
    return params


def test_stacked_step_equals_the_per_matrix_reference_with_a_frozen_matrix():
    ours, ref = matrices_with_grads(0), matrices_with_grads(0)
    assert len({p.shape for p in ours}) == 3  # attention (d, d), MLP in (4d, d), MLP out (d, 4d)
    optimizer, ref_state = Muon(ours, lr=0.02), {}
    for step in range(3):
        for i, (a, b) in enumerate(zip(ours, ref)):
            a.grad = b.grad = torch.randn_like(a, generator=torch.Generator().manual_seed(10 * step + i))
        ours[1].grad = ref[1].grad = None if step == 1 else ours[1].grad  # frozen for one step
        optimizer.step()
        reference_muon_step(ref, ref_state)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b, rtol=0, atol=2e-6)


def test_momentum_round_trips_through_state_dict():
    params, copies = matrices_with_grads(1), matrices_with_grads(1)
    first = Muon(params)
    first.step()
    second = Muon(copies)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    for a, b in zip(params, copies):
        b.data.copy_(a.data)
        a.grad = b.grad = torch.ones_like(a)
    first.step()
    second.step()
    for a, b in zip(params, copies):
        assert torch.equal(a, b)


def test_per_matrix_momentum_from_an_older_checkpoint_is_stacked():
    ours, ref = matrices_with_grads(2), matrices_with_grads(2)
    ref_state = {}
    reference_muon_step(ref, ref_state)
    optimizer = Muon(ours)
    for p, r in zip(ours, ref):
        p.data.copy_(r.data)
        optimizer.state[p]["momentum_buffer"] = ref_state[r].clone()
    optimizer.step()
    reference_muon_step(ref, ref_state)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6)
