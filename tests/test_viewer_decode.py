"""The JavaScript ``.spix`` decoder of the browser viewer (``src/splatpix/viewer/static/spix/``) against Python's.

Node runs the decoder through ``tests/js/spix_driver.mjs``, many cases per process. For every file Python's
``splatpix.codec.api.decode_bytes`` accepts, the JavaScript arrays must equal Python's float32 arrays bit for bit
(same Gaussian order) and the metadata must be equal; for every file Python refuses with a ``SplatpixError``, the
decoder must throw its ``SpixError``; it must never throw anything else. Cases: the golden files, real and
synthetic encodes of both methods (1, 3 and 4 channels, fixed-length files, constant symbol streams, sga's tiers
and context coding), the entropy layer alone, and a few hundred corruptions of the golden files.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import wave_image

import splatpix
from splatpix.codec import bitstream as bs
from splatpix.codec.api import decode_bytes, unpack
from splatpix.codec.colours import TRANSFORM_IDENTITY, TRANSFORM_YCOCG, ScalarColours
from splatpix.codec.entropy import decode_categorical, encode_categorical
from splatpix.codec.methods.gaussianimage import pack as pack_gaussianimage
from splatpix.codec.methods.sga import pack_sga
from splatpix.codec.qat import QATConfig
from splatpix.codec.tiers import assign_tiers, tier_thresholds
from splatpix.errors import SplatpixError

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "js" / "spix_driver.mjs"
GOLDEN = ROOT / "tests" / "golden"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH: the JavaScript decoder's tests need it")

DECODED, SPIX_ERROR, OTHER_ERROR = 0, 1, 2


# ------------------------------------------------------------------------------------------------- node driver


@dataclass
class JsResult:
    status: int
    info: dict[str, Any]
    data: bytes

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, c = self.info["n"], self.info["channels"]
        flat = np.frombuffer(self.data, dtype="<f4")
        assert flat.size == (5 + c) * n, f"{flat.size} floats for {n} Gaussians of {c} channels"
        return flat[:2 * n].reshape(n, 2), flat[2 * n:5 * n].reshape(n, 3), flat[5 * n:].reshape(n, c)


def _floats(value: Any) -> Any:
    """The driver's JSON with its {"__float__": "NaN"} markers as Python floats."""
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"].replace("Infinity", "inf"))
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def run_node(mode: str, records: list[bytes], tmp_path: Path) -> list[JsResult]:
    """Run the driver on ``records`` in one node process; one result per record."""
    src, out = tmp_path / f"{mode}.in", tmp_path / f"{mode}.out"
    src.write_bytes(struct.pack("<I", len(records)) + b"".join(struct.pack("<I", len(r)) + r for r in records))
    res = subprocess.run([NODE, str(DRIVER), mode, str(src), str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    buf, pos, results = out.read_bytes(), 0, []
    for _ in records:
        status = buf[pos]
        (jlen,) = struct.unpack_from("<I", buf, pos + 1)
        info = _floats(json.loads(buf[pos + 5:pos + 5 + jlen]))
        pos += 5 + jlen
        (dlen,) = struct.unpack_from("<I", buf, pos)
        results.append(JsResult(status, info, buf[pos + 4:pos + 4 + dlen]))
        pos += 4 + dlen
    assert pos == len(buf)
    return results


def _numpy(t: Any) -> np.ndarray:
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def python_decode(data: bytes) -> tuple[tuple[np.ndarray, ...] | None, dict | None, str]:
    """Python's arrays and metadata of ``data``, or (None, None, the error) when it refuses the file."""
    try:
        g = decode_bytes(data)
        _, meta = unpack(data)
    except SplatpixError as e:
        return None, None, str(e)
    return tuple(_numpy(t) for t in (g.means, g.cov_params, g.colours)), meta, ""


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _same_meta(a: Any, b: Any) -> bool:
    """JavaScript's metadata ``a`` equals Python's ``b`` (NaN equal to NaN; integers as the nearest double, as
    JavaScript parses them)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(b, int) and not isinstance(b, bool) and isinstance(a, int | float) and not isinstance(a, bool):
        try:
            return float(a) == float(b)
        except OverflowError:
            return a == (math.inf if b > 0 else -math.inf)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_meta(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_meta(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_same(js: JsResult, data: bytes, label: str) -> bool:
    """Assert that the JavaScript result of ``data`` agrees with Python's; return whether Python accepted it."""
    assert js.status != OTHER_ERROR, f"{label}: JavaScript threw {js.info['type']}: {js.info['error']}\n" \
                                     f"{js.info.get('stack')}"
    arrays, meta, error = python_decode(data)
    if arrays is None:
        assert js.status == SPIX_ERROR, f"{label}: Python refused it ({error}), JavaScript decoded it"
        return False
    assert js.status == DECODED, f"{label}: Python decoded it, JavaScript refused it: {js.info['error']}"
    assert js.info["n"] == arrays[0].shape[0] and js.info["bytes"] == len(data), label
    for what, a, b in zip(("means", "cov", "colours"), js.arrays(), arrays, strict=True):
        assert _same_bits(a, b), f"{label}: {what} differ"
    js_meta = js.info["metadata"] if js.info["metadata"] is not None else {}
    assert _same_meta(js_meta, meta), f"{label}: metadata {js_meta} != {meta}"
    return True


def check_all(items: list[tuple[str, bytes]], tmp_path: Path) -> int:
    """Decode every (label, file) in one node run and compare with Python; return how many Python accepted."""
    results = run_node("spix", [d for _, d in items], tmp_path)
    return sum(check_same(js, data, label) for js, (label, data) in zip(results, items, strict=True))


# ------------------------------------------------------------------------------------------------ synthetic files


def symbol_stream(rng: np.random.Generator, n: int, alphabet: int, kind: str | None = None) -> np.ndarray:
    """``n`` symbols in ``[0, alphabet)``: uniform, geometric, constant, two skewed values or a few sparse ones."""
    kind = kind or str(rng.choice(["uniform", "geometric", "constant", "two", "sparse"]))
    if kind == "uniform":
        return rng.integers(0, alphabet, n)
    if kind == "geometric":
        return np.minimum(rng.geometric(float(rng.uniform(0.05, 0.9)), n) - 1, alphabet - 1)
    if kind == "constant":
        return np.full(n, int(rng.integers(0, alphabet)))
    if kind == "two":
        a, b = rng.choice(alphabet, 2, replace=False) if alphabet > 1 else (0, 0)
        return np.where(rng.random(n) < float(rng.uniform(0.001, 0.5)), a, b)
    values = rng.choice(alphabet, min(alphabet, int(rng.integers(1, 6))), replace=False)
    return values[rng.integers(0, values.size, n)]


def _colours(rng: np.random.Generator, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    stages, k = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 5, 8, 12, 16, 64]))
    idx = np.stack([symbol_stream(rng, n, k) for _ in range(stages)], axis=1).reshape(n, stages)
    return idx, rng.normal(0, 0.5, (stages, k, c)).astype(np.float32)


def _cov_params(rng: np.random.Generator, tiers: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.exp(rng.uniform(-6, 1, (tiers, 3))).astype(np.float32)
    return scale, rng.normal(0, 2, (tiers, 3)).astype(np.float32)


def synthetic_gaussianimage(rng: np.random.Generator, n: int, c: int, fixed: bool,
                            size: tuple[int, int] | None = None) -> bytes:
    """A random quantised GaussianImage model, packed (no fitting)."""
    qcls = type(unpack((GOLDEN / "gaussianimage.spix").read_bytes())[0])
    bits = int(rng.integers(1, 17))
    means = rng.random((n, 2)) ** float(rng.choice([1, 8]))  # ** 8: many small values and fp16 subnormals
    scale, offset = _cov_params(rng, 1)
    idx, books = _colours(rng, n, c)
    q = qcls(size=size or tuple(int(v) for v in rng.integers(1, 60, 2)), channels=c,
             position_symbols=means.astype(np.float16).view(np.uint16),
             cov_symbols=np.stack([symbol_stream(rng, n, 1 << bits) for _ in range(3)], axis=1).reshape(n, 3),
             cov_scale=scale[0], cov_offset=offset[0], colour_indices=idx, codebooks=books, cov_bits=bits)
    meta = {"synthetic": True, "n": n} if rng.random() < 0.8 else None
    return pack_gaussianimage(q, fixed_length=fixed, metadata=meta)


def grid_points(rng: np.random.Generator, n: int, lx: int, ly: int, kind: str | None = None) -> np.ndarray:
    """``n`` grid points: uniform, clustered, with many duplicates, or on a lattice."""
    kind = kind or rng.choice(["uniform", "clustered", "duplicates", "lattice"])
    if kind == "clustered":
        centres = rng.random((int(rng.integers(1, 5)), 2)) * (lx, ly)
        pts = centres[rng.integers(0, len(centres), n)] + rng.normal(0, float(rng.uniform(0.5, 20)), (n, 2))
    elif kind == "lattice":
        step = int(rng.integers(1, 4))
        pts = np.stack(((np.arange(n) * step) % lx, (np.arange(n) * step) // lx * step), axis=1)
    else:
        pts = rng.random((n, 2)) * (lx, ly)
        if kind == "duplicates" and n:
            pts = pts[rng.integers(0, max(1, n // 4), n)]
    return np.clip(np.round(pts), 0, (lx - 1, ly - 1)).astype(np.int64)


def synthetic_sga(rng: np.random.Generator, n: int, c: int, fixed: bool, size: tuple[int, int] | None = None,
                  subdiv: int | None = None, points: str | None = None) -> bytes:
    """A random quantised sga model (grid points, tiers, per-tier bits), packed with a random context width."""
    qcls = type(unpack((GOLDEN / "sga.spix").read_bytes())[0])
    h, w = size or tuple(int(v) for v in rng.integers(1, 50, 2))
    subdiv = subdiv or int(rng.choice([1, 2, 4, 8]))
    grid = grid_points(rng, n, w * subdiv + 1, h * subdiv + 1, points)
    n_tiers, k = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    if rng.random() < 0.7 and n:
        thresholds = tier_thresholds(grid, n_tiers, k)
    else:  # arbitrary ascending thresholds, repeats and extremes included
        thresholds = sorted(int(v) for v in rng.choice([0, 1, 2, 5, 17, 100, 1000, 10**6, 2**40, 2**55, 2**62 - 1],
                                                     n_tiers - 1))
    tiers = assign_tiers(grid, thresholds, k)
    bits = [int(b) for b in rng.integers(1, 11, n_tiers)]
    sym = np.zeros((n, 3), dtype=np.int64)
    for t, b in enumerate(bits):
        m = tiers == t
        sym[m] = np.stack([symbol_stream(rng, int(m.sum()), 1 << b) for _ in range(3)], axis=1).reshape(-1, 3)
    scale, offset = _cov_params(rng, n_tiers)
    idx, books, sc = None, None, None
    if rng.random() < 0.5:
        idx, books = _colours(rng, n, c)
    else:  # scalar colours: every bit depth, the transform for RGB
        cbits = [int(b) for b in rng.integers(1, 17, c)]
        csym = np.stack([symbol_stream(rng, n, 1 << b) for b in cbits], axis=1).reshape(n, c)
        cscale, coffset = (rng.uniform(1e-3, 0.2, c).astype(np.float32), rng.normal(0, 1, c).astype(np.float32))
        sc = ScalarColours(TRANSFORM_YCOCG if c == 3 else TRANSFORM_IDENTITY, cbits, cscale, coffset, csym)
    q = qcls(size=(h, w), channels=c, subdiv=subdiv, grid=grid, tier_k=k, thresholds=thresholds, tier_bits=bits,
             cov_scale=scale, cov_offset=offset, cov_symbols=sym, colour_indices=idx, codebooks=books,
             scalar_colours=sc)
    return pack_sga(q, fixed_length=fixed, metadata={"synthetic": True}, cov_context_bits=int(rng.integers(0, 5)))


# ------------------------------------------------------------------------------------------------ corruptions


def _fuzz_targets() -> Any:
    """fuzz/targets.py (repair_crcs, mutate_structure: the project's structure-aware mutations)."""
    spec = importlib.util.spec_from_file_location("splatpix_fuzz_targets", ROOT / "fuzz" / "targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every section payload of a valid file."""
    (count,) = struct.unpack_from("<H", data, 19)
    spans, pos = [], 25
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, pos + 3)
        spans.append((pos + 11, pos + 11 + length))
        pos += 11 + length
    return spans


def mutations(data: bytes, rng: np.random.Generator, targets: Any) -> list[tuple[str, bytes]]:
    """About 400 corruptions of a valid file: raw bit flips and truncations (the container refuses them), and
    payload bit flips, byte values, insertions and deletions and header fields with the CRCs repaired (they
    reach the method parsers)."""
    out: list[tuple[str, bytes]] = []
    spans = _section_spans(data)
    for i in range(40):
        buf = bytearray(data)
        buf[int(rng.integers(0, len(buf)))] ^= 1 << int(rng.integers(0, 8))
        out.append((f"raw flip {i}", bytes(buf)))
    for cut in sorted(set(rng.integers(0, len(data), 30).tolist()) | {0, 1, 4, 5, 24, 25, len(data) - 1}):
        out.append((f"truncated to {cut}", data[:cut]))
    for i in range(200):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            start, end = spans[int(rng.integers(0, len(spans)))]
            at = int(rng.integers(start, end)) if end > start else start
            if at < len(buf):
                if rng.random() < 0.6:
                    buf[at] ^= 1 << int(rng.integers(0, 8))
                else:
                    values = [0, 1, 2, 0x7F, 0x80, 0xFF, int(rng.integers(0, 256)), (buf[at] + 1) % 256]
                    buf[at] = int(rng.choice(values))
        out.append((f"payload mutation {i} (CRCs repaired)", targets.repair_crcs(bytes(buf))))
    for i in range(40):  # a byte inserted or deleted inside a payload, its length field adjusted
        k = int(rng.integers(0, len(spans)))
        start, end = spans[k]
        at = int(rng.integers(start, end + 1))
        delete = rng.random() < 0.5 and end > start and at < end
        new = b"" if delete else bytes([int(rng.integers(0, 256))])
        buf = bytearray(data[:at] + new + data[at + int(delete):])
        struct.pack_into("<I", buf, start - 8, end - start + (-1 if delete else 1))
        out.append((f"payload {'deletion' if delete else 'insertion'} {i}", targets.repair_crcs(bytes(buf))))
    for i in range(60):
        mutated = targets.mutate_structure("spix", data, random.Random(int(rng.integers(0, 2**32))))
        out.append((f"header field {i}", mutated))
    return out


# ------------------------------------------------------------------------------------------------------- tests


def test_golden_files_decode_bit_for_bit(tmp_path):
    items = [(name, (GOLDEN / name).read_bytes()) for name in ("gaussianimage.spix", "sga.spix", "sga-scalar.spix")]
    results = run_node("spix", [d for _, d in items], tmp_path)
    for js, (label, data) in zip(results, items, strict=True):
        assert check_same(js, data, label)
        header = js.info["header"]  # readHeader: the same fields, cheaply
        assert {k: header[k] for k in ("width", "height", "channels", "methodId", "method", "n")} == \
               {k: js.info[k] for k in ("width", "height", "channels", "methodId", "method", "n")}
        assert js.info["metadata"]["method"] == js.info["method"] == label.removesuffix(".spix").removesuffix("-scalar")


def test_real_encodes_of_both_methods(tmp_path):
    """Small real encodes (fit + QAT): 1 and 4 channels, entropy-coded and fixed-length."""
    fit = splatpix.FitConfig(steps=20, optimizer="adam", lr=1e-2, log_every=20)
    qat = QATConfig(steps=5, optimizer="adam", lr=1e-3, log_every=5)
    items = []
    for method, c, fixed, opts in (("gaussianimage", 1, True, None), ("gaussianimage", 4, False, None),
                                   ("sga", 1, False, {"tier_bits": (4, 5, 6)}), ("sga", 4, True, None),
                                   ("sga", 3, False, None), ("sga", 3, True, {"colour": "vq"})):
        res = splatpix.encode(wave_image(20, 28, c=c), 120, method=method, fit_config=fit, qat_config=qat,
                              fixed_length=fixed, progress=False, options=opts)
        items.append((f"{method} C={c} fixed={fixed}", res.data))
    assert check_all(items, tmp_path) == len(items)


@pytest.mark.parametrize("method", ["gaussianimage", "sga"])
def test_synthetic_models(method, tmp_path):
    """Random quantised models packed directly: every bit depth, 1/3/4 channels, both policies, constant and
    two-symbol streams, N = 0 and 1, duplicated and clustered grid points, arbitrary tier thresholds."""
    rng = np.random.default_rng(1 if method == "sga" else 0)
    make = synthetic_sga if method == "sga" else synthetic_gaussianimage
    items = []
    for case in range(80):
        n = int(rng.choice([0, 1, 2, 3, 5, 17, 64, 200, 700]))
        c, fixed = int(rng.choice([1, 3, 4])), bool(rng.random() < 0.3)
        items.append((f"{method} case {case} (N={n}, C={c}, fixed={fixed})", make(rng, n, c, fixed)))
    if method == "sga":  # 3e7 x 1 pixels at subdiv 64: squared distances beyond 2^53 (exact integer comparisons)
        items += [(f"sga, a 1.9e9-level wide grid, N={n}", synthetic_sga(rng, n, 3, False, (1, 30_000_000), 64,
                                                                          "uniform")) for n in (2, 5, 12, 30, 30, 30)]
    assert check_all(items, tmp_path) == len(items)


def test_entropy_layer(tmp_path):
    """encode_categorical payloads (skewed, k = 2, large alphabets, constant, empty) and corruptions of them."""
    rng = np.random.default_rng(2)
    cases = []
    for _ in range(300):
        alphabet = int(rng.choice([1, 2, 3, 7, 64, 255, 256, 257, 4096, 65536]))
        n = int(rng.choice([0, 1, 2, 10, 100, 1000, 5000]))
        if alphabet == 1 or rng.random() < 0.1:
            sym = symbol_stream(rng, n, alphabet, "constant")
        elif rng.random() < 0.15:  # k = 2 with one rare symbol
            sym = symbol_stream(rng, n, alphabet, "two")
        else:
            sym = symbol_stream(rng, n, alphabet)
        cases.append((n, alphabet, encode_categorical(sym, alphabet)))
    for alphabet, kind in ((2, "two"), (64, "geometric"), (65536, "uniform"), (300, "sparse")):  # long streams
        cases.append((200_000, alphabet, encode_categorical(symbol_stream(rng, 200_000, alphabet, kind), alphabet)))
    skewed = np.zeros(100_000, dtype=np.int64)  # one symbol with probability 1e-5: p close to 2^24 for the other
    skewed[rng.integers(0, skewed.size, 1)] = 1
    cases.append((skewed.size, 2, encode_categorical(skewed, 2)))
    for n, alphabet, payload in list(cases[:150]):  # corruptions: bit flips, truncation, a wrong n
        buf = bytearray(payload)
        kind = rng.integers(0, 3)
        if kind == 0 and buf:
            buf[int(rng.integers(0, len(buf)))] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            buf = buf[:int(rng.integers(0, len(buf) + 1))]
        cases.append((n + (kind == 2) * int(rng.choice([-1, 1])) * (n > 0), alphabet, bytes(buf)))
    # hand-made: an exhausted ANS word decoding (1, 1) against the histogram {0: 1, 1: 1}, and one decoding (1, 0)
    cases += [(2, 2, bytes([2, 0, 0, 0, 0, 0]) + struct.pack("<I", 3 << 23)),
              (2, 2, bytes([2, 0, 0, 0, 0, 0]) + struct.pack("<I", 1 << 23))]
    results = run_node("categorical", [struct.pack("<II", n, a) + p for n, a, p in cases], tmp_path)
    accepted = 0
    for js, (n, alphabet, payload) in zip(results, cases, strict=True):
        label = f"n={n} alphabet={alphabet} payload={payload[:40].hex()}"
        assert js.status != OTHER_ERROR, f"{label}: JavaScript threw {js.info}"
        try:
            want = decode_categorical(payload, n, alphabet)
        except SplatpixError as e:
            assert js.status == SPIX_ERROR, f"{label}: Python refused it ({e}), JavaScript decoded it"
            continue
        assert js.status == DECODED, f"{label}: JavaScript refused it: {js.info['error']}"
        assert np.array_equal(np.frombuffer(js.data, dtype="<u2"), want), label
        accepted += 1
    assert accepted >= 300


METADATA_TEXTS = [
    b"{}", b' \t\n{"x": [1, 2.5, -0, 1e400, "s", true, false, null]}\r\n', b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"__proto__": {"x": 1}, "a": 1, "a": 2}',
    '{"k": "\\ud83d\\ude00 \\ud800 \\u00e9 \\/ \\n", "\u00e9": "\u20ac"}'.encode(),
    b'{"a": 1E+2, "b": 0.5e-3, "c": -12}', b"[" * 100 + b"]" * 100, b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}",
    b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"a": ' + b"1" * 5000 + b"}", b'{"a": ' + b"1" * 5000 + b".5}",
    b'{"a": ' + b"7" * 4300 + b"}", b'{"a": -' + b"7" * 4300 + b"}", b'{"a": ' + b"7" * 4301 + b"}",
    b"\xef\xbb\xbf{}", b"[1]", b'"s"', b"", b'{"a":1,}', b'{"a":01}', b'{"a":1.}',
    b'{"a":1e}', b'{"a":-}', b'{"a":+1}', b'{"a":"\\u12"}', b'{"a":"\\x"}', b'{"a":"\x01"}', b'{"a":1} x', b"{'a': 1}",
    b'{"a":"\xff"}', b'{"a":"\xc0\xaf"}', b'{"a":"\xed\xa0\x80"}', b'{"a":"\xf4\x90\x80\x80"}', b'{"a" 1}', b"{,}",
    b'{"a":nul}', b'{"a":[1 2]}', b'{"a":[,]}', b'{"a":-Infinity1}', b'{"a":"x" , "b" : [ ] }',
    b'{"s": "' + b"x" * ((1 << 20) - 8) + b'"}', b'{"s": "' + b"x" * ((1 << 20) - 7) + b'"}',
]


def test_metadata_like_python(tmp_path):
    """The METADATA section parsed as Python's json.loads parses it (NaN and Infinity, byte-order mark, escapes,
    nesting, integer digit limit, UTF-8 errors, the 1 MiB limit), and skipped when flagged as not understood."""
    header, sections = bs.read_spix((GOLDEN / "gaussianimage.spix").read_bytes())
    body = [(t, p, False) for t, p in sections.items() if t != bs.METADATA]
    items = [(f"metadata {text[:60]!r}", bs.write_spix(header, [*body, (bs.METADATA, text, True)]))
             for text in METADATA_TEXTS]
    data = bs.write_spix(header, [*body, (bs.METADATA, b'{"a": 1}', False)])  # required: still understood
    items.append(("metadata as a required section", data))
    data = bytearray(bs.write_spix(header, [*body, (bs.METADATA, b"not json", True)]))
    data[len(data) - 8 - 11 + 2] = 0x03  # optional with a reserved flag: not understood, skipped
    items.append(("metadata with a reserved flag", _fuzz_targets().repair_crcs(bytes(data))))
    accepted = check_all(items, tmp_path)
    assert 10 < accepted < len(items)


@pytest.mark.parametrize("name", ["gaussianimage.spix", "sga.spix", "sga-scalar.spix"])
def test_corrupt_files_agree_with_python(name, tmp_path):
    data = (GOLDEN / name).read_bytes()
    rng = np.random.default_rng(3)
    items = [(f"{name}: {label}", d) for label, d in mutations(data, rng, _fuzz_targets())]
    accepted = check_all(items, tmp_path)
    assert 0 < accepted < len(items)  # both outcomes occur


def test_decode_time_at_kodak_size(tmp_path, capsys):
    """Decode time of N = 9000 synthetic models at Kodak's 768 x 512 in node (printed, not asserted), and the
    arrays against Python's."""
    rng = np.random.default_rng(4)
    files = {"gaussianimage": synthetic_gaussianimage(rng, 9000, 3, False, size=(512, 768)),
             "sga": synthetic_sga(rng, 9000, 3, False, size=(512, 768))}
    assert check_all(list(files.items()), tmp_path) == 2
    for method, data in files.items():
        path = tmp_path / f"{method}.spix"
        path.write_bytes(data)
        res = subprocess.run([NODE, str(DRIVER), "time", str(path), "10"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        t = json.loads(res.stdout)
        with capsys.disabled():
            print(f"\nnode decode of a synthetic {method} file, N = {t['n']}, {t['width']} x {t['height']}, "
                  f"{t['bytes']} bytes: first {t['ms_first']:.1f} ms, median of 10 {t['ms_median']:.1f} ms")
