"""Context coding of the sga colour indices (issue #4, section 4): what each context would save, in real bytes.

    python benchmarks/codec/colour_context.py --images ../shared/datasets/kodak --limit 3 --gaussians 1000 3000 9000 \
        --steps 500 --qat-steps 100 --out benchmarks/codec/results/colour_context.json

Encodes each image once per N with ``--method sga`` and codes the same colour indices (GaussianImage's residual
VQ: 2 stages of 8 codewords, in the file's position order) in several layouts, each chunk with the codec's own
chunk coder (:func:`splatpix.codec.symbols.code`: the static-histogram ANS payload or fixed length, whichever is
smaller, plus the 4-byte chunk length), so the sizes include every byte of side information:

* ``plain``: one chunk per stage (the format's layout);
* ``s2|s1``: stage 2 in one chunk per stage-1 codeword (8 contexts);
* ``s1|prev``: stage 1 in contexts of the previous Gaussian's stage-1 index (neighbours along the curve), stage 2
  as in ``s2|s1``;
* ``tier``: both stages in one chunk per covariance tier (the decoder knows the tiers before the colours);
* ``joint``: the pair ``(s1, s2)`` as one symbol of a 64-codeword alphabet.

Lossless, so the PSNR is unchanged and the file-size change is the BD-rate change at that point.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from cov_context import encode_args, sga_encodes  # benchmarks/codec/cov_context.py: same images, N and schedule

from splatpix.codec.positions import encode_grid_points
from splatpix.codec.symbols import MODE_ENTROPY, code

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_rows  # noqa: E402


def _chunks_bytes(parts: list[tuple[np.ndarray, int]]) -> int:
    return sum(4 + len(code(np.ascontiguousarray(s, dtype=np.int64), a, MODE_ENTROPY)) for s, a in parts if s.size)


def layouts(idx: np.ndarray, tiers: np.ndarray, k: int) -> dict[str, int]:
    """Bytes of the index chunks (without the section's 4-byte head) of each layout."""
    s1, s2 = idx[:, 0], idx[:, 1]
    by_s1 = [(s2[s1 == v], k) for v in range(k)]
    prev = np.concatenate(([0], s1[:-1]))
    return {
        "plain": _chunks_bytes([(s1, k), (s2, k)]),
        "s2|s1": _chunks_bytes([(s1, k), *by_s1]),
        "s1|prev": _chunks_bytes([*((s1[prev == v], k) for v in range(k)), *by_s1]),
        "tier": _chunks_bytes([(s[tiers == t], k) for s in (s1, s2) for t in np.unique(tiers)]),
        "joint": _chunks_bytes([(s1 * k + s2, k * k)]),
    }


def main() -> None:
    args = encode_args(__doc__).parse_args()
    rows = []
    for path, n, res in sga_encodes(args):
        q = res.quantized
        h, w = q.size
        _, order = encode_grid_points(q.grid, (w * q.subdiv + 1, h * q.subdiv + 1))
        sizes = layouts(q.colour_indices[order], q.tiers[order], int(q.codebooks.shape[1]))
        row = {"image": path.name, "n_gaussians": n, "file_bytes": res.report["bytes"], "psnr": res.report["psnr"],
               "index_bytes": sizes}
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_rows(args.out, "colour_context", args, rows)
    names = list(rows[0]["index_bytes"]) if rows else []
    print("| image | N | file bytes | " + " | ".join(f"{m}" for m in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for r in rows:
        ib = r["index_bytes"]
        cells = [f"{ib[m]} ({100 * (ib[m] - ib['plain']) / r['file_bytes']:+.2f} %)" for m in names]
        print(f"| {r['image']} | {r['n_gaussians']} | {r['file_bytes']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
