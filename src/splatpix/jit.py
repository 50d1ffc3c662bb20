"""Where numba caches the compiled kernels, with a fallback for read-only installs.

Every kernel is compiled with ``cache=NUMBA_CACHE``. numba keeps its cache beside the source (``__pycache__``) or in
the user's cache folder; in a read-only install whose HOME is not writable (a common container set-up) neither
works, and numba then refuses to define a cached function at all. On import (the package imports this module before
any kernel), the places numba would use are checked; when none is writable, numba is pointed at a per-user folder
in the temporary directory, and when that is not writable either, the kernels are compiled without a cache (every
process compiles them again, a few seconds). A ``NUMBA_CACHE_DIR`` the user set is respected when it is writable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["CACHE_DIR", "NUMBA_CACHE"]

# the sub-packages that hold numba kernels (their __pycache__ is numba's in-tree cache)
_KERNEL_PACKAGES = ("codec", "gainer", "physics", "render", "train")


def _writable(path: str | os.PathLike[str]) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _configure() -> tuple[bool, str | None]:
    """``(cache, folder)``: whether kernels can be cached, and the folder numba was pointed at (``None``: its own
    choice)."""
    from numba.core import config
    from numba.misc.appdirs import AppDirs

    if config.CACHE_DIR and _writable(config.CACHE_DIR):
        return True, None
    here = Path(__file__).resolve().parent
    if not config.CACHE_DIR:
        if all(_writable(here / pkg / "__pycache__") for pkg in _KERNEL_PACKAGES):
            return True, None
        if _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir):
            return True, None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = os.path.join(tempfile.gettempdir(), f"splatpix-numba-cache-{uid}")
    if _writable(fallback):
        config.CACHE_DIR = fallback
        return True, fallback
    config.CACHE_DIR = ""
    return False, None


NUMBA_CACHE, CACHE_DIR = _configure()
"""``NUMBA_CACHE``: the ``cache=`` argument of every kernel; ``CACHE_DIR``: the fallback folder in use, if any."""
