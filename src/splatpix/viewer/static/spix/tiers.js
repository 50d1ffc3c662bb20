// Covariance tiers of method sga, derived from the decoded grid points (no bits in the file).
// Mirrors splatpix/codec/tiers.py (assign_tiers, _tiers_by_counting, _count_tiers, tier_order); definition:
// docs/format.md, "Section payloads of the structure-guided codec": a point's squared spacing s is the squared
// distance, in grid units, to its k-th nearest other point (2^62 - 1 with k or fewer others); its tier is the
// number of thresholds below s.
//
// Two searches, chosen as Python chooses:
// * Counting (Python's _count_tiers, the path every real file takes): with cells of side ceil(sqrt(th_last)),
//   the tier of a point is the first j with more than k points of its 3 x 3 cells (itself included) at
//   float64 squared distance <= float64(th_j). Ported operation for operation, so that it agrees with Python
//   even where float64 rounds (squared distances beyond 2^53); taken when Python takes it (a small grid and
//   bounded work), O(n) then.
// * Exact (where Python falls back to its exact grid search or k-d tree): per threshold th, s <= th iff at least
//   k other points lie within squared distance th exactly. The points are binned into square cells small
//   enough that any two points of a cell are within th of each other (dense, or a hash table of the occupied
//   cells), so a crowded cell decides its points at once; other points look at the (2R + 1)^2 cells around
//   theirs (R <= 3), taking or skipping a large cell whole when its box lies entirely inside or outside the
//   radius. Work: O(k n) per threshold at worst. Comparisons are exact (BigInt beyond 2^53).

import { allocate } from './errors.js';

const MAX_SPACING_SQ = 2n ** 62n - 1n;
const TWO53 = 2 ** 53;

/**
 * tiers.assign_tiers: the tier (Uint8Array) of each of the n points `pts` ((N, 2) integers x, y) for
 * ascending BigInt `thresholds` and neighbour rank k.
 */
export function assignTiers(pts, n, thresholds, k) {
  const m = thresholds.length;
  if (m === 0 || n === 0) return allocate(Uint8Array, n);
  if (n <= k) { // the spacing of every point is MAX_SPACING_SQ
    return allocate(Uint8Array, n).fill(thresholds.filter((th) => th < MAX_SPACING_SQ).length);
  }
  return countingTiers(pts, n, thresholds, k) ?? exactTiers(pts, n, thresholds, k);
}

// ------------------------------------------------------------------------------------------------ counting

/** floor(sqrt(v)) of a BigInt v >= 0, as a number. */
function isqrt(v) {
  let r = BigInt(Math.floor(Math.sqrt(Number(v))));
  while (r * r > v) r--;
  while ((r + 1n) * (r + 1n) <= v) r++;
  return Number(r);
}

/**
 * tiers._tiers_by_counting: the tiers by _count_tiers when its grid (cells of side ceil(sqrt(th_last)) over the
 * bounding box) has at most 4 n + 16 cells and its 3 x 3 scans at most 64 n + 4096 candidates; null otherwise.
 */
function countingTiers(pts, n, thresholds, k) {
  const last = thresholds[thresholds.length - 1];
  const side = isqrt(last);
  const cell = Math.max(1, BigInt(side) * BigInt(side) >= last ? side : side + 1);
  const box = boundingBox(pts, n);
  const gx = Math.floor((box.x1 - box.x0 + cell) / cell); // ceil(w / cell), w = x1 - x0 + 1
  const gy = Math.floor((box.y1 - box.y0 + cell) / cell);
  if (gx * gy > 4 * n + 16) return null;
  const cellOf = allocate(Int32Array, n);
  for (let i = 0; i < n; i++) {
    cellOf[i] = Math.floor((pts[2 * i + 1] - box.y0) / cell) * gx + Math.floor((pts[2 * i] - box.x0) / cell);
  }
  const { start, members } = countingSort(cellOf, gx * gy);
  if (blockWork(start, gx, gy) > 64 * n + 4096) return null;
  // numpy's int64 -> float64 (round to nearest); a plain array, so that small thresholds stay small integers
  const thf = Array.from(thresholds, Number);
  const m = thf.length;
  const first = new Int32Array(m + 1); // how many candidates have th_j as their first threshold >= d
  const tiers = allocate(Uint8Array, n);
  for (let i = 0; i < n; i++) {
    const px = pts[2 * i];
    const py = pts[2 * i + 1];
    const c = cellOf[i];
    const cx = c % gx;
    const cy = (c - cx) / gx;
    const xa = Math.max(cx - 1, 0);
    const xb = Math.min(cx + 1, gx - 1);
    first.fill(0);
    scan: for (let y = Math.max(cy - 1, 0); y <= Math.min(cy + 1, gy - 1); y++) {
      for (let t = start[y * gx + xa]; t < start[y * gx + xb + 1]; t++) {
        const q = members[t];
        const dx = pts[2 * q] - px;
        const dy = pts[2 * q + 1] - py;
        const d = dx * dx + dy * dy; // float64, rounded as numpy rounds it
        let j = 0;
        while (j < m && d > thf[j]) j++;
        if (++first[j] > k && j === 0) break scan; // tier 0 whatever the rest holds
      }
    }
    // the tier: the first j with more than k candidates (the point itself included) within th_j
    let tier = 0;
    for (let within = first[0]; tier < m && within <= k; within += first[tier]) tier++;
    tiers[i] = tier;
  }
  return tiers;
}

/** tiers._block_work: the sum over cells of (its points) x (the points of its 3 x 3 cells). */
function blockWork(start, gx, gy) {
  let work = 0;
  for (let y = 0; y < gy; y++) {
    for (let x = 0; x < gx; x++) {
      const c = start[y * gx + x + 1] - start[y * gx + x];
      if (!c) continue;
      const xa = Math.max(x - 1, 0);
      const xb = Math.min(x + 1, gx - 1);
      let block = 0;
      for (let y2 = Math.max(y - 1, 0); y2 <= Math.min(y + 1, gy - 1); y2++) {
        block += start[y2 * gx + xb + 1] - start[y2 * gx + xa];
      }
      work += c * block;
    }
  }
  return work;
}

// --------------------------------------------------------------------------------------------------- exact

/** The tiers by the exact search, threshold by threshold (a point stays in the tier of the first it meets). */
function exactTiers(pts, n, thresholds, k) {
  const m = thresholds.length;
  const tiers = allocate(Uint8Array, n).fill(m);
  const done = new Uint8Array(n);
  let left = n;
  for (let j = 0; j < m && left > 0; j++) {
    if (j > 0 && thresholds[j] === thresholds[j - 1]) continue; // the same points stay above it
    left -= resolve(pts, n, thresholds[j], k, done, tiers, j);
  }
  return tiers;
}

/**
 * `dx^2 + dy^2 <= th` exactly, for integer dx, dy (|dx|, |dy| < 2^47) whose double d = dx*dx + dy*dy is at
 * least 2^53 (below, d is exact and the caller compares it with the threshold directly).
 */
function exactWithin(dx, dy, th) {
  const bx = BigInt(dx);
  const by = BigInt(dy);
  return bx * bx + by * by <= th;
}

/** The largest integer a with 2 a^2 <= th: the cell side is a + 1, so two points of a cell are within th. */
function cellSide(th) {
  let a = Math.floor(Math.sqrt(Number(th) / 2));
  while (a > 0 && 2n * BigInt(a) * BigInt(a) > th) a--;
  while (2n * BigInt(a + 1) * BigInt(a + 1) <= th) a++;
  return a + 1;
}

/**
 * One threshold: every point not yet `done` with at least k other points within squared distance th gets tier
 * j and is marked done; returns how many.
 */
function resolve(pts, n, th, k, done, tiers, j) {
  const s = cellSide(th);
  const test = { th, thF: Number(th), big: th >= BigInt(TWO53) };
  const reach = Math.ceil((Math.sqrt(Number(th)) + 1) / s); // <= 3: the cells a point within th can be away
  const cells = binPoints(pts, n, s);
  const { start, members } = cells;
  const near = new Int32Array((2 * reach + 1) ** 2);
  let resolved = 0;
  for (let c = 0; c < cells.count; c++) {
    const size = start[c + 1] - start[c];
    if (size === 0) continue;
    // all the points of a cell are within th of each other: k others in the cell decide them at once
    const crowded = size - 1 >= k;
    const nearCount = crowded || cells.dense ? 0 : neighbourCells(cells, c, reach, near);
    for (let t = start[c]; t < start[c + 1]; t++) {
      const i = members[t];
      if (done[i]) continue;
      if (crowded || (cells.dense ? countRows(pts, i, c, cells, reach, test, k)
        : countCells(pts, i, near, nearCount, cells, test, k - (size - 1)))) {
        done[i] = 1;
        tiers[i] = j;
        resolved++;
      }
    }
  }
  return resolved;
}

const SMALL_CELL = 8; // cells of at most this many points are scanned; larger ones are first tested as a box
const LONG_ROW = 4 * SMALL_CELL; // a row of cells with more points is counted cell by cell

/**
 * Dense cells: whether at least `need` other points lie within th of point i (in cell c), counted over the
 * rows of the (2 reach + 1)^2 cells around c, each row one contiguous run of points.
 */
function countRows(pts, i, c, cells, reach, test, need) {
  const { gx, gy, start } = cells;
  const x = c % gx;
  const y = (c - x) / gx;
  const xa = Math.max(x - reach, 0);
  const xb = Math.min(x + reach, gx - 1);
  const { members } = cells;
  const { th, thF, big } = test;
  const px = pts[2 * i];
  const py = pts[2 * i + 1];
  let count = 0;
  for (let yy = Math.max(y - reach, 0); yy <= Math.min(y + reach, gy - 1); yy++) {
    const row = yy * gx;
    const a = start[row + xa];
    const b = start[row + xb + 1];
    if (b - a <= LONG_ROW) {
      for (let t = a; t < b; t++) { // scan(), inlined: this loop is most of a decode's tier search
        const q = members[t];
        const dx = pts[2 * q] - px;
        const dy = pts[2 * q + 1] - py;
        const d = dx * dx + dy * dy;
        if (q !== i && (d <= thF ? d < TWO53 || exactWithin(dx, dy, th) : big && exactWithin(dx, dy, th))) {
          if (++count >= need) return true;
        }
      }
    } else {
      for (let cc = row + xa; cc <= row + xb && count < need; cc++) {
        count += cc === c ? start[c + 1] - start[c] - 1 : countCell(pts, i, cc, cells, test, need - count);
      }
    }
    if (count >= need) return true;
  }
  return false;
}

/** Hashed cells: whether at least `need` points of the cells `near` lie within th of point i. */
function countCells(pts, i, near, nearCount, cells, test, need) {
  let count = 0;
  for (let m = 0; m < nearCount && count < need; m++) count += countCell(pts, i, near[m], cells, test, need - count);
  return count >= need;
}

/** The points of cell c (not holding i) within th of point i, or at least `need` of them. */
function countCell(pts, i, c, cells, test, need) {
  const a = cells.start[c];
  const b = cells.start[c + 1];
  if (b - a > SMALL_CELL) {
    const box = boxTest(cells, c, pts[2 * i], pts[2 * i + 1], test);
    if (box !== 0) return box > 0 ? b - a : 0;
  }
  return scan(pts, i, cells.members, a, b, test, need);
}

/** The points members[a..b), other than i, within th of point i, or at least `need` of them. */
function scan(pts, i, members, a, b, test, need) {
  const px = pts[2 * i];
  const py = pts[2 * i + 1];
  const { th, thF, big } = test;
  let count = 0;
  for (let t = a; t < b; t++) {
    const q = members[t];
    const dx = pts[2 * q] - px;
    const dy = pts[2 * q + 1] - py;
    const d = dx * dx + dy * dy; // exact below 2^53; then d <= thF is the exact test when th < 2^53
    if (q !== i && (d <= thF ? d < TWO53 || exactWithin(dx, dy, th) : big && exactWithin(dx, dy, th))) {
      if (++count >= need) break;
    }
  }
  return count;
}

/** Cell c's box against the radius around (px, py): 1 all inside, -1 all outside, 0 partly. */
function boxTest(cells, c, px, py, test) {
  const s = cells.s;
  const cx = cells.dense ? c % cells.gx : cells.cx[c];
  const bx0 = cells.x0 + cx * s;
  const by0 = cells.y0 + (cells.dense ? (c - cx) / cells.gx : cells.cy[c]) * s;
  const nearX = Math.max(0, bx0 - px, px - (bx0 + s - 1));
  const nearY = Math.max(0, by0 - py, py - (by0 + s - 1));
  if (!within(nearX, nearY, test)) return -1;
  return within(Math.max(px - bx0, bx0 + s - 1 - px), Math.max(py - by0, by0 + s - 1 - py), test) ? 1 : 0;
}

/** `dx^2 + dy^2 <= th` exactly (the test of scan's loop). */
function within(dx, dy, test) {
  const d = dx * dx + dy * dy;
  return d <= test.thF ? d < TWO53 || exactWithin(dx, dy, test.th) : test.big && exactWithin(dx, dy, test.th);
}

/** Hashed cells: the occupied cells other than c within `reach` cells of it, into `near`; returns how many. */
function neighbourCells(cells, c, reach, near) {
  const x = cells.cx[c];
  const y = cells.cy[c];
  let count = 0;
  for (let yy = y - reach; yy <= y + reach; yy++) {
    for (let xx = x - reach; xx <= x + reach; xx++) {
      const f = cells.find(xx, yy);
      if (f >= 0 && f !== c) near[count++] = f;
    }
  }
  return count;
}

/**
 * The points binned into square cells of side s over their bounding box: cell c holds members[start[c] ..
 * start[c + 1]) in point order. Dense (when the box has at most 16 n + 64 cells): cell c is at
 * (c mod gx, c div gx). Hashed (else): the occupied cells only, cell c at (cx[c], cy[c]); find(x, y) is the cell
 * at (x, y) or -1 (open addressing over the keys y * gx + x < 2^53: the grid has at most 2^46 points).
 */
function binPoints(pts, n, s) {
  const { x0, y0, x1, y1 } = boundingBox(pts, n);
  const gx = Math.floor((x1 - x0) / s) + 1;
  const gy = Math.floor((y1 - y0) / s) + 1;
  const base = { s, x0, y0, gx, gy };
  const cellOf = allocate(Int32Array, n);
  if (gx * gy <= 16 * n + 64) {
    for (let i = 0; i < n; i++) {
      cellOf[i] = Math.floor((pts[2 * i + 1] - y0) / s) * gx + Math.floor((pts[2 * i] - x0) / s);
    }
    return { ...base, dense: true, count: gx * gy, ...countingSort(cellOf, gx * gy) };
  }
  return hashedCells(pts, n, base, cellOf);
}

function hashedCells(pts, n, base, cellOf) {
  const { s, x0, y0, gx, gy } = base;
  let size = 16;
  while (size < 2 * n) size *= 2;
  const mask = size - 1;
  const slotKey = allocate(Float64Array, size).fill(-1);
  const slotCell = allocate(Int32Array, size);
  const cx = allocate(Float64Array, n);
  const cy = allocate(Float64Array, n);
  const hash = (key) => (Math.imul(key >>> 0, 0x9e3779b1) ^ Math.floor(key / 4294967296)) & mask;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const x = Math.floor((pts[2 * i] - x0) / s);
    const y = Math.floor((pts[2 * i + 1] - y0) / s);
    const key = y * gx + x;
    let h = hash(key);
    while (slotKey[h] !== -1 && slotKey[h] !== key) h = (h + 1) & mask;
    if (slotKey[h] === -1) {
      slotKey[h] = key;
      slotCell[h] = count;
      cx[count] = x;
      cy[count] = y;
      count++;
    }
    cellOf[i] = slotCell[h];
  }
  const find = (x, y) => {
    if (x < 0 || y < 0 || x >= gx || y >= gy) return -1;
    const key = y * gx + x;
    for (let h = hash(key); slotKey[h] !== -1; h = (h + 1) & mask) if (slotKey[h] === key) return slotCell[h];
    return -1;
  };
  return { ...base, dense: false, count, cx, cy, find, ...countingSort(cellOf, count) };
}

function boundingBox(pts, n) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, pts[2 * i]);
    x1 = Math.max(x1, pts[2 * i]);
    y0 = Math.min(y0, pts[2 * i + 1]);
    y1 = Math.max(y1, pts[2 * i + 1]);
  }
  return { x0, y0, x1, y1 };
}

/** A stable counting sort of the indices 0..n-1 by `bucket` (values in [0, buckets)): {start, members}. */
function countingSort(bucket, buckets) {
  const start = allocate(Int32Array, buckets + 1);
  for (let i = 0; i < bucket.length; i++) start[bucket[i] + 1]++;
  for (let b = 0; b < buckets; b++) start[b + 1] += start[b];
  const fill = start.slice(0, buckets);
  const members = allocate(Int32Array, bucket.length);
  for (let i = 0; i < bucket.length; i++) members[fill[bucket[i]]++] = i;
  return { start, members };
}

/**
 * tiers.tier_order: the stable order of the Gaussians by tier (Int32Array) and start (t + 1 entries): the rows
 * of tier j are order[start[j] .. start[j + 1]).
 */
export function tierOrder(tiers, t) {
  const { start, members } = countingSort(tiers, t);
  return { order: members, start };
}
