/*
 * report.js — the page of `allocprof report` (html_report.c embeds the data
 * as JSON in #ap-data; its comment gives the format).
 *
 * A dump's state is rebuilt by applying the bucket rows of the process's
 * dumps up to it (each row replaces its key's state: the delta rule of the
 * profile). Figures follow report.c: in use = alloc - free; a row's flat
 * value is what stacks whose innermost frame is its function hold, its cum
 * value what stacks holding the function anywhere hold (once per stack);
 * a stack without frames counts under "[no stack]". So the page's figures
 * are top's, to the byte. Nothing here makes a request.
 */
'use strict';
function apReportPage() {
const T0 = performance.now();
const D = JSON.parse(document.getElementById('ap-data').textContent);
const T1 = performance.now();
const METRICS = ['inuse-bytes', 'inuse-objects', 'alloc-bytes', 'alloc-objects'];
const METRIC_TEXT = ['in use, bytes', 'in use, objects', 'allocated, bytes', 'allocated, objects'];
const NO_STACK = '[no stack]';
const $ = (id) => document.getElementById(id);
const S = { proc: null, sel: 0, base: -1, metric: 0, tid: null, search: '', zoom: 0, sort: null };

/* ---- formatting (cli/format.c's rules: three significant digits) ---- */
function scaled(v, plus, units, base, plainMax, sep) {
  const sign = v < 0 ? '-' : (plus && v > 0 ? '+' : '');
  let a = Math.abs(v);
  if (a <= plainMax) return sign + a.toFixed(0) + (units[0] ? sep : '') + units[0];
  let u = 0;
  while (a >= base && u + 1 < units.length) { a /= base; u++; }
  if (a >= 999.5 && u + 1 < units.length) { a /= base; u++; }
  return sign + a.toFixed(a < 9.995 ? 2 : a < 99.95 ? 1 : 0) + sep + units[u];
}
const fmtBytes = (v, plus) => scaled(v, plus, ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'], 1024, 1023, ' ');
const fmtCount = (v, plus) => scaled(v, plus, ['', 'k', 'M', 'G', 'T', 'P'], 1000, 99999, '');
const fmtMetric = (m, v, plus) => (m === 0 || m === 2 ? fmtBytes(v, plus) : fmtCount(v, plus));
const fmtPct = (part, whole) => (whole ? (100 * part / whole) : 0).toFixed(2) + '%';
const exact = (m, v) => v.toLocaleString('en-US') + (m === 0 || m === 2 ? ' B' : ' objects');
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
const base = (p) => (p ? p.slice(p.lastIndexOf('/') + 1) : '');

/* ---- symbols ---- */
const funcName = (f) => (f < 0 ? NO_STACK : D.funcs[f][0]);
const funcFile = (f) => (f < 0 ? null : D.funcs[f][1]);
const funcModule = (f) => (f < 0 || D.funcs[f][2] < 0 ? -1 : D.funcs[f][2]);
const lineFunc = (l) => (l < 0 ? -1 : D.lines[l][0]);
function lineLabel(l) {
  if (l < 0) return NO_STACK;
  const f = D.lines[l][0], file = funcFile(f), n = D.lines[l][1];
  return funcName(f) + (file ? ' ' + base(file) + (n ? ':' + n : '') : '');
}

/* ---- a process's data ---- */
/* prepare builds, once per process, a trie of its stacks (outermost frame
 * first, one node per function on a path; node ids grow from parent to
 * child) with each stack's leaf node, so a dump's flame graph is a sum over
 * stacks and one pass up the trie, for all four metrics at once. */
function prepare(P) {
  if (P.ready) return;
  P.nkeys = P.keys.length / 2;
  P.keyStack = new Int32Array(P.nkeys);
  P.keyTid = new Float64Array(P.nkeys);
  for (let i = 0; i < P.nkeys; i++) {
    P.keyStack[i] = P.keys[2 * i] < 0 ? P.stacks.length : P.keys[2 * i]; // [no stack] last
    P.keyTid[i] = P.tids[P.keys[2 * i + 1]];
  }
  const ns = P.stacks.length + 1;
  // per stack: functions and lines, outermost first; empty and missing: [no stack]
  P.sfuncs = new Array(ns);
  P.slines = new Array(ns);
  for (let s = 0; s < ns; s++) {
    const st = s < P.stacks.length ? P.stacks[s] : [];
    const lines = st.length ? st.slice().reverse() : [-1];
    P.slines[s] = lines;
    P.sfuncs[s] = Int32Array.from(lines, lineFunc);
  }
  const nf = D.funcs.length + 1;
  if (!D.nameRank) { // functions by name, for the order of frames
    const order = Array.from({ length: nf }, (_, i) => i - 1)
      .sort((x, y) => { const a = funcName(x), b = funcName(y); return a < b ? -1 : a > b ? 1 : x - y; });
    D.nameRank = new Int32Array(nf);
    order.forEach((f, r) => { D.nameRank[f + 1] = r; });
  }
  const func = [-2], parent = [-1], depth = [0], line = [-1];
  const child = new Map(); // parent * nf + function + 1 -> node
  P.multiLines = new Map(); // node -> Set of lines, for nodes reached from several lines
  P.leaf = new Int32Array(ns);
  for (let s = 0; s < ns; s++) {
    let n = 0;
    const fs = P.sfuncs[s], ls = P.slines[s];
    for (let j = 0; j < fs.length; j++) {
      const id = n * nf + fs[j] + 1;
      let c = child.get(id);
      if (c === undefined) {
        c = func.length;
        child.set(id, c);
        func.push(fs[j]); parent.push(n); depth.push(depth[n] + 1); line.push(ls[j]);
      } else if (line[c] !== ls[j]) {
        let set = P.multiLines.get(c);
        if (!set) P.multiLines.set(c, set = new Set([line[c]]));
        set.add(ls[j]);
      }
      n = c;
    }
    P.leaf[s] = n;
  }
  P.nnodes = func.length;
  P.nodeFunc = Int32Array.from(func);
  P.nodeParent = Int32Array.from(parent);
  P.nodeDepth = Int32Array.from(depth);
  P.nodeLine = Int32Array.from(line);
  // children in the order frames are drawn (by function name), as offsets
  // into one array: the children of n are kids[first[n] .. first[n + 1])
  const count = new Int32Array(P.nnodes + 1);
  for (let n = 1; n < P.nnodes; n++) count[P.nodeParent[n] + 1]++;
  for (let n = 0; n < P.nnodes; n++) count[n + 1] += count[n];
  const kids = new Int32Array(Math.max(P.nnodes - 1, 0)), fill = count.slice(0, P.nnodes);
  for (let n = 1; n < P.nnodes; n++) kids[fill[P.nodeParent[n]]++] = n;
  for (let n = 0; n < P.nnodes; n++) {
    if (count[n + 1] - count[n] > 1) {
      kids.subarray(count[n], count[n + 1]).sort((x, y) => D.nameRank[P.nodeFunc[x] + 1] - D.nameRank[P.nodeFunc[y] + 1]);
    }
  }
  P.kidFirst = count;
  P.kids = kids;
  P.cache = [null, null];
  P.evals = new Map();
  P.threadName = new Map(P.threads.map(([t, n]) => [t, n]));
  P.ready = true;
  timelineSeries(P);
}

/* State at dump index k: Float64Array [ao, ab, fo, fb] per key. A dump's
 * rows give, in key order, the gap from the previous row's key and the
 * change of the key's four counters. Two caches (the selected dump and the
 * one compared with) go forward incrementally. */
function stateAt(P, k, slot) {
  let c = P.cache[slot];
  if (!c || c.k > k) c = P.cache[slot] = { k: -1, v: new Float64Array(4 * P.nkeys) };
  const v = c.v;
  for (let d = c.k + 1; d <= k; d++) {
    const r = P.dumps[d].rows;
    for (let i = 0, key = 0; i < r.length; i += 5) {
      key += r[i];
      const o = 4 * key;
      v[o] += r[i + 1]; v[o + 1] += r[i + 2]; v[o + 2] += r[i + 3]; v[o + 3] += r[i + 4];
    }
  }
  c.k = k;
  return v;
}

/* A dump's figures for one thread or all (tid null), four metrics per
 * entry (in use bytes, in use objects, alloc bytes, alloc objects):
 * per stack (keys summed, as report.c sums buckets), per trie node
 * (inclusive), per function flat and cum (report.c's rules), and totals. */
function evaluate(P, k, tid, slot) {
  const id = k + '|' + tid;
  const hit = P.evals.get(id);
  if (hit) return hit;
  const v = stateAt(P, k, slot);
  const ns = P.stacks.length + 1;
  const stack = new Float64Array(4 * ns);
  for (let i = 0; i < P.nkeys; i++) {
    if (tid !== null && P.keyTid[i] !== tid) continue;
    const o = 4 * i, s = 4 * P.keyStack[i];
    stack[s] += v[o + 1] - v[o + 3];
    stack[s + 1] += v[o] - v[o + 2];
    stack[s + 2] += v[o + 1];
    stack[s + 3] += v[o];
  }
  const node = new Float64Array(4 * P.nnodes);
  for (let s = 0; s < ns; s++) {
    const o = 4 * P.leaf[s];
    for (let m = 0; m < 4; m++) node[o + m] += stack[4 * s + m];
  }
  for (let n = P.nnodes - 1; n > 0; n--) {
    const o = 4 * n, p = 4 * P.nodeParent[n];
    for (let m = 0; m < 4; m++) node[p + m] += node[o + m];
  }
  const nf = D.funcs.length + 1; // function f at f + 1; [no stack] at 0
  const flat = new Float64Array(4 * nf), cum = new Float64Array(4 * nf), seen = new Int32Array(nf);
  const present = new Uint8Array(nf);
  for (let s = 0; s < ns; s++) {
    const o = 4 * s;
    if (!stack[o] && !stack[o + 1] && !stack[o + 2] && !stack[o + 3]) continue;
    const fs = P.sfuncs[s];
    const leaf = 4 * (fs[fs.length - 1] + 1);
    for (let m = 0; m < 4; m++) flat[leaf + m] += stack[o + m];
    for (let j = 0; j < fs.length; j++) {
      const f = fs[j] + 1;
      present[f] = 1;
      if (seen[f] === s + 1) continue;
      seen[f] = s + 1;
      for (let m = 0; m < 4; m++) cum[4 * f + m] += stack[o + m];
    }
  }
  const e = { stack, node, flat, cum, present, total: Array.from(node.subarray(0, 4)) };
  if (P.evals.size > 8) P.evals.clear();
  P.evals.set(id, e);
  return e;
}

/* Timeline series: the sites (innermost functions) that held the most in
 * use at any dump, their in use per dump, and the total. */
function timelineSeries(P) {
  const nf = D.funcs.length + 1;
  const keyFunc = new Int32Array(P.nkeys);
  for (let i = 0; i < P.nkeys; i++) {
    const fs = P.sfuncs[P.keyStack[i]];
    keyFunc[i] = fs[fs.length - 1] + 1;
  }
  const sum = new Float64Array(nf), max = new Float64Array(nf);
  const sweep = (each) => {
    sum.fill(0);
    let total = 0;
    P.dumps.forEach((d, k) => {
      const r = d.rows;
      for (let i = 0, key = 0; i < r.length; i += 5) {
        key += r[i];
        const dv = r[i + 2] - r[i + 4];
        sum[keyFunc[key]] += dv; total += dv;
      }
      each(k, total);
    });
  };
  sweep(() => { for (let f = 0; f < nf; f++) if (sum[f] > max[f]) max[f] = sum[f]; });
  const top = Array.from(max.keys()).filter((f) => max[f] > 0).sort((a, b) => max[b] - max[a] || a - b).slice(0, 10);
  P.series = top.map((f) => ({ f: f - 1, v: new Float64Array(P.dumps.length) }));
  P.totals = new Float64Array(P.dumps.length);
  sweep((k, total) => {
    P.totals[k] = total;
    P.series.forEach((s) => { s.v[k] = sum[s.f + 1]; });
  });
}

/* ---- colours ---- */
function moduleColor(m) {
  if (m < 0) return 'hsl(0,0%,78%)';
  const h = (m * 137.508 + 20) % 360;
  return `hsl(${h.toFixed(0)},62%,${m % 2 ? 72 : 64}%)`;
}
const SERIES_COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#86bcb6'];
const REASON_COLORS = { exit: '#222', interval: '#4e79a7', peak: '#e15759', request: '#59a14f' };

/* ---- header and selection ---- */
function dumpText(P, k) {
  const d = P.dumps[k];
  return `dump ${d.id} (${d.reason}, ${d.t.toFixed(2)} s)`;
}
function header() {
  const P = S.proc, d = P.dumps[S.sel];
  let h = `Process ${P.id} (pid ${P.pid}) ${esc(base(P.exe))}: ${esc(dumpText(P, S.sel))}`;
  if (S.base >= 0) h += ` compared with ${esc(dumpText(P, S.base))} <button type="button" id="clear-compare">Stop comparing</button>`;
  $('selection').innerHTML = h;
  const cc = $('clear-compare');
  if (cc) cc.onclick = () => { S.base = -1; update(); };
  let note = P.rate > 1
    ? `Estimates from ${d.samples.toLocaleString('en-US')} samples at one per ${fmtBytes(P.rate)} on average`
    : 'Every allocation was recorded (rate 1): figures are exact';
  if (d.st) note += `; the allocator counts ${fmtBytes(d.st[0])} in use exactly`;
  if (d.mem) note += `; the process's RSS was ${fmtBytes(d.mem[0])} (peak ${fmtBytes(d.mem[1])})`;
  if (P.id === D.initial.process && D.initial.why && P.dumps[S.sel].id === D.initial.dump && S.base < 0)
    note += `. Opened on ${D.initial.why.replace(/; -d ID chooses another$/, '')}`;
  $('estimate').textContent = note + '.';
}

/* ---- timeline ---- */
const SVGNS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function drawTimeline() {
  const P = S.proc, svg = $('timeline');
  svg.textContent = '';
  const W = svg.clientWidth || 1000, H = svg.clientHeight || 260;
  const L = 70, R = 12, T = 10, B = 28;
  const n = P.dumps.length;
  const lines = [
    { name: 'in use (allocator, exact)', k: (d) => (d.st ? d.st[0] : null), c: '#111', dash: '' },
    { name: 'cached and free', k: (d) => (d.st ? d.st[7] + d.st[5] : null), c: '#8a8f99', dash: '4 3' },
    { name: 'metadata', k: (d) => (d.st ? d.st[8] : null), c: '#b07aa1', dash: '2 2' },
    { name: 'mapped', k: (d) => (d.st ? d.st[4] : null), c: '#555', dash: '8 3' },
    { name: 'process RSS', k: (d) => (d.mem ? d.mem[0] : null), c: '#d37295', dash: '' },
  ];
  let ymax = 1;
  P.dumps.forEach((d, k) => {
    ymax = Math.max(ymax, P.totals[k]);
    lines.forEach((l) => { const v = l.k(d); if (v !== null) ymax = Math.max(ymax, v); });
  });
  const t0 = 0, t1 = Math.max(P.dumps[n - 1].t, 1e-3);
  const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0 || 1);
  const y = (v) => T + (H - T - B) * (1 - v / ymax);
  // axes and ticks at round steps (1, 2 or 5 times a power of ten; bytes in
  // their unit's powers of two)
  const nice = (range, n) => {
    const raw = range / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].map((k) => k * p).find((k) => k >= raw);
  };
  const unit = Math.pow(1024, Math.max(0, Math.floor(Math.log(ymax) / Math.log(1024))));
  const ystep = nice(ymax / unit, 4) * unit;
  for (let v = 0; v <= ymax * 1.0001; v += ystep) {
    el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#eef' }, svg);
    el('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, svg).textContent = fmtBytes(Math.round(v));
  }
  const tstep = nice(t1 - t0, 6), tdec = Math.max(0, -Math.floor(Math.log10(tstep) + 1e-9));
  for (let t = 0; t <= t1 * 1.0001; t += tstep) {
    el('text', { x: x(t), y: H - 8, 'text-anchor': 'middle' }, svg).textContent = t.toFixed(tdec) + ' s';
  }
  // stacked areas: the top sites, then the rest
  const layers = P.series.map((s, i) => ({ name: funcName(s.f), v: s.v, c: SERIES_COLORS[i % 10] }));
  const rest = P.totals.map((t, k) => t - P.series.reduce((a, s) => a + s.v[k], 0));
  layers.push({ name: 'other', v: rest, c: '#d5d8de' });
  const acc = new Float64Array(n);
  layers.forEach((l) => {
    const lo = Array.from(acc), hi = lo.map((a, k) => a + Math.max(0, l.v[k]));
    let dpath = '';
    for (let k = 0; k < n; k++) dpath += (k ? 'L' : 'M') + x(P.dumps[k].t).toFixed(1) + ',' + y(hi[k]).toFixed(1);
    for (let k = n - 1; k >= 0; k--) dpath += 'L' + x(P.dumps[k].t).toFixed(1) + ',' + y(lo[k]).toFixed(1);
    el('path', { d: dpath + 'Z', fill: l.c, 'fill-opacity': 0.85, class: 'area' }, svg).appendChild(
      el('title', {})).textContent = l.name;
    hi.forEach((h, k) => { acc[k] = h; });
  });
  lines.forEach((l) => {
    let dpath = '', pen = 'M';
    P.dumps.forEach((d) => {
      const v = l.k(d);
      if (v === null) { pen = 'M'; return; }
      dpath += pen + x(d.t).toFixed(1) + ',' + y(v).toFixed(1); pen = 'L';
    });
    l.drawn = !!dpath;
    if (dpath) el('path', { d: dpath, fill: 'none', stroke: l.c, 'stroke-width': 1.6, 'stroke-dasharray': l.dash, class: 'line' }, svg);
  });
  // one point per dump, at its estimated total
  P.dumps.forEach((d, k) => {
    const c = el('circle', {
      cx: x(d.t), cy: y(P.totals[k]), r: 5, fill: REASON_COLORS[d.reason] || '#999',
      class: 'pt' + (k === S.sel ? ' sel' : '') + (k === S.base ? ' base' : ''), 'data-k': k, 'data-dump': d.id,
    }, svg);
    el('title', {}, c).textContent = `dump ${d.id}: ${d.reason} at ${d.t.toFixed(3)} s, ${fmtBytes(P.totals[k])} in use (estimate)` +
      (d.st ? `, ${fmtBytes(d.st[0])} exact` : '');
    c.addEventListener('click', (e) => selectDump(k, e.shiftKey));
  });
  $('timeline-legend').innerHTML =
    layers.map((l) => `<span><i style="background:${l.c}"></i>${esc(l.name)}</span>`).join('') +
    lines.filter((l) => l.drawn).map((l) => `<span><i class="line" style="background:${l.c}"></i>${esc(l.name)}</span>`).join('') +
    Object.keys(REASON_COLORS).filter((r) => P.dumps.some((d) => d.reason === r)).map((r) => `<span><i style="background:${REASON_COLORS[r]};border-radius:6px"></i>${r} dump</span>`).join('');
}
function selectDump(k, compare) {
  if (compare && k !== S.sel) {
    const a = Math.min(k, S.sel), b = Math.max(k, S.sel);
    S.base = a; S.sel = b;
  } else {
    S.sel = k; S.base = -1;
  }
  update();
}

/* ---- flame graph ---- */
let FLAME = null; // what is drawn: {e (evaluation), eb (base's), zoom, nodes: [node id per div]}
function searchRegex() {
  if (!S.search) return null;
  try { return new RegExp(S.search, 'i'); } catch (e) { return new RegExp(S.search.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'); }
}
function drawFlame() {
  const P = S.proc, box = $('flame'), m = S.metric;
  const e = evaluate(P, S.sel, S.tid, 0);
  const diff = S.base >= 0;
  const eb = diff ? evaluate(P, S.base, S.tid, 1) : null;
  const val = (n) => e.node[4 * n + m];
  let zoom = S.zoom > 0 && S.zoom < P.nnodes && val(S.zoom) > 0 ? S.zoom : 0;
  S.zoom = zoom;
  const W = box.clientWidth || 1000, ROW = 18;
  const nodes = [];
  let html = '';
  const re = searchRegex();
  const hitFunc = new Map();
  const isHit = (f) => { let h = hitFunc.get(f); if (h === undefined) hitFunc.set(f, h = re.test(funcName(f))); return h; };
  let maxDelta = 1;
  if (diff) for (let n = 0; n < P.nnodes; n++) maxDelta = Math.max(maxDelta, Math.abs(val(n) - eb.node[4 * n + m]));
  let depthMax = 0, matchedFrames = 0;
  const put = (n, left, width, anc, hit) => {
    const i = nodes.length;
    nodes.push(n);
    let cls = 'fr' + (n === 0 ? ' root' : '') + (anc ? ' anc' : '') + (width * W < 10 ? ' narrow' : '') + (hit ? ' match' : '');
    let style = `left:${(100 * left).toFixed(4)}%;width:${(100 * width).toFixed(4)}%;top:${P.nodeDepth[n] * ROW}px`;
    let change = '';
    if (n !== 0) {
      if (diff) {
        const r = (val(n) - eb.node[4 * n + m]) / maxDelta;
        style += r > 0 ? `;background:rgb(255,${Math.round(235 - 170 * r)},${Math.round(235 - 170 * r)})`
          : r < 0 ? `;background:rgb(${Math.round(235 + 170 * r)},${Math.round(240 + 60 * r)},255)` : ';background:#eceef2';
        change = ` data-change="${r > 0 ? 'grow' : r < 0 ? 'shrink' : 'same'}"`;
      } else {
        style += ';background:' + moduleColor(funcModule(P.nodeFunc[n]));
      }
    }
    const text = n === 0 ? `all: ${fmtMetric(m, val(0))}` : funcName(P.nodeFunc[n]);
    html += `<div class="${cls}" style="${style}" data-i="${i}"${change}>${esc(text)}</div>`;
    if (P.nodeDepth[n] > depthMax) depthMax = P.nodeDepth[n];
  };
  // ancestors of the zoomed frame at full width, dimmed
  for (let a = P.nodeParent[zoom]; zoom && a >= 0; a = P.nodeParent[a]) put(a, 0, 1, true, false);
  const total = val(zoom) || 1;
  const minFrac = 0.5 / W;
  const walk = (n, left) => {
    const hit = !!re && n !== 0 && isHit(P.nodeFunc[n]);
    matchedFrames += hit;
    put(n, left, val(n) / total, false, hit);
    let x = left;
    for (let j = P.kidFirst[n]; j < P.kidFirst[n + 1]; j++) {
      const c = P.kids[j], w = val(c) / total;
      if (w <= 0) continue;
      if (w >= minFrac) walk(c, x);
      x += w;
    }
  };
  walk(zoom, 0);
  box.innerHTML = html;
  box.style.height = ((depthMax + 1) * ROW + 2) + 'px';
  FLAME = { e, eb, zoom, nodes };
  // search: the sum of the matching frames, a match inside a match once,
  // narrow frames included (all of the trie, not only what is drawn)
  let matched = 0;
  if (re) {
    const under = new Uint8Array(P.nnodes);
    for (let n = 1; n < P.nnodes; n++) {
      const p = P.nodeParent[n];
      if (under[p]) { under[n] = 1; continue; }
      if (isHit(P.nodeFunc[n])) { under[n] = 1; matched += val(n); }
    }
  }
  const all = val(0);
  $('search-result').textContent = re
    ? `${matchedFrames} frame${matchedFrames === 1 ? '' : 's'} match: ${fmtMetric(m, matched)} (${fmtPct(matched, all)} of all)`
    : '';
  $('flame-title').textContent = `Flame graph: ${METRIC_TEXT[m]}, ${diff ? 'width: ' + dumpText(P, S.sel) + ', colour: change since ' + dumpText(P, S.base) : dumpText(P, S.sel)}` +
    (S.tid !== null ? `, thread ${S.tid}` : '');
  const mods = new Set();
  if (!diff) nodes.forEach((n) => { if (n) mods.add(funcModule(P.nodeFunc[n])); });
  $('flame-legend').innerHTML = diff
    ? '<span><i style="background:rgb(255,65,65)"></i>grew</span><span><i style="background:rgb(65,180,255)"></i>shrank</span><span><i style="background:#eceef2"></i>unchanged</span>'
    : Array.from(mods).sort((a, b) => a - b).map((x) => `<span><i style="background:${moduleColor(x)}"></i>${esc(x < 0 ? '[unknown module]' : D.modules[x])}</span>`).join('');
}
function frameTip(n) {
  const P = S.proc, m = S.metric, v = FLAME.e.node[4 * n + m], all = FLAME.e.node[m] || 1;
  if (n === 0) return `all\n${fmtMetric(m, v)} (${exact(m, v)})`;
  const f = P.nodeFunc[n], file = funcFile(f);
  const lines = P.multiLines.get(n) || new Set([P.nodeLine[n]]);
  const ls = Array.from(lines).map((l) => (l < 0 ? 0 : D.lines[l][1])).filter((x) => x).sort((a, b) => a - b);
  const where = file ? file + (ls.length === 1 ? ':' + ls[0] : ls.length ? ' (lines ' + ls.slice(0, 6).join(', ') + (ls.length > 6 ? ', ...' : '') + ')' : '') : '';
  const mod = funcModule(f);
  let t = funcName(f) + (where ? '\n' + where : '') + (mod >= 0 ? '\nmodule ' + D.modules[mod] : '') +
    `\n${fmtMetric(m, v)} (${exact(m, v)}), ${fmtPct(v, all)} of all`;
  if (FLAME.eb) {
    const b = FLAME.eb.node[4 * n + m];
    t += `\nchange: ${fmtMetric(m, v - b, true)} (was ${fmtMetric(m, b)})`;
  }
  return t;
}
function flameEvents() {
  const box = $('flame'), tip = $('tip');
  box.addEventListener('mousemove', (e) => {
    const d = e.target.closest('.fr');
    if (!d || !FLAME) { tip.hidden = true; return; }
    tip.textContent = frameTip(FLAME.nodes[d.dataset.i]);
    tip.hidden = false;
    const x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    tip.style.left = x + 'px';
    tip.style.top = (e.clientY + 16) + 'px';
  });
  box.addEventListener('mouseleave', () => { tip.hidden = true; });
  box.addEventListener('click', (e) => {
    const d = e.target.closest('.fr');
    if (!d) return;
    S.zoom = FLAME.nodes[d.dataset.i];
    drawFlame();
  });
  $('reset-zoom').onclick = () => { S.zoom = 0; drawFlame(); };
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { S.zoom = 0; drawFlame(); }
    if ((e.ctrlKey || e.metaKey) && e.key === 'f') { e.preventDefault(); $('search').focus(); }
  });
  let timer = 0;
  $('search').addEventListener('input', (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => { S.search = e.target.value; drawFlame(); }, 120);
  });
}

/* ---- tables ---- */
function table(head, rows, sortCol, onSort) {
  let h = '<table><thead><tr>' + head.map((c, i) =>
    `<th class="${c.name ? 'name' : ''}${i === sortCol ? ' sorted' : ''}" data-col="${i}">${esc(c.label)}</th>`).join('') + '</tr></thead><tbody>';
  h += rows.join('') + '</tbody></table>';
  const div = document.createElement('div');
  div.innerHTML = h;
  if (onSort) div.querySelectorAll('th').forEach((th) => { th.onclick = () => onSort(+th.dataset.col); });
  return div;
}
function funcCell(f) {
  const file = funcFile(f);
  return `<td class="name" title="${esc(file || '')}">${esc(funcName(f))}${file ? ' <small>' + esc(base(file)) + '</small>' : ''}</td>`;
}
function drawFunctions() {
  const P = S.proc, diff = S.base >= 0;
  const a = evaluate(P, S.sel, S.tid, 0);
  const b = diff ? evaluate(P, S.base, S.tid, 1) : null;
  const nf = D.funcs.length + 1;
  const rows = [];
  for (let f = 0; f < nf; f++) {
    if (!a.present[f] && !(b && b.present[f])) continue;
    const vals = new Array(8);
    let any = false;
    for (let m = 0; m < 4; m++) {
      vals[2 * m] = a.flat[4 * f + m] - (b ? b.flat[4 * f + m] : 0);
      vals[2 * m + 1] = a.cum[4 * f + m] - (b ? b.cum[4 * f + m] : 0);
      any = any || vals[2 * m] || vals[2 * m + 1];
    }
    if (any) rows.push({ f: f - 1, vals });
  }
  const col = S.sort === null ? 2 * S.metric + 1 : S.sort; // column index into vals + 1
  const key = (r) => (diff ? Math.abs(r.vals[col - 1]) : r.vals[col - 1]);
  rows.sort((p, q) => key(q) - key(p) || (funcName(p.f) < funcName(q.f) ? -1 : funcName(p.f) > funcName(q.f) ? 1 : 0));
  const head = [{ label: 'function', name: true }];
  for (let m = 0; m < 4; m++) head.push({ label: `${METRICS[m]} flat${diff ? ' change' : ''}` }, { label: `${METRICS[m]} cum${diff ? ' change' : ''}` });
  const shown = rows.slice(0, 200);
  const html = shown.map((r) => `<tr data-func="${esc(funcName(r.f))}">` + funcCell(r.f) + r.vals.map((v, i) =>
    `<td class="${diff ? (v > 0 ? 'grow' : v < 0 ? 'shrink' : '') : ''}" title="${esc(exact(i >> 1, v))}">${fmtMetric(i >> 1, v, diff)}</td>`).join('') + '</tr>');
  const box = $('tab-functions');
  box.textContent = '';
  const note = document.createElement('div');
  note.className = 'note';
  note.textContent = (diff ? `Changes from ${dumpText(P, S.base)} to ${dumpText(P, S.sel)}, largest first. ` : '') +
    `Total ${METRIC_TEXT[S.metric]}: ${fmtMetric(S.metric, a.total[S.metric])}` +
    (diff ? ` (was ${fmtMetric(S.metric, b.total[S.metric])})` : '') +
    `. flat: allocated by the function itself; cum: by it or anything it called. ${rows.length} functions` +
    (rows.length > shown.length ? `, the first ${shown.length} shown` : '') + '. Click a column to sort.';
  box.appendChild(note);
  box.appendChild(table(head, html, col, (c) => { if (c > 0) { S.sort = c; drawFunctions(); } }));
}
function stackHtml(lines) {
  return '<div class="stack">' + lines.map((l) => esc(lineLabel(l))).join('\n') + '</div>';
}
function drawLeaks() {
  const P = S.proc, L = P.leaks, box = $('tab-leaks');
  if (!L) { box.innerHTML = '<p class="note">This process has no exit dump (killed, or still running when the profile was read).</p>'; return; }
  let h = `<p>Still in use at exit (dump ${L.dump}): <b>${fmtBytes(L.bytes)}</b> in ${fmtCount(L.objects)} objects from ${L.stacks.length} call stack${L.stacks.length === 1 ? '' : 's'}.</p>`;
  if (L.caveat) h += `<p class="note">${esc(L.caveat)}.</p>`;
  if (L.sup_stacks) {
    h += `<p class="note">Suppressed: ${fmtBytes(L.sup_bytes)} in ${fmtCount(L.sup_objects)} objects from ${L.sup_stacks} call stacks (the loader's, libc's own, the program's __lsan_default_suppressions; 'allocprof leaks --no-suppress' shows them): ` +
      L.rules.map((r) => `leak:${esc(r[0])} (${esc(r[1])}) ${fmtBytes(r[3])}`).join('; ') + '</p>';
  }
  const rows = L.stacks.slice(0, 500).map(([st, v], i) =>
    `<tr><td>${i + 1}</td><td title="${esc(exact(0, v[0]))}">${fmtBytes(v[0])}</td><td>${fmtCount(v[1])}</td><td>${fmtPct(v[0], L.bytes)}</td>` +
    `<td class="name"><details><summary>${esc(lineLabel(st.length ? st[0] : -1))}</summary>${stackHtml(st.length ? st : [-1])}</details></td></tr>`);
  box.innerHTML = h;
  box.appendChild(table([{ label: '#' }, { label: 'in use' }, { label: 'objects' }, { label: 'share' }, { label: 'allocated at (click for the stack)', name: true }], rows, -1, null));
}
function drawThreads() {
  const P = S.proc, v = stateAt(P, S.sel, 0);
  const per = new Map();
  for (let i = 0; i < P.nkeys; i++) {
    const t = P.keyTid[i];
    let a = per.get(t);
    if (!a) per.set(t, a = [0, 0, 0, 0]);
    const o = 4 * i;
    a[0] += v[o + 1] - v[o + 3]; a[1] += v[o] - v[o + 2]; a[2] += v[o + 1]; a[3] += v[o];
  }
  const rows = Array.from(per).filter(([, a]) => a.some((x) => x)).sort((p, q) => q[1][S.metric] - p[1][S.metric] || p[0] - q[0]);
  $('tab-threads').textContent = '';
  $('tab-threads').appendChild(table([{ label: 'thread' }, { label: 'name', name: true }].concat(METRICS.map((m) => ({ label: m }))),
    rows.map(([t, a]) => `<tr><td>${t}</td><td class="name">${esc(P.threadName.get(t) || '')}</td>` +
      a.map((x, m) => `<td title="${esc(exact(m, x))}">${fmtMetric(m, x)}</td>`).join('') + '</tr>'), 2 + S.metric, null));
}
function drawProcesses() {
  const box = $('tab-processes');
  const rows = D.processes.map((p) => {
    let cmd = p.cmdline;
    try { cmd = JSON.parse(p.cmdline).join(' '); } catch (e) { /* as stored */ }
    return `<tr><td>${p.embedded ? `<button type="button" class="link" data-proc="${p.id}">${p.id}</button>` : p.id}</td>` +
      `<td>${p.pid}</td><td>${p.parent || ''}</td><td>${p.ndumps}</td><td>${fmtBytes(p.alloc_bytes)}</td><td>${fmtBytes(p.inuse_bytes)}</td>` +
      `<td class="name" title="${esc(p.exe)}">${esc(cmd)}${p.embedded || !p.ndumps ? '' : ' <small>(not in this page: allocprof report -p ' + p.id + ')</small>'}</td></tr>`;
  });
  box.innerHTML = `<p class="note">${D.processes.length} process${D.processes.length === 1 ? '' : 'es'} in the profile; click a process to show it. parent: the process row it was forked from.</p>`;
  box.appendChild(table([{ label: 'process' }, { label: 'pid' }, { label: 'parent' }, { label: 'dumps' }, { label: 'allocated' }, { label: 'in use at its last dump' }, { label: 'command', name: true }], rows, -1, null));
  box.querySelectorAll('button[data-proc]').forEach((b) => { b.onclick = () => showProcess(+b.dataset.proc); });
}
function drawAllocator() {
  const P = S.proc, d = P.dumps[S.sel], box = $('tab-allocator');
  if (!d.st) { box.innerHTML = '<p class="note">No allocator statistics at this dump.</p>'; return; }
  const s = d.st, resident = s[4] - s[6];
  const rows = [
    ['in use', s[0], `small ${fmtBytes(s[1])}, large ${fmtBytes(s[2])}, huge ${fmtBytes(s[3])}`],
    ['mapped', s[4], 'address space it has made usable'],
    ['resident', resident, 'of that, pages that hold memory now'],
    ['free, resident', s[5], ''],
    ['not resident', s[6], `never touched, or given back; given back so far: ${fmtBytes(s[9])}`],
    ['cached', s[7], 'thread caches and central lists'],
    ['metadata', s[8], ''],
  ].map(([k, v, n]) => `<tr><td class="name">${k}</td><td title="${esc(exact(0, v))}">${fmtBytes(v)}</td><td class="name note">${esc(n)}</td></tr>`);
  rows.push(`<tr><td class="name">fragmentation</td><td>${fmtPct(resident - s[0], resident)}</td><td class="name note">1 - in use / resident</td></tr>`);
  if (d.mem) {
    rows.push(`<tr><td class="name">process RSS</td><td>${fmtBytes(d.mem[0])}</td><td class="name note">the kernel's count when the dump was written</td></tr>`);
    rows.push(`<tr><td class="name">process peak RSS</td><td>${fmtBytes(d.mem[1])}</td><td class="name note">high-water mark since start (VmHWM)</td></tr>`);
  }
  box.innerHTML = `<p class="note">The allocator's own figures at ${esc(dumpText(P, S.sel))}, exact (not sampled); its memory, not the process's RSS.</p>`;
  box.appendChild(table([{ label: 'figure', name: true }, { label: 'bytes' }, { label: '', name: true }], rows, -1, null));
}

/* ---- wiring ---- */
function update() {
  const t0 = performance.now();
  header();
  drawTimeline();
  drawFlame();
  drawFunctions();
  drawLeaks();
  drawThreads();
  drawAllocator();
  window.apReport.lastDrawMs = performance.now() - t0;
}
function showProcess(id, dumpId) {
  const P = D.processes.find((p) => p.id === id && p.embedded);
  if (!P) return;
  S.proc = P;
  prepare(P);
  const k = dumpId !== undefined ? P.dumps.findIndex((d) => d.id === dumpId) : P.dumps.length - 1;
  S.sel = k >= 0 ? k : P.dumps.length - 1;
  S.base = -1; S.tid = null; S.zoom = 0;
  $('process').value = String(id);
  const th = $('thread');
  th.innerHTML = '<option value="">all</option>' + P.threads.map(([t, n]) => `<option value="${t}">${t}${n ? ' (' + esc(n) + ')' : ''}</option>`).join('');
  update();
  drawProcesses();
}
function init() {
  $('file').textContent = D.file;
  $('process').innerHTML = D.processes.filter((p) => p.embedded).map((p) =>
    `<option value="${p.id}">${p.id}: pid ${p.pid} ${esc(base(p.exe))} (${fmtBytes(p.alloc_bytes)} allocated)</option>`).join('');
  $('process').onchange = (e) => showProcess(+e.target.value);
  $('thread').onchange = (e) => { S.tid = e.target.value === '' ? null : +e.target.value; S.zoom = 0; drawFlame(); drawFunctions(); };
  document.querySelectorAll('input[name=metric]').forEach((r) => {
    r.onchange = () => {
      const t0 = performance.now();
      S.metric = +r.value; S.sort = null;
      drawFlame(); drawFunctions(); drawThreads();
      window.apReport.lastDrawMs = performance.now() - t0;
    };
  });
  document.querySelectorAll('#tabs button').forEach((b) => {
    b.onclick = () => {
      document.querySelectorAll('#tabs button, .tab').forEach((x) => x.classList.remove('on'));
      b.classList.add('on');
      $('tab-' + b.dataset.tab).classList.add('on');
    };
  });
  flameEvents();
  let rs = 0;
  window.addEventListener('resize', () => { clearTimeout(rs); rs = setTimeout(() => { drawTimeline(); drawFlame(); }, 150); });
  showProcess(D.initial.process, D.initial.dump);
  // since the navigation started: the script began at scriptMs, the data
  // was parsed at parsedMs, the page drawn at readyMs
  Object.assign(window.apReport, { scriptMs: T0, parsedMs: T1, readyMs: performance.now() });
}
// for tests and for the curious: the state and what the page drew
window.apReport = {
  data: D, state: S, lastDrawMs: 0,
  get flame() { return FLAME; },
  // the selected dump's functions as top --format json gives them
  functions() {
    const e = evaluate(S.proc, S.sel, S.tid, 0), out = [];
    for (let f = 0; f < e.present.length; f++) {
      if (e.present[f]) out.push({ name: funcName(f - 1), file: funcFile(f - 1), flat: Array.from(e.flat.subarray(4 * f, 4 * f + 4)), cum: Array.from(e.cum.subarray(4 * f, 4 * f + 4)) });
    }
    return out;
  },
};
init();
}
apReportPage();
