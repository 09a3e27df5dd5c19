"""The model: shapes, the logit soft-cap, the FLOP estimate, Muon."""
import torch

from shared.model.gpt import GPT, LOGIT_SOFTCAP, config_for_depth, build_model
from trainer_svc.optim import setup_optimizers, zeropower_via_newtonschulz5

torch.set_num_threads(2)


def tiny_model(depth=2, vocab=300, seq=32, seed=0):
    torch.manual_seed(seed)
    return build_model(config_for_depth(depth, vocab, seq))


def test_forward_backward_shapes():
    model = tiny_model()
    x = torch.randint(0, 300, (3, 32))
    assert model(x).shape == (3, 32, 300)
    assert model(x, x, loss_reduction="none").shape == (3, 32)
    loss = model(x, x)
    assert loss.ndim == 0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name


def test_named_submodules_for_hooks_and_freezing():
    model = tiny_model()
    names = dict(model.named_parameters())
    assert "transformer.h.1.mlp.c_fc.weight" in names and "transformer.h.0.attn.c_q.weight" in names
    assert model.transformer.h[0].mlp.act is not None
    assert not any(p.ndim == 1 for p in model.parameters())  # no biases, no norm gains


def test_logits_soft_capped():
    model = tiny_model()
    with torch.no_grad():
        model.lm_head.weight.mul_(0).add_(50.0)
    logits = model(torch.randint(0, 300, (2, 16)))
    assert logits.abs().max() <= LOGIT_SOFTCAP


def test_config_for_depth_heads_divide_width():
    for depth in range(1, 25):
        c = config_for_depth(depth, 1000, 64)
        assert c.n_embd == 64 * depth and c.n_embd % c.n_head == 0 and (c.n_embd // c.n_head) % 2 == 0
    assert config_for_depth(12, 1000, 64).n_head == 6


def test_flops_per_token_matches_hand_count():
    c = config_for_depth(12, 32768, 2048)
    model = GPT(c)  # no init needed, and stays on the meta-free CPU
    d = c.n_embd
    n_matmul = c.n_layer * 12 * d * d + c.vocab_size * d  # q,k,v,proj = 4d², mlp = 8d²; lm_head
    assert model.matmul_params() == n_matmul
    assert model.flops_per_token() == 6 * n_matmul + 12 * c.n_layer * c.n_head * (d // c.n_head) * c.sequence_len
    assert 0.8e9 < model.flops_per_token() < 1.2e9


def test_muon_orthogonalises_and_updates():
    g = torch.randn(64, 32)
    s = torch.linalg.svdvals(zeropower_via_newtonschulz5(g))
    assert s.min() > 0.5 and s.max() < 1.3
    model = tiny_model()
    optimizers = setup_optimizers(model, "muon", matrix_lr=0.02)
    before = model.transformer.h[0].attn.c_proj.weight.clone()  # c_q has no grad yet: c_proj starts at 0
    model(torch.randint(0, 300, (2, 32)), torch.randint(0, 300, (2, 32))).backward()
    for opt in optimizers:
        opt.step()
    assert not torch.equal(before, model.transformer.h[0].attn.c_proj.weight)
    assert all("initial_lr" in g for opt in optimizers for g in opt.param_groups)

