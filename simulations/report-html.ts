/**
 * report.html: one self-contained page (inline CSS and SVG, no script, no CDN: the user may be
 * offline) with a summary table and charts per round for every strategy: test accuracy, test
 * loss, training loss, bytes per client (up and down), epsilon and FedAvg's aggregation noise.
 * The SVG is written here by hand because the installed packages hold no charting library, and a
 * static line chart is a few dozen lines.
 */
import type { SimReport } from './report.js';

const COLORS: Record<string, string> = { fedavg: '#1f77b4', flora: '#d62728', ffa: '#2ca02c', fedsb: '#9467bd' };
const FALLBACK = ['#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  /** [x, y]; null y leaves a gap. */
  readonly points: ReadonlyArray<readonly [number, number | null]>;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  /** Format of the y tick labels. */
  readonly format?: (v: number) => string;
  readonly logY?: boolean;
  /** Start the y axis at 0 (linear axes). */
  readonly zero?: boolean;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round numbers for axis ticks: about `count` steps of 1, 2 or 5 x 10^k. */
function ticks(min: number, max: number, count = 5): number[] {
  if (max <= min) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function compact(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  if (a === 0) return '0';
  return a >= 0.01 ? String(Number(v.toPrecision(3))) : v.toExponential(1);
}

/** A line chart as an SVG element (600 x 320). */
export function lineChart(series: readonly Series[], o: ChartOptions): string {
  const W = 600;
  const H = 320;
  const L = 78;
  const R = 130;
  const T = 34;
  const B = 46;
  const pts = series.flatMap((s) => s.points.filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]) && (!o.logY || p[1] > 0)));
  if (pts.length === 0) return `<figure class="chart"><figcaption>${esc(o.title)}</figcaption><p class="empty">no data</p></figure>`;
  const xs = pts.map((p) => p[0]);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs, xMin + 1);
  const tf = (v: number): number => (o.logY ? Math.log10(v) : v);
  let yMin = Math.min(...pts.map((p) => tf(p[1])));
  let yMax = Math.max(...pts.map((p) => tf(p[1])));
  if (o.zero === true && !o.logY) yMin = Math.min(0, yMin);
  if (yMax - yMin < 1e-12) {
    yMax += o.logY ? 0.5 : Math.abs(yMax) * 0.1 + 1e-6;
    yMin -= o.logY ? 0.5 : Math.abs(yMin) * 0.1 + 1e-6;
  }
  const pad = (yMax - yMin) * 0.05;
  if (!(o.zero === true && yMin === 0)) yMin -= pad;
  yMax += pad;
  const px = (x: number): number => L + ((x - xMin) / (xMax - xMin)) * (W - L - R);
  const py = (y: number): number => T + (1 - (tf(y) - yMin) / (yMax - yMin)) * (H - T - B);
  const fmt = o.format ?? compact;
  const yTicks = o.logY ? ticks(Math.floor(yMin), Math.ceil(yMax), Math.max(1, Math.ceil(yMax) - Math.floor(yMin))).filter((e) => e >= yMin && e <= yMax && Number.isInteger(e)).map((e) => 10 ** e) : ticks(yMin, yMax, 7);
  const xTicks = ticks(xMin, xMax, Math.min(10, xMax - xMin)).filter((x) => Number.isInteger(x));
  const parts: string[] = [];
  parts.push(`<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(o.title)}">`);
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fff" stroke="#ccc"/>`);
  for (const y of yTicks) {
    const Y = py(y).toFixed(1);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${Y}" y2="${Y}" stroke="#eee"/><text x="${L - 6}" y="${Y}" dy="4" text-anchor="end" class="tick">${esc(fmt(y))}</text>`);
  }
  for (const x of xTicks) parts.push(`<text x="${px(x).toFixed(1)}" y="${H - B + 16}" text-anchor="middle" class="tick">${x}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle" class="axis">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle" class="axis">${esc(o.yLabel)}${o.logY ? ' (log)' : ''}</text>`);
  parts.push(`<text x="${L}" y="20" class="title">${esc(o.title)}</text>`);
  series.filter((s) => s.points.some((p) => p[1] !== null && Number.isFinite(p[1]))).forEach((s, i) => {
    const valid = (p: readonly [number, number | null]): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]) && (!o.logY || p[1] > 0);
    let d = '';
    let pen = false;
    for (const p of s.points) {
      if (!valid(p)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`;
      pen = true;
    }
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const p of s.points.filter(valid)) parts.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="2.5" fill="${s.color}"><title>${esc(s.name)} round ${p[0]}: ${esc(fmt(p[1]))}</title></circle>`);
    const ly = T + 8 + i * 18;
    parts.push(`<line x1="${W - R + 10}" x2="${W - R + 34}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/><text x="${W - R + 40}" y="${ly + 4}" class="legend">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `<figure class="chart">${parts.join('')}</figure>`;
}

function fmtBytes(b: number): string {
  return b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${Math.round(b)} B`;
}

/** The language task: test perplexity per category and union for the base, each strategy and the baselines. */
function perCategoryTable(report: SimReport): string {
  const cats = Object.keys(report.base.perplexityByCategory ?? {});
  const cell = (v: number | undefined): string => `<td>${v === undefined ? '-' : v.toFixed(2)}</td>`;
  const rows: string[] = [`<tr><td>base model</td>${cats.map((c) => cell(report.base.perplexityByCategory?.[c])).join('')}${cell(report.base.perplexity)}</tr>`];
  for (const [n, s] of Object.entries(report.strategies)) rows.push(`<tr><td>${esc(n)}</td>${cats.map((c) => cell(s.final.perplexityByCategory?.[c])).join('')}${cell(s.final.perplexity)}</tr>`);
  const b = report.baselines;
  if (b !== undefined) {
    const own = (c: string): number | undefined => b.local.find((l) => l.categories.length === 1 && l.categories[0] === c)?.byCategory[c];
    rows.push(`<tr><td>local-only (own category; union: mean over clients)</td>${cats.map((c) => cell(own(c))).join('')}${cell(b.localMeanPerplexity)}</tr>`);
    rows.push(`<tr><td>centralised</td>${cats.map((c) => cell(b.centralised.byCategory[c])).join('')}${cell(b.centralised.perplexity)}</tr>`);
  }
  return `<h2>Test perplexity per category</h2>
<div style="overflow-x:auto"><table><tr><th>method</th>${cats.map((c) => `<th>${esc(c)}</th>`).join('')}<th>union</th></tr>${rows.join('')}</table></div>
<p class="meta">Byte-level perplexity of each category's held-out quotes (the client holding it, under the category partition) and of their union (token-weighted).${b === undefined ? '' : ` Baselines on the same budget: ${b.training.rounds} x ${b.training.epochs} epoch(s), batch ${b.training.batchSize}, lr ${b.training.lr}, rank ${b.training.rank}.`}</p>`;
}

/** The whole page. */
export function renderReportHtml(report: SimReport): string {
  const names = Object.keys(report.strategies);
  const color = (n: string, i: number): string => COLORS[n] ?? FALLBACK[i % FALLBACK.length]!;
  const per = (f: (r: SimReport['strategies'][string]['rounds'][number]) => number | null, opts: { dashed?: boolean; suffix?: string } = {}): Series[] =>
    names.map((n, i) => ({ name: `${n}${opts.suffix ?? ''}`, color: color(n, i), ...(opts.dashed === true && { dashed: true }), points: report.strategies[n]!.rounds.map((r) => [r.round + 1, f(r)] as const) }));
  const pctFmt = (v: number): string => `${(100 * v).toFixed(0)}%`;
  const withBase = (series: Series[], baseValue: number): Series[] => series.map((s) => ({ ...s, points: [[0, baseValue] as const, ...s.points] }));
  const language = report.base.perplexity !== undefined;
  const charts = [
    language
      ? lineChart(withBase(per((r) => r.perplexity ?? null), report.base.perplexity!), { title: 'Test perplexity, union of the categories (round 0: base)', xLabel: 'round', yLabel: 'perplexity' })
      : lineChart(withBase(per((r) => r.accuracy), report.base.accuracy ?? Number.NaN), { title: 'Test accuracy of the global adapter (round 0: the base model)', xLabel: 'round', yLabel: 'accuracy', format: pctFmt }),
    lineChart(withBase(per((r) => r.loss), report.base.loss), { title: 'Test loss (cross-entropy)', xLabel: 'round', yLabel: 'loss' }),
    lineChart(per((r) => r.trainLoss), { title: 'Local training loss (mean over the round’s clients)', xLabel: 'round', yLabel: 'loss' }),
    lineChart([...per((r) => r.bytesUpPerClient, { suffix: ' up' }), ...per((r) => r.bytesDownPerClient, { dashed: true, suffix: ' down' })], { title: 'Bytes per client per round (up: sealed update; down: offered state)', xLabel: 'round', yLabel: 'bytes', logY: true, format: fmtBytes }),
  ];
  if (names.some((n) => report.strategies[n]!.rounds.some((r) => r.epsilon !== null))) charts.push(lineChart(per((r) => r.epsilon), { title: 'Privacy spent: epsilon so far', xLabel: 'round', yLabel: 'epsilon', zero: true }));
  if (names.some((n) => report.strategies[n]!.rounds.some((r) => r.aggregationNoise !== null))) charts.push(lineChart(per((r) => r.aggregationNoise), { title: 'Aggregation noise ‖(ΣpB)(ΣpA) − ΣpBA‖ / ‖ΣpBA‖', xLabel: 'round', yLabel: 'relative error' }));
  const rows = names
    .map((n) => {
      const s = report.strategies[n]!;
      return `<tr><td><span class="swatch" style="background:${color(n, names.indexOf(n))}"></span>${esc(n)}</td><td>${s.status === 'failed' ? `<strong>failed</strong>${s.reason === undefined ? '' : `: ${esc(s.reason)}`}` : s.status}${s.notes.length === 0 ? '' : `<br><small>${s.notes.map(esc).join('<br>')}</small>`}</td><td>${s.final.perplexity !== undefined ? s.final.perplexity.toFixed(3) : s.final.accuracy === undefined ? '-' : `${(100 * s.final.accuracy).toFixed(1)}%`}</td><td>${s.final.loss === undefined ? '-' : s.final.loss.toFixed(3)}</td><td>${fmtBytes(s.bytesUpPerClientRound)}</td><td>${fmtBytes(s.bytesDownPerClientRound)}</td><td>${fmtBytes(s.analytic.bytesUpPerClientRound)} / ${fmtBytes(s.analytic.bytesDownPerClientRound)}</td><td>${s.epsilon === null ? '-' : s.epsilon.toFixed(2)}</td><td>${s.ranks.join(', ')}</td><td>${s.wallSeconds.toFixed(1)} s</td></tr>`;
    })
    .join('');
  const maxCount = Math.max(1, ...report.data.classCounts.flat());
  const classNames = language ? Object.keys(report.base.perplexityByCategory ?? {}) : Array.from({ length: report.data.numLabels }, (_, c) => String(c));
  const heat = report.data.classCounts
    .map((counts, c) => `<tr><th>${c}</th>${counts.map((v) => `<td style="background:rgba(31,119,180,${(v / maxCount).toFixed(3)});color:${v / maxCount > 0.55 ? '#fff' : '#222'}">${v || ''}</td>`).join('')}<td class="n">${report.data.clientRows[c]}</td></tr>`)
    .join('');
  const cfg = Object.entries(report.config).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(JSON.stringify(v))}</td></tr>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fedlora sim report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1260px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}th{background:#f6f6f6}
td:first-child{text-align:left}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure.chart{margin:0;border:1px solid #e4e4e4;border-radius:6px;padding:4px;background:#fafafa}
svg text{font-family:inherit}.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}.title{font-size:13px;font-weight:600;fill:#222}.legend{font-size:12px;fill:#222}
.empty{color:#888;padding:20px}
.cfg td{text-align:left;white-space:normal;word-break:break-word;max-width:900px}
.heat td{width:34px;font-size:12px;text-align:center}.heat td.n{background:#fff;color:#222}
</style></head><body>
<h1>fedlora sim report</h1>
<p class="meta">${esc(report.createdAt)} · data ${esc(report.data.source)} (${report.data.federatedRows} federated rows over ${report.data.clientRows.length} clients, ${esc(report.data.partition)}; ${report.data.publicRows} public rows for the base model; ${report.data.testRows} test rows) · seed ${report.seed} · ${report.wallSeconds.toFixed(1)} s in all</p>
<p class="meta">${language ? `Base llama (pre-trained on the WordNet glosses): test perplexity ${report.base.perplexity!.toFixed(3)}` : `Base mlp (pre-trained on the public rows): test accuracy ${(100 * (report.base.accuracy ?? Number.NaN)).toFixed(1)}%`}, loss ${report.base.loss.toFixed(3)} · sha256 ${esc(report.base.sha256.slice(0, 16))}…</p>
<h2>Summary</h2>
<div style="overflow-x:auto"><table><tr><th>strategy</th><th>status</th><th>${language ? 'test perplexity' : 'test accuracy'}</th><th>test loss</th><th>up / client / round</th><th>down / client / round</th><th>analytic up / down</th><th>epsilon</th><th>ranks</th><th>wall</th></tr>${rows}</table></div>
<p class="meta">up: mean sealed envelope bytes per accepted update; down: bytes of the global state in each offer; analytic: float32 payload of the per-matrix costs of docs/strategies.md (FedAvg (m+n)r, FLoRA down min(c(m+n)r, mn), FFA mr, Fed-SB r²).</p>
<h2>Per round</h2>
<div class="charts">${charts.join('\n')}</div>
${language ? perCategoryTable(report) : ''}
<h2>Data per client (rows per ${language ? 'category' : 'class'})</h2>
<table class="heat"><tr><th>client</th>${classNames.map((c) => `<th>${esc(c)}</th>`).join('')}<th>rows</th></tr>${heat}</table>
<h2>Configuration</h2>
<table class="cfg">${cfg}</table>
</body></html>
`;
}
