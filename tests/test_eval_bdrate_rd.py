"""Tests for splatpix.eval: BD-rate / BD-PSNR, CompressAI-format RD curves, RD plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from splatpix.errors import SplatpixError
from splatpix.eval.bdrate import bd_psnr, bd_psnr_cubic_poly, bd_rate, bd_rate_cubic_poly
from splatpix.eval.rd import RDCurve, load_curve, load_published, mean_curve, save_curve

# The repository is checked out next to the shared folder (/work/main and /work/shared); elsewhere the tests
# that need the published curves are skipped.
KODAK = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rd" / "kodak"
BPG = "BPG 8b 444 x265 ycbcr"

# A smooth synthetic curve: PSNR grows with log-rate, with some curvature.
RATES = np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
PSNRS = 30.0 + 6.0 * np.log2(RATES / 0.4) - 0.3 * np.log2(RATES / 0.4) ** 2

needs_bj = pytest.mark.skipif(
    __import__("importlib").util.find_spec("bjontegaard") is None, reason="bjontegaard not installed"
)


@pytest.fixture(scope="module")
def published() -> dict[str, RDCurve]:
    if not KODAK.is_dir():
        pytest.skip(f"published curves not found at {KODAK}")
    return load_published(KODAK)


def _curve(name: str = "c", n: int = 4, offset: float = 0.0, ms: bool = True, **extra: list[float]) -> RDCurve:
    bpp = [0.1 * 2**i for i in range(n)]
    psnr = [25.0 + 3.0 * i + offset for i in range(n)]
    ms_ssim = [0.9 + 0.02 * i for i in range(n)] if ms else None
    results = {"bpp": bpp, "psnr-rgb": psnr, **extra}
    if ms_ssim is not None:
        results["ms-ssim-rgb"] = ms_ssim
    raw = {"name": name, "description": "synthetic", "results": results}
    return RDCurve(name=name, description="synthetic", bpp=bpp, psnr=psnr, ms_ssim=ms_ssim, raw=raw)


# --------------------------------------------------------------------------------------------------------
# BD-rate / BD-PSNR
# --------------------------------------------------------------------------------------------------------


@needs_bj
@pytest.mark.parametrize(("name", "golden"), [("JPEG", 143.0), ("WebP", 44.2), ("VTM", -18.0)])
def test_bd_rate_golden_published_kodak(published: dict[str, RDCurve], name: str, golden: float) -> None:
    a, t = published[BPG], published[name]
    value = bd_rate(a.bpp, a.psnr, t.bpp, t.psnr, method="akima")
    assert value == pytest.approx(golden, abs=0.5)


@needs_bj
def test_cubic_poly_cross_check_on_published(published: dict[str, RDCurve]) -> None:
    a = published[BPG]
    checked = 0
    for name, t in published.items():
        if name == BPG or len(t) < 4:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            akima = bd_rate(a.bpp, a.psnr, t.bpp, t.psnr)
            poly = bd_rate_cubic_poly(a.bpp, a.psnr, t.bpp, t.psnr)
            cubic = bd_rate(a.bpp, a.psnr, t.bpp, t.psnr, method="cubic")
            psnr_poly = bd_psnr_cubic_poly(a.bpp, a.psnr, t.bpp, t.psnr)
            psnr_cubic = bd_psnr(a.bpp, a.psnr, t.bpp, t.psnr, method="cubic")
        assert poly == pytest.approx(akima, abs=3.0), name  # different interpolants, same answer roughly
        assert poly == pytest.approx(cubic, abs=1e-6), name  # same method, independent implementations
        assert psnr_poly == pytest.approx(psnr_cubic, abs=1e-9), name
        checked += 1
    assert checked >= 6


@needs_bj
@pytest.mark.parametrize("method", ["akima", "pchip", "cubic"])
def test_identity_and_scaled_rates(method: str) -> None:
    assert bd_rate(RATES, PSNRS, RATES, PSNRS, method=method) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS, method=method) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(RATES, PSNRS, 0.9 * RATES, PSNRS, method=method) == pytest.approx(-10.0, abs=1e-6)
    assert bd_rate(RATES, PSNRS, 1.25 * RATES, PSNRS, method=method) == pytest.approx(25.0, abs=1e-6)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS + 0.5, method=method) == pytest.approx(0.5, abs=1e-9)


def test_cubic_poly_identity_and_scaled_rates() -> None:
    assert bd_rate_cubic_poly(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate_cubic_poly(RATES, PSNRS, 0.9 * RATES, PSNRS) == pytest.approx(-10.0, abs=1e-6)
    assert bd_psnr_cubic_poly(RATES, PSNRS, RATES, PSNRS - 1.0) == pytest.approx(-1.0, abs=1e-9)


@needs_bj
def test_point_order_does_not_matter_and_lists_accepted() -> None:
    perm = np.array([3, 0, 5, 1, 4, 2])
    ref = bd_rate(RATES, PSNRS, 0.8 * RATES, PSNRS + 0.2)
    shuffled = bd_rate(list(RATES[perm]), list(PSNRS[perm]), 0.8 * RATES, PSNRS + 0.2)
    assert isinstance(shuffled, float)
    assert shuffled == pytest.approx(ref, abs=1e-12)


@needs_bj
def test_low_overlap_warns() -> None:
    with pytest.warns(RuntimeWarning, match="overlap"):
        bd_rate(RATES, PSNRS, RATES * 1.1, PSNRS + 15.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd_rate(RATES, PSNRS, RATES * 1.1, PSNRS + 15.0, min_overlap=0.0)


BAD_CURVES = {
    "3 points": (RATES[:3], PSNRS[:3], "at least 4"),
    "length mismatch": (RATES, PSNRS[:5], "6 rates but 5"),
    "NaN": (np.r_[RATES[:-1], np.nan], PSNRS, "non-finite"),
    "inf psnr": (RATES, np.r_[PSNRS[:-1], np.inf], "non-finite"),
    "zero rate": (np.r_[0.0, RATES[1:]], PSNRS, "positive"),
    "negative rate": (np.r_[-0.1, RATES[1:]], PSNRS, "positive"),
    "duplicate rate": (np.r_[RATES[:-1], RATES[-2]], PSNRS, "duplicate"),
    "not monotonic": (RATES, np.r_[PSNRS[:-1], PSNRS[-2] - 1.0], "increase strictly"),
    "2-D": (RATES.reshape(2, 3), PSNRS.reshape(2, 3), "1-D"),
    "strings": (["a", "b", "c", "d"], [1, 2, 3, 4], "numbers"),
    "string": ("abcd", [1, 2, 3, 4], "numbers"),
}


@pytest.mark.parametrize("case", list(BAD_CURVES))
@pytest.mark.parametrize(
    "fn", [bd_rate, bd_psnr, bd_rate_cubic_poly, bd_psnr_cubic_poly], ids=lambda f: f.__name__
)
def test_invalid_inputs_raise(case: str, fn) -> None:  # noqa: ANN001
    rates, dists, match = BAD_CURVES[case]
    with pytest.raises(ValueError, match=match):
        fn(RATES, PSNRS, rates, dists)
    with pytest.raises(ValueError, match=match):
        fn(rates, dists, RATES, PSNRS)


@pytest.mark.parametrize(
    "fn", [bd_rate, bd_psnr, bd_rate_cubic_poly, bd_psnr_cubic_poly], ids=lambda f: f.__name__
)
def test_non_overlapping_curves_raise(fn) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="rate ranges do not overlap"):
        fn(RATES, PSNRS, RATES * 100.0, PSNRS + 20.0)
    # Rates overlap but the quality ranges do not: no BD-rate can be integrated.
    if fn in (bd_rate, bd_rate_cubic_poly):
        with pytest.raises(ValueError, match="distortion ranges do not overlap"):
            fn(RATES, PSNRS, RATES, PSNRS + 40.0)


def test_unknown_method_raises() -> None:
    with pytest.raises(ValueError, match="unknown interpolation method"):
        bd_rate(RATES, PSNRS, RATES, PSNRS, method="linear")
    with pytest.raises(ValueError, match="unknown interpolation method"):
        bd_psnr(RATES, PSNRS, RATES, PSNRS, method="")


# --------------------------------------------------------------------------------------------------------
# RD curves (JSON)
# --------------------------------------------------------------------------------------------------------


def test_load_published(published: dict[str, RDCurve]) -> None:
    assert {"JPEG", "WebP", "VTM", BPG, "COIN", "Cool-chic 5.0"} <= set(published)
    assert all(c.published for c in published.values())
    assert published["COIN"].ms_ssim is None
    bpg = published[BPG]
    assert len(bpg) == 8 and bpg.ms_ssim is not None and len(bpg.ms_ssim) == 8
    assert bpg.bpp[0] == pytest.approx(0.06776767306857638)
    assert bpg.psnr[0] == pytest.approx(26.19512806390954)


def test_round_trip_published(tmp_path: Path, published: dict[str, RDCurve]) -> None:
    src = published["JPEG"]
    out = tmp_path / "jpeg.json"
    save_curve(src, out)
    back = load_curve(out)
    assert (back.name, back.description, back.bpp, back.psnr, back.ms_ssim) == (
        src.name, src.description, src.bpp, src.psnr, src.ms_ssim,
    )
    assert back.raw == json.loads((KODAK / "jpeg.json").read_text())
    assert back.published is False
    assert [p.name for p in tmp_path.iterdir()] == ["jpeg.json"]  # no temporary file left behind


def test_round_trip_built_curve_and_legacy_keys(tmp_path: Path) -> None:
    c = RDCurve(name="splatpix", description="d", bpp=np.array([0.5, 1.0]), psnr=[30, 33.5])
    assert c.bpp == [0.5, 1.0] and all(isinstance(v, float) for v in c.psnr)
    save_curve(c, tmp_path / "a.json")
    data = json.loads((tmp_path / "a.json").read_text())
    assert data == {"name": "splatpix", "description": "d", "results": {"bpp": [0.5, 1.0], "psnr-rgb": [30.0, 33.5]}}
    assert load_curve(tmp_path / "a.json").psnr == [30.0, 33.5]

    legacy = {"name": "old", "results": {"bpp": [1, 2], "psnr": [30, 31], "ms-ssim": [0.9, 0.95]}, "source": "x"}
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    old = load_curve(tmp_path / "old.json")
    assert (old.description, old.psnr, old.ms_ssim) == ("", [30.0, 31.0], [0.9, 0.95])
    save_curve(old, tmp_path / "new.json")
    new = json.loads((tmp_path / "new.json").read_text())
    assert new["source"] == "x"
    assert new["results"] == {"bpp": [1.0, 2.0], "psnr-rgb": [30.0, 31.0], "ms-ssim-rgb": [0.9, 0.95]}


def test_missing_name_defaults_to_stem(tmp_path: Path) -> None:
    (tmp_path / "mycodec.json").write_text(json.dumps({"results": {"bpp": [1.0], "psnr-rgb": [30.0]}}))
    assert load_curve(tmp_path / "mycodec.json").name == "mycodec"


def test_save_refuses_inconsistent_curve(tmp_path: Path) -> None:
    c = _curve(encoding_time=[1.0, 2.0, 3.0, 4.0])
    c.bpp.append(5.0)  # the lists are now out of step
    with pytest.raises(SplatpixError, match="psnr values but 5 bpp"):
        save_curve(c, tmp_path / "x.json")
    c = _curve(encoding_time=[1.0, 2.0, 3.0, 4.0])
    c.bpp, c.psnr, c.ms_ssim = c.bpp[:3], c.psnr[:3], None
    with pytest.raises(SplatpixError, match="encoding_time"):
        save_curve(c, tmp_path / "x.json")
    assert not list(tmp_path.iterdir())


MALFORMED = {
    "not json": b"{name: 1",
    "truncated": b'{"name": "x", "results": {"bpp": [1, 2',
    "binary": b"\xff\xfe\x00garbage",
    "array": b"[1, 2, 3]",
    "string": b'"hello"',
    "no results": b'{"name": "x"}',
    "results list": b'{"name": "x", "results": [1, 2]}',
    "no bpp": b'{"name": "x", "results": {"psnr-rgb": [30]}}',
    "no psnr": b'{"name": "x", "results": {"bpp": [1]}}',
    "unequal": b'{"name": "x", "results": {"bpp": [1, 2], "psnr-rgb": [30]}}',
    "unequal extra": b'{"name": "x", "results": {"bpp": [1], "psnr-rgb": [30], "encoding_time": [1, 2]}}',
    "string value": b'{"name": "x", "results": {"bpp": ["1"], "psnr-rgb": [30]}}',
    "bool value": b'{"name": "x", "results": {"bpp": [true], "psnr-rgb": [30]}}',
    "null value": b'{"name": "x", "results": {"bpp": [1], "psnr-rgb": [null]}}',
    "nested list": b'{"name": "x", "results": {"bpp": [[1]], "psnr-rgb": [30]}}',
    "bpp scalar": b'{"name": "x", "results": {"bpp": 1, "psnr-rgb": [30]}}',
    "NaN": b'{"name": "x", "results": {"bpp": [1], "psnr-rgb": [NaN]}}',
    "Infinity": b'{"name": "x", "results": {"bpp": [Infinity], "psnr-rgb": [30]}}',
    "zero bpp": b'{"name": "x", "results": {"bpp": [0], "psnr-rgb": [30]}}',
    "empty lists": b'{"name": "x", "results": {"bpp": [], "psnr-rgb": []}}',
    "ms-ssim in dB": b'{"name": "x", "results": {"bpp": [1], "psnr-rgb": [30], "ms-ssim-rgb": [15.0]}}',
    "name number": b'{"name": 3, "results": {"bpp": [1], "psnr-rgb": [30]}}',
    "name empty": b'{"name": " ", "results": {"bpp": [1], "psnr-rgb": [30]}}',
    "description list": b'{"name": "x", "description": [], "results": {"bpp": [1], "psnr-rgb": [30]}}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "empty file": b"",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_json_raises(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(MALFORMED[case])
    with pytest.raises(SplatpixError) as info:
        load_curve(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SplatpixError, match="no such file"):
        load_curve(tmp_path / "nope.json")
    with pytest.raises(SplatpixError, match="directory"):
        load_curve(tmp_path)


def test_load_published_errors(tmp_path: Path) -> None:
    with pytest.raises(SplatpixError, match="no such directory"):
        load_published(tmp_path / "missing")
    with pytest.raises(SplatpixError, match="no \\*.json"):
        load_published(tmp_path)
    save_curve(_curve("same"), tmp_path / "a.json")
    save_curve(_curve("same"), tmp_path / "b.json")
    with pytest.raises(SplatpixError, match="already used"):
        load_published(tmp_path)


def test_mean_curve() -> None:
    a = _curve("img", offset=0.0, encoding_time=[1.0, 2.0, 3.0, 4.0], decoding_time=[1.0, 1.0, 1.0, 1.0])
    b = _curve("img", offset=2.0, encoding_time=[3.0, 4.0, 5.0, 6.0])
    b.bpp = [2 * v for v in b.bpp]
    m = mean_curve([a, b])
    assert m.name == "img" and m.description == "mean over 2 images"
    assert m.bpp == pytest.approx([0.15 * 2**i for i in range(4)])
    assert m.psnr == pytest.approx([26.0 + 3.0 * i for i in range(4)])
    assert m.ms_ssim == pytest.approx(a.ms_ssim)
    # Timings shared by every image are averaged; a list only one image has is dropped.
    assert m.raw["results"]["encoding_time"] == pytest.approx([2.0, 3.0, 4.0, 5.0])
    assert "decoding_time" not in m.raw["results"]
    assert mean_curve([a]).psnr == a.psnr

    m2 = mean_curve([a, _curve("other", ms=False)], name="mine", description="d")
    assert (m2.name, m2.description, m2.ms_ssim) == ("mine", "d", None)
    assert mean_curve([_curve("x"), _curve("y")]).name == "x"

    with pytest.raises(SplatpixError, match="3 rate points"):
        mean_curve([a, _curve(n=3)])
    with pytest.raises(SplatpixError, match="no curves"):
        mean_curve([])


def test_mean_curve_round_trip(tmp_path: Path) -> None:
    m = mean_curve([_curve(offset=0.0), _curve(offset=1.0)])
    save_curve(m, tmp_path / "mean.json")
    back = load_curve(tmp_path / "mean.json")
    assert back.psnr == m.psnr and back.ms_ssim == m.ms_ssim


# --------------------------------------------------------------------------------------------------------
# Plots and imports
# --------------------------------------------------------------------------------------------------------


def test_plot_rd_writes_png(tmp_path: Path, published: dict[str, RDCurve]) -> None:
    pytest.importorskip("matplotlib")
    from splatpix.eval.plots import plot_rd

    curves = {k: published[k] for k in ("JPEG", BPG, "VTM", "COIN")}
    curves["splatpix"] = _curve("splatpix", n=5)
    out = tmp_path / "rd.png"
    assert plot_rd(curves, out, title="Kodak") == list(curves)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    # MS-SSIM plots leave out curves without MS-SSIM (COIN).
    assert "COIN" not in plot_rd(curves, tmp_path / "ms.png", metric="ms-ssim-db", log_rate=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ms.png", "rd.png"]

    with pytest.raises(ValueError, match="unknown metric"):
        plot_rd(curves, tmp_path / "x.png", metric="lpips")
    with pytest.raises(SplatpixError, match="PNG"):
        plot_rd(curves, tmp_path / "x.jpg")
    with pytest.raises(SplatpixError, match="none of the curves"):
        plot_rd({"COIN": published["COIN"]}, tmp_path / "x.png", metric="ms-ssim")
    with pytest.raises(SplatpixError, match="does not exist"):
        plot_rd(curves, tmp_path / "missing" / "x.png")


def test_eval_package_import_is_light() -> None:
    code = (
        "import sys, splatpix.eval, splatpix.eval.bdrate, splatpix.eval.rd; "
        "bad = [m for m in ('matplotlib', 'bjontegaard') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
