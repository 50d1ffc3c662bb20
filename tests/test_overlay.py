"""``render --ellipses`` / ``decode --ellipses``: each Gaussian's 1-sigma ellipse over the render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line, run_cli
from PIL import Image

from splatpix.model.arrays import GaussianArrays
from splatpix.render.overlay import draw_ellipses, ellipse_colours

GOLDEN = Path(__file__).parent / "golden"


def test_the_drawn_outline_is_the_one_sigma_ellipse_at_any_zoom() -> None:
    """One rotated Gaussian: every drawn pixel centre lies within a pixel of the ellipse at Mahalanobis distance 1,
    on the native grid and on a 3x zoomed crop."""
    l11, l21, l22 = 6.0, 3.0, 2.5  # native pixels
    g = GaussianArrays(np.array([[0.5, 0.5]]), np.array([[l11, l21, l22]]), np.ones((1, 3)), "cholesky", (40, 60))
    for h, w, window, zoom in ((40, 60, None, 1.0), (60, 90, (0.25, 0.25, 0.75, 0.75), 3.0)):
        out = draw_ellipses(np.zeros((h, w, 3), np.uint8), g, np.array([[255, 0, 0]], np.uint8), window)
        ys, xs = np.nonzero(out[:, :, 0])
        assert xs.size > 20
        cx = (0.5 - (window[0] if window else 0)) * w / ((window[2] - window[0]) if window else 1)
        cy = (0.5 - (window[1] if window else 0)) * h / ((window[3] - window[1]) if window else 1)
        d = np.stack((xs + 0.5 - cx, ys + 0.5 - cy)) / zoom  # native pixels
        cov = np.array([[l11 * l11, l11 * l21], [l11 * l21, l21 * l21 + l22 * l22]])
        r = np.sqrt(np.einsum("in,ij,jn->n", d, np.linalg.inv(cov), d))
        assert np.all(np.abs(r - 1) < 1.2 / (zoom * min(l11, l22))), (zoom, r.min(), r.max())


def test_colours_by_size_and_tier() -> None:
    g = GaussianArrays(np.full((3, 2), 0.5), np.array([[1.0, 0, 1], [3, 0, 3], [9, 0, 9]]), np.ones((3, 3)),
                       "cholesky", (10, 10))
    by_size = ellipse_colours(g, "size").astype(int)
    assert by_size[0, 2] > by_size[0, 0] and by_size[2, 0] > by_size[2, 2]  # small blue, large red
    assert ellipse_colours(g, "tier", np.array([2, 0, 1]))[1].tolist() == ellipse_colours(
        g, "tier", np.array([0, 0, 0]))[0].tolist()
    with pytest.raises(ValueError, match="tiers"):
        ellipse_colours(g, "tier")


def test_ellipses_on_the_command_line(tmp_path, capsys) -> None:
    plain, drawn = tmp_path / "p.png", tmp_path / "e.png"
    model = GOLDEN / "gaussianimage-rs.safetensors"
    assert run_cli(capsys, "render", model, "-o", plain, "--scale", 3)[0] == 0
    assert run_cli(capsys, "render", model, "-o", drawn, "--scale", 3, "--ellipses")[0] == 0
    a, b = (np.asarray(Image.open(p).convert("RGB")) for p in (plain, drawn))
    assert a.shape == b.shape and (a != b).any(axis=2).mean() > 0.05
    assert run_cli(capsys, "decode", GOLDEN / "sga.spix", "-o", drawn, "--ellipses", "tier")[0] == 0
    code, _, err = run_cli(capsys, "decode", GOLDEN / "gaussianimage.spix", "-o", tmp_path / "x.png",
                           "--ellipses", "tier")
    assert code == 2 and "sga" in one_error_line(err) and not (tmp_path / "x.png").exists()
    code, _, err = run_cli(capsys, "render", GOLDEN / "gainer.safetensors", "-o", tmp_path / "y.png", "--ellipses")
    assert code == 2 and "GaINeR" in one_error_line(err)
