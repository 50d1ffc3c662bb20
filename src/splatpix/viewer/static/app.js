// splatpix view: the page. Loads a .spix file (decoded here, ./spix/decode.js) or a model's arrays from the server,
// renders them with WebGL2 (./gl.js), and edits them live (./edit.js). GaINeR fields are rendered by the server.

import { Renderer } from './gl.js';
import { applyEdit, EditError, direction, followRegion, gaussianWeights, outline, regionCentre, regionReach,
  regionSpec } from './edit.js';
import { buildMessage, fromBase64, parseMessage, toBase64 } from './arrays.js';

const $ = (id) => document.getElementById(id);
const canvas = $('view'), overlay = $('overlay'), stage = $('stage');
const TOKEN = document.querySelector('meta[name="splatpix-token"]')?.content || '';
const OP_MODES = ['translate', 'rotate', 'scale', 'stretch', 'bend', 'twist'];
const MAX_UNDO_BYTES = 512 * 1024 * 1024;

const S = {
  ready: false, error: null, info: null, model: null, renderer: null,
  view: { cx: 0.5, cy: 0.5, zoom: 1 }, mode: 'pan', region: null, ellipses: false,
  edits: [], undo: [], redo: [], drag: null, frames: [], lastMs: null, pending: false, space: false,
  server: { image: null, key: '', inflight: false, version: 0, posted: 0, ms: null },
};

// ------------------------------------------------------------------------------------------------ messages

function fail(message) {
  S.error = message;
  S.ready = false;
  const m = $('message');
  m.textContent = message;
  m.className = 'show error';
  document.body.dataset.state = 'error';
  $('status').textContent = message.split('\n')[0];
  for (const b of document.querySelectorAll('nav button, nav input')) b.disabled = true;
  try {
    const gl = S.renderer?.gl;
    if (gl) { gl.bindFramebuffer(gl.FRAMEBUFFER, null); gl.clearColor(0.25, 0.08, 0.08, 1); gl.clear(gl.COLOR_BUFFER_BIT); }
  } catch { /* the message is what matters */ }
}

function note(text) {
  const m = $('message');
  if (S.error) return;
  m.textContent = text;
  m.className = text ? 'show note' : '';
}

function status(text) { $('status').textContent = text; }

$('message').addEventListener('click', () => { if (!S.error) note(''); });  // notes go away on a click
window.addEventListener('error', (e) => { if (!S.error) fail(`Unexpected error: ${e.message}`); });
window.addEventListener('unhandledrejection', (e) => {
  e.preventDefault();
  if (!S.error) fail(`Unexpected error: ${e.reason?.message ?? e.reason}`);
});

// ------------------------------------------------------------------------------------------------ server

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { 'X-Splatpix-Token': TOKEN, ...(options.headers || {}) } });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return r;
}

// ------------------------------------------------------------------------------------------------ loading

async function decodeSpixModel(bytes) {
  let mod;
  try {
    mod = await import('./spix/decode.js');
  } catch (e) {
    throw new Error(`the .spix decoder (spix/decode.js) could not be loaded: ${e.message}`);
  }
  let d, head = '';
  try {
    const h = mod.readHeader(bytes);  // (cheap: what the file says it is, for the message if the rest is bad)
    head = ` (its header: ${h.width}×${h.height}, ${h.channels} channels, ${h.n} Gaussians, ${h.method})`;
  } catch { /* decodeSpix reports it */ }
  try {
    d = await mod.decodeSpix(bytes);
  } catch (e) {
    if (mod.SpixError && e instanceof mod.SpixError) throw new Error(`not a valid .spix file: ${e.message}${head}`);
    throw new Error(`the .spix decoder failed: ${e.message}${head}`);
  }
  const n = d.n, c = d.channels;
  if (!(d.means?.length === 2 * n && d.cov?.length === 3 * n && d.colours?.length === c * n)) {
    throw new Error('the .spix decoder returned arrays of the wrong size');
  }
  return { W: d.width, H: d.height, channels: c, n, means: d.means, chol: d.cov, colours: d.colours,
    method: d.method, bytes: d.bytes ?? bytes.length };
}

function modelFromMessage(buffer) {
  const m = parseMessage(buffer);
  return { W: m.width, H: m.height, channels: m.channels, n: m.n, means: m.means, chol: m.cov,
    colours: m.colours ?? null, kind: m.kind };
}

async function load() {
  let name = 'the file';
  try {
    const embed = document.getElementById('splatpix-embed');
    let info, model;
    if (embed) {
      const e = JSON.parse(embed.textContent);
      info = e.info;
      name = info.name;
      $('title').textContent = name;
      const bytes = fromBase64(e.data);
      model = e.format === 'spix' ? await decodeSpixModel(bytes) : modelFromMessage(bytes.buffer);
      info.bytes = info.bytes ?? bytes.length;
    } else {
      info = await (await api('/api/info')).json();
      name = info.name;
      $('title').textContent = name;
      if (info.kind === 'spix') {
        const bytes = new Uint8Array(await (await api('/api/file')).arrayBuffer());
        model = await decodeSpixModel(bytes);
        info.bytes = bytes.length;
      } else {
        model = modelFromMessage(await (await api('/api/model')).arrayBuffer());
      }
    }
    model.method = model.method || info.method;
    S.info = info;
    S.model = model;
    S.original = { means: model.means, chol: model.chol };
    document.title = `${info.name} · splatpix view`;
    $('title').textContent = info.name;
    try {
      S.renderer = new Renderer(canvas);
    } catch (e) {
      throw new Error(`WebGL2 is not available: ${e.message}`);
    }
    S.renderer.setModel(model);
    if (S.renderer.note) note(S.renderer.note);
    if (info.kind === 'gainer') note('GaINeR field: each view is rendered by the Python server (no WebGL version).');
    if (!info.server) {
      for (const id of ['save-model', 'save-png']) { $(id).disabled = true; $(id).title = 'needs the splatpix view server'; }
      $('save-path').disabled = true;
    } else {
      $('save-path').value = info.defaults?.model || '';
    }
    resize();
    fit();
    updateWeights();
    S.ready = true;
    document.body.dataset.state = 'ready';
    setMode(S.mode);
    status(`${info.name}: drag to pan, wheel to zoom; select a region, then pick an edit and drag`);
    renderNow();
  } catch (e) {
    fail(`Cannot show ${name}: ${e.message}`);
  }
}

// ------------------------------------------------------------------------------------------------ view

function resize() {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(stage.clientWidth * dpr)), h = Math.max(1, Math.round(stage.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w; canvas.height = h; overlay.width = w; overlay.height = h;
    return true;
  }
  return false;
}

function viewWindow() {
  const { W, H } = S.model, z = S.view.zoom;
  const hu = canvas.width / (2 * z * W), hv = canvas.height / (2 * z * H);
  return [S.view.cx - hu, S.view.cy - hv, S.view.cx + hu, S.view.cy + hv];
}

function fit() {
  const { W, H } = S.model;
  S.view = { cx: 0.5, cy: 0.5, zoom: 0.96 * Math.min(canvas.width / W, canvas.height / H) };
  requestRender();
}

function oneToOne() {
  S.view.zoom = 1;
  requestRender();
}

// device pixels on the canvas of a client (CSS) point
function canvasPoint(ev) {
  const r = canvas.getBoundingClientRect();
  return [((ev.clientX - r.left) * canvas.width) / r.width, ((ev.clientY - r.top) * canvas.height) / r.height];
}

function canvasToUV([x, y], win = viewWindow()) {
  return [win[0] + (x / canvas.width) * (win[2] - win[0]), win[1] + (y / canvas.height) * (win[3] - win[1])];
}

function uvToCanvas([u, v], win = viewWindow()) {
  return [((u - win[0]) / (win[2] - win[0])) * canvas.width, ((v - win[1]) / (win[3] - win[1])) * canvas.height];
}

function requestRender() {
  if (S.pending) return;
  S.pending = true;
  requestAnimationFrame(() => { S.pending = false; renderNow(); });
}

function renderNow() {
  if (!S.model || S.error) return;
  resize();
  const win = viewWindow();
  try {
    if (S.info.kind === 'gainer') {
      serverRender(win);
      S.renderer.draw(win, { ellipses: S.ellipses, image: S.server.image });
    } else {
      const ms = S.renderer.draw(win, { ellipses: S.ellipses });
      S.lastMs = ms;
      S.frames.push(ms);
      if (S.frames.length > 30) S.frames.shift();
    }
  } catch (e) {
    fail(`Rendering failed: ${e.message}`);
    return;
  }
  drawOverlay();
  showStats();
}

function showStats() {
  const m = S.model, i = S.info;
  const bpp = (8 * i.bytes) / (m.W * m.H);
  let frame;
  if (i.kind === 'gainer') frame = S.server.ms == null ? 'server render…' : `server render <b>${S.server.ms.toFixed(0)}</b> ms`;
  else {
    const avg = S.frames.reduce((a, b) => a + b, 0) / Math.max(1, S.frames.length);
    frame = `frame <b>${avg.toFixed(1)}</b> ms (mean of ${S.frames.length})`;
  }
  const what = i.kind === 'spix' ? `${m.method}` : i.kind === 'gainer' ? 'GaINeR' : `model (${i.param})`;
  $('stats').innerHTML = `<b>${m.W}×${m.H}</b> · N <b>${m.n.toLocaleString('en')}</b> · ${what} · ` +
    `<b>${i.bytes.toLocaleString('en')}</b> bytes · <b>${bpp.toFixed(3)}</b> bpp · ${frame} · ` +
    `zoom ${(S.view.zoom * 100).toFixed(0)} % · ${S.renderer.format.name}`;
}

// GaINeR: the server renders the current (edited) field in the view's window at the canvas size
async function serverRender(win) {
  const w = canvas.width, h = canvas.height;
  const key = `${S.server.version}|${w}x${h}|${win.join(',')}`;
  if (key === S.server.key || S.server.inflight) return;
  S.server.inflight = true;
  const t0 = performance.now();
  try {
    if (S.server.posted !== S.server.version) {
      const v = S.server.version;
      await api('/api/gainer/state', { method: 'POST', body: arraysMessage(S.drag?.preview || S.model) });
      S.server.posted = v;
    }
    const q = `w=${w}&h=${h}&u0=${win[0]}&v0=${win[1]}&u1=${win[2]}&v1=${win[3]}`;
    const blob = await (await api(`/api/gainer/render?${q}`)).blob();
    S.server.image = await createImageBitmap(blob);
    S.server.key = key;
    S.server.ms = performance.now() - t0;
  } catch (e) {
    status(`server render failed: ${e.message}`);
    S.server.key = key;
  } finally {
    S.server.inflight = false;
  }
  requestRender();
}

// ------------------------------------------------------------------------------------------------ overlay

function drawOverlay() {
  const ctx = overlay.getContext('2d');
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const win = viewWindow();
  const path = (pts, close = true) => {
    ctx.beginPath();
    pts.forEach((p, i) => { const [x, y] = uvToCanvas(p, win); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    if (close) ctx.closePath();
  };
  const stroke = (colour) => {
    ctx.lineWidth = 1.5 * (window.devicePixelRatio || 1);
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = 'rgba(0,0,0,0.7)'; ctx.lineDashOffset = 5; ctx.stroke();
    ctx.strokeStyle = colour; ctx.lineDashOffset = 0; ctx.stroke();
  };
  const d = S.drag;
  if (d && d.kind === 'select') {
    const r = dragRegion(d);
    if (r) { path(r.kind === 'polygon' ? r.vertices : outline(r, 96), r.kind !== 'lasso'); stroke('#ffd36b'); }
    else if (d.points.length > 1) { path(d.points, false); stroke('#ffd36b'); }
  }
  const r = S.drag?.kind === 'edit' ? null : S.region;
  if (r && r.kind !== 'all') { path(r.kind === 'polygon' ? r.vertices : outline(r, 96)); stroke('#ff9a3c'); }
  if (OP_MODES.includes(S.mode) && S.mode !== 'translate') {
    const [x, y] = uvToCanvas(d?.kind === 'edit' ? d.centre : regionCentre(S.region), win);
    ctx.setLineDash([]);
    ctx.strokeStyle = '#ff9a3c';
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x - 8, y); ctx.lineTo(x + 8, y); ctx.moveTo(x, y - 8); ctx.lineTo(x, y + 8); ctx.stroke();
  }
}

// ------------------------------------------------------------------------------------------------ regions

function dragRegion(d) {
  const [a, b] = [d.points[0], d.points[d.points.length - 1]];
  const feather = currentFeather();
  if (d.shape === 'lasso') {
    if (d.points.length < 3) return null;
    let pts = d.points;
    const step = Math.ceil(pts.length / 200);
    if (step > 1) pts = pts.filter((_, i) => i % step === 0);
    return { kind: 'polygon', vertices: pts.map(([u, v]) => [u, v]), feather };
  }
  const u0 = Math.min(a[0], b[0]), u1 = Math.max(a[0], b[0]), v0 = Math.min(a[1], b[1]), v1 = Math.max(a[1], b[1]);
  if (!(u1 > u0 && v1 > v0)) return null;
  if (d.shape === 'box') return { kind: 'box', box: [u0, v0, u1, v1], feather };
  return { kind: 'ellipse', ellipse: [0.5 * (u0 + u1), 0.5 * (v0 + v1), 0.5 * (u1 - u0), 0.5 * (v1 - v0)], feather };
}

function currentFeather() {
  const f = Number($('feather').value);
  return Number.isFinite(f) && f > 0 ? f : 0;
}

function setRegion(r) {
  S.region = r;
  updateWeights();
  requestRender();
}

function updateWeights() {
  if (!S.model) return;
  const r = S.region ? { ...S.region, feather: currentFeather() } : null;
  const w = gaussianWeights(S.model, r);
  S.renderer.setWeights(w);
  let k = 0;
  for (let i = 0; i < w.length; i++) if (w[i] > 0) k++;
  S.selected = k;
}

// ------------------------------------------------------------------------------------------------ edits

function side() { return Math.min(S.model.W, S.model.H); }

function angleOf([x, y], [cx, cy]) { return Math.atan2(-(y - cy), x - cx) * (180 / Math.PI); }  // ccw on screen

// the operation's parameters (splatpix edit's units) from a drag from p0 to p (native pixels)
function dragParams(d, p) {
  const { W, H } = S.model;
  const c = [d.centre[0] * W, d.centre[1] * H];
  const centre = [d.centre[0], d.centre[1]];
  const sub = (a, b) => [a[0] - b[0], a[1] - b[1]];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1];
  switch (d.op) {
    case 'translate':
      return { offset: [(p[0] - d.p0[0]) / W, (p[1] - d.p0[1]) / H] };
    case 'rotate':
    case 'twist': {
      const a = angleOf(p, c);
      let delta = a - d.lastAngle;
      delta -= 360 * Math.round(delta / 360);
      d.lastAngle = a;
      d.sweep += delta;
      return d.op === 'rotate' ? { angle: d.sweep, centre } : { angle: d.sweep, radius: d.radius, centre };
    }
    case 'scale': {
      const r0 = Math.hypot(...sub(d.p0, c));
      if (r0 < 2) return null;
      return { factor: Math.min(Math.max(Math.hypot(...sub(p, c)) / r0, 0.02), 50), centre };
    }
    case 'stretch': {
      const v0 = sub(d.p0, c);
      if (Math.hypot(...v0) < 2) return null;
      const axis = angleOf(d.p0, c);
      const e = direction(axis);
      let f = dot(sub(p, c), e) / dot(v0, e);
      f = Math.sign(f || 1) * Math.min(Math.max(Math.abs(f), 0.02), 50);
      return { factor: f, axis, centre };
    }
    case 'bend': {
      const axis = Number($('axis').value) || 0;
      const n = direction(axis + 90);
      const a = (axis * Math.PI) / 180;
      const extent = Math.abs(W * Math.cos(a)) + Math.abs(H * Math.sin(a));
      const angle = Math.min(Math.max((360 * dot(sub(p, d.p0), n)) / extent, -720), 720);
      return { angle, axis, centre };
    }
    default:
      return null;
  }
}

function modelArrays() { return { W: S.model.W, H: S.model.H, n: S.model.n, means: S.model.means, chol: S.model.chol }; }

function edited(geometry) {
  S.renderer.updateGeometry(geometry.means, geometry.chol);
  S.server.version++;
}

// apply an edit record {op, params, region} to the model (undoable); returns the record
function commit(edit, preview = null) {
  const res = preview || applyEdit(modelArrays(), edit);
  const bytes = 20 * S.model.n;
  S.undo.push({ means: S.model.means, chol: S.model.chol, region: S.region, edits: S.edits.length });
  while (S.undo.length > 1 && S.undo.length * bytes > MAX_UNDO_BYTES) S.undo.shift();
  S.redo = [];
  S.model.means = res.means;
  S.model.chol = res.chol;
  const record = { op: edit.op, params: edit.params, region: edit.region ? regionSpec(edit.region) : null,
    feather: edit.region?.feather ?? 0, moved: res.moved };
  S.edits.push(record);
  edited(S.model);
  S.region = followRegion(S.region, edit, S.model.H, S.model.W);
  updateWeights();
  $('command').textContent = commandFor(record);
  status(`${edit.op}: ${res.moved.toLocaleString('en')} Gaussians moved (edit ${S.edits.length}; Ctrl-Z undoes it)`);
  requestRender();
  return record;
}

function undo() {
  const u = S.undo.pop();
  if (!u) return;
  S.redo.push({ means: S.model.means, chol: S.model.chol, region: S.region, edit: S.edits[u.edits] });
  S.model.means = u.means; S.model.chol = u.chol; S.region = u.region;
  S.edits.length = u.edits;
  edited(S.model);
  updateWeights();
  $('command').textContent = S.edits.length ? commandFor(S.edits[S.edits.length - 1]) : '';
  status(`undone (${S.edits.length} edits left)`);
  requestRender();
}

function redo() {
  const r = S.redo.pop();
  if (!r) return;
  S.undo.push({ means: S.model.means, chol: S.model.chol, region: S.region, edits: S.edits.length });
  S.model.means = r.means; S.model.chol = r.chol; S.region = r.region;
  S.edits.push(r.edit);
  edited(S.model);
  updateWeights();
  $('command').textContent = commandFor(r.edit);
  status(`redone (${S.edits.length} edits)`);
  requestRender();
}

function quote(s) { return /^[\w./:,=+-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`; }

function commandFor(rec) {
  const parts = ['splatpix edit', quote(S.info.name), `--op ${rec.op}`];
  for (const [k, v] of Object.entries(rec.params)) parts.push(`--${k.replace(/_/g, '-')}=${Array.isArray(v) ? v.join(',') : v}`);
  if (rec.region) parts.push(quote(`--region=${rec.region}`));
  if (rec.feather) parts.push(`--feather=${rec.feather}`);
  parts.push(`--background='#000000' -o edited.png`);
  return parts.join(' ');
}

// ------------------------------------------------------------------------------------------------ pointer

function setMode(mode) {
  S.mode = mode;
  stage.dataset.mode = mode;
  for (const b of document.querySelectorAll('[data-mode]')) b.classList.toggle('active', b.dataset.mode === mode);
  requestRender();
}

canvas.addEventListener('pointerdown', (ev) => {
  if (!S.ready) return;
  canvas.setPointerCapture(ev.pointerId);
  const p = canvasPoint(ev);
  const uv = canvasToUV(p);
  if (ev.button === 1 || S.space || S.mode === 'pan' || ev.button === 2) {
    S.drag = { kind: 'pan', start: p, view: { ...S.view }, win: viewWindow() };
    return;
  }
  if (['box', 'ellipse', 'lasso'].includes(S.mode)) {
    S.drag = { kind: 'select', shape: S.mode, points: [uv], start: p };
    return;
  }
  const { W, H } = S.model;
  const region = S.region ? { ...S.region, feather: currentFeather() } : null;
  const centre = regionCentre(region);
  const c = [centre[0] * W, centre[1] * H];
  const p0 = [uv[0] * W, uv[1] * H];
  const radius = region ? regionReach(region, centre, H, W) / side() : 0.5;
  S.drag = { kind: 'edit', op: S.mode, p0, centre, region, radius, lastAngle: angleOf(p0, c), sweep: 0,
    base: modelArrays(), latest: p0, scheduled: false, start: p, moved: false };
});

canvas.addEventListener('pointermove', (ev) => {
  const d = S.drag;
  if (!d) return;
  const p = canvasPoint(ev);
  if (d.kind === 'pan') {
    const win = d.win;
    const du = ((p[0] - d.start[0]) / canvas.width) * (win[2] - win[0]);
    const dv = ((p[1] - d.start[1]) / canvas.height) * (win[3] - win[1]);
    S.view.cx = d.view.cx - du;
    S.view.cy = d.view.cy - dv;
    requestRender();
  } else if (d.kind === 'select') {
    const uv = canvasToUV(p);
    if (d.shape === 'lasso') {
      const last = uvToCanvas(d.points[d.points.length - 1]);
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 3) d.points.push(uv);
    } else {
      d.points[1] = uv;
    }
    drawOverlay();
  } else {
    if (!d.moved && Math.hypot(p[0] - d.start[0], p[1] - d.start[1]) < 2) return;
    d.moved = true;
    const uv = canvasToUV(p);
    d.latest = [uv[0] * S.model.W, uv[1] * S.model.H];
    previewEdit(d);
  }
});

function previewEdit(d) {
  const params = dragParams(d, d.latest);  // (rotations accumulate at every move)
  if (!params) return;
  d.edit = { op: d.op, params, region: d.region };
  if (d.scheduled) return;
  d.scheduled = true;
  requestAnimationFrame(() => {
    d.scheduled = false;
    if (S.drag !== d) return;
    try {
      d.preview = applyEdit(d.base, d.edit);
      d.previewEdit = d.edit;
      S.renderer.updateGeometry(d.preview.means, d.preview.chol);
      S.server.version++;
      status(`${d.op}: ${describe(d.edit.params)}`);
    } catch (e) {
      if (!(e instanceof EditError)) throw e;
      status(e.message);
    }
    renderNow();
  });
}

function describe(params) {
  return Object.entries(params).map(([k, v]) => `${k} ${Array.isArray(v) ? v.map((t) => +t.toFixed(4)).join(', ') : +v.toFixed(4)}`).join(', ');
}

function endDrag(ev) {
  const d = S.drag;
  if (!d) return;
  S.drag = null;
  if (d.kind === 'select') {
    const a = uvToCanvas(d.points[0]), b = uvToCanvas(d.points[d.points.length - 1]);
    const r = dragRegion(d);
    if (!r || (d.shape !== 'lasso' && Math.hypot(a[0] - b[0], a[1] - b[1]) < 3)) setRegion(null);
    else setRegion(r);
    status(S.region ? `selected ${S.selected.toLocaleString('en')} Gaussians (${regionSpec(S.region)})` : 'selection cleared: edits apply to everything');
  } else if (d.kind === 'edit') {
    if (d.moved && ev && ev.type === 'pointerup') {
      const params = dragParams(d, canvasPointUV(ev));
      if (params) d.edit = { op: d.op, params, region: d.region };
    }
    if (d.moved && d.edit) {
      try {
        const same = d.preview && d.previewEdit === d.edit;
        commit(d.edit, same ? d.preview : null);
      } catch (e) {
        if (!(e instanceof EditError)) throw e;
        status(`edit refused: ${e.message}`);
        edited(S.model);
      }
    } else {
      edited(S.model);
    }
  }
  requestRender();
}

function canvasPointUV(ev) {
  const uv = canvasToUV(canvasPoint(ev));
  return [uv[0] * S.model.W, uv[1] * S.model.H];
}

canvas.addEventListener('pointerup', endDrag);
canvas.addEventListener('pointercancel', endDrag);
canvas.addEventListener('contextmenu', (ev) => ev.preventDefault());

canvas.addEventListener('wheel', (ev) => {
  if (!S.ready) return;
  ev.preventDefault();
  const p = canvasPoint(ev);
  const [u, v] = canvasToUV(p);
  const scale = ev.deltaMode === 1 ? 30 : 1;
  const f = Math.exp(-ev.deltaY * scale * 0.0015);
  const zoom = Math.min(Math.max(S.view.zoom * f, 1e-3), 1e4);
  const g = zoom / S.view.zoom;
  S.view.cx = u - (u - S.view.cx) / g;
  S.view.cy = v - (v - S.view.cy) / g;
  S.view.zoom = zoom;
  requestRender();
}, { passive: false });

// ------------------------------------------------------------------------------------------------ saving

function arraysMessage(g) {
  const m = S.model;
  const arrays = [['means', g.means], ['cov', g.chol]];
  if (S.info.kind !== 'gainer') arrays.push(['colours', m.colours]);
  return buildMessage({ kind: S.info.kind === 'gainer' ? 'gainer' : 'gaussians', width: m.W, height: m.H,
    channels: m.channels, n: m.n }, arrays);
}

async function save(what, overwrite = false) {
  let path = $('save-path').value.trim();
  if (what === 'png') path = path ? path.replace(/\.safetensors$/i, '') + '.png' : (S.info.defaults?.png || '');
  status(`saving ${what === 'png' ? 'a PNG' : 'the model'}…`);
  try {
    const q = `what=${what}&path=${encodeURIComponent(path)}${overwrite ? '&overwrite=1' : ''}`;
    const r = await (await api(`/api/save?${q}`, { method: 'POST', body: arraysMessage(S.model) })).json();
    status(`saved ${r.path} (${r.bytes.toLocaleString('en')} bytes)`);
    S.info.defaults = r.defaults;
    if (what === 'model') $('save-path').value = r.defaults.model;
    return r;
  } catch (e) {
    if (e.status === 409 && !overwrite && window.confirm(`${e.message}. Overwrite it?`)) return save(what, true);
    status(`not saved: ${e.message}`);
    return { error: e.message };
  }
}

async function nativePixels() {
  const m = S.model;
  if (S.info.kind === 'gainer') {
    await api('/api/gainer/state', { method: 'POST', body: arraysMessage(S.model) });
    const blob = await (await api(`/api/gainer/render?w=${m.W}&h=${m.H}&u0=0&v0=0&u1=1&v1=1`)).blob();
    const bmp = await createImageBitmap(blob);
    const c = new OffscreenCanvas(m.W, m.H), ctx = c.getContext('2d');
    ctx.drawImage(bmp, 0, 0);
    return new Uint8Array(ctx.getImageData(0, 0, m.W, m.H).data.buffer);
  }
  const px = S.renderer.readback([0, 0, 1, 1], m.W, m.H);
  requestRender();
  return px;
}

async function downloadPng() {
  const m = S.model;
  const px = await nativePixels();
  const c = document.createElement('canvas');
  c.width = m.W; c.height = m.H;
  c.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(px.buffer), m.W, m.H), 0, 0);
  c.toBlob((blob) => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = S.info.name.replace(/\.[^.]*$/, '') + (S.edits.length ? '.edited' : '') + '.png';
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, 'image/png');
}

// ------------------------------------------------------------------------------------------------ controls

for (const b of document.querySelectorAll('[data-mode]')) b.addEventListener('click', () => setMode(b.dataset.mode));
$('undo').addEventListener('click', undo);
$('redo').addEventListener('click', redo);
$('fit').addEventListener('click', fit);
$('one').addEventListener('click', oneToOne);
$('clear-region').addEventListener('click', () => { setRegion(null); status('selection cleared: edits apply to everything'); });
$('ellipses').addEventListener('change', (e) => { S.ellipses = e.target.checked; requestRender(); });
$('feather').addEventListener('input', () => { updateWeights(); requestRender(); });
$('save-model').addEventListener('click', () => save('model'));
$('save-png').addEventListener('click', () => save('png'));
$('download-png').addEventListener('click', () => downloadPng().catch((e) => status(`no PNG: ${e.message}`)));

const KEYS = { p: 'pan', b: 'box', o: 'ellipse', l: 'lasso', g: 'translate', r: 'rotate', s: 'scale', t: 'stretch',
  n: 'bend', w: 'twist' };
window.addEventListener('keydown', (ev) => {
  if (!S.ready || ev.target instanceof HTMLInputElement) return;
  const k = ev.key.toLowerCase();
  if ((ev.ctrlKey || ev.metaKey) && k === 'z') { ev.preventDefault(); if (ev.shiftKey) redo(); else undo(); return; }
  if ((ev.ctrlKey || ev.metaKey) && k === 'y') { ev.preventDefault(); redo(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (k === ' ') { S.space = true; ev.preventDefault(); return; }
  if (k === 'escape') { setRegion(null); status('selection cleared: edits apply to everything'); return; }
  if (k === 'e') { S.ellipses = !S.ellipses; $('ellipses').checked = S.ellipses; requestRender(); return; }
  if (k === 'f') { fit(); return; }
  if (k === '1') { oneToOne(); return; }
  if (KEYS[k]) setMode(KEYS[k]);
});
window.addEventListener('keyup', (ev) => { if (ev.key === ' ') S.space = false; });
new ResizeObserver(() => { if (S.model && resize()) requestRender(); }).observe(stage);

// ------------------------------------------------------------------------------------------------ test hooks

window.splatpix = {
  state: () => ({ ready: S.ready, error: S.error, kind: S.info?.kind, n: S.model?.n, width: S.model?.W,
    height: S.model?.H, channels: S.model?.channels, method: S.model?.method, bytes: S.info?.bytes,
    format: S.renderer?.format.name, note: S.renderer?.note, frameMs: S.frames.slice(), edits: S.edits.length,
    selected: S.selected, view: { ...S.view }, canvas: [canvas.width, canvas.height] }),
  arrays: () => ({ means: toBase64(S.model.means), cov: toBase64(S.model.chol),
    colours: S.model.colours ? toBase64(S.model.colours) : null }),
  renderNative: async () => toBase64(await nativePixels()),
  benchmark: (frames = 20) => {
    const win = viewWindow(), times = [];
    for (let i = 0; i < frames; i++) times.push(S.renderer.draw(win, { ellipses: S.ellipses }));
    drawOverlay();
    times.sort((a, b) => a - b);
    return { frames, mean: times.reduce((a, b) => a + b, 0) / frames, median: times[frames >> 1], min: times[0],
      width: canvas.width, height: canvas.height, n: S.model.n, format: S.renderer.format.name };
  },
  edits: () => S.edits.map((e) => ({ ...e })),
  command: () => $('command').textContent,
  uvToClient: (u, v) => {
    const [x, y] = uvToCanvas([u, v]);
    const r = canvas.getBoundingClientRect();
    return [r.left + (x * r.width) / canvas.width, r.top + (y * r.height) / canvas.height];
  },
  setView: (cx, cy, zoom) => { S.view = { cx, cy, zoom }; renderNow(); },
  applyEdit: (op, params, region = null) => commit({ op, params, region }),
  undo, redo, save,
};

load();
