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
  function chart(title, points) {
    var box = el('div'); box.appendChild(el('div', title + (points.length ? ' (last ' + points[points.length - 1][1].toPrecision(4) + ')' : ': no rounds yet')));
    if (points.length === 0) return box;
    var w = 320, h = 120, ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg'); svg.setAttribute('width', w); svg.setAttribute('height', h); svg.setAttribute('data-metric', title);
    var ys = points.map(function (p) { return p[1]; }); var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys); if (hi === lo) { hi = lo + 1; }
    var xs = points.map(function (p) { return p[0]; }); var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs); if (x1 === x0) { x1 = x0 + 1; }
    var line = document.createElementNS(ns, 'polyline');
    var xy = points.map(function (p) { return [(10 + (p[0] - x0) / (x1 - x0) * (w - 20)).toFixed(1), (h - 10 - (p[1] - lo) / (hi - lo) * (h - 20)).toFixed(1)]; });
    line.setAttribute('points', xy.map(function (q) { return q.join(','); }).join(' '));
    line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#06c'); line.setAttribute('stroke-width', '2');
    svg.appendChild(line);
    // A dot per round: a one-point polyline draws nothing, and the dots show where rounds are.
    xy.forEach(function (q, i) { var c = document.createElementNS(ns, 'circle'); c.setAttribute('cx', q[0]); c.setAttribute('cy', q[1]); c.setAttribute('r', '3'); c.setAttribute('fill', '#06c'); var t = document.createElementNS(ns, 'title'); t.textContent = 'round ' + points[i][0] + ': ' + points[i][1].toPrecision(4); c.appendChild(t); svg.appendChild(c); });
    box.appendChild(svg); return box;
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
      ['loss', 'accuracy'].forEach(function (m) { box.appendChild(chart(m, j.roundsDetail.filter(function (r) { return typeof r.metrics[m] === 'number'; }).map(function (r) { return [r.round, r.metrics[m]]; }))); });
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
