"""fit() with the structure-guided options (init, colour solve, geometry loss) and their CLI flags."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from helpers import one_error_line, run_cli, write_png

from splatpix.cli import build_parser
from splatpix.cli.model import fit_config
from splatpix.errors import SplatpixError
from splatpix.io import load_image, sample_image_path
from splatpix.train.loop import FitConfig, fit

fit_mod = importlib.import_module("splatpix.train.loop")


def natural(h: int = 64, w: int = 96) -> torch.Tensor:
    """A 64x96 crop of the bundled sample (kodim23, 384x256): beak, eye and feathers."""
    return load_image(sample_image_path())[:, 96:96 + h, 160:160 + w].contiguous()


def cfg(**kw) -> FitConfig:
    base = dict(n_gaussians=300, steps=0, lr=1e-2, log_every=5)
    base.update(kw)
    return FitConfig(**base)


def test_defaults_are_gaussianimage() -> None:
    c = FitConfig()
    assert (c.init, c.colour_solve_init, c.colour_solve_every, c.geo_weight) == ("random", False, 0, 0.0)
    assert c.init_scale is None and c.colour_solve_iters == 20 and c.superpixel_area == 1024.0


def test_structure_init_beats_random_at_step_0() -> None:
    img = natural()
    p = {}
    for name, kw in {"random": {}, "structure": dict(init="structure"), "gradient": dict(init="gradient"),
                     "structure+solve": dict(init="structure", colour_solve_init=True),
                     "random+solve": dict(colour_solve_init=True)}.items():
        res = fit(img, cfg(**kw), progress=False)
        assert res.steps == 0 and res.history[0]["step"] == 0
        p[name] = res.history[0]["psnr"]
        assert res.psnr == pytest.approx(p[name])  # the logged step 0 is the initialised model
        assert res.init_seconds > 0 and res.seconds >= res.init_seconds
    # measured (64x96 crop, N = 300): random 7.2, structure 19.2, gradient 15.5, structure+solve 24.7,
    # gradient+solve 23.6, random+solve 8.1 dB
    assert p["structure"] > p["random"] + 8.0
    assert p["structure+solve"] > p["structure"] + 3.0
    assert p["random+solve"] >= p["random"] - 0.5  # unclamped error never grows; clamped PSNR barely moves
    assert p["gradient"] > p["random"] + 5.0


@pytest.mark.parametrize("param", ["cholesky", "rs"])
def test_fit_trains_from_structure_init(param: str) -> None:
    img = natural(32, 48)
    res = fit(img, cfg(n_gaussians=150, steps=15, init="structure", colour_solve_init=True, param=param),
              progress=False)
    assert not res.diverged and res.steps == 15 and res.gaussians.param == param
    assert res.psnr > res.history[0]["psnr"]
    assert [h["step"] for h in res.history] == [0, 5, 10, 15]
    secs = [h["seconds"] for h in res.history]
    assert secs[0] >= res.init_seconds and all(b >= a for a, b in zip(secs, secs[1:], strict=False))
    assert res.report()["init_seconds"] == pytest.approx(res.init_seconds)
    again = fit(img, cfg(n_gaussians=150, steps=15, init="structure", colour_solve_init=True, param=param),
                progress=False)
    assert torch.equal(res.gaussians.means, again.gaussians.means)  # deterministic


def test_periodic_colour_solve_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = fit_mod.solve_colours

    def spy(g, image, **kw):
        calls.append(g.n)
        return real(g, image, **kw)

    monkeypatch.setattr(fit_mod, "solve_colours", spy)
    img = natural(32, 48)
    res = fit(img, cfg(n_gaussians=100, steps=12, init="gradient", colour_solve_init=True, colour_solve_every=5,
                       colour_solve_iters=5), progress=False)
    assert len(calls) == 3  # after init, and before steps 5 and 10
    assert not res.diverged and res.steps == 12
    # without the initial solve: only the periodic ones
    calls.clear()
    fit(img, cfg(n_gaussians=100, steps=11, colour_solve_every=5, colour_solve_iters=3), progress=False)
    assert len(calls) == 2


def test_periodic_colour_solve_optimizer_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The colour tensor's Adan state restarts (step count 1) after each solve, the others' do not."""
    seen: list[tuple[int, int]] = []
    real_step = fit_mod.Adan.step

    def step(self, closure=None):
        out = real_step(self, closure)
        # one optimiser group per raw tensor: xy first, the colours ("features") last
        xy, feats = self.param_groups[0]["params"][0], self.param_groups[-1]["params"][-1]
        seen.append((self.state[xy]["step"], self.state[feats]["step"]))
        return out

    monkeypatch.setattr(fit_mod.Adan, "step", step)
    fit(natural(32, 48), cfg(n_gaussians=80, steps=8, init="structure", colour_solve_every=4, colour_solve_iters=3),
        progress=False)
    assert [s[0] for s in seen] == list(range(1, 9))
    assert [s[1] for s in seen] == [1, 2, 3, 4, 1, 2, 3, 4]


def test_geo_weight_changes_training_and_is_finite() -> None:
    img = natural(32, 48)
    base = fit(img, cfg(n_gaussians=120, steps=10), progress=False)
    geo = fit(img, cfg(n_gaussians=120, steps=10, geo_weight=0.05), progress=False)
    assert not geo.diverged and np.isfinite(geo.psnr)
    assert not torch.equal(base.gaussians.means, geo.gaussians.means)
    assert geo.history[0]["psnr"] == base.history[0]["psnr"]  # same initialisation


@pytest.mark.parametrize("channels", [1, 4])
def test_channels(channels: int) -> None:
    img = natural(24, 32)
    img = img[:1] if channels == 1 else torch.cat((img, img[:1]), 0)
    res = fit(img, cfg(n_gaussians=60, steps=3, init="structure", colour_solve_init=True, geo_weight=0.01),
              progress=False)
    assert res.gaussians.channels == channels and not res.diverged


@pytest.mark.parametrize("kw,needle", [
    (dict(init="magic"), "unknown init"),
    (dict(init_scale=0.0), "init_scale"),
    (dict(init_scale=float("inf")), "init_scale"),
    (dict(superpixel_area=0.5), "superpixel_area"),
    (dict(colour_solve_init=1), "colour_solve_init"),
    (dict(colour_solve_every=-1), "colour_solve_every"),
    (dict(colour_solve_every=2.5), "colour_solve_every"),
    (dict(colour_solve_iters=0), "colour_solve_iters"),
    (dict(geo_weight=-0.1), "geo_weight"),
    (dict(geo_weight=float("nan")), "geo_weight"),
])
def test_config_validation(kw: dict, needle: str) -> None:
    with pytest.raises(SplatpixError, match=f"invalid fit config: {needle}"):
        FitConfig(**kw)


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_flags_reach_the_config() -> None:
    args = build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors", "--init", "structure",
                                      "--colour-solve-init", "--colour-solve-every", "7", "--colour-solve-iters",
                                      "9", "--geo-weight", "0.02", "--init-scale", "0.8", "--superpixel-area",
                                      "512"])
    c = fit_config(args, (64, 64))
    assert (c.init, c.colour_solve_init, c.colour_solve_every, c.colour_solve_iters) == ("structure", True, 7, 9)
    assert (c.geo_weight, c.init_scale, c.superpixel_area) == (0.02, 0.8, 512.0)
    d = fit_config(build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors", "--preset",
                                              "gaussianimage-paper"]), (64, 64))
    assert (d.init, d.colour_solve_init, d.colour_solve_every, d.geo_weight, d.init_scale) == (
        "random", False, 0, 0.0, None)  # GaussianImage's own fit: none of the structure-guided parts
    r = fit_config(build_parser().parse_args(["fit", "x.png", "-o", "m.safetensors", "--init", "random",
                                              "--no-colour-solve-init"]), (64, 64))
    assert (r.init, r.colour_solve_init) == ("random", False)  # the options switch the recipe's parts off


@pytest.fixture
def image_file(tmp_path):
    return write_png(tmp_path / "img.png", natural(32, 48))


def test_cli_fit_with_structure_options(tmp_path, image_file, capsys) -> None:
    model, report = tmp_path / "m.safetensors", tmp_path / "r.json"
    code, _, err = run_cli(capsys, "fit", image_file, "-n", 100, "--steps", 4, "--log-every", 2, "-o", model,
                           "--report", report, "--quiet", "--init", "structure", "--colour-solve-init",
                           "--colour-solve-every", 2, "--geo-weight", 0.01)
    assert code == 0, err
    rep = json.loads(report.read_text())
    assert rep["config"]["init"] == "structure" and rep["config"]["colour_solve_init"] is True
    assert rep["config"]["colour_solve_every"] == 2 and rep["config"]["geo_weight"] == 0.01
    assert rep["init_seconds"] > 0 and rep["history"][0]["step"] == 0


@pytest.mark.parametrize("flags,needle", [
    (["--init", "magic"], "unknown init"),
    (["--geo-weight", "-1"], "geo_weight"),
    (["--colour-solve-every", "-3"], "colour_solve_every"),
    (["--colour-solve-iters", "0"], "colour_solve_iters"),
    (["--init-scale", "0"], "init_scale"),
    (["--superpixel-area", "0"], "superpixel_area"),
])
def test_cli_bad_values_one_line(tmp_path, image_file, capsys, flags, needle) -> None:
    model = tmp_path / "m.safetensors"
    code, _, err = run_cli(capsys, "fit", image_file, "-n", "10", "-o", model, "--quiet", *flags)
    assert code != 0, err
    assert needle in one_error_line(err)
    assert not model.exists()
