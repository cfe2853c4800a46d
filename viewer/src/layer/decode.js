// Decoding of the binary annotation tiles (docs/viewer-tiles.md) into what the GPU and the picker need.
import earcut from "earcut";
import Flatbush from "flatbush";

const pad4 = (n) => n + ((4 - (n % 4)) % 4);

function magic(dv) {
  return String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
}

// A geometry tile: vertex positions relative to (x0, y0), per-vertex label and annotation slot,
// triangle / outline / point indices, per-annotation bounding boxes (image px) and a Flatbush of them.
export function decodeGeometry(buf) {
  const dv = new DataView(buf);
  if (buf.byteLength < 40 || magic(dv) !== "EXG1") throw new Error("not an annotation geometry tile");
  const n = dv.getUint32(4, true), r = dv.getUint32(8, true), v = dv.getUint32(12, true);
  const x0 = dv.getFloat64(16, true), y0 = dv.getFloat64(24, true), unit = dv.getFloat64(32, true);
  let off = 40;
  const label = new Uint16Array(buf, off, n); off += pad4(2 * n);
  const kind = new Uint8Array(buf, off, n); off += pad4(n);
  const ringStart = new Uint32Array(buf, off, n + 1); off += 4 * (n + 1);
  const ringFlag = new Uint8Array(buf, off, r); off += pad4(r);
  const vertStart = new Uint32Array(buf, off, r + 1); off += 4 * (r + 1);
  const dq = new Uint16Array(buf, off, 2 * v);

  const pos = new Float32Array(2 * v); // image px relative to (x0, y0)
  const vLabel = new Uint16Array(v);
  const vAnn = new Uint32Array(v);
  const bbox = new Float64Array(4 * n);
  const tris = [];
  const lines = [];
  const points = [];
  for (let i = 0; i < n; i++) {
    let bx0 = Infinity, by0 = Infinity, bx1 = -Infinity, by1 = -Infinity;
    const r0 = ringStart[i], r1 = ringStart[i + 1];
    for (let k = r0; k < r1; k++) {
      let qx = 0, qy = 0;
      const a = vertStart[k], b = vertStart[k + 1];
      for (let j = a; j < b; j++) {
        if (j === a) { qx = dq[2 * j]; qy = dq[2 * j + 1]; } else {
          qx = (qx + dq[2 * j]) & 0xffff;
          qy = (qy + dq[2 * j + 1]) & 0xffff;
        }
        const px = qx * unit, py = qy * unit;
        pos[2 * j] = px; pos[2 * j + 1] = py;
        vLabel[j] = label[i]; vAnn[j] = i;
        if (px < bx0) bx0 = px; if (px > bx1) bx1 = px;
        if (py < by0) by0 = py; if (py > by1) by1 = py;
      }
    }
    bbox[4 * i] = x0 + bx0; bbox[4 * i + 1] = y0 + by0; bbox[4 * i + 2] = x0 + bx1; bbox[4 * i + 3] = y0 + by1;
    const kd = kind[i];
    if (kd === 0) {
      for (let k = r0; k < r1; k++) points.push(vertStart[k]);
    } else if (kd === 1) {
      const a = vertStart[r0], b = vertStart[r0 + 1];
      for (let j = a; j + 1 < b; j++) lines.push(j, j + 1);
    } else {
      // polygon parts: an exterior ring (flag 1) and the holes after it
      let k = r0;
      while (k < r1) {
        let e = k + 1;
        while (e < r1 && ringFlag[e] === 0) e++;
        const base = vertStart[k];
        const flat = pos.subarray(2 * base, 2 * vertStart[e]);
        const holes = [];
        for (let h = k + 1; h < e; h++) holes.push(vertStart[h] - base);
        const t = earcut(flat, holes.length ? holes : undefined, 2);
        for (let q = 0; q < t.length; q++) tris.push(base + t[q]);
        for (let h = k; h < e; h++) {
          const a = vertStart[h], b = vertStart[h + 1];
          for (let j = a; j < b; j++) lines.push(j, j + 1 < b ? j + 1 : a);
        }
        k = e;
      }
    }
  }
  let index = null;
  if (n) {
    index = new Flatbush(n);
    for (let i = 0; i < n; i++) index.add(bbox[4 * i], bbox[4 * i + 1], bbox[4 * i + 2], bbox[4 * i + 3]);
    index.finish();
  }
  return {
    n, x0, y0, unit, label, kind, ringStart, ringFlag, vertStart, pos, vLabel, vAnn, bbox, index,
    tris: Uint32Array.from(tris), lines: Uint32Array.from(lines), points: Uint32Array.from(points),
  };
}

// A density tile: one instance per non-empty (label, cell): cell centre relative to (x0, y0), label, count.
export function decodeDensity(buf) {
  const dv = new DataView(buf);
  if (buf.byteLength < 40 || magic(dv) !== "EXD1") throw new Error("not an annotation density tile");
  const grid = dv.getUint32(4, true), m = dv.getUint32(8, true), total = dv.getUint32(12, true);
  const x0 = dv.getFloat64(16, true), y0 = dv.getFloat64(24, true), cell = dv.getFloat64(32, true);
  const labels = new Uint16Array(buf, 40, m);
  const counts = new Uint32Array(buf, 40 + pad4(2 * m), m * grid * grid);
  let k = 0;
  for (let i = 0; i < counts.length; i++) if (counts[i]) k++;
  const pos = new Float32Array(2 * k), lab = new Uint16Array(k), cnt = new Float32Array(k);
  let j = 0;
  for (let l = 0; l < m; l++) {
    const base = l * grid * grid;
    for (let c = 0; c < grid * grid; c++) {
      const v = counts[base + c];
      if (!v) continue;
      pos[2 * j] = ((c % grid) + 0.5) * cell;
      pos[2 * j + 1] = (Math.floor(c / grid) + 0.5) * cell;
      lab[j] = labels[l];
      cnt[j] = v;
      j++;
    }
  }
  return { grid, total, x0, y0, cell, n: k, pos, lab, cnt };
}

export function idText(bytes, i) {
  let s = "";
  for (let k = 0; k < 16; k++) {
    s += bytes[16 * i + k].toString(16).padStart(2, "0");
    if (k === 3 || k === 5 || k === 7 || k === 9) s += "-";
  }
  return s;
}

// point-in-annotation test for picking, in image px with tolerance tol
export function hitTest(t, i, x, y, tol) {
  const kd = t.kind[i];
  const r0 = t.ringStart[i], r1 = t.ringStart[i + 1];
  const lx = x - t.x0, ly = y - t.y0;
  const p = t.pos, vs = t.vertStart;
  if (kd === 0) {
    for (let k = r0; k < r1; k++) {
      const j = vs[k];
      if (Math.hypot(p[2 * j] - lx, p[2 * j + 1] - ly) <= tol) return true;
    }
    return false;
  }
  let inside = false;
  for (let k = r0; k < r1; k++) {
    const a = vs[k], b = vs[k + 1];
    const closed = kd === 2;
    for (let j = a; j < b; j++) {
      const nj = j + 1 < b ? j + 1 : a;
      if (!closed && nj === a) break;
      const ax = p[2 * j], ay = p[2 * j + 1], bx = p[2 * nj], by = p[2 * nj + 1];
      if (segDist(lx, ly, ax, ay, bx, by) <= tol) return true;
      if (closed && (ay > ly) !== (by > ly) && lx < ((bx - ax) * (ly - ay)) / (by - ay) + ax) inside = !inside;
    }
  }
  return inside;
}

function segDist(px, py, ax, ay, bx, by) {
  const dx = bx - ax, dy = by - ay;
  const l2 = dx * dx + dy * dy;
  let t = l2 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}
