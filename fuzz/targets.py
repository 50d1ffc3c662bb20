"""Fuzz targets: each takes the bytes of an untrusted input and does what splatpix does with such a file.

A target returns ``"accepted"`` when the input was read (and rendered), ``"rejected"`` when splatpix refused it
with a :class:`~splatpix.errors.SplatpixError` (the one-line error the CLI prints); any other exception escapes:
that is a crash, and the fuzzer saves the input. The work per input is bounded by the decode budget below (the
decoders check it before allocating), so an input that runs long or allocates much is a budget breach, which the
driver (``fuzz/run.py``) reports as a timeout or an out-of-memory crash.

Targets: ``spix`` (the ``.spix`` decoder: container, method, dequantisation, a small render), ``model`` (Gaussian
model files), ``gainer`` (GaINeR model files), ``checkpoint`` (GaINeR training checkpoints), ``edit_spec`` and
``scene`` (YAML/JSON specs, as the CLI reads them).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import torch

from splatpix.errors import SplatpixError

# the budget a fuzzed input gets: every limit the decoders take, far below their defaults so that cases stay fast
MAX_PIXELS = 1 << 22
MAX_GAUSSIANS = 1 << 20
MAX_MEMORY = 256 << 20
MAX_PAIRS = 1e7
RENDER = 24  # the render of an accepted model: at most RENDER x RENDER pixels

_SCRATCH = tempfile.mkdtemp(prefix="splatpix-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)


def _render_check(g) -> None:
    """Render ``g`` small, within the work budget; non-finite pixels are refused, as by ``save_image``."""
    from splatpix.render import render
    from splatpix.render.bands import estimated_pairs

    h, w = min(g.size[0], RENDER), min(g.size[1], RENDER)
    if estimated_pairs(g, h, w) > MAX_PAIRS:
        raise SplatpixError("over the work budget")
    with torch.no_grad():
        img = render(g, h, w, clamp=True)
    if not bool(torch.isfinite(img).all()):
        raise SplatpixError("the image has non-finite pixels")


def repair_crcs(data: bytes) -> bytes:
    """``data`` with the header's and every complete section's CRC recomputed, so that mutations get past the
    container's checksums to the methods' parsers (the layout is docs/format.md's)."""
    import struct
    import zlib

    from splatpix.codec import bitstream as bs

    out = bytearray(data)
    head = bs.HEADER_SIZE - 4
    if len(out) < bs.HEADER_SIZE:
        return bytes(out)
    out[head:bs.HEADER_SIZE] = struct.pack("<I", zlib.crc32(bytes(out[:head])))
    pos = bs.HEADER_SIZE
    sec = bs.SECTION_HEADER_SIZE - 4
    while pos + bs.SECTION_HEADER_SIZE <= len(out):
        (length,) = struct.unpack_from("<I", out, pos + 3)
        end = pos + bs.SECTION_HEADER_SIZE + length
        if end > len(out):
            break
        crc = zlib.crc32(bytes(out[pos + bs.SECTION_HEADER_SIZE:end]), zlib.crc32(bytes(out[pos:pos + sec])))
        out[pos + sec:pos + bs.SECTION_HEADER_SIZE] = struct.pack("<I", crc)
        pos = end
    return bytes(out)


def spix(data: bytes) -> None:
    """The input as it is, and, when the container refuses it, with its checksums repaired (so that the fuzzer's
    mutations reach the payload parsers)."""
    from splatpix.codec.api import dequantize, unpack

    def decode(candidate: bytes) -> None:
        q, _ = unpack(candidate, source="fuzz.spix", max_pixels=MAX_PIXELS, max_gaussians=MAX_GAUSSIANS,
                      max_memory=MAX_MEMORY)
        _render_check(dequantize(q, "fuzz.spix"))

    try:
        decode(data)
    except SplatpixError:
        repaired = repair_crcs(data)
        if repaired == data:
            raise
        decode(repaired)


def _as_file(data: bytes, suffix: str) -> str:
    path = os.path.join(_SCRATCH, "input" + suffix)
    with open(path, "wb") as f:
        f.write(data)
    return path


def model(data: bytes) -> None:
    from splatpix.model.files import load_model

    g = load_model(_as_file(data, ".safetensors"))
    _render_check(g)


def gainer(data: bytes) -> None:
    from splatpix.gainer import load_gainer

    field = load_gainer(_as_file(data, ".safetensors"))
    if field.n > MAX_GAUSSIANS:
        raise SplatpixError("too many Gaussians")
    with torch.no_grad():
        img = field.render(min(field.size[0], 8), min(field.size[1], 8))
    if not bool(torch.isfinite(img).all()):
        raise SplatpixError("the image has non-finite pixels")


def checkpoint(data: bytes) -> None:
    """A GaINeR training checkpoint, as ``fit --model gainer --resume`` reads it (the file and its config)."""
    from splatpix.gainer import GainerTrainConfig
    from splatpix.gainer.checkpoint import load_checkpoint

    ck = load_checkpoint(_as_file(data, ".ckpt"))
    GainerTrainConfig.from_dict(ck.config)


def _spec_data(data: bytes):
    from splatpix.io import read_spec_file

    return read_spec_file(_as_file(data, ".yaml"), "spec")


def edit_spec(data: bytes) -> None:
    from splatpix.edit.spec import parse_spec

    value = _spec_data(data)
    for timing in (False, True):
        try:
            parse_spec(value, base_dir=_SCRATCH, timing=timing)
        except SplatpixError:
            if timing:
                raise


def scene(data: bytes) -> None:
    from splatpix.physics.scene import parse_scene

    parse_scene(_spec_data(data), base_dir=_SCRATCH)


# ------------------------------------------------------------------------------------------- mutators

_EXTREMES = (0, -1, 1, 2 ** 31, 2 ** 64, 10 ** 400, -(10 ** 400), 1e-320, 1e308, -1e308, 0.5, "x", "", None, True, [],
             {}, [0, 0], [1e308, 1e308], "nan", "Infinity")


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list) and value and not all(isinstance(v, int | float) for v in value):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    yield path


def _set(value, path, new):
    if not path:
        return new
    value[path[0]] = _set(value[path[0]], path[1:], new)
    return value


def mutate_structure(name: str, data: bytes, rng) -> bytes | None:
    """A structure-aware mutation, or ``None`` when ``data`` is not parsable: a safetensors file's JSON header or its
    splatpix metadata gets one value replaced by an extreme one (huge or negative numbers, wrong types); a ``.spix``
    header gets a field set to an extreme (size, N, method, channels) and its checksums repaired."""
    import json
    import struct

    if name in ("model", "gainer", "checkpoint") and len(data) >= 8:
        (n,) = struct.unpack_from("<Q", data)
        try:
            header = json.loads(data[8:8 + n])
            meta = json.loads(header["__metadata__"]["splatpix"])
        except (ValueError, KeyError, TypeError):
            return None
        in_meta = rng.random() < 0.7
        target = meta if in_meta else header
        paths = [p for p in _leaves(target) if p and p[0] != "__metadata__"]
        if not paths:
            return None
        target = _set(target, rng.choice(paths), rng.choice(_EXTREMES))
        if in_meta:
            meta = target
        header["__metadata__"]["splatpix"] = json.dumps(meta)
        hb = json.dumps(header).encode()
        return struct.pack("<Q", len(hb)) + hb + data[8 + n:]
    if name == "spix" and len(data) >= 25:
        out = bytearray(data)
        field = rng.choice(((5, "<I"), (9, "<I"), (13, "<B"), (14, "<B"), (15, "<I"), (19, "<H")))
        off, fmt = field
        limit = 1 << (8 * struct.calcsize(fmt))
        value = rng.choice((0, 1, 2, 3, 4, 7, 255, limit - 1, limit // 2, 10_000, 65_535, rng.randrange(limit)))
        struct.pack_into(fmt, out, off, value % limit)
        return repair_crcs(bytes(out))
    return None


TARGETS: dict[str, Callable[[bytes], None]] = {"spix": spix, "model": model, "gainer": gainer,
                                               "checkpoint": checkpoint, "edit_spec": edit_spec, "scene": scene}


def run_one(name: str, data: bytes) -> str:
    """``"accepted"`` or ``"rejected"``; any other exception propagates (a crash)."""
    try:
        TARGETS[name](data)
    except SplatpixError:
        return "rejected"
    return "accepted"
