"""Metrics: the RGBA split of PSNR (colour where visible, alpha everywhere)."""

from __future__ import annotations

import math

import pytest
import torch

from splatpix.metrics import psnr, psnr_rgba


def test_psnr_rgba_ignores_the_colour_of_transparent_pixels() -> None:
    target = torch.zeros(4, 8, 8)
    target[:3] = 0.5
    target[3, :, :4] = 1.0  # left half visible
    pred = target.clone()
    pred[:3, :, 4:] = torch.rand(3, 8, 4)  # garbage colour where nothing is visible
    colour, alpha = psnr_rgba(pred, target)
    assert colour == math.inf and alpha == math.inf
    pred[0, 0, 0] += 10 / 255  # one visible colour error of 10 levels among 3 x 32 values
    colour, _ = psnr_rgba(pred, target)
    assert colour == pytest.approx(10 * math.log10(255 ** 2 * 96 / 100))
    pred[3, 0, 7] = 1.0  # an alpha error anywhere counts
    assert psnr_rgba(pred, target)[1] == pytest.approx(psnr(pred[3:], target[3:]))
    with pytest.raises(ValueError):
        psnr_rgba(pred[:3], target[:3])
