"""Helpers shared by the test files: synthetic images, tiny models, CLI runners, fault injection, file surgery.

Plain functions, imported as ``from helpers import ...`` (``tests/`` is on ``sys.path``: see ``conftest.py``).
Each helper reproduces exactly what the test files defined before (same pixel values, same random draws, same
call counting), so that the expected numbers in the tests still hold; change one only together with its users.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from splatpix import Gaussians, SplatpixError, render
from splatpix.gainer import GainerConfig, GainerField, HashGridConfig
from splatpix.model.gaussians import params_from_covariance

# ------------------------------------------------------------------------------------------- synthetic images


def ramp_rgb(h: int, w: int, fx: float, fy: float) -> np.ndarray:
    """``(3, h, w)`` float64: a horizontal ramp, a vertical ramp and ``0.5 + 0.4 sin(x / fx) cos(y / fy)``."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack((x / (w - 1), y / (h - 1), 0.5 + 0.4 * np.sin(x / fx) * np.cos(y / fy)), 0)


def ramp_image(h: int = 48, w: int = 64, fx: float = 4.0, fy: float = 6.0) -> torch.Tensor:
    """:func:`ramp_rgb` as a float32 ``(3, h, w)`` tensor (the codec tests' image; the footprint tests use
    ``ramp_image(40, 56, 3.0, 5.0)``)."""
    return torch.from_numpy(ramp_rgb(h, w, fx, fy).astype(np.float32))


def wave_image(h: int = 48, w: int = 48, c: int = 3, disc: bool = False) -> torch.Tensor:
    """A smooth ``(c, h, w)`` image in ``[0, 1]`` (up to four channels) of sines and products on a ``[0, 1]^2`` grid;
    ``disc`` adds a bright disc to the third channel (the QAT tests' image)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    third = 0.3 + 0.5 * x * y
    if disc:
        third = third + 0.2 * (((x - 0.6) ** 2 + (y - 0.4) ** 2) < 0.05).float()
    chans = [
        0.5 + 0.4 * torch.sin(2 * math.pi * (x + 0.5 * y)),
        0.5 + 0.4 * torch.cos(3 * x * y + y),
        third,
        0.2 + 0.6 * y,
    ]
    return torch.stack(chans[:c]).clamp(0, 1)


def gainer_image(c: int = 3, h: int = 32, w: int = 32) -> torch.Tensor:
    """The GaINeR tests' ``(c, h, w)`` image (up to four channels; the fourth, a hard-edged alpha)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    chans = [0.5 + 0.4 * torch.sin(6 * x), 0.5 + 0.4 * torch.cos(5 * y), x * y, (x + y > 0.8).float()]
    return torch.stack(chans[:c]).clamp(0, 1)


def write_png(path: str | Path, chw: np.ndarray | torch.Tensor) -> Path:
    """Save a ``(C, H, W)`` image in ``[0, 1]`` as an 8-bit PNG (``round(v * 255)``, computed in the array's own
    dtype: a float32 tensor and its float64 formula can round a pixel differently) and return the path."""
    a = chw.detach().cpu().numpy() if isinstance(chw, torch.Tensor) else np.asarray(chw)
    Image.fromarray(np.ascontiguousarray((np.moveaxis(a, 0, -1) * 255).round().astype(np.uint8))).save(path)
    return Path(path)


# ------------------------------------------------------------------------------------------------ tiny models


def pixel_lattice(size: tuple[int, int], sigma2: float = 0.6, param: str = "cholesky") -> Gaussians:
    """One isotropic Gaussian (variance ``sigma2`` px^2) per pixel centre of an ``(H, W)`` image, row by row, with
    random dark colours (seed 0)."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    means = torch.stack((xs.reshape(-1) / w, ys.reshape(-1) / h), 1)
    n = means.shape[0]
    g = torch.Generator().manual_seed(0)
    cov = torch.stack((torch.full((n,), sigma2), torch.zeros(n), torch.full((n,), sigma2)), 1)
    return Gaussians(means, params_from_covariance(cov, param), 0.3 * torch.rand((n, 3), generator=g), param, (h, w))


def tiny_gainer_config(n: int) -> GainerConfig:
    """The smallest useful GaINeR configuration (k = 4, a two-level hash grid, one hidden layer of 8)."""
    return GainerConfig(n_gaussians=n, k=4, hashgrid=HashGridConfig(n_levels=2, features_per_level=2,
                                                                     log2_table_size=8), mlp_hidden=8, mlp_layers=1)


def tiny_field(n: int, size: tuple[int, int], baked: bool = False) -> GainerField:
    """An untrained :func:`tiny_gainer_config` field (seed 3) with a little anisotropy, optionally baked."""
    f = GainerField(tiny_gainer_config(n), size=size, seed=3)
    with torch.no_grad():
        f.cov_params[:, 1] = 0.01 * torch.arange(n) / n  # a little anisotropy
    return f.bake() if baked else f


SMALL_GRID = HashGridConfig(n_levels=6, features_per_level=2, log2_table_size=10, base_resolution=4, max_resolution=64)


def gainer_config(**kw: Any) -> GainerConfig:
    """The GaINeR tests' small configuration (128 Gaussians, k = 8, :data:`SMALL_GRID`), with overrides."""
    base = {"n_gaussians": 128, "k": 8, "hashgrid": SMALL_GRID, "mlp_hidden": 16, "mlp_layers": 2}
    base.update(kw)
    return GainerConfig(**base)


# ------------------------------------------------------------------------------------------------------- CLI


def run_cli(capsys: Any, *args: Any, main: Callable[[list[str]], int] | None = None) -> tuple[int, str, str]:
    """Run the CLI (``splatpix.cli.main``, or ``main``) on ``args`` (each through ``str``): ``(code, out, err)``."""
    if main is None:
        from splatpix.cli import main
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_error_line(err: str) -> str:
    """The single ``splatpix: error: ...`` line of ``err`` (asserting that there is exactly one, and no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("splatpix: error:"), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------------------- fault injection


def nan_after(real: Callable, n_good: int, *, grad_only: bool = False, once: bool = False) -> Callable:
    """``real`` (a render or loss function, to monkeypatch in its place) whose output is multiplied by NaN from
    call ``n_good + 1`` on (``once``: on that call only). ``grad_only``: count and poison only the calls made with
    gradients enabled (the training renders, not the evaluation ones)."""
    calls = {"n": 0}

    def flaky(*a, **k):
        out = real(*a, **k)
        if grad_only and not torch.is_grad_enabled():
            return out
        calls["n"] += 1
        if calls["n"] == n_good + 1 or (not once and calls["n"] > n_good):
            return out * float("nan")
        return out

    return flaky


def nan_param_on_step(real_step: Callable, n: int, group: int, index: int) -> Callable:
    """An optimiser ``step`` (to monkeypatch on the optimiser class) that, right after its ``n``-th call, writes a
    NaN into element ``[3, 0]`` of ``param_groups[group]["params"][index]``."""
    calls = {"n": 0}

    def bad_step(self, closure=None):
        out = real_step(self, closure)
        calls["n"] += 1
        if calls["n"] == n:
            self.param_groups[group]["params"][index].data[3, 0] = float("nan")
        return out

    return bad_step


def raise_on_call(real: Callable, n: int, error: BaseException) -> Callable:
    """``real`` (e.g. a method, to monkeypatch on its class) that raises ``error`` instead of running on its
    ``n``-th call."""
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise error
        return real(*a, **k)

    return flaky


# ------------------------------------------------------------------------------------------------ file surgery


def check_spix_corruptions(data: bytes, cuts: tuple[int, ...] = (0, 1, 24, 25), seed: int = 0) -> None:
    """Truncations of a ``.spix`` payload (60 random lengths, ``cuts`` and ``len - 1``) raise SplatpixError; of 300
    copies with 1 to 3 random bit flips each, those that ``unpack`` accepts give a model that renders finite."""
    from splatpix.codec.api import unpack

    rng = np.random.default_rng(seed)
    for cut in sorted(set(rng.integers(0, len(data), 60).tolist()) | {*cuts, len(data) - 1}):
        try:
            unpack(data[:cut])
        except SplatpixError:
            continue
        raise AssertionError(f"the first {cut} of {len(data)} bytes unpacked without a SplatpixError")
    for _ in range(300):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(0, len(buf)))] ^= 1 << int(rng.integers(0, 8))
        try:
            q, _ = unpack(bytes(buf))
        except SplatpixError:
            continue
        # a mutation that survives must still give a valid, renderable model
        assert torch.isfinite(render(q.dequantize())).all()


def rewrite_safetensors_meta(data: bytes, change: Callable[[dict, dict], Any], *, pad: bool = True) -> bytes:
    """A safetensors file whose JSON header and ``splatpix`` metadata ``change(header, meta)`` edited in place;
    ``pad``: pad the new header with spaces to a multiple of 8 bytes, as safetensors writers do."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["splatpix"])
    change(header, meta)
    header["__metadata__"]["splatpix"] = json.dumps(meta)
    hb = json.dumps(header).encode()
    if pad:
        hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + data[8 + n :]
