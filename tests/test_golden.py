"""Golden files: committed ``.spix`` files (one per codec method) and model files (one per model kind).

``tests/golden/golden.json`` records, for each file in ``tests/golden/``, the SHA-256 of the file and of every
array decoded from it. These tests decode the committed files through the stable public API only
(``splatpix.decode``, ``splatpix.load_model``, ``splatpix.gainer.load_gainer``) and compare the hashes.

A failure here means the file format or the decoder changed (parsing, dequantisation, array layout or dtype)
and files written before the change no longer decode to the same model. If the change is *intended*,
regenerate the golden files and their hashes with

    .venv/bin/python tests/golden/make_golden.py

and commit the new ``tests/golden/*`` together with the format change (say why in the commit message).
Never edit ``golden.json`` by hand, and never regenerate to silence a failure you did not mean to cause.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import splatpix
from splatpix.gainer import load_gainer

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN = json.loads((GOLDEN_DIR / "golden.json").read_text())
SPIX = sorted(name for name, entry in GOLDEN.items() if entry["kind"] == "spix")
# Native size of make_golden.py's test image (``image()`` there: h=24, w=32, three channels).
SIZE = (24, 32)
CHANNELS = 3
REGENERATE = "if the change is intended, regenerate with `.venv/bin/python tests/golden/make_golden.py`"


# Hashing exactly as tests/golden/make_golden.py does.
def digest(t: torch.Tensor | np.ndarray) -> str:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decoded_arrays(name: str, path: Path | None = None) -> dict[str, torch.Tensor]:
    """The arrays decoded from golden file ``name`` (or from ``path``, read as that kind)."""
    path = GOLDEN_DIR / name if path is None else path
    kind = GOLDEN[name]["kind"]
    if kind == "spix":
        g = splatpix.decode(path)
    elif kind == "model":
        g = splatpix.load_model(path)
    elif kind == "gainer":
        return dict(sorted(load_gainer(path).state_dict().items()))
    else:
        raise AssertionError(f"golden.json: unknown kind {kind!r} for {name}")
    return {"means": g.means, "cov_params": g.cov_params, "colours": g.colours}


def test_golden_json_lists_every_golden_file():
    on_disk = {p.name for p in GOLDEN_DIR.iterdir() if p.suffix in (".spix", ".safetensors")}
    assert on_disk == set(GOLDEN), (
        f"tests/golden/ holds {sorted(on_disk)} but golden.json lists {sorted(GOLDEN)}: "
        f"add or remove golden files only through make_golden.py")
    assert {e["kind"] for e in GOLDEN.values()} == {"spix", "model", "gainer"}
    assert {GOLDEN[n]["method"] for n in SPIX} == {"gaussianimage", "sga"}, "one golden .spix per codec method"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_file_unchanged(name):
    got = file_digest(GOLDEN_DIR / name)
    assert got == GOLDEN[name]["sha256"], (
        f"tests/golden/{name}: SHA-256 {got} differs from golden.json's {GOLDEN[name]['sha256']}; the committed "
        f"golden file was modified or regenerated without updating golden.json (run make_golden.py, which writes both)")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_decoded_arrays(name):
    expected = GOLDEN[name]["arrays"]
    arrays = decoded_arrays(name)
    assert sorted(arrays) == sorted(expected), (
        f"tests/golden/{name}: decoded arrays {sorted(arrays)}, golden.json has {sorted(expected)}; "
        f"the format or the decoder changed ({REGENERATE})")
    for key, want in expected.items():
        a = arrays[key]
        got = digest(a)
        assert got == want, (
            f"tests/golden/{name}: decoded array {key!r} (dtype {a.dtype}, shape {tuple(a.shape)}) hashes to {got}, "
            f"golden.json has {want}: the format or the decoder changed ({REGENERATE})")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_renders(name):
    path = GOLDEN_DIR / name
    kind = GOLDEN[name]["kind"]
    if kind == "gainer":
        field = load_gainer(path)
        assert tuple(field.size) == SIZE, f"tests/golden/{name}: native size {field.size}, expected {SIZE}"
        img = field.render(*SIZE)
    else:
        g = splatpix.decode(path) if kind == "spix" else splatpix.load_model(path)
        assert tuple(g.size) == SIZE, f"tests/golden/{name}: native size {g.size}, expected {SIZE}"
        img = splatpix.render(g, clamp=True)
    assert tuple(img.shape) == (CHANNELS, *SIZE), f"tests/golden/{name}: rendered shape {tuple(img.shape)}"
    assert torch.isfinite(img).all(), f"tests/golden/{name}: rendered image has non-finite pixels"
    assert img.min() >= 0 and img.max() <= 1, (
        f"tests/golden/{name}: rendered image outside [0, 1] ({img.min().item()}, {img.max().item()})")


@pytest.mark.parametrize("name", SPIX)
def test_golden_spix_decode_deterministic(name):
    first, second = decoded_arrays(name), decoded_arrays(name)
    for key in first:
        assert first[key].dtype == second[key].dtype and torch.equal(first[key], second[key]), (
            f"tests/golden/{name}: decoding twice gave different {key!r}")


@pytest.mark.parametrize("name", SPIX)
def test_golden_spix_flipped_byte_rejected(name, tmp_path):
    data = bytearray((GOLDEN_DIR / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / name
    bad.write_bytes(bytes(data))
    with pytest.raises(splatpix.SplatpixError, match="CRC"):
        splatpix.decode(bad)


@pytest.mark.parametrize("name", SPIX)
def test_golden_spix_copy_decodes_the_same(name, tmp_path):
    """The decoder reads only the bytes: a copy elsewhere under another name decodes identically."""
    copy = tmp_path / "copy.spix"
    shutil.copyfile(GOLDEN_DIR / name, copy)
    for key, a in decoded_arrays(name, copy).items():
        assert digest(a) == GOLDEN[name]["arrays"][key], f"tests/golden/{name}: copy decodes {key!r} differently"
