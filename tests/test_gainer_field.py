"""GaINeR field, training, model files and PLY export (small and fast)."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch
from helpers import SMALL_GRID, gainer_config, gainer_image, rewrite_safetensors_meta

from splatpix.errors import SplatpixError
from splatpix.gainer import (
    GainerConfig,
    GainerField,
    GainerTrainConfig,
    export_ply,
    fit_gainer,
    load_gainer,
    read_gainer_metadata,
    save_gainer,
)
from splatpix.gainer.aggregate import aggregate
from splatpix.metrics import psnr


def randomised(cfg: GainerConfig, seed: int = 0, size: tuple[int, int] = (16, 24)) -> GainerField:
    """A field with non-trivial table, covariances (anisotropic) and MLP."""
    f = GainerField(cfg, size=size, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        f.grid.table.uniform_(-1.0, 1.0, generator=gen)
        f.cov_params[:, 1] = 0.05 * torch.randn(cfg.n_gaussians, generator=gen)
        f.cov_params[:, 0] += 0.2 * torch.randn(cfg.n_gaussians, generator=gen)
    return f


def test_render_shape_and_range():
    f = randomised(gainer_config())
    img = f.render()
    assert img.shape == (3, 16, 24)
    assert bool(torch.isfinite(img).all()) and float(img.min()) >= 0 and float(img.max()) <= 1
    assert f.render(7, 5, chunk=3).shape == (3, 7, 5)


def test_baked_matches_unbaked():
    f = randomised(gainer_config())
    before = f.render()
    f.bake()
    assert f.baked and f.grid is None and f.baked_features.shape == (128, SMALL_GRID.output_dim)
    after = f.render()
    assert torch.allclose(before, after, atol=1e-5, rtol=0)
    f.bake()  # a second bake is a no-op
    assert torch.equal(after, f.render())


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_save_load_round_trip(tmp_path, aggregation):
    f = randomised(gainer_config(aggregation=aggregation, channels=4)).bake()
    path = tmp_path / "m.safetensors"
    save_gainer(f, path, extra={"note": "x"})
    g = load_gainer(path)
    assert g.baked and g.cfg == f.cfg and g.size == f.size and g.channels == 4
    assert g.meta["extra"] == {"note": "x"}
    assert read_gainer_metadata(path)["n_gaussians"] == 128
    assert torch.equal(f.render(), g.render())
    assert torch.equal(f.render(9, 13, (0.1, 0.2, 0.7, 0.9)), g.render(9, 13, (0.1, 0.2, 0.7, 0.9)))


def test_save_unbaked_saves_baked_features(tmp_path):
    f = randomised(gainer_config())
    save_gainer(f, tmp_path / "m.safetensors")
    assert not f.baked
    g = load_gainer(tmp_path / "m.safetensors")
    assert torch.allclose(f.render(), g.render(), atol=1e-5, rtol=0)


def test_render_scales_and_crops_consistent():
    f = randomised(gainer_config(), size=(12, 18)).bake()
    one = f.render()
    # 3x: pixel (3i + 1, 3j + 1) has the same centre as pixel (i, j) at 1x
    three = f.render(36, 54)
    assert torch.allclose(three[:, 1::3, 1::3], one, atol=1e-6, rtol=0)
    # 2x equals the field evaluated directly at its pixel centres
    two = f.render(24, 36)
    us = (torch.arange(36, dtype=torch.float64) + 0.5) / 36
    vs = (torch.arange(24, dtype=torch.float64) + 0.5) / 24
    q = torch.stack((us[None, :].expand(24, 36), vs[:, None].expand(24, 36)), -1).reshape(-1, 2).float()
    with torch.no_grad():
        direct = f(q).T.reshape(3, 24, 36)
    assert torch.allclose(two, direct, atol=1e-6, rtol=0)
    # crop: the window (1/3, 1/2, 2/3, 1) on a 6x6 grid has the centres of rows 6..11, columns 6..11 at 1x
    crop = f.render(6, 6, (1 / 3, 0.5, 2 / 3, 1.0))
    assert torch.allclose(crop, one[:, 6:12, 6:12], atol=1e-6, rtol=0)


def test_aggregate_numba_matches_reference():
    gen = torch.Generator().manual_seed(5)
    idx = torch.randint(-1, 30, (50, 6), generator=gen)
    w1 = torch.rand(50, 6, generator=gen).requires_grad_()
    f1 = torch.randn(30, 4, generator=gen).requires_grad_()
    w2, f2 = w1.detach().clone().requires_grad_(), f1.detach().clone().requires_grad_()
    g = torch.randn(50, 4, generator=gen)
    a = aggregate(w1, idx, f1, "numba")
    b = aggregate(w2, idx, f2, "reference")
    assert torch.allclose(a, b, atol=1e-5)
    (a * g).sum().backward()
    (b * g).sum().backward()
    assert torch.allclose(f1.grad, f2.grad, atol=1e-5)
    assert torch.allclose(w1.grad * (idx >= 0), w2.grad, atol=1e-5)
    with pytest.raises(SplatpixError):
        aggregate(w1, idx + 100, f1)


def test_no_neighbour_gets_zero_features():
    cfg = gainer_config(n_gaussians=4, radius_mode="absolute", radius=0.01)
    means = torch.tensor([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4]])
    f = GainerField(cfg, means)
    feats = f.features(torch.tensor([[0.9, 0.9], [0.1, 0.1]]))
    assert torch.equal(feats[0], torch.zeros_like(feats[0]))
    assert bool((feats[1] != 0).any())


def test_training_raises_psnr():
    img = gainer_image()
    cfg = GainerTrainConfig(model=gainer_config(n_gaussians=256), steps=100, batch=0, log_every=20)
    res = fit_gainer(img, cfg, progress=False)
    assert not res.diverged and res.steps == 100
    first = res.history[0]["psnr"]
    assert res.psnr_float > first + 8.0, (first, res.psnr_float)
    assert res.psnr == pytest.approx(psnr(res.field.render(), img), abs=1e-9)
    rep = json.dumps(res.report())
    assert "psnr" in rep


def test_training_random_batches_and_callbacks():
    img = gainer_image(1, 16, 16)
    seen: list[int] = []
    cfg = GainerTrainConfig(model=gainer_config(n_gaussians=64), steps=20, batch=50, checkpoint_every=10, log_every=5)
    stop_at = {"step": None}

    def cb(step, info):
        stop_at["step"] = step
        return step >= 10

    res = fit_gainer(img, cfg, progress=False, callback=cb, checkpoint=lambda s, m: seen.append(s))
    assert res.field.channels == 1 and stop_at["step"] == 10 and "stopped" in res.message
    assert seen[0] == 10 and seen[-1] == res.steps


def test_rgba_round_trip(tmp_path):
    img = gainer_image(4, 16, 16)
    cfg = GainerTrainConfig(model=gainer_config(n_gaussians=64), steps=30, batch=0)
    res = fit_gainer(img, cfg, progress=False)
    f = res.field.bake()
    assert f.channels == 4
    save_gainer(f, tmp_path / "rgba.safetensors")
    g = load_gainer(tmp_path / "rgba.safetensors")
    out = g.render()
    assert out.shape == (4, 16, 16) and torch.equal(out, f.render())


@pytest.mark.parametrize("trainable", [False, True])
def test_trainable_vs_frozen_means(trainable):
    img = gainer_image(3, 16, 16)
    cfg = GainerTrainConfig(model=gainer_config(n_gaussians=64, trainable_means=trainable), steps=10, batch=0,
                            lr_means=1e-2)
    from splatpix.gainer.field import random_means

    start = random_means(64, cfg.seed)
    res = fit_gainer(img, cfg, progress=False)
    moved = float((res.field.means.detach() - start).abs().max())
    if trainable:
        assert moved > 1e-4
    else:
        assert moved == 0.0


def test_gradients_reach_covariances():
    cfg = gainer_config(n_gaussians=32, radius_mode="absolute", radius=0.5, k=32)
    f = randomised(cfg)
    q = torch.rand(40, 2, generator=torch.Generator().manual_seed(3))

    def loss_of(params: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            f.cov_params.copy_(params)
        return f(q).square().sum()

    p0 = f.cov_params.detach().clone()
    f.zero_grad()
    loss = loss_of(p0)
    loss.backward()
    g = f.cov_params.grad
    assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().max()) > 0
    assert f.grid.table.grad is not None and f.means.grad is None
    # directional finite difference (the absolute radius keeps the neighbour sets fixed)
    direction = torch.randn(p0.shape, generator=torch.Generator().manual_seed(4))
    eps = 1e-3
    with torch.no_grad():
        fd = (loss_of(p0 + eps * direction) - loss_of(p0 - eps * direction)) / (2 * eps)
    analytic = float((g * direction).sum())
    assert abs(float(fd) - analytic) <= 2e-2 * max(1.0, abs(analytic)), (float(fd), analytic)


def test_gradients_reach_trainable_means():
    f = randomised(gainer_config(n_gaussians=32, trainable_means=True))
    f(torch.rand(50, 2)).sum().backward()
    assert f.means.grad is not None and float(f.means.grad.abs().max()) > 0


def test_knn_index_cached_and_rebuilt():
    f = randomised(gainer_config()).bake()
    f.render()
    index = f._index
    version = index.version
    f.render()
    assert f._index is index and index.version == version
    with torch.no_grad():
        f.means[0] += 0.01
    f.render()
    assert index.version == version + 1


def test_nan_guard_restores_last_good():
    img = gainer_image(3, 16, 16)
    cfg = GainerTrainConfig(model=gainer_config(n_gaussians=64), steps=30, batch=0, checkpoint_every=10)

    def poison(step, model):
        if step == 10:
            with torch.no_grad():
                model.mlp[0].weight[0, 0] = math.nan

    res = fit_gainer(img, cfg, progress=False, checkpoint=poison)
    assert res.diverged and "diverged" in res.message and res.steps == 9
    assert all(bool(torch.isfinite(p).all()) for p in res.field.parameters())
    assert math.isfinite(res.psnr)


@pytest.mark.parametrize(
    "kw",
    [
        {"n_gaussians": 0}, {"n_gaussians": 1.5}, {"k": 0}, {"k": 10_000}, {"radius_mode": "both"},
        {"radius_scale": 0.0}, {"radius_scale": math.nan}, {"radius": -1.0}, {"aggregation": "max"},
        {"mlp_hidden": 0}, {"mlp_layers": -1}, {"channels": 2}, {"trainable_means": 1}, {"hashgrid": 3},
    ],
)
def test_invalid_model_config(kw):
    with pytest.raises(SplatpixError):
        GainerConfig(**kw)


@pytest.mark.parametrize(
    "kw",
    [{"steps": -1}, {"lr": 0.0}, {"lr_cov": math.inf}, {"batch": -5}, {"smooth_l1_beta": 0},
     {"lr_milestones": (0.5, 1.5)}, {"lr_gamma": 2.0}, {"log_every": 0}, {"model": "x"}],
)
def test_invalid_train_config(kw):
    with pytest.raises(SplatpixError):
        GainerTrainConfig(**kw)


def test_presets():
    cpu = GainerTrainConfig.preset("small")
    paper = GainerTrainConfig.preset("paper", steps=10)
    assert cpu.model.n_gaussians == 20_000 and cpu.model.k == 8 and cpu.model.hashgrid.log2_table_size == 16
    assert GainerTrainConfig.preset("balanced").batch == 0
    assert paper.model.n_gaussians == 500_000 and paper.model.k == 16 and paper.steps == 10
    assert paper.model.hashgrid.log2_table_size == 21
    with pytest.raises(SplatpixError):
        GainerTrainConfig.preset("nope")


def test_fit_rejects_bad_image():
    with pytest.raises(SplatpixError):
        fit_gainer(torch.zeros(2, 4, 4), GainerTrainConfig(model=gainer_config(), steps=1), progress=False)
    with pytest.raises(SplatpixError):
        fit_gainer(torch.full((3, 4, 4), 2.0), GainerTrainConfig(model=gainer_config(), steps=1), progress=False)


def _rewrite_meta(data: bytes, change) -> bytes:
    return rewrite_safetensors_meta(data, change, pad=False)  # the new header is not padded to 8 bytes


def test_corrupted_files_raise(tmp_path):
    f = randomised(gainer_config()).bake()
    path = tmp_path / "m.safetensors"
    save_gainer(f, path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])

    def set_cfg(key, value):
        return lambda h, m: m["config"].__setitem__(key, value)

    def set_meta(key, value):
        return lambda h, m: m.__setitem__(key, value)

    cases = {
        "truncated": data[: len(data) // 2],
        "short": data[:5],
        "header_len": struct.pack("<Q", 1 << 40) + data[8:],
        "garbage_header": data[:8] + b"\xff" * n + data[8 + n :],
        "format": _rewrite_meta(data, set_meta("format", "other")),
        "version": _rewrite_meta(data, set_meta("format_version", 99)),
        "n_mismatch": _rewrite_meta(data, set_meta("n_gaussians", 127)),
        "bad_cfg": _rewrite_meta(data, set_cfg("k", -3)),
        "unknown_cfg_key": _rewrite_meta(data, set_cfg("bogus", 1)),
        "bad_grid": _rewrite_meta(data, lambda h, m: m["config"]["hashgrid"].__setitem__("n_levels", 0)),
        "height": _rewrite_meta(data, set_meta("height", 0)),
        "shape": _rewrite_meta(data, lambda h, m: h["means"].__setitem__("shape", [128, 3])),
        "dtype": _rewrite_meta(data, lambda h, m: h["means"].__setitem__("dtype", "I32")),
        "missing": _rewrite_meta(data, lambda h, m: h.pop("features")),
    }
    # NaN in a tensor
    nan_field = GainerField(f.cfg, f.means.detach(), f.cov_params.detach(), size=f.size,
                            baked_features=f.baked_features)
    save_gainer(nan_field, tmp_path / "ok.safetensors")
    raw = bytearray((tmp_path / "ok.safetensors").read_bytes())
    (hn,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hn])
    start = 8 + hn + header["means"]["data_offsets"][0]
    raw[start : start + 4] = struct.pack("<f", math.nan)
    cases["nan"] = bytes(raw)
    for name, blob in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(blob)
        with pytest.raises(SplatpixError) as err:
            load_gainer(p)
        assert "\n" not in str(err.value), name
    with pytest.raises(SplatpixError):
        load_gainer(tmp_path / "does_not_exist.safetensors")


def test_save_refuses_non_finite(tmp_path):
    f = randomised(gainer_config()).bake()
    with torch.no_grad():
        f.cov_params[0, 0] = math.inf
    with pytest.raises(SplatpixError):
        save_gainer(f, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_export_ply(tmp_path):
    f = randomised(gainer_config(n_gaussians=50))
    path = tmp_path / "means.ply"
    export_ply(f, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "ply" and lines[1] == "format ascii 1.0"
    assert "element vertex 50" in lines
    body = lines[lines.index("end_header") + 1 :]
    assert len(body) == 50
    vals = torch.tensor([[float(t) for t in line.split()] for line in body], dtype=torch.float64)
    h, w = f.size  # pixels, y up
    m = f.means.detach().double()
    assert torch.allclose(vals[:, 0], m[:, 0] * w, atol=1e-5) and torch.allclose(vals[:, 1], h - m[:, 1] * h, atol=1e-5)
    assert torch.equal(vals[:, 2], torch.zeros(50, dtype=vals.dtype))
    assert vals.shape[1] == 9 and bool((vals[:, 6] >= vals[:, 7]).all())
