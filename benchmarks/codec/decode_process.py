"""Process wall time of ``splatpix decode FILE.spix -o OUT.png`` (``python -m splatpix.cli``; the default engine
choice, and ``--engine numba``) against a Python + Pillow process decoding a WebP file of the same image at a similar
rate to PNG, paired in one run; and the in-process decode time (bytes -> clamped float image, warm: the median of
repeated calls in one process) with each engine, for this checkout and, with ``--baseline SRC``, for another
checkout's ``src`` folder (e.g. a clone of the commit before the torch-free decode path).

    python benchmarks/codec/decode_process.py --image ../shared/datasets/kodak/kodim23.png --keep /tmp/spix \
        --baseline /tmp/base/src --out benchmarks/codec/results/decode_process.json

Files: ``--keep DIR`` holds ``<method>_n<N>.spix`` (encoded here when missing, with ``--steps``/``--qat-steps``: decode
speed depends on N and the Gaussians' sizes, not much on the training length) and the WebP file at the same rate
(libwebp via Pillow, ``method=6``, quality searched for the rate). Each timing is the median of ``--repeats``
alternating runs after one warm-up run of each (numba's cache filled, files in the page cache).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import KODAK, REPO, machine, today, write_json  # noqa: E402

_PILLOW = "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2])"
# in-process decode time, run in a fresh interpreter on a given source tree (the new API, or the old torch one)
_INPROC = """
import sys, time, statistics
data = open(sys.argv[1], "rb").read()
repeats = int(sys.argv[2])
try:
    from splatpix import jit
    jit.set_engine(sys.argv[3])
    from splatpix.codec.decoding import decode_bytes_arrays
    from splatpix.render.arrays import render_array
    run = lambda: render_array(decode_bytes_arrays(data), clamp=True)
except (ImportError, AttributeError):  # a checkout before the torch-free path
    import torch
    from splatpix.codec.api import decode_bytes
    from splatpix.render import render
    def run():
        with torch.no_grad():
            return render(decode_bytes(data), clamp=True)
run()
ts = []
for _ in range(repeats):
    t0 = time.perf_counter(); run(); ts.append(time.perf_counter() - t0)
print(1e3 * statistics.median(ts))
"""


def _env(src: Path | None) -> dict[str, str]:
    import os

    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _encode(image: str, method: str, n: int, out: Path, steps: int, qat_steps: int) -> None:
    subprocess.run([sys.executable, "-m", "splatpix.cli", "encode", image, "-o", str(out), "--method", method,
                    "-n", str(n), "--steps", str(steps), "--qat-steps", str(qat_steps), "--quiet"], check=True)


def _webp_like(image: str, bpp: float, out: Path) -> float:
    from splatpix.eval.baselines import encode_at_bpp
    from splatpix.io import load_image

    res = encode_at_bpp("webp", load_image(image), bpp)
    out.write_bytes(res.bytes)
    return res.bpp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=str(KODAK / "kodim23.png"))
    ap.add_argument("--gaussians", type=int, nargs="+", default=[1000, 9000])
    ap.add_argument("--methods", nargs="+", default=["gaussianimage", "sga"])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--qat-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--keep", required=True, help="folder of the .spix and .webp files (encoded when missing)")
    ap.add_argument("--baseline", help="another checkout's src folder to time the same way")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    keep = Path(args.keep)
    keep.mkdir(parents=True, exist_ok=True)
    trees = {"this": Path(REPO / "src")} | ({"baseline": Path(args.baseline)} if args.baseline else {})
    rows = []
    for method in args.methods:
        for n in args.gaussians:
            spix = keep / f"{method}_n{n}.spix"
            if not spix.exists():
                _encode(args.image, method, n, spix, args.steps, args.qat_steps)
            h, w = _image_size(args.image)
            bpp = spix.stat().st_size * 8 / (h * w)
            webp = keep / f"{method}_n{n}.webp"
            webp_bpp = _webp_like(args.image, bpp, webp) if not webp.exists() else webp.stat().st_size * 8 / (h * w)
            cmds = {"webp": ([sys.executable, "-c", _PILLOW, str(webp), str(keep / "out_webp.png")], _env(None))}
            for tree, src in trees.items():
                out_png = str(keep / f"out_{tree}.png")
                decode = [sys.executable, "-m", "splatpix.cli", "decode", str(spix), "-o", out_png]
                cmds[tree] = (decode, _env(src))
                if tree == "this":  # the same command with numba's kernels
                    cmds["this_numba"] = ([*decode, "--engine", "numba"], _env(src))
            for cmd, env in cmds.values():  # warm-up: numba's cache, the page cache
                _wall(cmd, env)
            times: dict[str, list[float]] = {k: [] for k in cmds}
            for _ in range(args.repeats):
                for k, (cmd, env) in cmds.items():
                    times[k].append(_wall(cmd, env))
            row = {"method": method, "n_gaussians": n, "bpp": bpp, "webp_bpp": webp_bpp,
                   "process_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}}
            row["ratio_to_webp"] = {k: row["process_ms"][k] / row["process_ms"]["webp"] for k in cmds if k != "webp"}
            row["in_process_ms"] = {
                f"{tree}_{eng}": float(subprocess.run(
                    [sys.executable, "-c", _INPROC, str(spix), str(3 * args.repeats), eng], check=True, env=_env(src),
                    capture_output=True, text=True).stdout)
                for tree, src in trees.items() for eng in (("numba", "numpy") if tree == "this" else ("numba",))}
            rows.append(row)
            print(row, flush=True)
    write_json(args.out, {"date": today(), "machine": machine(), "image": args.image, "steps": args.steps,
                          "qat_steps": args.qat_steps, "repeats": args.repeats, "rows": rows})


def _image_size(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


if __name__ == "__main__":
    main()
