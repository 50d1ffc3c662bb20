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
"""

from . import jit as _jit  # noqa: F401  (first: where numba caches the kernels)
from ._version import __version__
from .codec.api import decode, encode
from .errors import SplatpixError
from .init import complexity_map, initialise
from .io import load_image, sample_image_path, save_image
from .metrics import ms_ssim, psnr
from .model import Gaussians, load_model, save_model
from .render import rasterize, render
from .train import FitConfig, FitResult, fit, solve_colours

__all__ = [
    "FitConfig", "FitResult", "Gaussians", "SplatpixError", "complexity_map", "decode", "encode", "fit",
    "initialise", "load_image", "load_model", "ms_ssim", "psnr", "rasterize", "render", "sample_image_path",
    "save_image", "save_model", "solve_colours", "__version__",
]
