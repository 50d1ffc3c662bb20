"""Where numba caches the compiled kernels, with a fallback for read-only installs.

Every kernel is compiled with ``cache=NUMBA_CACHE``. numba keeps its cache beside the source (``__pycache__``) or in
the user's cache folder; in a read-only install whose HOME is not writable (a common container set-up) neither
works, and numba then refuses to define a cached function at all. On import (the package imports this module before
any kernel), the places numba would use are checked; when none is writable, numba is pointed at a per-user folder
in the temporary directory, and when that is not writable either, the kernels are compiled without a cache (every
process compiles them again, a few seconds). A ``NUMBA_CACHE_DIR`` the user set is respected when it is writable.

**Lazy kernels.** Importing numba and initialising its CPU target costs about 0.7 s on the project's machine, more than
a whole WebP decode process: the decode path's modules (the entropy coder, the dequantisers, ``sga``'s positions and
tiers, the rasteriser) therefore define their kernels with :func:`njit` from here, which imports numba only when a
kernel is first called, and each of them has a numpy path that the **engine** selects (:func:`use_kernels`):
``"numba"`` (the default; the kernels) or ``"numpy"`` (no numba at all: the references the tests compare the kernels
against, promoted to a code path). ``splatpix decode`` picks numpy for one-shot decodes whose render is small
(:mod:`splatpix.cli.codec`); ``SPLATPIX_ENGINE=numpy|numba`` forces either.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["CACHE_DIR", "ENGINES", "NUMBA_CACHE", "engine", "njit", "numba_loaded", "prange", "set_engine",  # noqa: F822
           "use_kernels", "using_engine"]

ENGINES = ("numba", "numpy")

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


_CONFIG: tuple[bool, str | None] | None = None


def __getattr__(name: str) -> Any:
    """``NUMBA_CACHE`` (the ``cache=`` argument of every kernel) and ``CACHE_DIR`` (the fallback folder in use, if
    any), worked out (importing numba) on first use."""
    global _CONFIG
    if name in ("NUMBA_CACHE", "CACHE_DIR"):
        if _CONFIG is None:
            _CONFIG = _configure()
        return _CONFIG[0] if name == "NUMBA_CACHE" else _CONFIG[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------------ the engine

_ENGINE = os.environ.get("SPLATPIX_ENGINE", "numba")
if _ENGINE not in ENGINES:
    _ENGINE = "numba"


def engine() -> str:
    """The engine in use: ``"numba"`` or ``"numpy"``."""
    return _ENGINE


def set_engine(name: str) -> None:
    """Select the engine of the decode path's kernels (``"numba"`` or ``"numpy"``) for this process."""
    global _ENGINE
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
    _ENGINE = name


@contextlib.contextmanager
def using_engine(name: str) -> Iterator[None]:
    """:func:`set_engine` for the duration of a ``with`` block."""
    old = engine()
    set_engine(name)
    try:
        yield
    finally:
        set_engine(old)


def use_kernels() -> bool:
    """Whether the decode path runs its numba kernels (else their numpy forms)."""
    return _ENGINE == "numba"


def numba_loaded() -> bool:
    return "numba" in sys.modules


# ------------------------------------------------------------------------------------------------ lazy kernels

prange = range
"""Stands for ``numba.prange`` in a lazy kernel's body: the kernel's module gets the real one before compiling."""


class _LazyKernel:
    """A kernel defined with :func:`njit`: ``numba.njit(**options)(fn)`` made, with every other lazy kernel of its
    module, on first use (a call or an attribute such as ``py_func``)."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.fn = fn
        self.options = options
        self.dispatcher: Any = None
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__wrapped__ = fn

    def _real(self) -> Any:
        if self.dispatcher is None:
            _realise_module(self.fn.__globals__)
        if self.dispatcher is None:  # not bound to a module-level name: made on its own
            import numba

            self.dispatcher = numba.njit(cache=__getattr__("NUMBA_CACHE"), **self.options)(self.fn)
        return self.dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._real(), name)


def _realise_module(g: dict[str, Any]) -> None:
    """Replace every lazy kernel of the module whose globals are ``g`` by its numba dispatcher (and ``prange`` by
    numba's), so that kernels calling each other see dispatchers."""
    import numba

    cache = __getattr__("NUMBA_CACHE")
    if g.get("prange") is prange:
        g["prange"] = numba.prange
    for name, value in list(g.items()):
        if isinstance(value, _LazyKernel) and value.fn.__globals__ is g:
            if value.dispatcher is None:
                value.dispatcher = numba.njit(cache=cache, **value.options)(value.fn)
            g[name] = value.dispatcher


def njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(cache=NUMBA_CACHE, **options)``, made on first use (numba is imported then, not here). The
    kernel's module must bind it to a global name (``@njit(...)`` on a module-level function does)."""
    if "cache" in options:
        raise ValueError("lazy kernels are always cached where numba can cache (jit.NUMBA_CACHE)")

    def wrap(fn: Callable[..., Any]) -> _LazyKernel:
        return _LazyKernel(fn, options)

    return wrap
