"""The fused clamped-MSE loss against its torch expression (value and gradient), and the geometry loss."""

import pytest
import torch

from splatpix.train.geometry import GeometryLoss, geometry_loss, geometry_loss_reference, sobel
from splatpix.train.losses import clamped_mse, clamped_mse_reference


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


# ------------------------------------------------------------------------------------------ geometry loss

def test_sobel_by_hand_and_replicate_border():
    img = torch.arange(20.0).reshape(1, 4, 5)  # value = 5 y + x: d/dx = 1, d/dy = 5 away from the border
    sx, sy = sobel(img)
    assert torch.allclose(sx[0, 1:-1, 1:-1], torch.full((2, 3), 8.0))  # (1 + 2 + 1) * (x+1 - (x-1))
    assert torch.allclose(sy[0, 1:-1, 1:-1], torch.full((2, 3), 40.0))
    assert torch.allclose(sx[0, :, 0], torch.full((4,), 4.0))  # replicated border: one-sided difference
    const = torch.full((3, 6, 7), 0.3)
    assert all(float(d.abs().max()) == 0.0 for d in sobel(const))
    batched = sobel(torch.rand(2, 3, 6, 7))
    assert batched[0].shape == (2, 3, 6, 7)


@pytest.mark.parametrize("clamp", [True, False])
def test_geometry_loss_matches_direct_computation(clamp):
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 13, 17, generator=gen, dtype=torch.float64)
    out = torch.rand(3, 13, 17, generator=gen, dtype=torch.float64) * 1.4 - 0.2  # some values outside [0, 1]
    a = out.clone().requires_grad_()
    b = out.clone().requires_grad_()
    la = geometry_loss(a, target, clamp=clamp)
    lb = geometry_loss_reference(b, target, clamp=clamp)
    assert abs(la.item() - lb.item()) < 1e-12 * max(1.0, lb.item())
    la.backward()
    lb.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-14)
    if clamp:
        assert float(a.grad[(out < 0) | (out > 1)].abs().max()) == 0.0
    # zero at the target, and nothing to match on a flat target
    assert float(geometry_loss(target, target)) == 0.0  # exactly: the same derivatives
    assert float(geometry_loss(out, torch.full_like(target, 0.4), clamp=clamp)) < 1e-12
    # the class reuses the precomputed target derivatives
    assert float(GeometryLoss(target)(out.float(), clamp=clamp)) == pytest.approx(lb.item(), rel=1e-5)


def test_geometry_loss_gradcheck():
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(2, 4, 5, generator=gen, dtype=torch.float64)
    loss = GeometryLoss(target)
    inside = (0.1 + 0.8 * torch.rand(2, 4, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: loss(x, clamp=True), (inside,))
    free = (torch.randn(2, 4, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: loss(x, clamp=False), (free,))
