"""Regenerate the golden files of tests/test_golden.py (run only when a format change is intended).

    .venv/bin/python tests/golden/make_golden.py [OUT_DIR]

Writes one small ``.spix`` file per codec method, one model file per model kind, and ``golden.json``: the SHA-256
of each file and of the arrays decoded from it. The test decodes the committed files and compares those hashes,
so any change of the format, the parsers or the dequantisers is caught.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

import splatpix
from splatpix.gainer import GainerConfig, GainerTrainConfig, HashGridConfig, fit_gainer, load_gainer, save_gainer

HERE = Path(__file__).resolve().parent


def image(h: int = 24, w: int = 32) -> torch.Tensor:
    """A smooth, colourful test image (deterministic)."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack((x / (w - 1), y / (h - 1), 0.5 + 0.4 * np.sin(x / 3.0) * np.cos(y / 4.0)), 0)
    return torch.from_numpy(rgb.astype(np.float32))


def digest(t: torch.Tensor | np.ndarray) -> str:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gaussian_arrays(g: splatpix.Gaussians) -> dict[str, str]:
    return {"means": digest(g.means), "cov_params": digest(g.cov_params), "colours": digest(g.colours)}


def main(out: Path = HERE) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    img = image()
    golden: dict[str, dict] = {}
    fit = splatpix.FitConfig(steps=60, optimizer="adam", lr=1e-2, lr_decay_every=30, log_every=30)
    from splatpix.codec.qat import QATConfig  # noqa: PLC0415

    qat = QATConfig(steps=20, optimizer="adam", lr=1e-3, log_every=10)
    # sga.spix: the residual-VQ colours every sga file had before the scalar colours; sga-scalar.spix: the default
    for name, method, options in (("gaussianimage", "gaussianimage", None), ("sga", "sga", {"colour": "vq"}),
                                  ("sga-scalar", "sga", None)):
        res = splatpix.encode(img, 40, method=method, fit_config=fit, qat_config=qat, options=options,
                              progress=False)
        path = out / f"{name}.spix"
        res.save(path)
        g = splatpix.decode(path)
        golden[path.name] = {"kind": "spix", "method": method, "sha256": file_digest(path),
                             "arrays": gaussian_arrays(g)}
    res = splatpix.fit(img, splatpix.FitConfig(n_gaussians=40, steps=60, optimizer="adam", lr=1e-2, param="rs"),
                       progress=False)
    path = out / "gaussianimage-rs.safetensors"
    splatpix.save_model(res.gaussians, path)
    golden[path.name] = {"kind": "model", "sha256": file_digest(path),
                         "arrays": gaussian_arrays(splatpix.load_model(path))}
    cfg = GainerTrainConfig(model=GainerConfig(n_gaussians=64, k=4, mlp_hidden=16, mlp_layers=1,
                                               hashgrid=HashGridConfig(n_levels=2, log2_table_size=8,
                                                                       base_resolution=4, max_resolution=8)),
                            steps=10, batch=0, log_every=5)
    field = fit_gainer(img, cfg, progress=False).field.bake()
    path = out / "gainer.safetensors"
    save_gainer(field, path)
    loaded = load_gainer(path)
    golden[path.name] = {"kind": "gainer", "sha256": file_digest(path),
                         "arrays": {k: digest(v) for k, v in sorted(loaded.state_dict().items())}}
    (out / "golden.json").write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
