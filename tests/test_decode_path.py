"""The decode path imports no torch: ``splatpix decode``, ``info`` and ``render`` of a GaussianImage-kind model run on
numpy and the numba kernel, and give the torch path's values (docs/architecture.md, "The decode path")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import splatpix
from splatpix.codec.api import decode
from splatpix.codec.decoding import decode_arrays
from splatpix.model import Gaussians, load_arrays, load_model
from splatpix.model import arrays as np_model
from splatpix.model import gaussians as torch_model
from splatpix.render import render
from splatpix.render.arrays import render_array

GOLDEN = Path(__file__).parent / "golden"
HEAVY = ("torch", "skimage", "matplotlib", "scipy.spatial", "scipy.ndimage", "cv2")

_PROBE = "\n".join([
    "import json, sys",
    "from splatpix.cli import main",
    "rc = main(sys.argv[1:])",
    f"print(json.dumps({{'rc': rc, 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))",
])


def _run_probe(*argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ("decode", "gaussianimage.spix", "-o", "{tmp}/a.png"),
    ("decode", "sga.spix", "-o", "{tmp}/b.png", "--scale", "2"),
    ("info", "sga.spix"),
    ("info", "gaussianimage-rs.safetensors"),
    ("render", "gaussianimage-rs.safetensors", "-o", "{tmp}/c.png", "--size", "50x40"),
])
def test_decode_info_render_import_no_torch(tmp_path: Path, argv: tuple[str, ...]) -> None:
    args = [a.format(tmp=tmp_path) if "{tmp}" in a else (str(GOLDEN / a) if a.endswith((".spix", ".safetensors"))
            else a) for a in argv]
    got = _run_probe(*args)
    assert got == {"rc": 0, "loaded": []}, got


def test_full_parser_still_lists_every_command() -> None:
    from splatpix.cli import build_parser

    text = build_parser().format_help()
    for cmd in ("fit", "render", "info", "encode", "decode", "eval", "edit", "animate", "simulate"):
        assert cmd in text


@pytest.mark.parametrize("name", ["gaussianimage.spix", "sga.spix"])
def test_numpy_decode_equals_torch_decode(name: str) -> None:
    a = decode_arrays(GOLDEN / name)
    g = decode(GOLDEN / name)
    for x, t in ((a.means, g.means), (a.cov_params, g.cov_params), (a.colours, g.colours)):
        assert x.dtype == np.float32 and np.array_equal(x, t.numpy())
    assert a.size == g.size and a.param == g.param == "cholesky"
    with torch.no_grad():
        for kw in ({}, {"scale": 1.7}, {"height": 31, "width": 57, "window": (0.1, 0.2, 0.7, 0.9)}):
            ref = render(g, clamp=True, **kw).numpy()
            out = render_array(a, clamp=True, **kw)
            assert out.shape == ref.shape and np.array_equal(out, ref), kw


def _random_model(rng: np.random.Generator, n: int, param: str) -> Gaussians:
    means = torch.from_numpy(rng.uniform(-0.1, 1.1, (n, 2)).astype(np.float32))
    if param == "cholesky":
        cov = np.stack([rng.uniform(0.3, 6, n), rng.normal(0, 2, n), rng.uniform(0.3, 6, n)], 1)
    else:
        cov = np.stack([rng.uniform(0.3, 6, n), rng.uniform(0.3, 6, n), rng.uniform(-3, 3, n)], 1)
    if param == "cholesky":  # degenerate covariances too: tiny, zero, a needle
        cov[:3] = [[1e-4, 0, 1e-4], [0, 0, 0], [5, 5, 1e-5]]
    colours = torch.from_numpy(rng.uniform(-0.2, 1, (n, 3)).astype(np.float32))
    return Gaussians(means, torch.from_numpy(cov.astype(np.float32)), colours, param, (int(rng.integers(5, 90)),
                                                                                   int(rng.integers(5, 90))))


@pytest.mark.parametrize("param", ["cholesky", "rs"])
def test_numpy_projection_and_conic_equal_torch(param: str) -> None:
    """Bit for bit for Cholesky models (every .spix file); RS models go through cos/sin, whose numpy and torch
    implementations may differ in the last bit."""
    rng = np.random.default_rng(3)
    exact = param == "cholesky"

    def same(x: np.ndarray, t: torch.Tensor) -> bool:
        return np.array_equal(x, t.numpy()) if exact else np.allclose(x, t.numpy(), rtol=1e-5, atol=1e-5)

    for _ in range(10):
        g = _random_model(rng, 200, param)
        a = np_model.as_arrays(g)
        h, w = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        win = None if rng.random() < 0.5 else (0.1, -0.2, 0.8, 1.3)
        m_t, c_t = torch_model.project(g, h, w, win)
        m_n, c_n = np_model.project(a, h, w, win)
        assert np.array_equal(m_n, m_t.numpy()) and same(c_n, c_t)
        q_t, v_t = torch_model.conic_from_covariance(c_t)
        q_n, v_n = np_model.conic_from_covariance(c_n)
        assert np.array_equal(v_n, v_t.numpy()) and same(q_n, q_t)
        with torch.no_grad():
            assert same(render_array(a, h, w, window=win), render(g, h, w, window=win))


def test_load_arrays_equals_load_model() -> None:
    path = GOLDEN / "gaussianimage-rs.safetensors"
    a, g = load_arrays(path), load_model(path)
    assert a.param == g.param == "rs" and a.size == g.size and a.meta == g.meta
    for x, t in ((a.means, g.means), (a.cov_params, g.cov_params), (a.colours, g.colours)):
        assert np.array_equal(x, t.numpy())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_load_arrays_reads_every_float_dtype_as_load_model_does(tmp_path: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import save

    from splatpix.model.container import META_KEY

    g = load_model(GOLDEN / "gaussianimage-rs.safetensors")
    path = tmp_path / "m.safetensors"
    tensors = {"means": g.means.to(dtype), "cov_params": g.cov_params.to(dtype), "colours": g.colours.to(dtype)}
    path.write_bytes(save(tensors, metadata={META_KEY: json.dumps(g.meta)}))
    a, t = load_arrays(path), load_model(path)
    assert np.array_equal(a.means, t.means.numpy()) and np.array_equal(a.colours, t.colours.numpy())


def test_public_api_names_resolve_lazily() -> None:
    assert callable(splatpix.render) and callable(splatpix.render_array) and callable(splatpix.decode_arrays)
    assert splatpix.Gaussians is Gaussians and "render_array" in dir(splatpix)
    with pytest.raises(AttributeError):
        _ = splatpix.no_such_name


# ------------------------------------------------------------------------------------------------ the numpy engine


def test_numpy_engine_decode_and_cli_import_no_numba(tmp_path: Path) -> None:
    """A small one-shot decode (auto engine) runs on numpy alone: numba, torch & co. never imported."""
    probe = _PROBE.replace(repr(HEAVY), repr((*HEAVY, "numba", "llvmlite")))
    for argv in (["decode", str(GOLDEN / "sga.spix"), "-o", str(tmp_path / "a.png")],
                 ["info", str(GOLDEN / "gaussianimage.spix")],
                 ["render", str(GOLDEN / "gaussianimage-rs.safetensors"), "-o", str(tmp_path / "b.png")]):
        out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {"rc": 0, "loaded": []}, argv


def _mutations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "fuzz"))
    from targets import repair_crcs

    out = []
    for _ in range(count):
        b = bytearray(data)
        kind = rng.integers(3)
        if kind == 0:
            b = b[: int(rng.integers(0, len(b)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(8))
        out.append(repair_crcs(bytes(b)) if kind == 2 else bytes(b))
    return out


@pytest.mark.parametrize("name", ["gaussianimage.spix", "sga.spix"])
def test_numpy_engine_parses_exactly_as_the_kernels(name: str) -> None:
    """Valid and damaged files: the numpy engine accepts what the kernels accept, with bit-identical arrays, and
    refuses what they refuse (a one-line SplatpixError)."""
    from splatpix import jit
    from splatpix.codec.decoding import decode_bytes_arrays
    from splatpix.errors import SplatpixError

    data = (GOLDEN / name).read_bytes()
    for blob in [data, *_mutations(data, np.random.default_rng(5), 300)]:
        results = []
        for engine in ("numba", "numpy"):
            with jit.using_engine(engine):
                try:
                    a = decode_bytes_arrays(blob)
                    results.append((a.means, a.cov_params, a.colours))
                except SplatpixError:
                    results.append(None)
        k, n = results
        assert (k is None) == (n is None)
        if k is not None:
            assert all(np.array_equal(x, y) for x, y in zip(k, n, strict=True))


def test_numpy_forward_matches_the_kernels() -> None:
    """Same pixels covered (the support rule in float64) and values within 2e-6 of the kernels' (their exponential is
    a polynomial within 3e-7 of exp), on random models with degenerate, off-image and needle Gaussians."""
    from splatpix.render import cpu, vectorised

    assert vectorised.MAX_CONDITION == cpu.MAX_CONDITION
    rng = np.random.default_rng(11)
    for _ in range(8):
        n, h, w = int(rng.integers(1, 400)), int(rng.integers(1, 70)), int(rng.integers(1, 90))
        means = rng.uniform(-10, max(h, w) + 10, (n, 2)).astype(np.float32)
        cov = np.stack([rng.uniform(0.05, 30, n), rng.normal(0, 3, n), rng.uniform(0.05, 30, n)], 1)
        cov[:5] = [[1, 0.999999, 1], [0, 0, 1], [np.nan, 0, 1], [1e-8, 0, 1e-8], [200, 0, 0.01]][:5]
        conic, _ = np_model.conic_from_covariance(cov.astype(np.float32))
        colours = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        ref, _ = cpu.forward(means, np.ascontiguousarray(conic), colours, h, w)
        out = vectorised.forward(means, np.ascontiguousarray(conic), colours, h, w)
        ones_ref, _ = cpu.forward(means, np.ascontiguousarray(conic), np.ones_like(colours), h, w)
        ones = vectorised.forward(means, np.ascontiguousarray(conic), np.ones_like(colours), h, w)
        assert np.array_equal(ones_ref > 0, ones > 0)
        assert np.abs(out - ref).max() <= 2e-6 * max(1.0, float(np.abs(ones_ref).max())), float(np.abs(out - ref).max())


def test_render_array_engines_agree_on_golden_files() -> None:
    from splatpix import jit

    for name in ("gaussianimage.spix", "sga.spix"):
        a = decode_arrays(GOLDEN / name)
        for kw in ({}, {"scale": 2.3}, {"height": 17, "width": 40, "window": (0.2, 0.1, 0.9, 0.6)}):
            ref = render_array(a, clamp=True, **kw)
            with jit.using_engine("numpy"):
                out = render_array(a, clamp=True, **kw)
            assert np.abs(out - ref).max() <= 2e-6, (name, kw)


def test_numpy_tier_assignment_equals_the_kernels() -> None:
    """Random point sets (clustered, duplicated, up to 2^28 grid units: float64 distances beyond 2^53 round in both)
    and thresholds: the numpy engine's tiers and tier order are the kernels'."""
    from splatpix import jit
    from splatpix.codec import tiers

    rng = np.random.default_rng(0)
    for _ in range(300):
        n, k = int(rng.integers(1, 300)), int(rng.integers(1, 6))
        spread = int(rng.choice([3, 30, 3000, 2 ** 28]))
        pts = rng.integers(0, spread, (n, 2))
        if rng.random() < 0.3:
            pts[: n // 2] = pts[0]
        th = sorted(int(v) for v in rng.integers(0, min(spread * spread // 2 + 2, 2 ** 62), int(rng.integers(0, 4))))
        ref = tiers.assign_tiers(pts, th, k)
        with jit.using_engine("numpy"):
            got = tiers.assign_tiers(pts, th, k)
            order = tiers.tier_order(got, len(th) + 1)
        assert np.array_equal(got, ref)
        assert all(np.array_equal(a, b) for a, b in zip(order, tiers.tier_order(ref, len(th) + 1), strict=True))
