"""The fused clamped-MSE loss against its torch expression (value and gradient)."""

import torch

from splatpix.losses import clamped_mse, clamped_mse_reference


def test_clamped_mse_matches_reference():
    gen = torch.Generator().manual_seed(0)
    out = torch.rand(3, 37, 41, generator=gen) * 1.6 - 0.3  # some values outside [0, 1]
    target = torch.rand(3, 37, 41, generator=gen)
    for clamp in (True, False):
        a = out.clone().requires_grad_()
        b = out.double().clone().requires_grad_()
        la = clamped_mse(a, target, clamp=clamp)
        lb = clamped_mse_reference(b, target.double(), clamp=clamp)
        assert abs(la.item() - lb.item()) < 1e-6
        (la * 3.0).backward()
        (lb * 3.0).backward()
        assert torch.allclose(a.grad.double(), b.grad, atol=1e-9)
        if clamp:
            assert a.grad[out < 0].abs().sum() == 0 and a.grad[out > 1].abs().sum() == 0


def test_clamped_mse_propagates_nan():
    out = torch.rand(2, 8, 8)
    out[1, 3, 4] = float("nan")
    assert torch.isnan(clamped_mse(out, torch.rand(2, 8, 8)))
    out[1, 3, 4] = float("inf")
    assert torch.isnan(clamped_mse(out, torch.rand(2, 8, 8)))
