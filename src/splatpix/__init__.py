"""splatpix: images as sets of 2D Gaussians.

Python API (the CLI ``splatpix`` wraps the same functions)::

    import splatpix
    img = splatpix.load_image("photo.png")                      # (C, H, W) float in [0, 1]
    res = splatpix.fit(img, splatpix.FitConfig(n_gaussians=5000, steps=2000))
    res = splatpix.fit(img, splatpix.FitConfig(n_gaussians=5000, init="structure", colour_solve_init=True))
    splatpix.save_model(res.gaussians, "photo.safetensors")
    g = splatpix.load_model("photo.safetensors")
    big = splatpix.render(g, scale=2.0, clamp=True)             # (C, 2H, 2W)
    splatpix.save_image(big, "photo_2x.png")

    res = splatpix.encode(img, 3000)                            # fit + QAT + entropy coding (preset "cpu")
    res.save("photo.spix"); print(res.report["bpp"], res.report["psnr"])
    g2 = splatpix.decode("photo.spix")                          # a Gaussians model; render it at any size
    a = splatpix.decode_arrays("photo.spix")                    # the same as numpy arrays (no torch imported)
    pixels = splatpix.render_array(a, clamp=True)               # (C, H, W) float32 numpy
"""

from __future__ import annotations

from typing import Any

from . import jit as _jit  # noqa: F401  (first: where numba caches the kernels)
from ._version import __version__
from .errors import SplatpixError
from .render import __name__ as _render_package  # noqa: F401  (the package, torch-free; see below)

# ``splatpix.render`` is the function (as before), not the sub-package: the import above loaded the package (binding
# the name to it), and dropping the binding lets __getattr__ load the function on first use; later imports of
# splatpix.render.* do not rebind it.
del render  # noqa: F821

# loaded on first use, so that the decode path (splatpix decode/info/render) imports no torch
_LAZY = {
    "FitConfig": "train", "FitResult": "train", "fit": "train", "solve_colours": "train",
    "Gaussians": "model", "load_model": "model", "save_model": "model", "GaussianArrays": "model.arrays",
    "decode": "codec.api", "encode": "codec.api", "decode_arrays": "codec.decoding",
    "complexity_map": "init", "initialise": "init",
    "load_image": "io", "sample_image_path": "io", "save_image": "io",
    "ms_ssim": "metrics", "psnr": "metrics",
    "rasterize": "render", "render": "render", "render_array": "render",
}

__all__ = [
    "FitConfig", "FitResult", "GaussianArrays", "Gaussians", "SplatpixError", "complexity_map", "decode",
    "decode_arrays", "encode", "fit", "initialise", "load_image", "load_model", "ms_ssim", "psnr", "rasterize",
    "render", "render_array", "sample_image_path", "save_image", "save_model", "solve_colours", "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
