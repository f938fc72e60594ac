/**
 * The dashboard page (`GET /dashboard`): plain HTML and one script, no build step and no external
 * assets, so the coordinator's strict Content-Security-Policy (helmet: scripts from 'self' only)
 * holds. The script joins the live feed (shared/protocol/dashboard.ts) with the admin token typed
 * once per browser session into its form (kept in sessionStorage, never taken from or put in a
 * URL), and renders with textContent only (job data never becomes markup). It is also the
 * operator's console: a job form validated by the API itself (`POST /api/jobs`; each zod issue is
 * shown next to the field it names), enrolment links that open `/join#token=...` with a copy
 * button, and the global adapter's two PEFT files (adapter_config.json, adapter_model.safetensors)
 * as separate downloads, read in the page from the API's tar.
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
fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 1em 0; }
#new-job label { display: inline-block; margin: .3em 1em .3em 0; vertical-align: top; }
#new-job input, #new-job select, #new-job textarea { display: block; }
.field-error, .form-error { color: #c00; font-size: .9em; max-width: 26em; }
.actions { margin: .5em 0; } .actions button { margin-right: .5em; }
.enrol-link input { width: 36em; font: 12px ui-monospace, monospace; }
.adapter-files a { margin-right: 1em; }
</style>
</head>
<body>
<h1>fedlora coordinator</h1>
<form id="login" hidden><label>Admin token <input id="token" type="password" autocomplete="off"></label> <button>Connect</button></form>
<p id="status">connecting...</p>
<form id="new-job" hidden novalidate>
<fieldset><legend>New job (checked by the API: POST /api/jobs)</legend>
<label>strategy <select data-field="strategy"><option>fedavg</option><option>flora</option><option>ffa</option><option>fedsb</option></select></label>
<label>rounds <input data-field="rounds" value="3" size="6"></label>
<label>clientsPerRound <input data-field="clientsPerRound" value="2" size="6"></label>
<label>minClients <input data-field="minClients" value="2" size="6"></label>
<label>rank <input data-field="rank" value="4" size="6"></label>
<label>seed <input data-field="seed" value="0" size="10"></label>
<br>
<label>model.sha256 <input data-field="model.sha256" size="66" placeholder="SHA-256 of the base model's weights file"></label>
<label>model.targetModules <input data-field="model.targetModules" size="24" placeholder="q_proj, v_proj"></label>
<label>model.kind <select data-field="model.kind"><option value="">any</option><option>mlp</option><option>llama</option></select></label>
<br>
<label>training.epochs <input data-field="training.epochs" size="6"></label>
<label>training.lr <input data-field="training.lr" size="8"></label>
<label>privacy.user.noiseMultiplier <input data-field="privacy.user.noiseMultiplier" size="8"></label>
<label>privacy.budget.epsilon <input data-field="privacy.budget.epsilon" size="8"></label>
<br>
<label>more fields (JSON object, merged in) <textarea data-field="(more)" rows="2" cols="60" placeholder='{"overSelection": 0}'></textarea></label>
<div><button id="create-job">Create job</button> <span id="new-job-status" class="form-error"></span></div>
</fieldset>
</form>
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
  var token = null;
  // What the console added to a job card (enrolment links, adapter files): kept across re-renders.
  var extras = {};
  function extra(id) { return extras[id] || (extras[id] = { links: [], files: null, note: '' }); }
  function api(method, path, body) {
    var init = { method: method, headers: { authorization: 'Bearer ' + token } };
    if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    return fetch(path, init);
  }
  function errorText(b) { return b && b.error ? b.error.code + ': ' + b.error.message : 'unexpected answer'; }
  /** A new one-use enrolment token, shown as the /join link the data owner opens. */
  function newLink(id) {
    api('POST', '/api/jobs/' + encodeURIComponent(id) + '/enrolments', {}).then(function (r) { return r.json(); }).then(function (b) {
      if (b.token) { extra(id).links.push({ url: location.origin + '/join#token=' + b.token, expiresAt: b.expiresAt }); extra(id).note = ''; } else { extra(id).note = errorText(b); }
      render();
    });
  }
  function copy(input, button) {
    function fallback() { input.select(); var ok = false; try { ok = document.execCommand('copy'); } catch (e) { ok = false; } button.textContent = ok ? 'copied' : 'selected: press Ctrl+C'; }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(function () { button.textContent = 'copied'; }, fallback); else fallback();
  }
  /** The members of a ustar archive (the adapter download): name and bytes. */
  function untar(buf) {
    var u = new Uint8Array(buf), out = [], at = 0;
    while (at + 512 <= u.length) {
      var name = ''; for (var i = 0; i < 100 && u[at + i] !== 0; i++) name += String.fromCharCode(u[at + i]);
      if (name === '') break;
      var size = parseInt(String.fromCharCode.apply(null, Array.prototype.slice.call(u.subarray(at + 124, at + 136))).replace(/[^0-7]/g, '') || '0', 8);
      out.push({ name: name, bytes: u.slice(at + 512, at + 512 + size) });
      at += 512 + Math.ceil(size / 512) * 512;
    }
    return out;
  }
  /** The global adapter's two PEFT files, each its own download link. */
  function adapterFiles(id) {
    api('GET', '/api/jobs/' + encodeURIComponent(id) + '/adapter').then(function (r) { return r.ok ? r.arrayBuffer().then(untar) : r.json().then(function (b) { throw new Error(errorText(b)); }); }).then(function (files) {
      var old = extra(id).files; if (old) old.forEach(function (f) { URL.revokeObjectURL(f.url); });
      extra(id).files = files.map(function (f) { return { name: f.name, size: f.bytes.length, url: URL.createObjectURL(new Blob([f.bytes], { type: /\\.json$/.test(f.name) ? 'application/json' : 'application/octet-stream' })) }; });
      extra(id).note = '';
      render();
    }, function (e) { extra(id).note = e.message; render(); });
  }
  function actions(j) {
    var x = extra(j.id), box = el('div', undefined, 'actions');
    if (j.status === 'pending' || j.status === 'running') { var b = el('button', 'New enrolment link'); b.className = 'new-link'; b.onclick = function () { newLink(j.id); }; box.appendChild(b); }
    if (j.round > 0) { var d = el('button', 'Download adapter (' + j.round + ' round' + (j.round === 1 ? '' : 's') + ')'); d.className = 'get-adapter'; d.onclick = function () { adapterFiles(j.id); }; box.appendChild(d); }
    if (x.note) box.appendChild(el('div', x.note, 'form-error'));
    x.links.forEach(function (l) {
      var line = el('div', undefined, 'enrol-link'); var input = el('input'); input.readOnly = true; input.value = l.url;
      var c = el('button', 'copy'); c.type = 'button'; c.onclick = function () { copy(input, c); };
      line.appendChild(input); line.appendChild(c); line.appendChild(el('span', ' one use, expires ' + new Date(l.expiresAt).toISOString().slice(0, 16).replace('T', ' ') + ' UTC'));
      box.appendChild(line);
    });
    if (x.files) {
      var files = el('div', 'PEFT adapter directory, two files (save both in one folder): ', 'adapter-files');
      x.files.forEach(function (f) { var a = el('a', f.name + ' (' + bytes(f.size) + ')'); a.href = f.url; a.download = f.name; files.appendChild(a); });
      box.appendChild(files);
    }
    return box;
  }
  function render() {
    var root = document.getElementById('jobs'); root.textContent = '';
    order.forEach(function (id) {
      var j = jobs[id]; var box = el('div', undefined, 'job'); box.setAttribute('data-job', j.id);
      var h = el('h2'); h.appendChild(el('span', j.id + ' ')); h.appendChild(el('span', j.status, 'status-' + j.status)); box.appendChild(h);
      box.appendChild(el('div', j.strategy + ': round ' + j.round + ' of ' + j.rounds + ', ' + j.clients + ' clients enrolled'));
      if (j.reason) box.appendChild(el('div', 'reason: ' + j.reason, 'status-failed'));
      box.appendChild(actions(j));
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
  // The job form: the body the fields make, sent to the API, whose zod issues land next to their field.
  function setPath(o, path, v) { var ks = path.split('.'); for (var i = 0; i < ks.length - 1; i++) { o = o[ks[i]] || (o[ks[i]] = {}); } o[ks[ks.length - 1]] = v; }
  function merge(a, b) { Object.keys(b).forEach(function (k) { if (a[k] && typeof a[k] === 'object' && !Array.isArray(a[k]) && b[k] && typeof b[k] === 'object' && !Array.isArray(b[k])) merge(a[k], b[k]); else a[k] = b[k]; }); return a; }
  function fieldInputs() { return Array.prototype.slice.call(document.querySelectorAll('#new-job [data-field]')); }
  function clearErrors() { Array.prototype.slice.call(document.querySelectorAll('#new-job .field-error')).forEach(function (e) { e.remove(); }); document.getElementById('new-job-status').textContent = ''; }
  /** The form field a zod path belongs to: itself, its array ([0]) dropped, a parent, else the JSON box. */
  function inputFor(path) {
    var inputs = fieldInputs(), p = path.replace(/\\[\\d+\\]$/, '');
    while (p) {
      var hit = inputs.filter(function (i) { return i.getAttribute('data-field') === p; })[0] || inputs.filter(function (i) { return i.getAttribute('data-field').indexOf(p + '.') === 0; })[0];
      if (hit) return hit;
      p = p.indexOf('.') < 0 ? '' : p.slice(0, p.lastIndexOf('.'));
    }
    return inputs.filter(function (i) { return i.getAttribute('data-field') === '(more)'; })[0];
  }
  function showFieldError(path, message) {
    var input = inputFor(path); var e = el('div', path + ': ' + message, 'field-error'); e.setAttribute('data-error-for', path);
    input.parentNode.appendChild(e);
  }
  function formBody() {
    var body = {};
    fieldInputs().forEach(function (i) {
      var f = i.getAttribute('data-field'), v = i.value.trim();
      if (v === '' || f === '(more)') return;
      if (f === 'model.targetModules') setPath(body, f, v.split(',').map(function (s) { return s.trim(); }).filter(Boolean));
      else if (f === 'strategy' || f === 'model.sha256' || f === 'model.kind') setPath(body, f, v);
      // numbers as numbers; anything else goes as typed, for the API to name the field
      else setPath(body, f, /^-?\\d+(\\.\\d+)?(e-?\\d+)?$/i.test(v) ? Number(v) : v);
    });
    var more = document.querySelector('#new-job [data-field="(more)"]').value.trim();
    if (more) { var extraFields; try { extraFields = JSON.parse(more); } catch (e) { throw { path: '(more)', message: 'not JSON: ' + e.message }; } merge(body, extraFields); }
    return body;
  }
  document.getElementById('new-job').addEventListener('submit', function (ev) {
    ev.preventDefault(); clearErrors();
    var status = document.getElementById('new-job-status'), body;
    try { body = formBody(); } catch (e) { showFieldError(e.path, e.message); return; }
    api('POST', '/api/jobs', body).then(function (r) { return r.json(); }).then(function (b) {
      if (b.id) { status.textContent = 'created ' + b.id; status.className = 'created'; return refresh(); }
      status.className = 'form-error';
      var m = b.error && /^job spec: ([\\s\\S]*)$/.exec(b.error.message);
      if (!m) { status.textContent = errorText(b); return; }
      // "job spec: a: rule; b.c: rule": one issue per field path (shared/protocol/validate.ts)
      m[1].split(/; (?=[\\w.\\[\\]()]+: )/).forEach(function (issue) { var k = issue.indexOf(': '); showFieldError(issue.slice(0, k), issue.slice(k + 2)); });
      status.textContent = b.error.code + ': the job was not created; see the fields marked';
    });
  });
  function refresh() {
    return api('GET', '/api/dashboard').then(function (r) { return r.json(); }).then(function (s) {
      if (s.jobs) { applySnapshot(s); } else if (s.error) { document.getElementById('status').textContent = s.error.code + ': ' + s.error.message; if (s.error.code === 'FL_ERR_UNAUTHORIZED') { sessionStorage.removeItem('fedlora-token'); document.getElementById('login').hidden = false; } }
    });
  }
  function connect(t) {
    token = t;
    document.getElementById('new-job').hidden = false;
    // The first picture over HTTP (a plain fetch), then live updates over the feed.
    refresh();
    var socket = io('/dashboard', { auth: { token: token }, transports: ['websocket'] });
    var status = document.getElementById('status');
    socket.on('connect', function () { status.textContent = 'live'; });
    socket.on('connect_error', function (e) { status.textContent = 'cannot connect: ' + e.message; document.getElementById('login').hidden = false; });
    socket.on('disconnect', function () { status.textContent = 'disconnected, reconnecting...'; });
    socket.on('snapshot', applySnapshot);
    socket.on('job', function (j) { if (!jobs[j.id]) { order.unshift(j.id); } jobs[j.id] = j; render(); });
  }
  // The admin token: typed once per browser session (sessionStorage), never read from the URL.
  var saved = sessionStorage.getItem('fedlora-token');
  var form = document.getElementById('login');
  form.addEventListener('submit', function (ev) { ev.preventDefault(); var t = document.getElementById('token').value; sessionStorage.setItem('fedlora-token', t); form.hidden = true; connect(t); });
  if (saved) { connect(saved); } else { form.hidden = false; document.getElementById('status').textContent = 'enter the admin token'; }
})();
`;
