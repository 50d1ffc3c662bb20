// Edits of the Gaussians, the maths of splatpix.edit (ops.py, deform.py, region.py, apply.py) in JavaScript.
//
// Frame: native pixels, x = u W, y = v H, y down; angles in degrees, counter-clockwise on screen; the direction of
// angle a is (cos a, -sin a). Operation parameters have the units of `splatpix edit` (ops.py): positions normalised,
// translate offsets normalised per axis, lengths (twist radius) in fractions of the shorter side.
// For each Gaussian: mu' = Phi(mu), Sigma' = J Sigma J^T with J the Jacobian of Phi at mu (here analytic; autograd
// in Python). A region blends the map, Phi(x) = x + w(x) (phi(x) - x), with the weights w at the Gaussians' current
// positions and the Jacobian I + w (J_phi - I) + (phi(x) - x) grad(w)^T.

const RAD = Math.PI / 180;  // as Python's math.radians: x * (pi / 180)
const fr = Math.fround;

export const radians = (deg) => deg * RAD;

export function direction(a) {
  const r = radians(a);
  return [Math.cos(r), -Math.sin(r)];
}

export class EditError extends Error {}

const CENTRE = [0.5, 0.5];
export const OPS = {
  translate: { offset: undefined },
  rotate: { angle: undefined, centre: CENTRE },
  scale: { factor: undefined, centre: CENTRE },
  stretch: { factor: undefined, axis: 0, centre: CENTRE },
  bend: { angle: undefined, axis: 0, centre: CENTRE },
  twist: { angle: undefined, radius: 0.5, centre: CENTRE },
};

function finite(v) {
  return Array.isArray(v) ? v.every(Number.isFinite) : Number.isFinite(v);
}

export function fullParams(op, params) {
  const schema = OPS[op];
  if (!schema) throw new EditError(`unknown op ${op}`);
  const out = {};
  for (const [k, d] of Object.entries(schema)) {
    const v = params[k] ?? d;
    if (v === undefined) throw new EditError(`${op} needs ${k}`);
    if (!finite(v)) throw new EditError(`${op}: ${k} must be finite`);
    out[k] = v;
  }
  return out;
}

function linear(a, b, c, d, cx, cy) {
  return (x, y, o) => {
    const dx = x - cx, dy = y - cy;
    o[0] = cx + (dx * a + dy * b);
    o[1] = cy + (dx * c + dy * d);
    o[2] = a; o[3] = b; o[4] = c; o[5] = d;
  };
}

// The deformation of `op` (DeformationFactory._make): a function (x, y, out) writing
// [x', y', J00, J01, J10, J11], J[i][j] = d phi_i / d x_j, in native pixels of a model of size H x W.
export function makeDeformation(op, params, H, W) {
  const p = fullParams(op, params);
  const side = Math.min(H, W);
  const cx = p.centre ? p.centre[0] * W : 0, cy = p.centre ? p.centre[1] * H : 0;
  switch (op) {
    case 'translate': {
      const tx = p.offset[0] * W, ty = p.offset[1] * H;
      return (x, y, o) => { o[0] = x + tx; o[1] = y + ty; o[2] = 1; o[3] = 0; o[4] = 0; o[5] = 1; };
    }
    case 'rotate': {
      const a = radians(p.angle), ca = Math.cos(a), sa = Math.sin(a);
      return linear(ca, sa, -sa, ca, cx, cy);
    }
    case 'scale': {
      const [sx, sy] = typeof p.factor === 'number' ? [p.factor, p.factor] : p.factor;
      return linear(sx, 0, 0, sy, cx, cy);
    }
    case 'stretch': {
      const [ex, ey] = direction(p.axis);
      const k = p.factor - 1;
      return linear(1 + k * ex * ex, k * ex * ey, k * ex * ey, 1 + k * ey * ey, cx, cy);
    }
    case 'bend': {
      const ax = radians(p.axis);
      const extent = Math.abs(W * Math.cos(ax)) + Math.abs(H * Math.sin(ax));
      const k = radians(p.angle) / extent;
      const [e0, e1] = direction(p.axis), [n0, n1] = direction(p.axis + 90);
      return (x, y, o) => {
        const dx = x - cx, dy = y - cy;
        const s = dx * e0 + dy * e1, t = dx * n0 + dy * n1;
        const th = k * s, st = Math.sin(th), ct = Math.cos(th);
        let sok = s, omc = 0;  // sin(k s) / k and (1 - cos(k s)) / k without cancellation
        if (th !== 0) {
          const h = 0.5 * th;
          sok = s * (st / th);
          omc = s * Math.sin(h) * (Math.sin(h) / h);
        }
        const s2 = sok - t * st, t2 = omc + t * ct;
        o[0] = cx + s2 * e0 + t2 * n0;
        o[1] = cy + s2 * e1 + t2 * n1;
        const q = 1 - k * t;  // local Jacobian [[q ct, -st], [q st, ct]] in the (s, t) frame, then B Jl B^T
        const a11 = q * ct, a12 = -st, a21 = q * st, a22 = ct;
        const m00 = e0 * a11 + n0 * a21, m01 = e0 * a12 + n0 * a22;
        const m10 = e1 * a11 + n1 * a21, m11 = e1 * a12 + n1 * a22;
        o[2] = m00 * e0 + m01 * n0; o[3] = m00 * e1 + m01 * n1;
        o[4] = m10 * e0 + m11 * n0; o[5] = m10 * e1 + m11 * n1;
      };
    }
    case 'twist': {
      const R = p.radius * side;
      if (!(R > 0)) throw new EditError(`twist radius must be > 0, got ${p.radius}`);
      const ang = radians(p.angle), R2 = R * R;
      return (x, y, o) => {
        const dx = x - cx, dy = y - cy;
        const f0 = 1 - (dx * dx + dy * dy) / R2, f = Math.max(f0, 0);
        const th = ang * f * f, ct = Math.cos(th), st = Math.sin(th);
        o[0] = cx + (ct * dx + st * dy);
        o[1] = cy + (-st * dx + ct * dy);
        const g = f0 > 0 ? ang * 2 * f * (-2 / R2) : 0;  // grad theta = g d
        const mx = -st * dx + ct * dy, my = -ct * dx - st * dy;  // (dM / dtheta) d
        o[2] = ct + mx * g * dx; o[3] = st + mx * g * dy;
        o[4] = -st + my * g * dx; o[5] = ct + my * g * dy;
      };
    }
    default:
      throw new EditError(`unknown op ${op}`);
  }
}

// ------------------------------------------------------------------------------------------------ regions
// {kind: 'all'} | {kind: 'box', box: [u0, v0, u1, v1]} | {kind: 'ellipse', ellipse: [u, v, ru, rv]} |
// {kind: 'polygon', vertices: [[u, v], ...]}, each with `feather` (native pixels), as region.py.

export function regionSpec(r) {
  if (!r || r.kind === 'all') return 'all';
  if (r.kind === 'box') return `box:${r.box.join(',')}`;
  if (r.kind === 'ellipse') return `ellipse:${r.ellipse.join(',')}`;
  return `polygon:${r.vertices.map((v) => v.join(',')).join(';')}`;
}

export function regionCentre(r) {
  if (!r || r.kind === 'all') return [0.5, 0.5];
  if (r.kind === 'box') return [0.5 * (r.box[0] + r.box[2]), 0.5 * (r.box[1] + r.box[3])];
  if (r.kind === 'ellipse') return [r.ellipse[0], r.ellipse[1]];
  let u0 = Infinity, v0 = Infinity, u1 = -Infinity, v1 = -Infinity;
  for (const [u, v] of r.vertices) { u0 = Math.min(u0, u); v0 = Math.min(v0, v); u1 = Math.max(u1, u); v1 = Math.max(v1, v); }
  return [0.5 * (u0 + u1), 0.5 * (v0 + v1)];
}

// The largest distance (native pixels) from `c` (normalised) to the region's outline.
export function regionReach(r, c, H, W) {
  const pts = outline(r, 64);
  let best = 0;
  for (const [u, v] of pts) best = Math.max(best, Math.hypot((u - c[0]) * W, (v - c[1]) * H));
  return best;
}

// Points of the region's outline (normalised), `k` per ellipse or box edge.
export function outline(r, k = 64) {
  if (!r || r.kind === 'all') return [[0, 0], [1, 0], [1, 1], [0, 1]];
  if (r.kind === 'polygon') return r.vertices;
  if (r.kind === 'ellipse') {
    const [u, v, ru, rv] = r.ellipse;
    const out = [];
    for (let i = 0; i < k; i++) { const a = (2 * Math.PI * i) / k; out.push([u + ru * Math.cos(a), v + rv * Math.sin(a)]); }
    return out;
  }
  const [u0, v0, u1, v1] = r.box;
  return [[u0, v0], [u1, v0], [u1, v1], [u0, v1]];
}

// Signed distance (pixels, positive inside) and its gradient at native-pixel (x, y): out = [sd, dsd/dx, dsd/dy].
function signedDistance(r, x, y, H, W, out) {
  if (r.kind === 'box') {
    const [u0, v0, u1, v1] = r.box;
    const d = [x - u0 * W, u1 * W - x, y - v0 * H, v1 * H - y];
    const g = [[1, 0], [-1, 0], [0, 1], [0, -1]];
    const i = d[0] <= d[1] ? 0 : 1, j = d[2] <= d[3] ? 2 : 3;
    const m = d[i] <= d[j] ? i : j;
    out[0] = d[m]; out[1] = g[m][0]; out[2] = g[m][1];
    return;
  }
  if (r.kind === 'ellipse') {
    const [u, v, ru, rv] = r.ellipse;
    const a = ru * W, b = rv * H;
    const dx = x - u * W, dy = y - v * H;
    const q = (dx / a) ** 2 + (dy / b) ** 2;
    const g2 = (dx / (a * a)) ** 2 + (dy / (b * b)) ** 2;
    if (g2 <= 1e-24 / Math.min(a, b) ** 2) { out[0] = Math.min(a, b); out[1] = 0; out[2] = 0; return; }
    const rho = Math.sqrt(q), G = Math.sqrt(g2);
    out[0] = ((1 - rho) * rho) / G;
    // sd = (rho - q) / G: d rho = d / (a^2 rho), d q = 2 d / a^2, d G = d / (a^4 G) per axis
    const f = (dd, aa) => {
      const drho = dd / (aa * aa * rho), dq = (2 * dd) / (aa * aa), dG = dd / (aa * aa * aa * aa * G);
      return ((drho - dq) * G - (rho - q) * dG) / (G * G);
    };
    out[1] = f(dx, a); out[2] = f(dy, b);
    return;
  }
  // polygon: distance to the nearest edge, sign by the even-odd rule
  const vs = r.vertices, n = vs.length;
  let best = Infinity, bx = 0, by = 0, crossings = 0;
  for (let i = 0; i < n; i++) {
    const ax = vs[i][0] * W, ay = vs[i][1] * H;
    const j = (i + 1) % n;
    const ex = vs[j][0] * W - ax, ey = vs[j][1] * H - ay;
    const qx = x - ax, qy = y - ay;
    const t = Math.min(Math.max((qx * ex + qy * ey) / Math.max(ex * ex + ey * ey, 1e-300), 0), 1);
    const dx = qx - t * ex, dy = qy - t * ey, d2 = dx * dx + dy * dy;
    if (d2 < best) { best = d2; bx = dx; by = dy; }
    const by2 = vs[j][1] * H;
    if ((ay > y) !== (by2 > y)) {
      const xc = ax + ((y - ay) * ex) / (ay === by2 ? 1 : ey);
      if (x < xc) crossings++;
    }
  }
  const dist = Math.sqrt(Math.max(best, 1e-300));
  const s = crossings % 2 === 1 ? 1 : -1;
  out[0] = s * dist; out[1] = (s * bx) / dist; out[2] = (s * by) / dist;
}

// Region weight and its gradient at native-pixel (x, y): out = [w, dw/dx, dw/dy].
export function regionWeight(r, x, y, H, W, out) {
  if (!r || r.kind === 'all') { out[0] = 1; out[1] = 0; out[2] = 0; return; }
  signedDistance(r, x, y, H, W, out);
  const sd = out[0], f = r.feather || 0;
  if (f <= 0) { out[0] = sd >= 0 ? 1 : 0; out[1] = 0; out[2] = 0; return; }
  const t = sd / f;
  if (t <= 0 || t >= 1) { out[0] = t <= 0 ? 0 : 1; out[1] = 0; out[2] = 0; return; }
  const ds = (6 * t * (1 - t)) / f;
  out[0] = t * t * (3 - 2 * t); out[1] *= ds; out[2] *= ds;
}

// Weights of every Gaussian in the region (at its mean): Float32Array(n).
export function gaussianWeights(model, r) {
  const { W, H, n, means } = model;
  const w = new Float32Array(n);
  const o = new Float64Array(3);
  for (let i = 0; i < n; i++) {
    regionWeight(r, means[2 * i] * W, means[2 * i + 1] * H, H, W, o);
    w[i] = o[0];
  }
  return w;
}

// ------------------------------------------------------------------------------------------------ apply

function valid(sxx, sxy, syy) {
  const det = sxx * syy - sxy * sxy, tr = sxx + syy;
  return Number.isFinite(det) && sxx > 0 && syy > 0 && det > 1e-12 * tr * tr;
}

// New arrays {means, chol, moved} of `model` ({W, H, n, means, chol}) with `edit` ({op, params, region}) applied,
// as apply_edit (Gaussians outside the region and its feather keep their exact parameters). Throws EditError when
// the edit makes Gaussians degenerate.
export function applyEdit(model, edit) {
  const { W, H, n } = model;
  const src = model.means, L = model.chol;
  const phi = makeDeformation(edit.op, edit.params, H, W);
  const r = edit.region && edit.region.kind !== 'all' ? edit.region : null;
  const means = new Float32Array(src), chol = new Float32Array(L);
  const o = new Float64Array(6), wg = new Float64Array(3);
  let bad = 0, moved = 0;
  for (let i = 0; i < n; i++) {
    const x = src[2 * i] * W, y = src[2 * i + 1] * H;
    let nx, ny, j00, j01, j10, j11;
    if (r) {
      regionWeight(r, x, y, H, W, wg);
      const w = wg[0], gx = wg[1], gy = wg[2];
      if (w === 0 && gx === 0 && gy === 0) continue;
      phi(x, y, o);
      const px = o[0] - x, py = o[1] - y;
      nx = x + w * px; ny = y + w * py;
      j00 = 1 + w * (o[2] - 1) + px * gx; j01 = w * o[3] + px * gy;
      j10 = w * o[4] + py * gx; j11 = 1 + w * (o[5] - 1) + py * gy;
    } else {
      phi(x, y, o);
      nx = o[0]; ny = o[1]; j00 = o[2]; j01 = o[3]; j10 = o[4]; j11 = o[5];
    }
    moved++;
    const l11 = L[3 * i], l21 = L[3 * i + 1], l22 = L[3 * i + 2];
    const sxx = fr(l11 * l11), sxy = fr(l11 * l21), syy = fr(fr(l21 * l21) + fr(l22 * l22));  // float32, as torch
    const a00 = j00 * sxx + j01 * sxy, a01 = j00 * sxy + j01 * syy;
    const a10 = j10 * sxx + j11 * sxy, a11 = j10 * sxy + j11 * syy;
    const c00 = a00 * j00 + a01 * j01, c11 = a10 * j10 + a11 * j11;
    const cxy = 0.5 * (a00 * j10 + a01 * j11 + (a10 * j00 + a11 * j01));
    if (!Number.isFinite(nx) || !Number.isFinite(ny) || (valid(sxx, sxy, syy) && !valid(c00, cxy, c11))) {
      bad++;
      continue;
    }
    const m11 = Math.sqrt(Math.max(c00, 0));
    const m21 = m11 > 0 ? cxy / Math.max(m11, 1e-30) : 0;
    chol[3 * i] = m11;
    chol[3 * i + 1] = m21;
    chol[3 * i + 2] = Math.sqrt(Math.max(c11 - m21 * m21, 0));
    means[2 * i] = nx / W;
    means[2 * i + 1] = ny / H;
  }
  if (bad) {
    throw new EditError(`the edit made ${bad} of ${n} Gaussians degenerate (non-finite position or collapsed ` +
      'covariance): the deformation is singular or undefined there');
  }
  return { means, chol, moved };
}

// The region after the edit, for the next one: moved with the map where the map keeps its shape simple
// (translate, scale, rotate); unchanged after stretch, bend and twist.
export function followRegion(r, edit, H, W) {
  if (!r || r.kind === 'all' || !['translate', 'scale', 'rotate'].includes(edit.op)) return r;
  const phi = makeDeformation(edit.op, edit.params, H, W);
  const o = new Float64Array(6);
  const map = ([u, v]) => { phi(u * W, v * H, o); return [o[0] / W, o[1] / H]; };
  const axisAligned = edit.op !== 'rotate' || (r.kind === 'ellipse' && r.ellipse[2] * W === r.ellipse[3] * H);
  if (r.kind === 'box' && axisAligned) {
    const [a, b] = [map([r.box[0], r.box[1]]), map([r.box[2], r.box[3]])];
    return { ...r, box: [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])] };
  }
  if (r.kind === 'ellipse' && axisAligned) {
    const [u, v, ru, rv] = r.ellipse;
    const c = map([u, v]);
    let sx = 1, sy = 1;
    if (edit.op === 'scale') {
      const f = edit.params.factor;
      [sx, sy] = typeof f === 'number' ? [f, f] : f;
    }
    return { ...r, ellipse: [c[0], c[1], Math.abs(ru * sx), Math.abs(rv * sy)] };
  }
  return { kind: 'polygon', feather: r.feather, vertices: outline(r, 96).map(map) };
}
