"""The optimisers of train/optim.py: Adam equals torch.optim.Adam bit for bit (with parameter groups and an LR
schedule), and neither optimiser imports TorchDynamo (torch's own do, seconds per process)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from splatpix.train.optim import Adam


def _loss(x: torch.Tensor) -> torch.Tensor:
    w = torch.linspace(-1, 1, x.numel()).reshape(x.shape)
    return (x**3).sin().sum() + (x * w).square().sum()


@pytest.mark.parametrize("shape", [(7,), (300, 3), (2000, 2)])
def test_adam_is_torch_adam_bit_for_bit(shape):
    torch.manual_seed(0)
    a = torch.randn(*shape, requires_grad=True)
    a2 = torch.randn(3, requires_grad=True)
    b, b2 = a.detach().clone().requires_grad_(True), a2.detach().clone().requires_grad_(True)
    ours = Adam([{"params": [b], "lr": 1e-2}, {"params": [b2], "lr": 3e-3}], lr=1e-2)
    ref = torch.optim.Adam([{"params": [a], "lr": 1e-2}, {"params": [a2], "lr": 3e-3}], lr=1e-2)
    so, sr = torch.optim.lr_scheduler.StepLR(ours, 25, 0.5), torch.optim.lr_scheduler.StepLR(ref, 25, 0.5)
    for _ in range(80):
        for x, y, opt, sched in ((a, a2, ref, sr), (b, b2, ours, so)):
            opt.zero_grad(set_to_none=True)
            (_loss(x) + _loss(y)).backward()
            opt.step()
            sched.step()
        assert torch.equal(a, b) and torch.equal(a2, b2)
    assert ours.param_groups[0]["lr"] == ref.param_groups[0]["lr"] == 1e-2 / 8
    assert torch.equal(ours.state[b]["exp_avg_sq"], ref.state[a]["exp_avg_sq"])


def test_groups_are_checked():
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="more than one"):
        Adam([{"params": [x]}, {"params": [x]}])
    with pytest.raises(ValueError, match="leaf"):
        Adam([x * 2])
    with pytest.raises(ValueError, match="betas"):
        Adam([x], betas=(0.9,))


def test_no_dynamo_import():
    code = ("import sys, torch\nfrom splatpix.train.optim import Adam, Adan\nx = torch.zeros(3, requires_grad=True)\n"
            "for o in (Adam([x], lr=1e-3), Adan([x])):\n"
            "    s = torch.optim.lr_scheduler.StepLR(o, 2, 0.5)\n"
            "    for _ in range(3):\n"
            "        o.zero_grad(); (x * 2).sum().backward(); o.step(); s.step()\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
