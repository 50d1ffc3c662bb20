"""Bjøntegaard deltas (BD-rate, BD-PSNR) between two rate–distortion curves.

:func:`bd_rate` and :func:`bd_psnr` call the ``bjontegaard`` package (BSD-3-Clause, FAU-LMS), whose
interpolation method must always be named; here it defaults to ``"akima"``:

- ``"akima"``: Akima piecewise-cubic interpolation (``scipy.interpolate.Akima1DInterpolator``) through the
  points, the method recommended by the package's authors and used for this project's reported numbers;
- ``"pchip"``: piecewise-cubic Hermite interpolation (``scipy.interpolate.PchipInterpolator``);
- ``"cubic"``: one least-squares cubic polynomial over all points (Bjøntegaard's original VCEG-M33 method).

BD-rate interpolates ``log10(rate)`` as a function of the distortion metric (PSNR in dB, or any metric where
higher is better), integrates both curves over the overlap of their distortion ranges, and turns the mean
log-rate difference into a percentage: negative means the test codec needs fewer bits for the same quality.
BD-PSNR interpolates the metric as a function of ``log10(rate)`` and averages the difference over the overlap
of the log-rate ranges (positive means the test codec has higher quality at the same rate).

:func:`bd_rate_cubic_poly` and :func:`bd_psnr_cubic_poly` are independent pure-numpy implementations of the
classic cubic-polynomial method, kept as a cross-check of the package.

Every function validates its inputs first (at least 4 points per curve, finite values, positive rates,
distinct rates, a metric strictly increasing with rate after sorting by rate, overlapping rate and
distortion ranges) and raises :class:`ValueError` with a one-line message otherwise. The points may be given
in any order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from ..errors import SplatpixError

__all__ = ["METHODS", "MIN_POINTS", "bd_psnr", "bd_psnr_cubic_poly", "bd_rate", "bd_rate_cubic_poly"]

METHODS = ("akima", "pchip", "cubic")
"""Interpolation methods accepted by :func:`bd_rate` and :func:`bd_psnr`."""

MIN_POINTS = 4
"""Minimum number of rate–distortion points per curve (a cubic needs four)."""

ArrayLike = Sequence[float] | np.ndarray


def bd_rate(
    rate_anchor: ArrayLike,
    dist_anchor: ArrayLike,
    rate_test: ArrayLike,
    dist_test: ArrayLike,
    method: str = "akima",
    min_overlap: float = 0.5,
) -> float:
    """Bjøntegaard delta rate of the test curve against the anchor, in percent.

    ``log10(rate)`` is interpolated as a function of the distortion metric with ``method`` (default
    ``"akima"``: Akima piecewise-cubic interpolation; see the module docstring for ``"pchip"`` and ``"cubic"``)
    and integrated over the overlap of the two distortion ranges. Negative values mean the test codec saves
    bits (``-10.0`` = 10 % fewer bits for the same quality). Rates may be in any unit (bpp, bytes) as long as
    both curves use the same one. A :class:`RuntimeWarning` is issued when the distortion ranges overlap by
    less than ``min_overlap`` of their union. Raises :class:`ValueError` for invalid inputs.
    """
    ra, da, rt, dt = _validate(rate_anchor, dist_anchor, rate_test, dist_test, method)
    _check_overlap(da, dt, "distortion", min_overlap)
    bj = _bjontegaard()
    value = bj.bd_rate(ra, da, rt, dt, method=method, require_matching_points=False, min_overlap=0.0)
    return _finite_result(value, "BD-rate")


def bd_psnr(
    rate_anchor: ArrayLike,
    dist_anchor: ArrayLike,
    rate_test: ArrayLike,
    dist_test: ArrayLike,
    method: str = "akima",
    min_overlap: float = 0.5,
) -> float:
    """Bjøntegaard delta of the distortion metric (dB for PSNR) of the test curve against the anchor.

    The metric is interpolated as a function of ``log10(rate)`` with ``method`` (default ``"akima"``: Akima
    piecewise-cubic interpolation; see the module docstring) and the difference is averaged over the overlap
    of the two log-rate ranges. Positive values mean the test codec has higher quality at the same rate. A
    :class:`RuntimeWarning` is issued when the log-rate ranges overlap by less than ``min_overlap`` of their
    union. Raises :class:`ValueError` for invalid inputs.
    """
    ra, da, rt, dt = _validate(rate_anchor, dist_anchor, rate_test, dist_test, method)
    _check_overlap(np.log10(ra), np.log10(rt), "log-rate", min_overlap)
    bj = _bjontegaard()
    value = bj.bd_psnr(ra, da, rt, dt, method=method, require_matching_points=False, min_overlap=0.0)
    return _finite_result(value, "BD-PSNR")


def bd_rate_cubic_poly(
    rate_anchor: ArrayLike, dist_anchor: ArrayLike, rate_test: ArrayLike, dist_test: ArrayLike
) -> float:
    """Classic Bjøntegaard delta rate (VCEG-M33), in percent, computed with numpy only.

    ``log(rate)`` is fitted as a least-squares cubic polynomial of the distortion metric for each curve; both
    polynomials are integrated exactly over the overlap of the distortion ranges, and the mean log-rate
    difference is returned as ``(exp(mean) - 1) * 100``. Same sign convention and validation as
    :func:`bd_rate`; equals ``bd_rate(..., method="cubic")`` up to rounding.
    """
    ra, da, rt, dt = _validate(rate_anchor, dist_anchor, rate_test, dist_test, "cubic")
    _check_overlap(da, dt, "distortion", 0.0)
    mean_diff = _mean_poly_difference(da, np.log(ra), dt, np.log(rt))
    return _finite_result(float(np.expm1(mean_diff) * 100.0), "BD-rate")


def bd_psnr_cubic_poly(
    rate_anchor: ArrayLike, dist_anchor: ArrayLike, rate_test: ArrayLike, dist_test: ArrayLike
) -> float:
    """Classic Bjøntegaard delta PSNR (VCEG-M33), numpy only: cubic fits of the metric in ``log10(rate)``.

    Same sign convention and validation as :func:`bd_psnr`; equals ``bd_psnr(..., method="cubic")`` up to
    rounding.
    """
    ra, da, rt, dt = _validate(rate_anchor, dist_anchor, rate_test, dist_test, "cubic")
    la, lt = np.log10(ra), np.log10(rt)
    _check_overlap(la, lt, "log-rate", 0.0)
    return _finite_result(_mean_poly_difference(la, da, lt, dt), "BD-PSNR")


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _bjontegaard() -> ModuleType:
    # Imported lazily: the package imports matplotlib.pyplot at import time.
    try:
        import bjontegaard
    except ImportError as e:
        raise SplatpixError(
            "BD-rate needs the 'bjontegaard' package (pip install 'splatpix[eval]' or pip install bjontegaard)"
        ) from e
    return bjontegaard


def _as_points(values: ArrayLike, what: str) -> np.ndarray:
    if isinstance(values, str | bytes):
        raise ValueError(f"{what}: expected a sequence of numbers, got {type(values).__name__}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: expected a sequence of numbers ({e})") from e
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: contains non-finite values (NaN or infinity)")
    return arr


def _validate_curve(rate: ArrayLike, dist: ArrayLike, which: str) -> tuple[np.ndarray, np.ndarray]:
    r = _as_points(rate, f"{which} rates")
    d = _as_points(dist, f"{which} distortions")
    if r.size != d.size:
        raise ValueError(f"{which} curve: {r.size} rates but {d.size} distortion values")
    if r.size < MIN_POINTS:
        raise ValueError(f"{which} curve: {r.size} points, need at least {MIN_POINTS}")
    if np.any(r <= 0):
        raise ValueError(f"{which} curve: rates must be positive, got minimum {r.min():g}")
    order = np.argsort(r, kind="stable")
    r, d = r[order], d[order]
    if np.any(np.diff(r) <= 0):
        raise ValueError(f"{which} curve: duplicate rate values")
    bad = np.flatnonzero(np.diff(d) <= 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{which} curve: distortion metric must increase strictly with rate, but rate {r[i]:g} -> {d[i]:g} "
            f"and rate {r[i + 1]:g} -> {d[i + 1]:g}"
        )
    return r, d


def _validate(
    rate_anchor: ArrayLike, dist_anchor: ArrayLike, rate_test: ArrayLike, dist_test: ArrayLike, method: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; choose one of {', '.join(METHODS)}")
    ra, da = _validate_curve(rate_anchor, dist_anchor, "anchor")
    rt, dt = _validate_curve(rate_test, dist_test, "test")
    if min(ra[-1], rt[-1]) <= max(ra[0], rt[0]):
        raise ValueError(
            f"rate ranges do not overlap: anchor [{ra[0]:g}, {ra[-1]:g}], test [{rt[0]:g}, {rt[-1]:g}]"
        )
    return ra, da, rt, dt


def _check_overlap(a: np.ndarray, b: np.ndarray, axis: str, min_overlap: float) -> None:
    """Raise unless the ranges of ``a`` and ``b`` overlap; warn if the overlap is below ``min_overlap``."""
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if hi <= lo:
        raise ValueError(
            f"{axis} ranges do not overlap: anchor [{a.min():g}, {a.max():g}], test [{b.min():g}, {b.max():g}]"
        )
    fraction = (hi - lo) / (max(a.max(), b.max()) - min(a.min(), b.min()))
    if fraction < min_overlap:
        warnings.warn(
            f"the curves' {axis} ranges overlap by only {fraction:.0%} of their union; the Bjøntegaard delta "
            "extrapolates little but covers only part of the curves",
            RuntimeWarning,
            stacklevel=3,
        )


def _mean_poly_difference(xa: np.ndarray, ya: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> float:
    """Mean of ``p_t(x) - p_a(x)`` over the overlap of the x ranges, ``p`` the cubic least-squares fits."""
    lo, hi = max(xa.min(), xt.min()), min(xa.max(), xt.max())
    # Fit in a centred, scaled variable for conditioning; the mean over the interval is unchanged.
    centre, scale = 0.5 * (lo + hi), 0.5 * (hi - lo)
    pa = np.polyint(np.polyfit((xa - centre) / scale, ya, 3))
    pt = np.polyint(np.polyfit((xt - centre) / scale, yt, 3))
    integral = (np.polyval(pt, 1.0) - np.polyval(pt, -1.0)) - (np.polyval(pa, 1.0) - np.polyval(pa, -1.0))
    return float(integral / 2.0)


def _finite_result(value: object, what: str) -> float:
    out = float(value)  # type: ignore[arg-type]
    if not np.isfinite(out):
        raise ValueError(f"{what} is not finite ({out}); check that the curves are valid and overlap")
    return out
