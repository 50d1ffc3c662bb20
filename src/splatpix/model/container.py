"""The safetensors container shared by splatpix's model files (Gaussian models, GaINeR models); never pickle.

A file is a safetensors file whose metadata has one key, ``"splatpix"``, holding a JSON object (the format's own
metadata, validated by the caller). Files are untrusted input: the file size and the safetensors header length are
checked before anything is parsed, the JSON header before the ``safetensors`` library sees the data, every tensor
entry's dtype (a float type), shape and byte range against what the caller expects, and the loaded values must be
finite. Every problem raises :class:`~splatpix.errors.SplatpixError` with a one-line message
``<file>: not a <kind> (<reason>)``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import is_int
from ..errors import SplatpixError
from ..io.files import atomic_write_bytes, check_readable_file

__all__ = ["MAX_HEADER_BYTES", "META_KEY", "ContainerReader", "is_int", "peek_format", "write_container"]

MAX_HEADER_BYTES = 100_000_000
"""Limit on the safetensors JSON header (the same limit the safetensors library applies)."""
META_KEY = "splatpix"
_FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}

_NUMPY_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}  # BF16: the top half of a float32

if TYPE_CHECKING:
    import torch

PathLike = str | os.PathLike[str]


def write_container(path: PathLike, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any], what: str) -> None:
    """Write ``tensors`` (as float32, refused if non-finite) and the JSON ``meta`` atomically; ``what`` names
    the model kind in error messages (e.g. ``"model"``, ``"GaINeR model"``)."""
    import torch
    from safetensors.torch import save as _st_save

    name = os.fspath(path)
    out = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}
    for key, t in out.items():
        if not bool(torch.isfinite(t).all()):
            raise SplatpixError(f"{name}: refusing to save a {what} with non-finite values in {key}")
    if "extra" in meta and not isinstance(meta["extra"], dict):
        raise SplatpixError(f"{name}: extra model metadata must be a dict, got {type(meta['extra']).__name__}")
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise SplatpixError(f"{name}: extra model metadata is not JSON-serialisable ({e})") from e
    atomic_write_bytes(name, _st_save(out, metadata={META_KEY: text}))


def peek_format(path: PathLike) -> str | None:
    """The ``format`` named in a file's splatpix metadata, or None when it cannot be read (no validation: only to
    choose the loader, which then validates everything and reports any problem)."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) != 8:
                return None
            (n,) = struct.unpack("<Q", prefix)
            if not 2 <= n <= MAX_HEADER_BYTES:
                return None
            header = json.loads(f.read(n).decode("utf-8"))
        fmt = json.loads(header["__metadata__"][META_KEY]).get("format")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return fmt if isinstance(fmt, str) else None


class ContainerReader:
    """Validating reader of one file. ``kind`` completes the message ``not a <kind>``; ``what`` names the file
    kind for unreadable files (``"a model"``)."""

    def __init__(self, path: PathLike, max_bytes: int, kind: str, what: str) -> None:
        self.name = os.fspath(path)
        self.kind = kind
        self.max_bytes = max_bytes
        self.size = check_readable_file(self.name, what)
        if self.size < 8:
            raise self.bad(f"file too short: {self.size} bytes")
        if self.size > max_bytes:
            raise SplatpixError(f"{self.name}: model file too large ({self.size} bytes; the limit is {max_bytes})")

    def bad(self, reason: str) -> SplatpixError:
        return SplatpixError(f"{self.name}: not a {self.kind} ({reason})")

    def _header_length(self, prefix: bytes) -> int:
        (n,) = struct.unpack("<Q", prefix[:8])
        if n < 2 or n > MAX_HEADER_BYTES or n > self.size - 8:
            raise self.bad(f"invalid safetensors header length {n} for a file of {self.size} bytes")
        return n

    def _read(self, header_only: bool) -> tuple[bytes, int]:
        try:
            with open(self.name, "rb") as f:
                if header_only:
                    n = self._header_length(f.read(8))
                    data = f.read(n)
                    if len(data) != n:
                        raise self.bad("file truncated while reading the header")
                    return data, n
                data = f.read(self.size + 1)  # the size was checked against max_bytes
        except OSError as e:
            raise SplatpixError(f"{self.name}: cannot read ({e.strerror or e})") from e
        if len(data) != self.size:
            raise SplatpixError(f"{self.name}: file changed while being read")
        return data, self._header_length(data)

    def _parse(self, header_bytes: bytes, validate: Callable[[dict[str, Any]], Mapping[str, tuple[int, ...]]],
               exact: bool) -> tuple[dict[str, Any], dict[str, tuple[int, ...]], dict[str, tuple[str, int, int]]]:
        """The metadata, the expected shapes and each expected tensor's ``(dtype, start, end)`` in the data."""
        try:
            header = json.loads(header_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise self.bad(f"unreadable safetensors header: {type(e).__name__}") from e
        if not isinstance(header, dict):
            raise self.bad("safetensors header is not a JSON object")
        st_meta = header.get("__metadata__")
        if not isinstance(st_meta, dict) or not isinstance(st_meta.get(META_KEY), str):
            raise self.bad("no splatpix metadata")
        try:
            meta = json.loads(st_meta[META_KEY])
        except (ValueError, RecursionError) as e:
            raise self.bad(f"unreadable splatpix metadata: {type(e).__name__}") from e
        if not isinstance(meta, dict):
            raise self.bad("splatpix metadata is not a JSON object")
        if "extra" in meta and not isinstance(meta["extra"], dict):
            raise self.bad("extra metadata is not a JSON object")
        expected = {k: tuple(v) for k, v in validate(meta).items()}
        names = set(header) - {"__metadata__"}
        if exact and names != set(expected):
            missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
            raise self.bad(f"wrong tensors (missing {missing}, unexpected {unexpected})")
        data_len = self.size - 8 - len(header_bytes)
        entries: dict[str, tuple[str, int, int]] = {}
        for key, shape in expected.items():
            entry = header.get(key)
            if not isinstance(entry, dict):
                raise self.bad(f"missing tensor {key!r}")
            dtype = entry.get("dtype")
            if not isinstance(dtype, str) or dtype not in _FLOAT_DTYPES:
                raise self.bad(f"tensor {key!r} has dtype {dtype!r}, expected a float type")
            got = entry.get("shape")
            if not isinstance(got, list) or not all(is_int(s) for s in got) or tuple(got) != shape:
                raise self.bad(f"tensor {key!r} has shape {got}, expected {list(shape)}")
            offsets = entry.get("data_offsets")
            if (
                not isinstance(offsets, list)
                or len(offsets) != 2
                or not all(is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_len
                or offsets[1] - offsets[0] != math.prod(shape) * _FLOAT_DTYPES[dtype]
            ):
                raise self.bad(f"tensor {key!r} has invalid data offsets {offsets}")
            entries[key] = (dtype, int(offsets[0]), int(offsets[1]))
        return meta, expected, entries

    def metadata(self, validate: Callable[[dict[str, Any]], Mapping[str, tuple[int, ...]]], *,
                 exact: bool = False) -> dict[str, Any]:
        """The validated metadata, reading only the header. ``validate(meta)`` checks the format's metadata
        (raising :meth:`bad` errors) and returns the expected tensor shapes; ``exact``: no other tensors allowed."""
        header_bytes, _ = self._read(header_only=True)
        return self._parse(header_bytes, validate, exact)[0]

    def load_arrays(self, validate: Callable[[dict[str, Any]], Mapping[str, tuple[int, ...]]], *,
                    exact: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """:meth:`load` as float32 numpy arrays, read straight from the validated byte ranges (no torch)."""
        data, n = self._read(header_only=False)
        meta, expected, entries = self._parse(data[8:8 + n], validate, exact)
        out: dict[str, np.ndarray] = {}
        for key, shape in expected.items():
            dtype, start, end = entries[key]
            raw = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=8 + n + start)
            if dtype == "BF16":
                a = (raw.view("<u2").astype(np.uint32) << np.uint32(16)).view(np.float32)
            else:
                a = raw.view(_NUMPY_DTYPES[dtype]).astype(np.float32)
            a = a.reshape(shape)
            if not np.isfinite(a).all():
                raise self.bad(f"tensor {key!r} has non-finite values")
            out[key] = a
        return meta, out

    def load(self, validate: Callable[[dict[str, Any]], Mapping[str, tuple[int, ...]]], *,
             exact: bool = False) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The validated metadata and the expected tensors (float32, finite, of the expected shapes)."""
        import torch
        from safetensors.torch import load as _st_load

        data, n = self._read(header_only=False)
        meta, expected, _ = self._parse(data[8:8 + n], validate, exact)
        try:
            tensors = _st_load(data)
        except Exception as e:  # noqa: BLE001 - the safetensors parser's errors on untrusted input
            raise self.bad(f"invalid safetensors data: {type(e).__name__}") from e
        out: dict[str, torch.Tensor] = {}
        for key, shape in expected.items():
            t = tensors.get(key)
            if t is None:
                raise self.bad(f"missing tensor {key!r}")
            if not t.is_floating_point():
                raise self.bad(f"tensor {key!r} has dtype {t.dtype}, expected a float type")
            if tuple(t.shape) != shape:
                raise self.bad(f"tensor {key!r} has shape {tuple(t.shape)}, expected {shape}")
            t = t.to(torch.float32)
            if not bool(torch.isfinite(t).all()):
                raise self.bad(f"tensor {key!r} has non-finite values")
            out[key] = t
        return meta, out
