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
(function () {
const D = JSON.parse(document.getElementById('ap-data').textContent);
const METRICS = ['inuse-bytes', 'inuse-objects', 'alloc-bytes', 'alloc-objects'];
const METRIC_TEXT = ['in use, bytes', 'in use, objects', 'allocated, bytes', 'allocated, objects'];
const NO_STACK = '[no stack]';
const $ = (id) => document.getElementById(id);
const S = { proc: null, sel: 0, base: -1, metric: 0, tid: null, search: '', zoom: [], sort: null };

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
function prepare(P) {
  if (P.ready) return;
  P.nkeys = P.keys.length / 2;
  P.keyStack = Int32Array.from({ length: P.nkeys }, (_, i) => P.keys[2 * i]);
  P.keyTid = Float64Array.from({ length: P.nkeys }, (_, i) => P.keys[2 * i + 1]);
  // per stack: functions outermost first (flame graph), innermost function
  // (flat), distinct functions (cum); stack -1 and empty stacks: [no stack]
  P.sfuncs = P.stacks.map((s) => (s.length ? s.map(lineFunc).reverse() : [-1]));
  P.slines = P.stacks.map((s) => (s.length ? s.slice().reverse() : [-1]));
  P.cache = [null, null];
  P.threadName = new Map(P.threads.map(([t, n]) => [t, n]));
  P.ready = true;
  timelineSeries(P);
}
const stackFuncs = (P, si) => (si < 0 ? [-1] : P.sfuncs[si]);
const stackLines = (P, si) => (si < 0 ? [-1] : P.slines[si]);

/* State at dump index k: Float64Array [ao, ab, fo, fb] per key. Two caches
 * (the selected dump and the one compared with) go forward incrementally. */
function stateAt(P, k, slot) {
  let c = P.cache[slot];
  if (!c || c.k > k) c = P.cache[slot] = { k: -1, v: new Float64Array(4 * P.nkeys) };
  for (let d = c.k + 1; d <= k; d++) {
    const r = P.dumps[d].rows;
    for (let i = 0; i < r.length; i += 5) {
      const o = 4 * r[i];
      c.v[o] = r[i + 1]; c.v[o + 1] = r[i + 2]; c.v[o + 2] = r[i + 3]; c.v[o + 3] = r[i + 4];
    }
  }
  c.k = k;
  return c.v;
}
function metricOf(v, o, m) {
  switch (m) {
    case 0: return v[o + 1] - v[o + 3];
    case 1: return v[o] - v[o + 2];
    case 2: return v[o + 1];
    default: return v[o];
  }
}

/* Flat and cum per function, four metrics, for one state (report.c's rules):
 * keys summed per stack first; flat to the innermost function; cum once to
 * every distinct function of the stack. */
function aggregate(P, v, tid) {
  const per = new Map(); // stack -> Float64Array(4)
  for (let i = 0; i < P.nkeys; i++) {
    if (tid !== null && P.keyTid[i] !== tid) continue;
    const o = 4 * i;
    const vals = [metricOf(v, o, 0), metricOf(v, o, 1), metricOf(v, o, 2), metricOf(v, o, 3)];
    if (!vals[0] && !vals[1] && !vals[2] && !vals[3]) continue;
    const s = P.keyStack[i];
    let a = per.get(s);
    if (!a) per.set(s, a = new Float64Array(4));
    for (let m = 0; m < 4; m++) a[m] += vals[m];
  }
  const rows = new Map(); // func -> {flat, cum}
  const total = new Float64Array(4);
  const row = (f) => {
    let r = rows.get(f);
    if (!r) rows.set(f, r = { f, flat: new Float64Array(4), cum: new Float64Array(4), seen: -1 });
    return r;
  };
  let stamp = 0;
  for (const [s, a] of per) {
    if (!a[0] && !a[1] && !a[2] && !a[3]) continue;
    for (let m = 0; m < 4; m++) total[m] += a[m];
    const fs = stackFuncs(P, s);
    stamp++;
    for (let i = fs.length - 1; i >= 0; i--) {
      const r = row(fs[i]);
      if (i === fs.length - 1) for (let m = 0; m < 4; m++) r.flat[m] += a[m];
      if (r.seen !== stamp) { r.seen = stamp; for (let m = 0; m < 4; m++) r.cum[m] += a[m]; }
    }
  }
  return { rows, total };
}

/* Timeline series: the sites (innermost functions) that held the most in
 * use at any dump, their in use per dump, and the total. */
function timelineSeries(P) {
  const nf = D.funcs.length + 1;
  const inuse = new Float64Array(P.nkeys);
  const keyFunc = Int32Array.from({ length: P.nkeys }, (_, i) => {
    const fs = stackFuncs(P, P.keyStack[i]);
    return fs[fs.length - 1] + 1; // +1: [no stack] is 0
  });
  const sum = new Float64Array(nf), max = new Float64Array(nf);
  const sweep = (each) => {
    inuse.fill(0); sum.fill(0);
    let total = 0;
    P.dumps.forEach((d, k) => {
      const r = d.rows;
      for (let i = 0; i < r.length; i += 5) {
        const key = r[i], nv = r[i + 2] - r[i + 4];
        const f = keyFunc[key];
        sum[f] += nv - inuse[key]; total += nv - inuse[key];
        inuse[key] = nv;
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
  // axes and ticks
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4;
    el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#eef' }, svg);
    el('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, svg).textContent = fmtBytes(Math.round(v));
  }
  for (let i = 0; i <= 5; i++) {
    const t = t0 + (t1 - t0) * i / 5;
    el('text', { x: x(t), y: H - 8, 'text-anchor': 'middle' }, svg).textContent = t.toFixed(t1 < 10 ? 2 : 0) + ' s';
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
    Object.keys(REASON_COLORS).map((r) => `<span><i style="background:${REASON_COLORS[r]};border-radius:6px"></i>${r} dump</span>`).join('');
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
function buildTree() {
  const P = S.proc, m = S.metric;
  const root = { f: -2, v: 0, b: 0, ch: new Map(), lines: null, depth: 0 };
  const add = (v, slot) => {
    for (let i = 0; i < P.nkeys; i++) {
      if (S.tid !== null && P.keyTid[i] !== S.tid) continue;
      const x = metricOf(v, 4 * i, m);
      if (!x) continue;
      const fs = stackFuncs(P, P.keyStack[i]), ls = stackLines(P, P.keyStack[i]);
      let node = root;
      node[slot] += x;
      for (let j = 0; j < fs.length; j++) {
        let c = node.ch.get(fs[j]);
        if (!c) node.ch.set(fs[j], c = { f: fs[j], v: 0, b: 0, ch: new Map(), lines: new Set(), parent: node, depth: node.depth + 1 });
        c[slot] += x;
        c.lines.add(ls[j]);
        node = c;
      }
    }
  };
  add(stateAt(P, S.sel, 0), 'v');
  if (S.base >= 0) add(stateAt(P, S.base, 1), 'b');
  return root;
}
function nodePath(n) { const p = []; for (; n && n.f !== -2; n = n.parent) p.unshift(n.f); return p; }
function findPath(root, path) {
  let n = root;
  for (const f of path) { const c = n.ch.get(f); if (!c) return root; n = c; }
  return n;
}
let FLAME = null; // {root, nodes: [], total}
function searchRegex() {
  if (!S.search) return null;
  try { return new RegExp(S.search, 'i'); } catch (e) { return new RegExp(S.search.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'); }
}
function drawFlame() {
  const box = $('flame');
  const root = buildTree();
  const zoom = findPath(root, S.zoom);
  S.zoom = nodePath(zoom);
  const W = box.clientWidth || 1000, ROW = 18;
  const nodes = [];
  const frag = document.createDocumentFragment();
  const re = searchRegex();
  const diff = S.base >= 0;
  let maxDelta = 1;
  if (diff) (function walk(n) { maxDelta = Math.max(maxDelta, Math.abs(n.v - n.b)); n.ch.forEach(walk); })(zoom === root ? root : zoom);
  let depthMax = 0, matched = 0, matchedFrames = 0;
  const put = (n, left, width, anc) => {
    const i = nodes.length;
    nodes.push(n);
    const d = document.createElement('div');
    d.className = 'fr' + (n.f === -2 ? ' root' : '') + (anc ? ' anc' : '');
    d.style.left = (100 * left).toFixed(4) + '%';
    d.style.width = (100 * width).toFixed(4) + '%';
    d.style.top = (n.depth * ROW) + 'px';
    d.dataset.i = i;
    if (n.f !== -2) {
      if (diff) {
        const r = (n.v - n.b) / maxDelta;
        d.style.background = r > 0 ? `rgb(255,${Math.round(235 - 170 * r)},${Math.round(235 - 170 * r)})`
          : r < 0 ? `rgb(${Math.round(235 + 170 * r)},${Math.round(240 + 60 * r)},255)` : '#eceef2';
        d.dataset.change = r > 0 ? 'grow' : r < 0 ? 'shrink' : 'same';
      } else {
        d.style.background = moduleColor(funcModule(n.f));
      }
    }
    d.textContent = n.f === -2 ? `all: ${fmtMetric(S.metric, n.v)}` : funcName(n.f);
    if (width * W < 10) d.classList.add('narrow'); // no padding: a frame no wider than it is
    frag.appendChild(d);
    depthMax = Math.max(depthMax, n.depth);
  };
  // ancestors of the zoomed frame at full width, dimmed
  for (let a = zoom.parent; a; a = a.parent) put(a, 0, 1, true);
  const total = zoom.v || 1;
  const minFrac = 0.5 / W;
  const walk = (n, left, matchedAbove) => {
    const width = n.v / total;
    put(n, left, width, false);
    const hit = re && n.f !== -2 && re.test(funcName(n.f));
    if (hit) {
      frag.lastChild.classList.add('match');
      matchedFrames++;
      if (!matchedAbove) matched += n.v;
    }
    const kids = Array.from(n.ch.values()).filter((c) => c.v > 0)
      .sort((a, b) => (funcName(a.f) < funcName(b.f) ? -1 : funcName(a.f) > funcName(b.f) ? 1 : a.f - b.f));
    let x = left;
    for (const c of kids) {
      if (c.v / total >= minFrac) walk(c, x, matchedAbove || hit);
      else if (re && re.test(funcName(c.f)) && !(matchedAbove || hit)) matched += c.v; // too narrow to draw, still counted
      x += c.v / total;
    }
  };
  walk(zoom, 0, false);
  box.textContent = '';
  box.appendChild(frag);
  box.style.height = ((depthMax + 1) * ROW + 2) + 'px';
  FLAME = { root, zoom, nodes };
  const all = root.v;
  $('search-result').textContent = re
    ? `${matchedFrames} frame${matchedFrames === 1 ? '' : 's'} match: ${fmtMetric(S.metric, matched)} (${fmtPct(matched, all)} of all)`
    : '';
  $('flame-title').textContent = `Flame graph: ${METRIC_TEXT[S.metric]}, ${diff ? 'width: ' + dumpText(S.proc, S.sel) + ', colour: change since ' + dumpText(S.proc, S.base) : dumpText(S.proc, S.sel)}` +
    (S.tid !== null ? `, thread ${S.tid}` : '');
  const mods = new Map();
  if (!diff) nodes.forEach((n) => { if (n.f !== -2) mods.set(funcModule(n.f), 1); });
  $('flame-legend').innerHTML = diff
    ? '<span><i style="background:rgb(255,65,65)"></i>grew</span><span><i style="background:rgb(65,180,255)"></i>shrank</span><span><i style="background:#eceef2"></i>unchanged</span>'
    : Array.from(mods.keys()).sort((a, b) => a - b).map((m) => `<span><i style="background:${moduleColor(m)}"></i>${esc(m < 0 ? '[unknown module]' : D.modules[m])}</span>`).join('');
}
function frameTip(n) {
  const all = FLAME.root.v || 1;
  if (n.f === -2) return `all\n${fmtMetric(S.metric, n.v)} (${exact(S.metric, n.v)})`;
  const file = funcFile(n.f);
  const ls = Array.from(n.lines).map((l) => (l < 0 ? 0 : D.lines[l][1])).filter((x) => x).sort((a, b) => a - b);
  let where = file ? file + (ls.length === 1 ? ':' + ls[0] : ls.length ? ' (lines ' + ls.slice(0, 6).join(', ') + (ls.length > 6 ? ', ...' : '') + ')' : '') : '';
  const mod = funcModule(n.f);
  let t = funcName(n.f) + (where ? '\n' + where : '') + (mod >= 0 ? '\nmodule ' + D.modules[mod] : '') +
    `\n${fmtMetric(S.metric, n.v)} (${exact(S.metric, n.v)}), ${fmtPct(n.v, all)} of all`;
  if (S.base >= 0) t += `\nchange: ${fmtMetric(S.metric, n.v - n.b, true)} (was ${fmtMetric(S.metric, n.b)})`;
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
    S.zoom = nodePath(FLAME.nodes[d.dataset.i]);
    drawFlame();
  });
  $('reset-zoom').onclick = () => { S.zoom = []; drawFlame(); };
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { S.zoom = []; drawFlame(); }
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
  const a = aggregate(P, stateAt(P, S.sel, 0), S.tid);
  const b = diff ? aggregate(P, stateAt(P, S.base, 1), S.tid) : null;
  const keys = new Set(a.rows.keys());
  if (b) b.rows.forEach((_, k) => keys.add(k));
  const zero = { flat: new Float64Array(4), cum: new Float64Array(4) };
  const rows = Array.from(keys).map((f) => {
    const x = a.rows.get(f) || zero, y = b ? (b.rows.get(f) || zero) : null;
    const vals = [];
    for (let m = 0; m < 4; m++) vals.push(y ? x.flat[m] - y.flat[m] : x.flat[m], y ? x.cum[m] - y.cum[m] : x.cum[m]);
    return { f, vals };
  }).filter((r) => r.vals.some((v) => v));
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
    for (let m = 0; m < 4; m++) a[m] += metricOf(v, 4 * i, m);
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
  S.base = -1; S.tid = null; S.zoom = [];
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
  $('thread').onchange = (e) => { S.tid = e.target.value === '' ? null : +e.target.value; S.zoom = []; drawFlame(); drawFunctions(); };
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
}
// for tests and for the curious: the state and what the page drew
window.apReport = {
  data: D, state: S, lastDrawMs: 0,
  get flame() { return FLAME; },
  // the selected dump's functions as top --format json gives them
  functions() {
    const a = aggregate(S.proc, stateAt(S.proc, S.sel, 0), S.tid);
    return Array.from(a.rows.values()).map((r) => ({ name: funcName(r.f), file: funcFile(r.f), flat: Array.from(r.flat), cum: Array.from(r.cum) }));
  },
};
init();
})();
