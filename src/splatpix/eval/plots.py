"""Rate–distortion plots (matplotlib, drawn off-screen on an Agg canvas; pyplot is never used)."""

from __future__ import annotations

import io
import os
from collections.abc import Collection, Mapping

import numpy as np

from ..errors import SplatpixError
from ..io.files import atomic_write_bytes
from .rd import RDCurve

__all__ = ["METRICS", "plot_rd"]

METRICS = {
    "psnr": "PSNR-RGB [dB]",
    "ms-ssim": "MS-SSIM",
    "ms-ssim-db": "MS-SSIM [dB]  (-10 log10(1 - MS-SSIM))",
}
"""The ``metric`` values :func:`plot_rd` accepts, with their axis labels."""

_MARKERS = ("o", "s", "^", "v", "D", "<", ">", "p", "h", "*", "X", "P")

PathLike = str | os.PathLike[str]


def plot_rd(
    curves: Mapping[str, RDCurve],
    out_png: PathLike,
    metric: str = "psnr",
    title: str | None = None,
    *,
    dashed: Collection[str] | None = None,
    log_rate: bool = False,
    dpi: int = 150,
) -> list[str]:
    """Plot quality against bpp, one line with markers per curve, and write a PNG file atomically.

    ``curves`` maps legend labels to curves; they are drawn in the mapping's order, each with its points
    sorted by bpp. Published curves (``curve.published``, as set by :func:`~splatpix.eval.rd.load_published`)
    and those whose labels are in ``dashed`` are drawn with dashed lines, the others with solid lines.
    ``metric`` is ``"psnr"``, ``"ms-ssim"`` or ``"ms-ssim-db"`` (see :data:`METRICS`); curves without MS-SSIM
    values are left out of MS-SSIM plots. ``log_rate`` puts bpp on a log axis. Returns the labels plotted.
    Raises :class:`SplatpixError` if nothing can be plotted or the file cannot be written, and
    :class:`ValueError` for an unknown ``metric``.
    """
    name = os.fspath(out_png)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if not name.lower().endswith(".png"):
        raise SplatpixError(f"{name}: RD plots are written as PNG; use a .png file name")
    if not curves:
        raise SplatpixError(f"{name}: no curves to plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise SplatpixError("RD plots need matplotlib (pip install 'splatpix[eval]' or pip install matplotlib)") from e

    dashed_labels = set(dashed or ())
    fig = Figure(figsize=(7.0, 5.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    plotted: list[str] = []
    for i, (label, curve) in enumerate(curves.items()):
        if not isinstance(curve, RDCurve):
            raise SplatpixError(f"curve {label!r}: expected an RDCurve, got {type(curve).__name__}")
        y = _metric_values(curve, metric)
        if y is None:
            continue
        x = np.asarray(curve.bpp, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        linestyle = "--" if curve.published or label in dashed_labels else "-"
        ax.plot(
            x[order], y[order], linestyle=linestyle, marker=_MARKERS[i % len(_MARKERS)], markersize=4,
            linewidth=1.3, label=str(label),
        )
        plotted.append(label)
    if not plotted:
        raise SplatpixError(f"{name}: none of the curves has {metric} values")

    if log_rate:
        ax.set_xscale("log")
    ax.set_xlabel("bpp")
    ax.set_ylabel(METRICS[metric])
    ax.set_title(title if title is not None else f"Rate–distortion ({METRICS[metric].split(' ')[0]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(name, buf.getvalue())
    return plotted


def _metric_values(curve: RDCurve, metric: str) -> np.ndarray | None:
    if metric == "psnr":
        return np.asarray(curve.psnr, dtype=np.float64)
    if curve.ms_ssim is None:
        return None
    ms = np.asarray(curve.ms_ssim, dtype=np.float64)
    if metric == "ms-ssim":
        return ms
    return -10.0 * np.log10(np.maximum(1.0 - ms, 1e-10))
