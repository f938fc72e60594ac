/**
 * The dashboard page (`GET /dashboard`): plain HTML and one script, no build step and no external
 * assets, so the coordinator's strict Content-Security-Policy (helmet: scripts from 'self' only)
 * holds. The script joins the live feed (shared/protocol/dashboard.ts) with the admin token from the
 * URL fragment (`/dashboard#token=...`, never sent to the server in a request line) or a form, and
 * renders with textContent only (job data never becomes markup).
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fedlora coordinator</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin: 0 0 .4em; }
.job { border: 1px solid #ccc; border-radius: 6px; padding: 1em; margin: 1em 0; }
.status-running { color: #06c; } .status-completed { color: #080; } .status-failed { color: #c00; } .status-pending { color: #888; }
table { border-collapse: collapse; margin: .4em 0; } td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
.bar { width: 240px; height: 10px; background: #eee; display: inline-block; vertical-align: middle; }
.bar > span { display: block; height: 100%; background: #c60; }
svg { background: #fafafa; border: 1px solid #eee; }
svg text { font: 10px system-ui, sans-serif; fill: #555; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
table.rounds td { text-align: right; }
</style>
</head>
<body>
<h1>fedlora coordinator</h1>
<form id="login" hidden><label>Admin token <input id="token" type="password" autocomplete="off"></label> <button>Connect</button></form>
<p id="status">connecting...</p>
<div id="jobs"></div>
<script src="/socket.io/socket.io.min.js"></script>
<script src="/dashboard.js"></script>
</body>
</html>
`;

export const DASHBOARD_JS = `(function () {
  'use strict';
  var jobs = {};
  var order = [];
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; }
  function row(cells, head) { var tr = el('tr'); cells.forEach(function (c) { tr.appendChild(el(head ? 'th' : 'td', c)); }); return tr; }
  function table(head, rows) { var t = el('table'); t.appendChild(row(head, true)); rows.forEach(function (r) { t.appendChild(row(r)); }); return t; }
  // The metrics charted per round: key in the round's metrics, title, unit of the y axis.
  var METRICS = [['loss', 'loss', 'nats per example'], ['train_loss', 'train loss', 'nats per token'], ['accuracy', 'accuracy', 'fraction correct']];
  function svgEl(tag, attrs, text) { var e = document.createElementNS('http://www.w3.org/2000/svg', tag); Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); }); if (text !== undefined) e.textContent = String(text); return e; }
  function fmt(v) { return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(Number(v.toPrecision(4))); }
  function bytes(n) { if (typeof n !== 'number') return '-'; if (n < 1024) return n + ' B'; if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB'; return (n / 1048576).toFixed(2) + ' MiB'; }
  /** A line chart of one metric per round: axes, the unit on the y axis, round numbers on the x axis, a dot per round. */
  function chart(key, title, unit, points) {
    var box = el('div'); box.appendChild(el('div', title + (points.length ? ' (last ' + points[points.length - 1][1].toPrecision(4) + ')' : ': no rounds yet')));
    if (points.length === 0) return box;
    var w = 360, h = 170, left = 52, right = 12, top = 10, bottom = 36;
    var svg = svgEl('svg', { width: w, height: h, 'data-metric': key, role: 'img', 'aria-label': title + ' per round' });
    var ys = points.map(function (p) { return p[1]; }); var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys); if (hi === lo) { lo = lo - 0.5; hi = hi + 0.5; }
    var xs = points.map(function (p) { return p[0]; }); var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs); if (x1 === x0) { x0 = x0 - 1; x1 = x1 + 1; }
    function X(v) { return left + (v - x0) / (x1 - x0) * (w - left - right); }
    function Y(v) { return h - bottom - (v - lo) / (hi - lo) * (h - top - bottom); }
    // axes
    svg.appendChild(svgEl('line', { x1: left, y1: top, x2: left, y2: h - bottom, stroke: '#888', class: 'axis axis-y' }));
    svg.appendChild(svgEl('line', { x1: left, y1: h - bottom, x2: w - right, y2: h - bottom, stroke: '#888', class: 'axis axis-x' }));
    // y ticks: bottom, middle, top of the range, with values
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      svg.appendChild(svgEl('line', { x1: left - 4, y1: Y(v).toFixed(1), x2: left, y2: Y(v).toFixed(1), stroke: '#888' }));
      svg.appendChild(svgEl('text', { x: left - 6, y: (Y(v) + 3).toFixed(1), 'text-anchor': 'end', class: 'tick-y' }, fmt(v)));
    });
    // x ticks: every round number (every k-th when there are many)
    var step = Math.max(1, Math.ceil(points.length / 10));
    points.forEach(function (p, i) {
      if (i % step !== 0 && i !== points.length - 1) return;
      svg.appendChild(svgEl('line', { x1: X(p[0]).toFixed(1), y1: h - bottom, x2: X(p[0]).toFixed(1), y2: h - bottom + 4, stroke: '#888' }));
      svg.appendChild(svgEl('text', { x: X(p[0]).toFixed(1), y: h - bottom + 14, 'text-anchor': 'middle', class: 'tick-x' }, p[0]));
    });
    svg.appendChild(svgEl('text', { x: (left + w - right) / 2, y: h - 4, 'text-anchor': 'middle', class: 'axis-label axis-label-x' }, 'round'));
    svg.appendChild(svgEl('text', { x: 10, y: (top + h - bottom) / 2, 'text-anchor': 'middle', transform: 'rotate(-90 10 ' + ((top + h - bottom) / 2) + ')', class: 'axis-label axis-label-y' }, title + ' (' + unit + ')'));
    var xy = points.map(function (p) { return [X(p[0]).toFixed(1), Y(p[1]).toFixed(1)]; });
    svg.appendChild(svgEl('polyline', { points: xy.map(function (q) { return q.join(','); }).join(' '), fill: 'none', stroke: '#06c', 'stroke-width': '2' }));
    // A dot per round: a one-point polyline draws nothing, and the dots show where rounds are.
    xy.forEach(function (q, i) { var c = svgEl('circle', { cx: q[0], cy: q[1], r: '3', fill: '#06c' }); c.appendChild(svgEl('title', {}, 'round ' + points[i][0] + ': ' + points[i][1].toPrecision(4) + ' ' + unit)); svg.appendChild(c); });
    box.appendChild(svg); return box;
  }
  /** One row per committed round: who took part, who dropped, refusals, traffic, time, privacy spent. */
  function roundTable(j) {
    var t = table(['round', 'participants', 'dropped', 'refused', 'bytes up', 'bytes down', 'duration', 'epsilon'], []);
    t.className = 'rounds';
    j.roundsDetail.forEach(function (r) {
      var m = r.metrics;
      var dropped = typeof m.offered === 'number' ? m.offered - r.participants.length : '-';
      var tr = row([r.round, r.participants.length, dropped, r.refused, bytes(m.bytes_up), bytes(m.bytes_down), ((r.committedAt - r.startedAt) / 1000).toFixed(1) + ' s', typeof m.epsilon === 'number' ? m.epsilon.toPrecision(4) : '-']);
      tr.setAttribute('data-round', r.round);
      t.appendChild(tr);
    });
    return t;
  }
  function render() {
    var root = document.getElementById('jobs'); root.textContent = '';
    order.forEach(function (id) {
      var j = jobs[id]; var box = el('div', undefined, 'job'); box.setAttribute('data-job', j.id);
      var h = el('h2'); h.appendChild(el('span', j.id + ' ')); h.appendChild(el('span', j.status, 'status-' + j.status)); box.appendChild(h);
      box.appendChild(el('div', j.strategy + ': round ' + j.round + ' of ' + j.rounds + ', ' + j.clients + ' clients enrolled'));
      if (j.reason) box.appendChild(el('div', 'reason: ' + j.reason, 'status-failed'));
      if (j.current) box.appendChild(el('div', 'in progress: round ' + j.current.round + ' attempt ' + j.current.attempt + ', ' + j.current.accepted + ' of ' + j.current.selected.length + ' selected have sent' + (j.current.secureStep ? ' (secure aggregation, step ' + j.current.secureStep + ')' : '')));
      var secure = j.roundsDetail.filter(function (r) { return r.secureAggregation; });
      if (j.spec && j.spec.secureAggregation && j.spec.secureAggregation.enabled) box.appendChild(el('div', 'secure aggregation: on; ' + secure.length + ' of ' + j.roundsDetail.length + ' rounds ran securely' + (secure.length ? ', clients dropped per round: ' + secure.map(function (r) { return r.secureAggregation.droppedClients; }).join(' ') : ''), 'secure'));
      var p = j.privacy; var priv = el('div', 'privacy: epsilon ' + (p.epsilon === null ? 'n/a' : p.epsilon.toPrecision(4)) + (p.budgetEpsilon === null ? '' : ' of ' + p.budgetEpsilon) + (p.delta === null ? '' : ' at delta ' + p.delta) + ' ');
      if (p.epsilon !== null && p.budgetEpsilon !== null) { var bar = el('span', undefined, 'bar'); var fill = el('span'); fill.style.width = Math.min(100, 100 * p.epsilon / p.budgetEpsilon).toFixed(1) + '%'; bar.appendChild(fill); priv.appendChild(bar); }
      box.appendChild(priv);
      if (p.booked && p.booked.length) box.appendChild(el('div', 'booked: ' + p.booked.map(function (b) { return b.rounds + ' round' + (b.rounds === 1 ? '' : 's') + ' at q ' + b.q.toPrecision(4) + ', noise multiplier ' + b.noiseMultiplier.toPrecision(4); }).join('; ') + (p.sampling ? '. Last round: ' + p.sampling : ''), 'privacy-booked'));
      box.appendChild(table(['client', 'backend', 'device', 'self-test', 'connected'], j.clientList.map(function (c) { return [c.id, c.backend.name, c.backend.device, c.backend.selfTest.passed ? 'passed' : 'FAILED', c.connected ? 'yes' : 'no']; })));
      var refused = Object.keys(j.refusedByReason);
      box.appendChild(refused.length ? table(['refused updates', 'count'], refused.map(function (k) { return [k, j.refusedByReason[k]]; })) : el('div', 'no refused updates'));
      // a chart per metric the rounds report (a llama job: train_loss); before any round, loss and accuracy wait
      var charts = el('div', undefined, 'charts');
      var series = METRICS.map(function (d) { return { d: d, points: j.roundsDetail.filter(function (r) { return typeof r.metrics[d[0]] === 'number'; }).map(function (r) { return [r.round, r.metrics[d[0]]]; }) }; });
      var shown = series.filter(function (s) { return s.points.length > 0; });
      if (j.roundsDetail.length === 0) shown = [series[0], series[2]];
      shown.forEach(function (s) { charts.appendChild(chart(s.d[0], s.d[1], s.d[2], s.points)); });
      box.appendChild(charts);
      box.appendChild(el('h3', 'rounds'));
      box.appendChild(j.roundsDetail.length ? roundTable(j) : el('div', 'no rounds committed yet'));
      root.appendChild(box);
    });
  }
  function applySnapshot(s) { jobs = {}; order = []; s.jobs.forEach(function (j) { jobs[j.id] = j; order.push(j.id); }); render(); }
  function connect(token) {
    // The first picture over HTTP (a plain fetch), then live updates over the feed.
    fetch('/api/dashboard', { headers: { authorization: 'Bearer ' + token } }).then(function (r) { return r.json(); }).then(function (s) {
      if (s.jobs) { applySnapshot(s); } else if (s.error) { document.getElementById('status').textContent = s.error.code + ': ' + s.error.message; }
    });
    var socket = io('/dashboard', { auth: { token: token }, transports: ['websocket'] });
    var status = document.getElementById('status');
    socket.on('connect', function () { status.textContent = 'live'; });
    socket.on('connect_error', function (e) { status.textContent = 'cannot connect: ' + e.message; document.getElementById('login').hidden = false; });
    socket.on('disconnect', function () { status.textContent = 'disconnected, reconnecting...'; });
    socket.on('snapshot', applySnapshot);
    socket.on('job', function (j) { if (!jobs[j.id]) { order.unshift(j.id); } jobs[j.id] = j; render(); });
  }
  var fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) { sessionStorage.setItem('fedlora-token', fromHash); history.replaceState(null, '', location.pathname); }
  var token = fromHash || sessionStorage.getItem('fedlora-token');
  var form = document.getElementById('login');
  form.addEventListener('submit', function (ev) { ev.preventDefault(); var t = document.getElementById('token').value; sessionStorage.setItem('fedlora-token', t); form.hidden = true; connect(t); });
  if (token) { connect(token); } else { form.hidden = false; document.getElementById('status').textContent = 'enter the admin token'; }
})();
`;
