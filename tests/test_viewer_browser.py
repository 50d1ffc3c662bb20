"""``splatpix view``: the server, the export, and the page in a real (headless) Chromium with software WebGL.

Browser tests skip, with the reason, where no Chromium or playwright can be found (tests/browser.py). They check
that the page decodes ``.spix`` files to Python's arrays bit for bit, renders what Python renders, edits as
``splatpix edit`` does, reports bad files in the page, and that the exported HTML renders the same offline.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import launch, skip_reason
from helpers import one_error_line, run_cli

import splatpix
from splatpix.edit.apply import apply_edit
from splatpix.edit.ops import DeformationFactory
from splatpix.edit.region import parse_region
from splatpix.viewer import Source, ViewerServer, export_html
from splatpix.viewer import arrays as spxa

GOLDEN = Path(__file__).resolve().parent / "golden"
SPIX = ["gaussianimage.spix", "sga.spix"]
VIEWPORT = {"width": 900, "height": 640}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def browser():
    reason = skip_reason()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture(scope="module")
def larger(tmp_path_factory) -> Path:
    """A 384x256 .spix (the bundled kodim23, sga, N = 2000, a short schedule) and its decoded model file."""
    d = tmp_path_factory.mktemp("larger")
    out = d / "kodim23_384x256.spix"
    from splatpix.cli import main

    assert main(["encode", str(splatpix.sample_image_path()), "-o", str(out), "-n", "2000", "--method", "sga",
                 "--steps", "40", "--qat-steps", "10", "--quiet"]) == 0
    splatpix.save_model(splatpix.decode(out), d / "kodim23_384x256.safetensors")
    return out


class Page:
    """A page of the viewer, its uncaught exceptions collected."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_page(viewport=VIEWPORT)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=60_000)

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def state(self) -> dict:
        return self.js("window.splatpix.state()")

    def arrays(self) -> dict[str, np.ndarray]:
        a = self.js("window.splatpix.arrays()")
        return {k: np.frombuffer(base64.b64decode(v), dtype="<f4") for k, v in a.items() if v is not None}

    def native(self) -> np.ndarray:
        """``(C, H, W)`` uint8: the page's render at the native size."""
        s = self.state()
        px = np.frombuffer(base64.b64decode(self.js("window.splatpix.renderNative()")), dtype=np.uint8)
        return px.reshape(s["height"], s["width"], 4)[:, :, : s["channels"]].transpose(2, 0, 1)

    def drag(self, a: tuple[float, float], b: tuple[float, float], steps: int = 8) -> None:
        """A mouse drag between two normalised image points."""
        x0, y0 = self.js("([u, v]) => window.splatpix.uvToClient(u, v)", list(a))
        x1, y1 = self.js("([u, v]) => window.splatpix.uvToClient(u, v)", list(b))
        m = self.page.mouse
        m.move(x0, y0)
        m.down()
        m.move(x1, y1, steps=steps)
        m.up()
        self.page.wait_for_timeout(50)

    def save_as(self, path: Path, what: str = "model") -> dict:
        """Type ``path`` into the page's save field and save (through the server)."""
        self.page.fill("#save-path", str(path))
        return self.js("(what) => window.splatpix.save(what)", what)

    def close(self) -> None:
        assert not self.errors, self.errors
        self.page.close()


def served(path: Path) -> ViewerServer:
    return ViewerServer(Source(path)).start()


def python_render(g) -> np.ndarray:
    img = splatpix.render(g, clamp=True)
    img = img.numpy() if hasattr(img, "numpy") else np.asarray(img)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def f32(t) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(t.detach() if hasattr(t, "detach") else t), dtype="<f4").reshape(-1)


# ------------------------------------------------------------------------------------------------ in the page


@pytest.mark.browser
@pytest.mark.parametrize("name", SPIX)
def test_page_decodes_spix_to_pythons_arrays_bit_for_bit(browser, name) -> None:
    g = splatpix.decode(GOLDEN / name)
    with served(GOLDEN / name) as srv:
        p = Page(browser, srv.url)
        s = p.state()
        assert s["ready"] and (s["width"], s["height"], s["channels"], s["n"]) == (g.size[1], g.size[0], g.channels,
                                                                                    g.n)
        a = p.arrays()
        for key, want in (("means", g.means), ("cov", g.cov_params), ("colours", g.colours)):
            assert np.array_equal(a[key].view(np.uint32), f32(want).view(np.uint32)), key
        p.close()


@pytest.mark.browser
@pytest.mark.parametrize("name", [*SPIX, "larger"])
def test_page_render_matches_python(browser, larger, capsys, name) -> None:
    path = larger if name == "larger" else GOLDEN / name
    want = python_render(splatpix.decode(path))
    with served(path) as srv:
        p = Page(browser, srv.url)
        got = p.native()
        value = psnr8(got, want)
        bench = p.js("window.splatpix.benchmark(10)")
        p.close()
    with capsys.disabled():
        print(f"\n[viewer] {path.name}: page vs Python render {value:.2f} dB; frame time {bench['mean']:.1f} ms mean, "
              f"{bench['median']:.1f} ms median ({bench['frames']} frames, {bench['width']}x{bench['height']} canvas, "
              f"N = {bench['n']}, {bench['format']}, SwiftShader)")
    assert value >= 45.0, value


@pytest.mark.browser
def test_page_shows_a_model_file_and_a_gainer_field(browser, tmp_path) -> None:
    g = splatpix.load_model(GOLDEN / "gaussianimage-rs.safetensors")  # rotation-scale: sent as Cholesky
    with served(GOLDEN / "gaussianimage-rs.safetensors") as srv:
        p = Page(browser, srv.url)
        assert p.state()["kind"] == "gaussians"
        assert psnr8(p.native(), python_render(g)) >= 45.0
        p.close()
    from splatpix.gainer.io import load_gainer

    field = load_gainer(GOLDEN / "gainer.safetensors")
    with served(GOLDEN / "gainer.safetensors") as srv:
        p = Page(browser, srv.url)
        assert p.state()["kind"] == "gainer"
        assert "rendered by the Python server" in p.page.inner_text("#message")
        want = np.rint(field.render().clamp(0, 1).numpy() * 255).astype(np.uint8)
        assert psnr8(p.native(), want) == math.inf
        p.js("window.splatpix.applyEdit('translate', {offset: [0.1, -0.05]}, "
             "{kind: 'box', box: [0.2, 0.2, 0.7, 0.8], feather: 2})")
        edited = apply_edit(field, DeformationFactory(field.size).build("translate", {"offset": [0.1, -0.05]}),
                            parse_region("box:0.2,0.2,0.7,0.8", 2))
        want = np.rint(edited.render().clamp(0, 1).numpy() * 255).astype(np.uint8)
        assert psnr8(p.native(), want) >= 40.0
        out = tmp_path / "field.edited.safetensors"
        r = p.save_as(out)
        assert r["path"] == str(out) and load_gainer(out).n == field.n
        p.close()


def _edit_cli(model: Path, rec: dict, out: Path) -> list[str]:
    args = ["edit", str(model), "--op", rec["op"]]
    for k, v in rec["params"].items():
        args.append(f"--{k.replace('_', '-')}=" + (",".join(repr(float(t)) for t in v) if isinstance(v, list)
                                                  else repr(float(v))))
    if rec["region"]:
        args.append(f"--region={rec['region']}")
    if rec["feather"]:
        args.append(f"--feather={rec['feather']!r}")
    return [*args, "--background=#000000", "-o", str(out), "--save-model", str(out.with_suffix(".safetensors"))]


DRAGS = [  # (region tool, region drag, edit tool, edit drag, feather)
    ("ellipse", ((0.3, 0.25), (0.72, 0.8)), "rotate", ((0.85, 0.5), (0.55, 0.12)), 4),
    ("box", ((0.15, 0.2), (0.5, 0.7)), "translate", ((0.3, 0.4), (0.42, 0.33)), 0),
    ("lasso", None, "twist", ((0.75, 0.5), (0.5, 0.2)), 6),
]


@pytest.mark.browser
@pytest.mark.parametrize("tool,region_drag,op,edit_drag,feather", DRAGS, ids=[d[2] for d in DRAGS])
def test_drag_edit_matches_splatpix_edit(browser, larger, tmp_path, capsys, tool, region_drag, op, edit_drag,
                                         feather) -> None:
    model = larger.with_suffix(".safetensors")
    with served(larger) as srv:
        p = Page(browser, srv.url)
        before = p.arrays()
        p.page.fill("#feather", str(feather))
        p.page.click(f"[data-mode={tool}]")
        if tool == "lasso":
            pts = [(0.5 + 0.3 * math.cos(t), 0.5 + 0.3 * math.sin(t) * (1 + 0.3 * math.cos(3 * t)))
                   for t in np.linspace(0, 2 * math.pi, 40, endpoint=False)]
            xy = [p.js("([u, v]) => window.splatpix.uvToClient(u, v)", list(q)) for q in pts]
            p.page.mouse.move(*xy[0])
            p.page.mouse.down()
            for q in xy[1:]:
                p.page.mouse.move(*q)
            p.page.mouse.up()
        else:
            p.drag(*region_drag)
        assert p.state()["selected"] > 0
        p.page.click(f"[data-mode={op}]")
        p.drag(*edit_drag)
        edits = p.js("window.splatpix.edits()")
        assert len(edits) == 1 and edits[0]["op"] == op and edits[0]["region"].startswith(
            "polygon:" if tool == "lasso" else tool), edits
        assert edits[0]["feather"] == feather and edits[0]["moved"] > 0
        got = p.native()
        out = tmp_path / "cli.png"
        code, _, err = run_cli(capsys, *_edit_cli(model, edits[0], out))
        assert code == 0, err
        value = psnr8(got, splatpix.load_image(out).mul(255).round().to(torch.uint8).numpy())
        with capsys.disabled():
            print(f"\n[viewer] drag {op} in a {tool}: page vs splatpix edit {value:.2f} dB ({edits[0]['params']})")
        assert value >= 40.0, value
        # the arrays too, and the model the page saves
        ref = splatpix.load_model(out.with_suffix(".safetensors"))
        a = p.arrays()
        assert np.abs(a["means"] - f32(ref.means)).max() < 1e-5
        assert np.abs(a["cov"] - f32(ref.cov_params)).max() < 1e-3 * max(1.0, float(np.abs(a["cov"]).max()))
        saved = tmp_path / "page.safetensors"
        r = p.save_as(saved)
        assert r.get("path") == str(saved), r
        g = splatpix.load_model(saved)
        assert np.array_equal(f32(g.means), a["means"]) and np.array_equal(f32(g.cov_params), a["cov"])
        # undo (Ctrl-Z, outside the text field) gives the decoded arrays back exactly
        p.js("document.activeElement.blur()")
        p.page.keyboard.press("Control+z")
        back = p.arrays()
        assert all(np.array_equal(back[k], before[k]) for k in before)
        assert p.js("window.splatpix.edits()") == []
        p.close()


OPS = [  # every operation of the page, through the test hook, against apply_edit
    ("translate", {"offset": [-0.07, 0.04]}, "ellipse:0.5,0.5,0.25,0.3", 3.0),
    ("rotate", {"angle": 33.0, "centre": [0.45, 0.55]}, "box:0.2,0.25,0.7,0.8", 0.0),
    ("scale", {"factor": [1.3, 0.8], "centre": [0.5, 0.5]}, "polygon:0.2,0.2;0.8,0.3;0.6,0.85;0.25,0.7", 5.0),
    ("stretch", {"factor": 1.4, "axis": 30.0, "centre": [0.5, 0.45]}, "ellipse:0.5,0.45,0.3,0.3", 8.0),
    ("bend", {"angle": 40.0, "axis": 10.0, "centre": [0.5, 0.5]}, None, 0.0),
    ("twist", {"angle": -70.0, "radius": 0.35, "centre": [0.55, 0.5]}, "box:0.1,0.1,0.9,0.9", 10.0),
]


def _region_js(spec: str | None, feather: float) -> dict | None:
    if spec is None:
        return None
    kind, _, rest = spec.partition(":")
    if kind == "polygon":
        return {"kind": kind, "vertices": [[float(t) for t in v.split(",")] for v in rest.split(";")],
                "feather": feather}
    return {"kind": kind, kind: [float(t) for t in rest.split(",")], "feather": feather}


@pytest.mark.browser
def test_every_operation_matches_apply_edit(browser, larger) -> None:
    g = splatpix.decode(larger)
    with served(larger) as srv:
        p = Page(browser, srv.url)
        for op, params, region, feather in OPS:
            p.js("([op, params, region]) => window.splatpix.applyEdit(op, params, region)",
                 [op, params, _region_js(region, feather)])
            ref = apply_edit(g, DeformationFactory(g.size).build(op, params),
                             parse_region(region, feather) if region else None)
            a = p.arrays()
            dm = np.abs(a["means"] - f32(ref.means)).max()
            dc = np.abs(a["cov"] - f32(ref.cov_params)).max()
            assert dm < 1e-6 and dc < 1e-4, (op, dm, dc)
            assert psnr8(p.native(), python_render(ref)) >= 40.0, op
            p.js("window.splatpix.undo()")
        p.close()


def _corrupt(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    b = bytearray(data)
    b[len(b) // 2] ^= 0x40
    return bytes(b)


@pytest.mark.browser
@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_a_bad_file_shows_a_clear_message_in_the_page(browser, tmp_path, how) -> None:
    path = tmp_path / "image.spix"
    shutil.copy(GOLDEN / "sga.spix", path)
    with served(path) as srv:  # valid when the server starts; damaged on disk before the page loads it
        path.write_bytes(_corrupt(path.read_bytes(), how))
        p = Page(browser, srv.url)
        assert p.state()["error"] and p.page.get_attribute("body", "data-state") == "error"
        text = p.page.inner_text("#message")
        assert p.page.is_visible("#message")
        assert text.startswith("Cannot show image.spix: not a valid .spix file:"), text
        assert p.page.inner_text("#status") == text.splitlines()[0]
        p.close()  # (no uncaught exception)


@pytest.mark.browser
def test_exported_page_opens_offline_and_renders_the_same(browser, larger, tmp_path) -> None:
    for path in (larger, GOLDEN / "gaussianimage-rs.safetensors"):
        out = tmp_path / f"{path.stem}.html"
        size = export_html(Source(path), out)
        html = out.read_text()
        assert size == len(html.encode()) and "http" not in html.split("<body")[0].replace("http-equiv", "")
        p = Page(browser, out.as_uri())
        s = p.state()
        assert s["ready"] and s["bytes"] == path.stat().st_size, s
        g = splatpix.decode(path) if path.suffix == ".spix" else splatpix.load_model(path)
        assert psnr8(p.native(), python_render(g)) >= 45.0
        assert p.page.is_disabled("#save-model") and not p.page.is_disabled("#download-png")
        p.close()


@pytest.mark.browser
def test_screenshot_for_the_docs(browser, larger) -> None:
    """Writes docs/img/viewer.png when SPLATPIX_VIEWER_SCREENSHOT names the output (not by default), of the file
    SPLATPIX_VIEWER_SCREENSHOT_FILE (default: the test's small kodim23) with a rotated, feathered ellipse."""
    import os

    target = os.environ.get("SPLATPIX_VIEWER_SCREENSHOT")
    if not target:
        pytest.skip("set SPLATPIX_VIEWER_SCREENSHOT=docs/img/viewer.png to write the screenshot")
    with served(Path(os.environ.get("SPLATPIX_VIEWER_SCREENSHOT_FILE", larger))) as srv:
        p = Page(browser, srv.url)
        p.page.set_viewport_size({"width": 1100, "height": 760})
        p.page.click("#fit")
        p.page.wait_for_timeout(300)
        p.page.click("[data-mode=ellipse]")
        p.drag((0.55, 0.06), (0.87, 0.54))
        p.page.fill("#feather", "30")
        p.page.click("[data-mode=rotate]")
        p.drag((0.92, 0.3), (0.88, 0.17))
        p.page.wait_for_timeout(500)
        p.page.screenshot(path=target)
        p.close()


@pytest.mark.browser
def test_frame_times(browser, capsys) -> None:
    """Prints the frame times of docs/viewer.md for the files in SPLATPIX_VIEWER_BENCH (comma-separated; not by
    default): the mean of 10 renders at a 1100x632 canvas after Fit, at 1:1 and at 8x zoom, and the native
    read-back."""
    import os
    import time

    files = [f for f in os.environ.get("SPLATPIX_VIEWER_BENCH", "").split(",") if f]
    if not files:
        pytest.skip("set SPLATPIX_VIEWER_BENCH=a.spix,b.spix to measure frame times")
    for f in files:
        with served(Path(f)) as srv:
            p = Page(browser, srv.url)
            p.page.set_viewport_size({"width": 1100, "height": 760})
            p.page.click("#fit")
            p.page.wait_for_timeout(300)
            s = p.state()
            row = [p.js("window.splatpix.benchmark(10)")["mean"]]
            for view in ("0.5, 0.5, 1", "0.6, 0.4, 8"):
                p.js(f"window.splatpix.setView({view})")
                row.append(p.js("window.splatpix.benchmark(10)")["mean"])
            t0 = time.perf_counter()
            p.native()
            row.append(1000 * (time.perf_counter() - t0))
            p.close()
        with capsys.disabled():
            print(f"\n[viewer] {Path(f).name} {s['width']}x{s['height']} N={s['n']} canvas {s['canvas']} fit zoom "
                  f"{s['view']['zoom']:.3g}: fit {row[0]:.1f} ms, 1:1 {row[1]:.1f} ms, 8x {row[2]:.1f} ms, native "
                  f"read-back {row[3]:.0f} ms")


# ------------------------------------------------------------------------------------------------ server, CLI


def _get(srv: ViewerServer, path: str, token: str | None = None, host: str | None = None, data: bytes | None = None):
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=data, method="POST" if data is not None else "GET")
    if token is not None:
        req.add_header("X-Splatpix-Token", token)
    if host is not None:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_server_needs_the_token_and_its_own_host_and_serves_nothing_else(tmp_path) -> None:
    with served(GOLDEN / "sga.spix") as srv:
        status, page = _get(srv, "/")
        assert status == 200 and f'content="{srv.token}"'.encode() in page
        assert _get(srv, "/api/info")[0] == 403
        assert _get(srv, "/api/info", "wrong")[0] == 403
        assert _get(srv, "/api/info", srv.token, host="evil.example:80")[0] == 403
        status, body = _get(srv, "/api/info", srv.token)
        info = json.loads(body)
        assert status == 200 and (info["kind"], info["width"], info["height"], info["n"], info["method"]) == (
            "spix", 32, 24, 40, "sga")
        assert _get(srv, "/api/file", srv.token)[1] == (GOLDEN / "sga.spix").read_bytes()
        for bad in ("/../../pyproject.toml", "/%2e%2e/server.py", "/.hidden", "/nope.js"):
            assert _get(srv, bad)[0] == 404, bad


def test_server_saves_models_and_pngs_but_never_over_the_input(tmp_path) -> None:
    src = tmp_path / "m.safetensors"
    shutil.copy(GOLDEN / "gaussianimage-rs.safetensors", src)
    g = splatpix.load_model(src)
    with served(src) as srv:
        status, msg = _get(srv, "/api/model", srv.token)
        assert status == 200
        a = spxa.unpack(msg, "gaussians", g.n, g.channels)
        assert np.array_equal(a["means"], g.means.numpy()) and np.array_equal(a["colours"], g.colours.numpy())
        info = json.loads(_get(srv, "/api/info", srv.token)[1])
        assert info["defaults"]["model"] == str(tmp_path / "m.edited.safetensors")
        status, body = _get(srv, "/api/save?what=model&path=m.safetensors", srv.token, data=msg)
        assert status == 400 and b"refusing to overwrite input" in body
        assert _get(srv, "/api/save?what=model&path=x.png", srv.token, data=msg)[0] == 400
        assert _get(srv, "/api/save?what=model&path=x.safetensors", srv.token, data=msg[:-4])[0] == 400
        status, body = _get(srv, "/api/save?what=model", srv.token, data=msg)
        assert status == 200 and json.loads(body)["path"] == info["defaults"]["model"]
        same = splatpix.load_model(info["defaults"]["model"])  # unchanged Gaussians keep their exact parameters
        assert same.param == "rs" and torch.equal(same.cov_params, g.cov_params) and torch.equal(same.means, g.means)
        assert _get(srv, "/api/save?what=model", srv.token, data=msg)[0] == 200  # a fresh default name
        assert (tmp_path / "m.edited-2.safetensors").exists()
        assert _get(srv, f"/api/save?what=model&path={info['defaults']['model']}", srv.token, data=msg)[0] == 409
        assert _get(srv, "/api/save?what=png&path=out.png", srv.token, data=msg)[0] == 200
        img = splatpix.load_image(tmp_path / "out.png")
        assert np.array_equal(np.rint(img.numpy() * 255).astype(np.uint8), python_render(g))
    assert src.read_bytes() == (GOLDEN / "gaussianimage-rs.safetensors").read_bytes()


def test_export_refuses_a_gainer_field_and_the_input(tmp_path) -> None:
    with pytest.raises(splatpix.SplatpixError, match="GaINeR field is rendered by the Python server"):
        export_html(Source(GOLDEN / "gainer.safetensors"), tmp_path / "x.html")
    src = tmp_path / "a.spix"
    shutil.copy(GOLDEN / "sga.spix", src)
    with pytest.raises(splatpix.SplatpixError, match="refusing to overwrite input"):
        export_html(Source(src), src)


def test_bad_inputs_are_one_line_errors(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    bad = bytearray((GOLDEN / "sga.spix").read_bytes())
    bad[30] ^= 1
    (tmp_path / "bad.spix").write_bytes(bytes(bad))
    for path, match in ((tmp_path / "missing.spix", "no such file"), (tmp_path / "notes.txt", "not a .spix file"),
                        (tmp_path / "bad.spix", "bad.spix")):
        with pytest.raises(splatpix.SplatpixError, match=match):
            Source(path)


def test_view_command_errors_are_one_line(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    bad = bytearray((GOLDEN / "sga.spix").read_bytes())
    bad[-3] ^= 1
    (tmp_path / "bad.spix").write_bytes(bytes(bad))
    for args, match in (
        ([tmp_path / "missing.spix", "--no-browser"], "no such file"),
        ([tmp_path / "notes.txt", "--no-browser"], "not a .spix file or a splatpix model"),
        ([tmp_path / "bad.spix", "--no-browser"], "bad.spix"),
        ([GOLDEN / "gainer.safetensors", "--export", tmp_path / "g.html"], "cannot be exported"),
        ([GOLDEN / "sga.spix", "--export", tmp_path / "s.html", "--port", "8000"], "--export writes a file"),
    ):
        code, out, err = run_cli(capsys, "view", *args)
        assert code == 2 and match in one_error_line(err) and not out, (args, err)
    with pytest.raises(SystemExit) as e:  # argparse's one line
        run_cli(capsys, "view", GOLDEN / "sga.spix", "--port", "70000")
    assert e.value.code == 2 and "a port is 0..65535" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "g.html").exists() and not (tmp_path / "s.html").exists()
    code, out, _ = run_cli(capsys, "view", GOLDEN / "sga.spix", "--export", tmp_path / "s.html")
    assert code == 0 and "-> " in out and (tmp_path / "s.html").stat().st_size > 1000


def test_view_command_serves_until_ctrl_c(tmp_path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "splatpix.cli", "view", str(GOLDEN / "sga.spix"), "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C stops\)", line)
        assert m, line + proc.stderr.read()
        with urllib.request.urlopen(m.group(1), timeout=30) as r:
            page = r.read().decode()
        token = re.search(r'name="splatpix-token" content="([^"]+)"', page).group(1)
        req = urllib.request.Request(m.group(1) + "api/info", headers={"X-Splatpix-Token": token})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["name"] == "sga.spix"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "splatpix view: stopped" in out and not err.strip(), (out, err)
