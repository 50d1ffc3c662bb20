"""GaINeR training checkpoints (resume gives the uninterrupted run) and the separate RGBA mask model."""

from __future__ import annotations

import pytest
import torch
from helpers import gainer_config, gainer_image, rewrite_safetensors_meta

from splatpix.errors import SplatpixError
from splatpix.gainer import GainerTrainConfig, fit_gainer, load_gainer, save_gainer
from splatpix.gainer.checkpoint import load_checkpoint


def _cfg(**kw) -> GainerTrainConfig:
    base = {"model": gainer_config(n_gaussians=96, trainable_means=True), "steps": 24, "batch": 64, "log_every": 4,
            "lr_milestones": (0.25, 0.6)}
    base.update(kw)
    return GainerTrainConfig(**base)


def _same_params(a, b) -> None:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k].detach(), pb[k].detach()), k


@pytest.mark.parametrize("channels,alpha_model", [(3, "head"), (4, "separate")])
def test_resume_equals_uninterrupted(tmp_path, channels, alpha_model):
    img = gainer_image(channels, 16, 20)
    cfg = _cfg(model=gainer_config(n_gaussians=96, trainable_means=True, alpha_model=alpha_model))
    full = fit_gainer(img, cfg, progress=False)
    ck = tmp_path / "run.ckpt"
    # interrupted at step 8 (stopped by the callback, as a user's Ctrl-C would be handled by the caller)
    part = fit_gainer(img, cfg, progress=False, checkpoint_path=ck, callback=lambda s, i: s >= 8)
    assert part.steps == 8 and load_checkpoint(ck).step == 8
    resumed = fit_gainer(img, progress=False, resume=ck, checkpoint_path=ck)
    assert resumed.steps == cfg.steps and load_checkpoint(ck).step == cfg.steps
    _same_params(full.field, resumed.field)
    assert resumed.psnr == full.psnr
    assert [e["step"] for e in resumed.history] == [e["step"] for e in full.history]


def test_periodic_checkpoint_and_extended_steps(tmp_path):
    img = gainer_image(3, 16, 16)
    ck = tmp_path / "c.ckpt"
    cfg = _cfg(steps=12, checkpoint_every=5)
    fit_gainer(img, cfg, progress=False, checkpoint_path=ck)
    assert load_checkpoint(ck).step == 12
    more = fit_gainer(img, _cfg(steps=20, checkpoint_every=5), progress=False, resume=ck)
    assert more.steps == 20


def test_resume_refuses_other_image_and_config(tmp_path):
    img = gainer_image(3, 16, 16)
    ck = tmp_path / "c.ckpt"
    fit_gainer(img, _cfg(steps=6), progress=False, checkpoint_path=ck)
    other = img.clone()
    other[0, 0, 0] = 0.123
    with pytest.raises(SplatpixError, match="another image"):
        fit_gainer(other, progress=False, resume=ck)
    with pytest.raises(SplatpixError, match="lr differ"):
        fit_gainer(img, _cfg(steps=6, lr=0.5), progress=False, resume=ck)
    with pytest.raises(SplatpixError, match="past the"):
        fit_gainer(img, _cfg(steps=3), progress=False, resume=ck)


def test_corrupted_checkpoint_refused(tmp_path):
    img = gainer_image(3, 16, 16)
    ck = tmp_path / "c.ckpt"
    fit_gainer(img, _cfg(steps=4), progress=False, checkpoint_path=ck)
    data = ck.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "garbage": b"\x00" * 64,
    }
    for key, value in (("step", -1), ("rng_state", "!!not base64!!"), ("config", {"model": 3})):
        cases[key] = rewrite_safetensors_meta(data, lambda h, m, key=key, value=value: m.__setitem__(key, value))
    for name, blob in cases.items():
        p = tmp_path / f"bad_{name}.ckpt"
        p.write_bytes(blob)
        with pytest.raises(SplatpixError, match="bad_"):
            fit_gainer(img, progress=False, resume=p)
    # a model file is not a checkpoint
    res = fit_gainer(img, _cfg(steps=2), progress=False)
    save_gainer(res.field, tmp_path / "model.safetensors")
    with pytest.raises(SplatpixError, match="checkpoint"):
        load_checkpoint(tmp_path / "model.safetensors")


def test_separate_mask_model_round_trip(tmp_path):
    img = gainer_image(4, 16, 16)
    cfg = _cfg(model=gainer_config(n_gaussians=96, alpha_model="separate"), steps=30, batch=0)
    res = fit_gainer(img, cfg, progress=False)
    f = res.field
    assert f.mask_grid is not None and f.mask_mlp is not None and f.mlp[-1].out_features == 3
    before = f.render()
    f.bake()
    assert f.baked_features.shape == (96, 2 * f.cfg.feature_dim) and f.mask_grid is None
    assert torch.allclose(f.render(), before, atol=1e-6)
    save_gainer(f, tmp_path / "m.safetensors")
    g = load_gainer(tmp_path / "m.safetensors")
    assert g.cfg.alpha_model == "separate" and torch.equal(g.render(), f.render())
    assert g.render().shape == (4, 16, 16)


def test_separate_mask_model_learns_alpha():
    img = gainer_image(4, 16, 16)
    cfg = _cfg(model=gainer_config(n_gaussians=128, alpha_model="separate"), steps=80, batch=0, lr=2e-2)
    out = fit_gainer(img, cfg, progress=False).field.render()
    alpha_err = float((out[3] - img[3]).abs().mean())
    assert alpha_err < 0.2, alpha_err
    # the mask model does not change the colour model's output size
    rgb_only = fit_gainer(img[:3], _cfg(model=gainer_config(n_gaussians=128, alpha_model="separate"), steps=2,
                                        batch=0), progress=False).field
    assert rgb_only.mask_mlp is None and rgb_only.channels == 3


def test_rgba_file_without_alpha_model_loads_as_head(tmp_path):
    img = gainer_image(4, 16, 16)
    res = fit_gainer(img, _cfg(model=gainer_config(n_gaussians=64, alpha_model="head"), steps=2), progress=False)
    path = tmp_path / "old.safetensors"
    save_gainer(res.field, path)
    # as written before the option existed
    path.write_bytes(rewrite_safetensors_meta(path.read_bytes(), lambda h, m: m["config"].pop("alpha_model")))
    g = load_gainer(path)
    assert g.cfg.alpha_model == "head" and torch.equal(g.render(), res.field.render())
