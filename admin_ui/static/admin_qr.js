// nutgate admin: a QR code (ISO/IEC 18004, byte mode, error correction level M) drawn as SVG,
// for the withdrawn token. Ours, no outside code; tests/test_admin_qr.py checks its modules
// against a reference encoder for each mask and several versions.
"use strict";

// Per version 1..40 at level M: error correction codewords per block, and number of blocks.
const QR_ECC_M = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26,
  26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28];
const QR_BLOCKS_M = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17,
  17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49];

function qrRawModules(ver) { // modules left for data and error correction
  let n = (16 * ver + 128) * ver + 64;
  if (ver >= 2) { const a = Math.floor(ver / 7) + 2; n -= (25 * a - 10) * a - 55; if (ver >= 7) n -= 36; }
  return n;
}
const qrDataCodewords = (ver) => Math.floor(qrRawModules(ver) / 8) - QR_ECC_M[ver] * QR_BLOCKS_M[ver];

function qrAlignments(ver) {
  if (ver === 1) return [];
  const count = Math.floor(ver / 7) + 2, size = ver * 4 + 17;
  const step = ver === 32 ? 26 : Math.ceil((ver * 4 + 4) / (count * 2 - 2)) * 2;
  const at = [];
  for (let p = size - 7; at.length < count - 1; p -= step) at.unshift(p);
  return [6, ...at];
}

// Reed-Solomon over GF(256), polynomial 0x11D
function gfMul(a, b) {
  let r = 0;
  for (let i = 7; i >= 0; i--) { r = (r << 1) ^ ((r >>> 7) * 0x11d); r ^= ((b >>> i) & 1) * a; }
  return r & 0xff;
}
function rsRemainder(data, degree) {
  const gen = new Array(degree).fill(0); gen[degree - 1] = 1;
  for (let i = 0, root = 1; i < degree; i++, root = gfMul(root, 2)) {
    for (let j = 0; j < degree; j++) { gen[j] = gfMul(gen[j], root); if (j + 1 < degree) gen[j] ^= gen[j + 1]; }
  }
  const rem = new Array(degree).fill(0);
  for (const b of data) {
    const f = b ^ rem.shift(); rem.push(0);
    gen.forEach((g, i) => { rem[i] ^= gfMul(g, f); });
  }
  return rem;
}

function qrCodewords(bytes, ver) {
  const bits = [];
  const put = (value, n) => { for (let i = n - 1; i >= 0; i--) bits.push((value >>> i) & 1); };
  put(4, 4); put(bytes.length, ver <= 9 ? 8 : 16);
  for (const b of bytes) put(b, 8);
  const capacity = qrDataCodewords(ver) * 8;
  put(0, Math.min(4, capacity - bits.length));
  put(0, (8 - (bits.length % 8)) % 8);
  for (let pad = 0xec; bits.length < capacity; pad ^= 0xec ^ 0x11) put(pad, 8);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  const blocks = QR_BLOCKS_M[ver], ecc = QR_ECC_M[ver], raw = Math.floor(qrRawModules(ver) / 8);
  const short = blocks - (raw % blocks), shortLen = Math.floor(raw / blocks) - ecc;
  const parts = [];
  for (let i = 0, k = 0; i < blocks; i++) {
    const d = data.slice(k, k += shortLen + (i < short ? 0 : 1));
    parts.push([d, rsRemainder(d, ecc)]);
  }
  const out = [];
  for (let i = 0; i <= shortLen; i++) for (const [d] of parts) if (i < d.length) out.push(d[i]);
  for (let i = 0; i < ecc; i++) for (const [, e] of parts) out.push(e[i]);
  return out;
}

const QR_MASKS = [(x, y) => (x + y) % 2 === 0, (x, y) => y % 2 === 0, (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0, (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0, (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0];

// The matrix (rows of booleans, dark = true) of `text` at `ver` (smallest that fits when omitted)
// with `mask` (the lowest penalty when omitted).
function qrMatrix(text, mask, ver) {
  const bytes = [...new TextEncoder().encode(text)];
  ver = ver || [...Array(40).keys()].map((i) => i + 1).find((v) => qrDataCodewords(v) >= bytes.length + (v <= 9 ? 2 : 3));
  if (!ver) throw new Error("too long for a QR code");
  const size = ver * 4 + 17;
  const dark = Array.from({ length: size }, () => new Array(size).fill(false));
  const fixed = Array.from({ length: size }, () => new Array(size).fill(false));
  const set = (x, y, on) => { if (x >= 0 && y >= 0 && x < size && y < size) { dark[y][x] = on; fixed[y][x] = true; } };
  for (let i = 0; i < size; i++) { set(6, i, i % 2 === 0); set(i, 6, i % 2 === 0); }
  for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
    for (let dy = -4; dy <= 4; dy++) for (let dx = -4; dx <= 4; dx++) {
      const d = Math.max(Math.abs(dx), Math.abs(dy));
      set(cx + dx, cy + dy, d !== 2 && d !== 4);
    }
  }
  const al = qrAlignments(ver), last = al.length - 1;
  al.forEach((cx, i) => al.forEach((cy, j) => {
    if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) return;
    for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) set(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
  }));
  const format = (m) => {
    const data = m; // level M's bits are 00
    let rem = data;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    const bits = ((data << 10) | rem) ^ 0x5412, bit = (i) => ((bits >>> i) & 1) === 1;
    for (let i = 0; i <= 5; i++) set(8, i, bit(i));
    set(8, 7, bit(6)); set(8, 8, bit(7)); set(7, 8, bit(8));
    for (let i = 9; i < 15; i++) set(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) set(size - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) set(8, size - 15 + i, bit(i));
    set(8, size - 8, true);
  };
  format(0);
  if (ver >= 7) {
    let rem = ver;
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
    const bits = (ver << 12) | rem;
    for (let i = 0; i < 18; i++) {
      const on = ((bits >>> i) & 1) === 1, a = size - 11 + (i % 3), b = Math.floor(i / 3);
      set(a, b, on); set(b, a, on);
    }
  }
  const words = qrCodewords(bytes, ver);
  let n = 0;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let v = 0; v < size; v++) for (let j = 0; j < 2; j++) {
      const x = right - j, y = ((right + 1) & 2) === 0 ? size - 1 - v : v;
      if (!fixed[y][x] && n < words.length * 8) { dark[y][x] = ((words[n >>> 3] >>> (7 - (n & 7))) & 1) === 1; n++; }
    }
  }
  const masked = (m) => {
    const out = dark.map((row, y) => row.map((on, x) => (fixed[y][x] ? on : on !== QR_MASKS[m](x, y))));
    return out;
  };
  const pick = mask ?? [...Array(8).keys()].reduce((best, m) => (qrPenalty(masked(m)) < qrPenalty(masked(best)) ? m : best), 0);
  const grid = masked(pick);
  const saved = dark.map((row) => row.slice());
  format(pick);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (fixed[y][x] && saved[y][x] !== dark[y][x]) grid[y][x] = dark[y][x];
  return grid;
}

function qrPenalty(m) { // runs of five or more, 2x2 blocks, and dark/light balance
  const size = m.length;
  let score = 0, darkCount = 0;
  for (let a = 0; a < size; a++) {
    for (const line of [(i) => m[a][i], (i) => m[i][a]]) {
      let run = 1;
      for (let i = 1; i <= size; i++) {
        if (i < size && line(i) === line(i - 1)) run++;
        else { if (run >= 5) score += run - 2; run = 1; }
      }
    }
    for (let b = 0; b < size; b++) {
      if (m[a][b]) darkCount++;
      if (a + 1 < size && b + 1 < size && m[a][b] === m[a][b + 1] && m[a][b] === m[a + 1][b] && m[a][b] === m[a + 1][b + 1]) score += 3;
    }
  }
  return score + Math.floor(Math.abs(darkCount * 20 - size * size * 10) / (size * size)) * 10;
}

function qrSvg(text) { // an SVG element, four modules of quiet zone around
  const m = qrMatrix(text), size = m.length + 8, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.setAttribute("role", "img");
  let d = "";
  m.forEach((row, y) => row.forEach((on, x) => { if (on) d += `M${x + 4},${y + 4}h1v1h-1z`; }));
  const bg = document.createElementNS(ns, "rect");
  for (const [k, v] of [["width", size], ["height", size], ["fill", "#fff"]]) bg.setAttribute(k, v);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d); path.setAttribute("fill", "#000");
  svg.append(bg, path);
  svg.dataset.modules = m.length;
  return svg;
}
