// WebGL2 renderer of the order-free accumulated sum (splatpix.render): out = sum_i colour_i exp(-power_i),
// power = 0.5 (a dx^2 + 2 b dx dy + c dy^2), (a, b, c) the inverse of the pixel-space covariance, only where
// power <= 4.5 (the 3-sigma ellipse), pixel centres at j + 0.5, needles (a c > 1e6 det) and degenerate covariances
// skipped, then clamped to [0, 1]. One instanced octagon per Gaussian covers its 3-sigma ellipse; the fragment shader
// computes the power and discards above 4.5; additive blending sums into a float target (RGBA32F with
// EXT_color_buffer_float + EXT_float_blend; RGBA16F or RGBA8 otherwise, with a note); a second pass clamps onto the
// canvas. A view is a normalised window (u0, v0, u1, v1) mapped onto the output, as splatpix's project(): zooming
// renders the Gaussians again at the new scale.

const SPLAT_VS = `#version 300 es
precision highp float;
layout(location = 0) in vec2 corner;
layout(location = 1) in vec2 mean;
layout(location = 2) in vec3 chol;
layout(location = 3) in vec4 colour;
uniform vec4 win;      // u0, v0, u1, v1
uniform vec2 outSize;  // output width, height in pixels
uniform vec2 native;   // native width, height
flat out vec2 vMean;
flat out vec3 vConic;
flat out vec4 vColour;
void main() {
  float sx = outSize.x / (win.z - win.x), sy = outSize.y / (win.w - win.y);
  vec2 m = vec2((mean.x - win.x) * sx, (mean.y - win.y) * sy);
  float l11 = chol.x, l21 = chol.y, l22 = chol.z;
  // native covariance, normalised, then output pixels (Gaussians.project)
  float nxx = (l11 * l11) / (native.x * native.x);
  float nxy = (l11 * l21) / (native.x * native.y);
  float nyy = (l21 * l21 + l22 * l22) / (native.y * native.y);
  float sxx = nxx * (sx * sx), sxy = nxy * (sx * sy), syy = nyy * (sy * sy);
  float det = sxx * syy - sxy * sxy, tr = sxx + syy;
  bool ok = det > 1e-12 * tr * tr && det > 0.0 && sxx > 0.0 && syy > 0.0;
  float inv = 1.0 / det;
  float a = syy * inv, b = -sxy * inv, c = sxx * inv;
  float cdet = a * c - b * b;
  ok = ok && cdet > 0.0 && a * c <= 1e6 * cdet && !isnan(m.x) && !isnan(m.y);
  // an octagon around the 3-sigma ellipse, along its axes (theta: the major axis), half a pixel wider
  float theta = 0.5 * atan(2.0 * sxy, sxx - syy);
  float mid = 0.5 * tr, rad = sqrt(max(0.25 * (sxx - syy) * (sxx - syy) + sxy * sxy, 0.0));
  vec2 semi = 3.0 * sqrt(max(vec2(mid + rad, mid - rad), 0.0)) + 0.5;
  float ct = cos(theta), st = sin(theta);
  vec2 q = corner * semi;
  vec2 p = m + vec2(ct * q.x - st * q.y, st * q.x + ct * q.y);
  vMean = m;
  vConic = vec3(a, b, c);
  vColour = colour;
  gl_Position = ok ? vec4(p.x / outSize.x * 2.0 - 1.0, 1.0 - p.y / outSize.y * 2.0, 0.0, 1.0) : vec4(2.0, 2.0, 2.0, 1.0);
}`;

const SPLAT_FS = `#version 300 es
precision highp float;
uniform vec2 outSize;
flat in vec2 vMean;
flat in vec3 vConic;
flat in vec4 vColour;
out vec4 o;
void main() {
  float dx = gl_FragCoord.x - vMean.x;
  float dy = (outSize.y - gl_FragCoord.y) - vMean.y;  // image rows go down
  float power = dx * (0.5 * vConic.x * dx + vConic.y * dy) + 0.5 * vConic.z * dy * dy;
  if (!(power <= 4.5)) discard;
  o = vColour * exp(-power);
}`;

const QUAD_VS = `#version 300 es
void main() {
  vec2 p = vec2(gl_VertexID == 1 ? 3.0 : -1.0, gl_VertexID == 2 ? 3.0 : -1.0);
  gl_Position = vec4(p, 0.0, 1.0);
}`;

// mode 0: on screen (alpha over a checkerboard); 1: raw clamped values (read back, PNG)
const SHOW_FS = `#version 300 es
precision highp float;
uniform highp sampler2D acc;
uniform int channels;
uniform int mode;
uniform vec4 background;
out vec4 o;
void main() {
  vec4 v = clamp(texelFetch(acc, ivec2(gl_FragCoord.xy), 0), 0.0, 1.0);
  if (channels == 1) v = vec4(v.rrr, 1.0);
  else if (channels == 3) v.a = 1.0;
  else if (mode == 0) {
    ivec2 q = ivec2(gl_FragCoord.xy) / 8;
    vec3 chk = ((q.x + q.y) % 2 == 0) ? vec3(0.42) : vec3(0.58);
    v = vec4(v.rgb * v.a + chk * (1.0 - v.a), 1.0);
  }
  o = v;
}`;

const TEX_FS = `#version 300 es
precision highp float;
uniform highp sampler2D img;
uniform vec2 outSize;
out vec4 o;
void main() {
  vec2 p = gl_FragCoord.xy;
  o = texelFetch(img, ivec2(p.x, outSize.y - 1.0 - floor(p.y)), 0);
}`;

const ELLIPSE_VS = `#version 300 es
precision highp float;
layout(location = 0) in vec2 circle;
layout(location = 1) in vec2 mean;
layout(location = 2) in vec3 chol;
layout(location = 3) in float weight;
uniform vec4 win;
uniform vec2 outSize;
uniform vec2 native;
out vec4 vColour;
void main() {
  float sx = outSize.x / (win.z - win.x), sy = outSize.y / (win.w - win.y);
  vec2 m = vec2((mean.x - win.x) * sx, (mean.y - win.y) * sy);
  float fx = sx / native.x, fy = sy / native.y;  // L_px = diag(fx, fy) L
  vec2 p = m + vec2(fx * chol.x * circle.x, fy * (chol.y * circle.x + chol.z * circle.y));
  gl_Position = vec4(p.x / outSize.x * 2.0 - 1.0, 1.0 - p.y / outSize.y * 2.0, 0.0, 1.0);
  vColour = weight > 0.0 ? vec4(1.0, 0.55, 0.1, 0.9) : vec4(0.3, 0.85, 1.0, 0.45);
}`;

const ELLIPSE_FS = `#version 300 es
precision highp float;
in vec4 vColour;
out vec4 o;
void main() { o = vColour; }`;

export class GLError extends Error {}

function compile(gl, vs, fs) {
  const prog = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new GLError(`shader: ${gl.getShaderInfoLog(s)}`);
    gl.attachShader(prog, s);
  }
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new GLError(`program: ${gl.getProgramInfoLog(prog)}`);
  const uniforms = {};
  const count = gl.getProgramParameter(prog, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < count; i++) {
    const name = gl.getActiveUniform(prog, i).name;
    uniforms[name] = gl.getUniformLocation(prog, name);
  }
  return { prog, u: uniforms };
}

export class Renderer {
  constructor(canvas) {
    const gl = canvas.getContext('webgl2', { antialias: false, alpha: false, premultipliedAlpha: false,
      preserveDrawingBuffer: true, depth: false, stencil: false });
    if (!gl) throw new GLError('this browser has no WebGL2');
    this.gl = gl;
    this.canvas = canvas;
    const cbf = gl.getExtension('EXT_color_buffer_float');
    const blend = gl.getExtension('EXT_float_blend');
    const half = cbf || gl.getExtension('EXT_color_buffer_half_float');
    if (cbf && blend) {
      this.format = { internal: gl.RGBA32F, type: gl.FLOAT, name: 'RGBA32F' };
      this.note = '';
    } else if (half) {
      this.format = { internal: gl.RGBA16F, type: gl.HALF_FLOAT, name: 'RGBA16F' };
      this.note = 'No blending into 32-bit float targets here (EXT_float_blend): the sum is accumulated in 16-bit ' +
        'floats, so colours can be off by a level or two.';
    } else {
      this.format = { internal: gl.RGBA8, type: gl.UNSIGNED_BYTE, name: 'RGBA8' };
      this.note = 'No float render targets here (EXT_color_buffer_float): the sum is clamped to [0, 1] after every ' +
        'Gaussian, so the colours are wrong where Gaussians overlap.';
    }
    this.splat = compile(gl, SPLAT_VS, SPLAT_FS);
    this.show = compile(gl, QUAD_VS, SHOW_FS);
    this.tex = compile(gl, QUAD_VS, TEX_FS);
    this.ellipse = compile(gl, ELLIPSE_VS, ELLIPSE_FS);
    this.quadVao = gl.createVertexArray();
    this.targets = new Map();
    this.n = 0;
    this.maxSize = Math.min(gl.getParameter(gl.MAX_RENDERBUFFER_SIZE), gl.getParameter(gl.MAX_TEXTURE_SIZE));
  }

  // model: {W, H, channels, n, means (2N), chol (3N), colours (C N)}; colours null: geometry only (GaINeR)
  setModel(model) {
    const gl = this.gl;
    this.model = model;
    this.n = model.n;
    const mk = (data, usage) => { const b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b); gl.bufferData(gl.ARRAY_BUFFER, data, usage); return b; };
    this.meanBuf = mk(model.means, gl.DYNAMIC_DRAW);
    this.cholBuf = mk(model.chol, gl.DYNAMIC_DRAW);
    const c = model.channels, n = model.n;
    const col = new Float32Array(4 * n);
    if (model.colours) for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) col[4 * i + k] = model.colours[c * i + k];
    this.colourBuf = mk(col, gl.STATIC_DRAW);
    this.weightBuf = mk(new Float32Array(n), gl.DYNAMIC_DRAW);
    const oct = new Float32Array(16), rr = 1 / Math.cos(Math.PI / 8);  // circumscribes the unit circle
    for (let i = 0; i < 8; i++) { oct[2 * i] = rr * Math.cos((Math.PI * (2 * i + 1)) / 8); oct[2 * i + 1] = rr * Math.sin((Math.PI * (2 * i + 1)) / 8); }
    this.cornerBuf = mk(oct, gl.STATIC_DRAW);
    const K = 48, circ = new Float32Array(2 * K);
    for (let i = 0; i < K; i++) { circ[2 * i] = Math.cos((2 * Math.PI * i) / K); circ[2 * i + 1] = Math.sin((2 * Math.PI * i) / K); }
    this.circleBuf = mk(circ, gl.STATIC_DRAW);
    this.circleCount = K;
    const attr = (loc, buf, size, divisor) => {
      gl.bindBuffer(gl.ARRAY_BUFFER, buf);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, gl.FLOAT, false, 0, 0);
      gl.vertexAttribDivisor(loc, divisor);
    };
    this.splatVao = gl.createVertexArray();
    gl.bindVertexArray(this.splatVao);
    attr(0, this.cornerBuf, 2, 0); attr(1, this.meanBuf, 2, 1); attr(2, this.cholBuf, 3, 1); attr(3, this.colourBuf, 4, 1);
    this.ellipseVao = gl.createVertexArray();
    gl.bindVertexArray(this.ellipseVao);
    attr(0, this.circleBuf, 2, 0); attr(1, this.meanBuf, 2, 1); attr(2, this.cholBuf, 3, 1); attr(3, this.weightBuf, 1, 1);
    gl.bindVertexArray(null);
  }

  updateGeometry(means, chol) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.meanBuf);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, means);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.cholBuf);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, chol);
  }

  setWeights(w) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.weightBuf);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, w);
  }

  // a framebuffer with a texture of `internal` format, cached by key and size
  target(key, w, h, internal, type) {
    const gl = this.gl;
    if (w > this.maxSize || h > this.maxSize) throw new GLError(`${w}x${h} exceeds this GPU's limit of ${this.maxSize} pixels a side`);
    let t = this.targets.get(key);
    if (t && t.w === w && t.h === h) return t;
    if (t) { gl.deleteTexture(t.tex); gl.deleteFramebuffer(t.fbo); }
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texStorage2D(gl.TEXTURE_2D, 1, internal, w, h);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    const fbo = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
    const status = gl.checkFramebufferStatus(gl.FRAMEBUFFER);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    if (status !== gl.FRAMEBUFFER_COMPLETE) throw new GLError(`render target ${key} is incomplete (${status})`);
    t = { tex, fbo, w, h, type };
    this.targets.set(key, t);
    return t;
  }

  // the accumulated sum of the window `win` at w x h into the float target; returns it
  accumulate(win, w, h, key = 'acc') {
    const gl = this.gl, m = this.model;
    const t = this.target(key, w, h, this.format.internal, this.format.type);
    gl.bindFramebuffer(gl.FRAMEBUFFER, t.fbo);
    gl.viewport(0, 0, w, h);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.n > 0) {
      gl.useProgram(this.splat.prog);
      gl.uniform4f(this.splat.u.win, win[0], win[1], win[2], win[3]);
      gl.uniform2f(this.splat.u.outSize, w, h);
      gl.uniform2f(this.splat.u.native, m.W, m.H);
      gl.enable(gl.BLEND);
      gl.blendEquation(gl.FUNC_ADD);
      gl.blendFunc(gl.ONE, gl.ONE);
      gl.bindVertexArray(this.splatVao);
      gl.drawArraysInstanced(gl.TRIANGLE_FAN, 0, 8, this.n);
      gl.bindVertexArray(null);
      gl.disable(gl.BLEND);
    }
    return t;
  }

  // the clamp pass from a float target onto the bound framebuffer (w x h)
  present(src, w, h, mode) {
    const gl = this.gl;
    gl.viewport(0, 0, w, h);
    gl.useProgram(this.show.prog);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, src.tex);
    gl.uniform1i(this.show.u.acc, 0);
    gl.uniform1i(this.show.u.channels, this.model.channels);
    gl.uniform1i(this.show.u.mode, mode);
    gl.bindVertexArray(this.quadVao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindVertexArray(null);
  }

  drawEllipses(win, w, h) {
    const gl = this.gl, m = this.model;
    if (!this.n) return;
    gl.viewport(0, 0, w, h);
    gl.useProgram(this.ellipse.prog);
    gl.uniform4f(this.ellipse.u.win, win[0], win[1], win[2], win[3]);
    gl.uniform2f(this.ellipse.u.outSize, w, h);
    gl.uniform2f(this.ellipse.u.native, m.W, m.H);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.bindVertexArray(this.ellipseVao);
    gl.drawArraysInstanced(gl.LINE_LOOP, 0, this.circleCount, this.n);
    gl.bindVertexArray(null);
    gl.disable(gl.BLEND);
  }

  // the view on the canvas: Gaussians (or a server image) + optional ellipses; returns the time in ms (synchronised)
  draw(win, { ellipses = false, image = null } = {}) {
    const gl = this.gl, w = this.canvas.width, h = this.canvas.height;
    const t0 = performance.now();
    if (image) {
      this.drawImage(image, w, h);
    } else {
      const acc = this.accumulate(win, w, h);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      this.present(acc, w, h, 0);
    }
    if (ellipses) {
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      this.drawEllipses(win, w, h);
    }
    const px = new Uint8Array(4);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);  // waits for the GPU
    return performance.now() - t0;
  }

  // a server-rendered image (ImageBitmap or canvas) drawn 1:1 onto the canvas
  drawImage(image, w, h) {
    const gl = this.gl;
    if (!this.imageTex) this.imageTex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.imageTex);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, image);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, w, h);
    gl.clearColor(0.1, 0.1, 0.1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(this.tex.prog);
    gl.activeTexture(gl.TEXTURE0);
    gl.uniform1i(this.tex.u.img, 0);
    gl.uniform2f(this.tex.u.outSize, w, h);
    gl.bindVertexArray(this.quadVao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindVertexArray(null);
  }

  // RGBA8 pixels (top row first) of the window rendered at w x h, clamped, raw channels (no checkerboard)
  readback(win, w, h) {
    const gl = this.gl;
    const acc = this.accumulate(win, w, h, 'native');
    const out8 = this.target('native8', w, h, gl.RGBA8, gl.UNSIGNED_BYTE);
    gl.bindFramebuffer(gl.FRAMEBUFFER, out8.fbo);
    this.present(acc, w, h, 1);
    const px = new Uint8Array(4 * w * h);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    const row = 4 * w, flipped = new Uint8Array(px.length);
    for (let y = 0; y < h; y++) flipped.set(px.subarray((h - 1 - y) * row, (h - y) * row), y * row);
    return flipped;
  }
}
