"""A run's manifest: one JSON file recording, per job (an image, or an image's rate point), its status, bytes, PSNR,
times, node, attempts and error, with the run's command, options, backend and state.

Layout::

    {"format": "splatpix-batch-manifest", "version": 1, "command": "batch encode", "settings": {...},
     "backend": "local" | "ray", "status": "running" | "complete" | "failed" | "interrupted",
     "started": ISO time, "updated": ISO time, "summary": {...},
     "items": {"KEY": {"status": "ok" | "diverged" | "error" | "interrupted", "bytes": ..., "psnr": ..., ...}}}

It is rewritten atomically (at most every :data:`SAVE_EVERY` seconds while jobs finish, and at the end). The
outputs themselves are the record of what is finished: a re-run skips the jobs whose outputs exist, whatever the
manifest says.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ..errors import SplatpixError
from ..io.files import atomic_write_bytes
from .tasks import now

__all__ = ["FORMAT", "MAX_MANIFEST_BYTES", "Manifest"]

FORMAT = "splatpix-batch-manifest"
MAX_MANIFEST_BYTES = 256 << 20
SAVE_EVERY = 2.0


class Manifest:
    """The manifest at ``path``: an earlier run's items are kept (``items``); :meth:`record` adds one,
    :meth:`finish` closes the run."""

    def __init__(self, path: str | os.PathLike[str], command: str, settings: dict[str, Any], backend: str,
                 check_settings: bool = True) -> None:
        self.path = Path(path)
        self.items: dict[str, dict[str, Any]] = {}
        old = self._read()
        if old is not None:
            if check_settings and old.get("settings") != settings:
                raise SplatpixError(f"{self.path}: the outputs here were made with other options "
                                    f"({_difference(old.get('settings'), settings)}); use another output folder, or "
                                    "delete it to start again")
            self.items = {str(k): v for k, v in old.get("items", {}).items() if isinstance(v, dict)}
        self.data: dict[str, Any] = {"format": FORMAT, "version": 1, "command": command, "settings": settings,
                                     "backend": backend, "status": "running", "started": now(), "updated": now(),
                                     "summary": {}, "items": self.items}
        self._saved = 0.0

    def _read(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            if self.path.stat().st_size > MAX_MANIFEST_BYTES:
                raise ValueError("too large")
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("items"), dict):
                raise ValueError("not a splatpix batch manifest")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise SplatpixError(f"{self.path}: unreadable manifest ({e}); delete it (the outputs beside it are kept "
                                "and skipped)") from None
        return data

    def record(self, key: str, entry: dict[str, Any]) -> None:
        self.items[key] = _finite(entry)
        self.save(force=False)

    def save(self, force: bool = True) -> None:
        if not force and time.monotonic() - self._saved < SAVE_EVERY:
            return
        self.data["updated"] = now()
        atomic_write_bytes(self.path, (json.dumps(self.data, indent=1, allow_nan=False) + "\n").encode())
        self._saved = time.monotonic()

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        self.data["status"] = status
        self.data["summary"] = summary
        self.save()


def _finite(v: Any) -> Any:
    """``v`` with non-finite floats (an infinite PSNR) as ``None``: the manifest is strict JSON."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _difference(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "unknown options"
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            return f"{k}: {old.get(k)!r} there, {new.get(k)!r} now"
    return "the same options"
