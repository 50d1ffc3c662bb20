"""The package's structure: the codec registry, the presets every entry point shares, the divergence guard, the
shared checks, and an import graph without cycles."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ramp_image, write_png

import splatpix
from splatpix.checks import is_int, is_number, is_real, json_float
from splatpix.cli import main
from splatpix.codec import bitstream as bs
from splatpix.codec import registry
from splatpix.codec.api import encode, encode_configs, unpack
from splatpix.codec.methods import gaussianimage, sga
from splatpix.errors import SplatpixError
from splatpix.eval.harness import available_methods
from splatpix.gainer import GainerTrainConfig
from splatpix.presets import CODEC_PRESETS, GAINER_PRESETS
from splatpix.train import DivergenceGuard

SRC = Path(splatpix.__file__).resolve().parent


def _image() -> torch.Tensor:
    return ramp_image(24, 32, 3.0, 4.0)


# ------------------------------------------------------------------------------------------------ registry


def test_registry_lists_the_methods_by_name_and_id() -> None:
    assert registry.names() == ("gaussianimage", "sga")
    assert registry.get("gaussianimage") is gaussianimage.METHOD and registry.get("sga") is sga.METHOD
    assert registry.by_id(0).name == "gaussianimage" and registry.by_id(1).name == "sga"
    assert registry.ids() == frozenset({0, 1})
    with pytest.raises(SplatpixError, match="unknown method 'jpeg'; use one of gaussianimage, sga"):
        registry.get("jpeg")
    with pytest.raises(SplatpixError, match="method id 9 is unknown; it needs a newer splatpix"):
        registry.by_id(9, "f.spix")


def test_registry_refuses_a_second_method_with_the_same_name_or_id() -> None:
    m = registry.get("sga")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(m)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.CodecMethod(**{**m.__dict__, "name": "other"}))
    assert registry.names() == ("gaussianimage", "sga")


def test_method_options() -> None:
    m = registry.get("sga")
    assert m.options() == sga.SGAConfig()
    assert m.options({"subdiv": 2}).subdiv == 2
    with pytest.raises(SplatpixError, match="has no option 'bogus'"):
        m.options({"bogus": 1})
    with pytest.raises(SplatpixError, match="takes no options"):
        registry.get("gaussianimage").options({"subdiv": 2})
    assert registry.get("gaussianimage").options() is None


# ------------------------------------------------------------------------------------------------ presets


def test_encode_configs_follow_the_preset_then_the_method_then_the_options() -> None:
    fc, qc, opts = encode_configs("gaussianimage")
    cpu = CODEC_PRESETS["cpu"]
    assert (fc.steps, fc.optimizer, fc.lr, fc.lr_decay_every) == (2000, "adam", 1e-2, 1000)
    assert (qc.steps, qc.optimizer, qc.lr) == (cpu["qat"]["steps"], "adam", 1e-3) == (1000, "adam", 1e-3)
    assert (fc.init, fc.relocate_every, opts) == ("random", 0, None)
    fc, qc, opts = encode_configs("sga", options={"steps": 400, "qat_steps": 7, "subdiv": 2, "tier_bits": (5, 6),
                                                  "n_tiers": 2, "seed": 3, "vq_codebook": 4, "lr_cov_scale": 2.0})
    assert fc.lr_decay_every == 200  # halved at half-way, whatever the number of steps
    assert (fc.init, fc.colour_solve_init, fc.relocate_every) == ("structure", True, 250)  # the method's defaults
    assert fc.lr_cov_scale == 2.0  # the caller's value wins
    assert (qc.steps, qc.seed, fc.seed, qc.vq_codebook) == (7, 3, 3, 4)
    assert (opts.subdiv, opts.tier_bits, opts.n_tiers) == (2, (5, 6), 2)
    fc, qc, _ = encode_configs("gaussianimage", "gaussianimage-paper")
    assert (fc.steps, fc.optimizer, fc.lr, fc.lr_decay_every, qc.steps, qc.optimizer) == (
        50_000, "adan", 1e-3, 20_000, 50_000, "adan")
    with pytest.raises(SplatpixError, match="no encode option 'subdiv' \\(an option of another method\\)"):
        encode_configs("gaussianimage", options={"subdiv": 2})
    with pytest.raises(SplatpixError, match="unknown codec preset"):
        encode_configs("sga", "fast")


def test_gainer_presets_come_from_the_presets_module() -> None:
    small = GainerTrainConfig.preset("small")
    assert (small.model.n_gaussians, small.model.k, small.model.hashgrid.log2_table_size, small.steps,
            small.batch) == (20_000, 8, 16, 2000, 1 << 13)
    paper = GainerTrainConfig.preset("paper")
    assert (paper.model.n_gaussians, paper.model.k, paper.model.hashgrid.log2_table_size,
            paper.model.hashgrid.max_resolution, paper.steps, paper.batch) == (500_000, 16, 21, 8192, 30_000, 0)
    assert paper.model.mlp_arch == "gainer"
    assert set(GAINER_PRESETS) == {"balanced", "paper-cpu", "paper", "small"}


def test_the_same_options_give_the_same_file_in_the_api_the_cli_and_the_harness(tmp_path) -> None:
    img = _image()
    write_png(tmp_path / "in.png", img)
    img8 = splatpix.load_image(tmp_path / "in.png")
    options = {"steps": 40, "qat_steps": 10}
    fc, qc, opts = encode_configs("sga", options=options)
    api = encode(img8, 30, method="sga", fit_config=fc, qat_config=qc, options=opts, progress=False)
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "c.spix"), "-n", "30", "--method", "sga",
                 "--steps", "40", "--qat-steps", "10", "--quiet"]) == 0
    assert (tmp_path / "c.spix").read_bytes() == api.data
    fn, _ = available_methods(options)["sga"]
    row = fn(img8, 30)
    assert (row["bytes"], row["psnr"]) == (len(api.data), api.report["psnr"])


def test_api_encode_defaults_to_the_cpu_preset() -> None:
    img = _image()
    fc, qc, _ = encode_configs("gaussianimage", options={"steps": 30, "qat_steps": 5})
    explicit = encode(img, 20, fit_config=fc, qat_config=qc, progress=False)
    implicit = encode(img, 20, preset="cpu", fit_config=fc, progress=False)  # QAT from the preset: 1000 steps
    assert implicit.report["qat_steps"] == 1000 and explicit.report["qat_steps"] == 5
    q, meta = unpack(explicit.data)
    assert meta["method"] == "gaussianimage" and q.n == 20


# ------------------------------------------------------------------------------------------------ guard, checks


def test_divergence_guard_keeps_the_last_finite_state() -> None:
    t = {"a": torch.ones(3), "b": torch.zeros(2)}
    g = DivergenceGuard(t, what="QAT", kept="state")
    assert g.record(1.0, 0, t) and g.step == 0
    t["a"].add_(1.0)
    assert g.record(0.5, 1, t) and g.step == 1
    t["a"][0] = math.nan
    assert not g.params_ok(t, 2)
    assert g.diverged and g.message == "QAT diverged: non-finite parameters after step 2; restored the last good " \
                                       "state (step 1)"
    g.restore(t)
    assert torch.equal(t["a"], torch.full((3,), 2.0))
    h = DivergenceGuard(t, step=5)
    assert not h.record(math.inf, 6, t) and h.step == 5 and "non-finite loss at step 6" in h.message


def test_shared_number_checks() -> None:
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True) and not is_int(3.0)
    assert is_number(2.5) and is_number(np.float32(1)) and not is_number(math.nan) and not is_number(True)
    assert not is_number(10 ** 400)  # too large for a float: not finite, and no OverflowError
    assert is_real(math.nan) and not is_real("1")
    assert json_float(math.inf) is None and json_float(1.5) == 1.5 and json_float(7) == 7 and json_float(None) is None


def test_bitstream_names_the_method_through_the_registry() -> None:
    header = bs.SpixHeader(width=2, height=2, channels=3, method=sga.METHOD_ID, n_gaussians=0)
    assert header.method_name == "sga"
    assert bs.SpixHeader(width=2, height=2, channels=3, method=77, n_gaussians=0).method_name == "unknown (77)"


# ------------------------------------------------------------------------------------------------ imports


def _import_graph() -> dict[str, set[str]]:
    mods: dict[str, tuple[Path, bool]] = {}
    for p in SRC.rglob("*.py"):
        parts = ["splatpix", *p.relative_to(SRC).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, (p, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("splatpix")):
                base = m.split(".") if is_pkg else m.split(".")[:-1]
                target = ".".join(base[:len(base) - node.level + 1] + (node.module.split(".") if node.module else [])) \
                    if node.level else node.module
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    graph[m].add(sub if sub in mods else target)
    return {m: {t for t in ts if t in mods and t != m} for m, ts in graph.items()}


def test_no_import_cycle() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert "splatpix.codec.methods.sga" in graph  # the graph was read


def test_no_private_import_across_modules() -> None:
    """``from x import _name`` only inside one package's own helpers is fine; across packages it is not."""
    offenders = []
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{p.relative_to(SRC)}: from {'.' * node.level}{node.module} import "
                                         f"{alias.name}")
    assert not offenders, offenders
