// WebGL2 drawing of decoded tiles: one program for geometry (fills, outlines, point discs), one for
// density cells. Label colour and visibility live in a small texture and opacity in a uniform, so
// restyling never touches geometry buffers; per-annotation status (hidden) is a per-tile texture.

const GEOM_VS = `#version 300 es
in vec2 a_pos;
in uint a_label;
in uint a_ann;
uniform vec2 u_origin;   // tile origin, CSS px
uniform float u_scale;   // CSS px per image px
uniform vec2 u_size;     // canvas, CSS px
uniform float u_point;   // point diameter, device px
uniform sampler2D u_style;
uniform highp usampler2D u_status;
out vec3 v_color;
void main() {
  vec4 st = texelFetch(u_style, ivec2(int(a_label) % 1024, int(a_label) / 1024), 0);
  uint s = texelFetch(u_status, ivec2(int(a_ann % 2048u), int(a_ann / 2048u)), 0).r;
  vec2 p = (u_origin + a_pos * u_scale) / u_size * 2.0 - 1.0;
  gl_Position = (st.a < 0.5 || s != 0u) ? vec4(3.0, 3.0, 3.0, 1.0) : vec4(p.x, -p.y, 0.0, 1.0);
  gl_PointSize = u_point;
  v_color = st.rgb;
}`;

const GEOM_FS = `#version 300 es
precision mediump float;
in vec3 v_color;
uniform float u_alpha;
uniform bool u_disc;
out vec4 o;
void main() {
  float a = u_alpha;
  if (u_disc) {
    float d = length(gl_PointCoord - 0.5) * 2.0;
    if (d > 1.0) discard;
    a = d > 0.7 ? u_alpha : u_alpha * 0.6;
  }
  o = vec4(v_color * a, a);
}`;

const DENS_VS = `#version 300 es
in vec2 a_pos;
in uint a_label;
in float a_count;
uniform vec2 u_origin;
uniform float u_scale;
uniform vec2 u_size;
uniform float u_cell;    // cell side, device px
uniform float u_alpha;
uniform sampler2D u_style;
out vec4 v_color;
void main() {
  vec4 st = texelFetch(u_style, ivec2(int(a_label) % 1024, int(a_label) / 1024), 0);
  vec2 p = (u_origin + a_pos * u_scale) / u_size * 2.0 - 1.0;
  gl_Position = st.a < 0.5 ? vec4(3.0, 3.0, 3.0, 1.0) : vec4(p.x, -p.y, 0.0, 1.0);
  gl_PointSize = max(u_cell, 1.0);
  float a = u_alpha * clamp(0.45 + 0.18 * log2(a_count), 0.45, 1.0);
  v_color = vec4(st.rgb * a, a);
}`;

const DENS_FS = `#version 300 es
precision mediump float;
in vec4 v_color;
out vec4 o;
void main() { o = v_color; }`;

function compile(gl, vs, fs) {
  const prog = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const sh = gl.createShader(type);
    gl.shaderSource(sh, src);
    gl.compileShader(sh);
    if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) throw new Error(`shader: ${gl.getShaderInfoLog(sh)}`);
    gl.attachShader(prog, sh);
  }
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(`program: ${gl.getProgramInfoLog(prog)}`);
  const u = {};
  const nu = gl.getProgramParameter(prog, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < nu; i++) {
    const name = gl.getActiveUniform(prog, i).name;
    u[name] = gl.getUniformLocation(prog, name);
  }
  return { prog, u, attr: (name) => gl.getAttribLocation(prog, name) };
}

function parseColor(c) {
  const m = /^#?([0-9a-f]{6})$/i.exec(String(c || "").trim());
  const v = m ? parseInt(m[1], 16) : 0x808080;
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

export class Renderer {
  constructor(canvas) {
    const gl = canvas.getContext("webgl2", { alpha: true, premultipliedAlpha: true, antialias: false,
      depth: false, stencil: false, preserveDrawingBuffer: false });
    if (!gl) throw new Error("WebGL2 is not available");
    this.gl = gl;
    this.canvas = canvas;
    this.geom = compile(gl, GEOM_VS, GEOM_FS);
    this.dens = compile(gl, DENS_VS, DENS_FS);
    this.styleTex = gl.createTexture();
    this.emptyStatus = this._statusTexture(new Uint8Array(1), 1);
    this.styles = [];
  }

  // styles: [{color, visible}] by tile label index
  setStyles(styles) {
    const gl = this.gl;
    const n = Math.max(1, styles.length);
    const w = Math.min(n, 1024), h = Math.ceil(n / 1024);
    const data = new Uint8Array(4 * w * h);
    styles.forEach((s, i) => {
      const [r, g, b] = parseColor(s.color);
      data.set([r, g, b, s.visible === false ? 0 : 255], 4 * i);
    });
    gl.bindTexture(gl.TEXTURE_2D, this.styleTex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, data);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  }

  _statusTexture(bytes, n) {
    const gl = this.gl;
    const w = Math.min(Math.max(n, 1), 2048), h = Math.max(1, Math.ceil(n / 2048));
    const data = new Uint8Array(w * h);
    data.set(bytes.subarray(0, Math.min(bytes.length, data.length)));
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8UI, w, h, 0, gl.RED_INTEGER, gl.UNSIGNED_BYTE, data);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    return tex;
  }

  _buffer(target, data) {
    const gl = this.gl;
    const b = gl.createBuffer();
    gl.bindBuffer(target, b);
    gl.bufferData(target, data, gl.STATIC_DRAW);
    return b;
  }

  // a vertex array of `program` over the attributes [name, data, size, type, integer]
  _vertexArray(program, attrs) {
    const gl = this.gl;
    const vao = gl.createVertexArray();
    gl.bindVertexArray(vao);
    const bufs = [];
    for (const [name, data, size, type, integer] of attrs) {
      const loc = program.attr(name);
      bufs.push(this._buffer(gl.ARRAY_BUFFER, data));
      gl.enableVertexAttribArray(loc);
      if (integer) gl.vertexAttribIPointer(loc, size, type, 0, 0);
      else gl.vertexAttribPointer(loc, size, type, false, 0, 0);
    }
    gl.bindVertexArray(null);
    return { vao, bufs };
  }

  uploadGeometry(t) {
    const gl = this.gl;
    const { vao, bufs } = this._vertexArray(this.geom, [
      ["a_pos", t.pos, 2, gl.FLOAT, false],
      ["a_label", t.vLabel, 1, gl.UNSIGNED_SHORT, true],
      ["a_ann", t.vAnn, 1, gl.UNSIGNED_INT, true]]);
    const elems = {};
    for (const k of ["tris", "lines", "points"]) {
      if (t[k].length) elems[k] = this._buffer(gl.ELEMENT_ARRAY_BUFFER, t[k]);
    }
    return { vao, bufs, elems, counts: { tris: t.tris.length, lines: t.lines.length, points: t.points.length },
      status: null };
  }

  setStatus(gpu, bytes, n) {
    if (gpu.status) this.gl.deleteTexture(gpu.status);
    gpu.status = bytes ? this._statusTexture(bytes, n) : null;
  }

  uploadDensity(t) {
    const gl = this.gl;
    const { vao, bufs } = this._vertexArray(this.dens, [
      ["a_pos", t.pos, 2, gl.FLOAT, false],
      ["a_label", t.lab, 1, gl.UNSIGNED_SHORT, true],
      ["a_count", t.cnt, 1, gl.FLOAT, false]]);
    return { vao, bufs, elems: {}, counts: { cells: t.n }, status: null };
  }

  release(gpu) {
    const gl = this.gl;
    gl.deleteVertexArray(gpu.vao);
    for (const b of gpu.bufs) gl.deleteBuffer(b);
    for (const b of Object.values(gpu.elems)) gl.deleteBuffer(b);
    if (gpu.status) gl.deleteTexture(gpu.status);
  }

  // view: {width, height (CSS px), dpr, scale (CSS px per image px), ox, oy (CSS px of image 0,0)}
  begin(view) {
    const gl = this.gl, c = this.canvas;
    const w = Math.max(1, Math.round(view.width * view.dpr)), h = Math.max(1, Math.round(view.height * view.dpr));
    if (c.width !== w || c.height !== h) {
      c.width = w; c.height = h;
      c.style.width = `${view.width}px`; c.style.height = `${view.height}px`;
    }
    gl.viewport(0, 0, w, h);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.styleTex);
    this.view = view;
  }

  drawDensity(gpu, t, opacity) {
    const gl = this.gl, p = this.dens, v = this.view;
    if (!t.n) return;
    gl.useProgram(p.prog);
    gl.uniform1i(p.u.u_style, 0);
    gl.uniform2f(p.u.u_origin, v.ox + t.x0 * v.scale, v.oy + t.y0 * v.scale);
    gl.uniform1f(p.u.u_scale, v.scale);
    gl.uniform2f(p.u.u_size, v.width, v.height);
    gl.uniform1f(p.u.u_cell, Math.ceil(t.cell * v.scale * v.dpr));
    gl.uniform1f(p.u.u_alpha, 0.85 * opacity);
    gl.bindVertexArray(gpu.vao);
    gl.drawArrays(gl.POINTS, 0, t.n);
  }

  // pass: "fill" | "line" | "point"
  drawGeometry(gpu, t, opacity, pass) {
    const gl = this.gl, p = this.geom, v = this.view;
    const key = pass === "fill" ? "tris" : pass === "line" ? "lines" : "points";
    const count = gpu.counts[key];
    if (!count) return;
    gl.useProgram(p.prog);
    gl.uniform1i(p.u.u_style, 0);
    gl.uniform1i(p.u.u_status, 1);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, gpu.status || this.emptyStatus);
    gl.activeTexture(gl.TEXTURE0);
    gl.uniform2f(p.u.u_origin, v.ox + t.x0 * v.scale, v.oy + t.y0 * v.scale);
    gl.uniform1f(p.u.u_scale, v.scale);
    gl.uniform2f(p.u.u_size, v.width, v.height);
    gl.uniform1f(p.u.u_point, 10 * v.dpr);
    gl.uniform1i(p.u.u_disc, pass === "point" ? 1 : 0);
    gl.uniform1f(p.u.u_alpha, (pass === "fill" ? 0.25 : 0.95) * opacity);
    gl.bindVertexArray(gpu.vao);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, gpu.elems[key]);
    const mode = pass === "fill" ? gl.TRIANGLES : pass === "line" ? gl.LINES : gl.POINTS;
    gl.drawElements(mode, count, gl.UNSIGNED_INT, 0);
  }

  end() {
    this.gl.bindVertexArray(null);
  }

  pixel(x, y) {
    const gl = this.gl, v = this.view;
    const out = new Uint8Array(4);
    gl.readPixels(Math.round(x * v.dpr), this.canvas.height - 1 - Math.round(y * v.dpr), 1, 1, gl.RGBA,
      gl.UNSIGNED_BYTE, out);
    return Array.from(out);
  }
}
