/**
 * The join page's script: reads the enrolment token from the link's fragment (`/join#token=T`,
 * never sent to the server), takes the picked model folder and data file, starts the worker
 * (worker.ts) and draws what it reports. It sends nothing itself.
 */
import type { JoinJob } from '../../shared/protocol/http.js';
import { BROWSER_BACKENDS, type BrowserBackendName, type JoinRequest, type WorkerEvent } from './messages.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
const token = fragment.get('token');
/** `#token=T&backend=wasm`: train on this backend only (e.g. the same kind as the Node agents). */
const backendParam = fragment.get('backend');
const backend = backendParam === null ? null : ((BROWSER_BACKENDS as readonly string[]).includes(backendParam) ? (backendParam as BrowserBackendName) : undefined);
const ENROLLED_KEY = `fedlora-enrolled:${location.origin}`;

function log(line: string): void {
  const el = $('log');
  el.textContent += `${line}\n`;
  el.scrollTop = el.scrollHeight;
}

function showError(code: string, message: string): void {
  const el = $('error');
  el.hidden = false;
  el.textContent = `${message}\n(${code}) Nothing was sent to the coordinator.`;
  el.dataset.code = code;
  $('status').textContent = 'stopped';
  ($('join') as HTMLButtonElement).disabled = false;
}

if (token === null && localStorage.getItem(ENROLLED_KEY) === null) {
  showError('FL_ERR_ENROLMENT', 'This link carries no enrolment token: open the link the coordinator\'s operator gave you (it ends in #token=...).');
}
if (localStorage.getItem(ENROLLED_KEY) !== null) $('resume').hidden = false;
if (backend === undefined) showError('FL_ERR_INVALID_ARGUMENT', `This link asks for backend '${String(backendParam)}': it must be one of ${BROWSER_BACKENDS.join(', ')}.`);

/** The privacy target in words: what the data owner agrees to before Join. */
function privacyText(p: JoinJob['privacy']): string {
  const parts: string[] = [];
  if (p.client !== null) parts.push(`client-side DP-SGD (clip ${p.client.clip}, ${p.client.targetEpsilon !== null ? `target epsilon ${p.client.targetEpsilon}` : `noise multiplier ${p.client.noiseMultiplier}`})`);
  if (p.user !== null) parts.push(`user-level DP-FedAvg at the coordinator (noise multiplier ${p.user.noiseMultiplier}, clip ${p.user.clip})`);
  if (p.budget !== null) parts.push(`budget epsilon ${p.budget.epsilon} at delta ${p.budget.delta}`);
  if (p.secureAggregation) parts.push('secure aggregation (the coordinator sees only the sum)');
  return parts.length === 0 ? 'none (no differential privacy)' : parts.join('; ');
}

/** Shows the job before Join (`POST /join/job`: looked up from the token without spending it). */
async function showJob(t: string): Promise<void> {
  const res = await fetch('/join/job', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: t }) });
  const body = (await res.json()) as JoinJob | { error: { code: string; message: string } };
  if ('error' in body) {
    $('job-text').textContent = 'unknown';
    showError(body.error.code, body.error.message);
    return;
  }
  $('job-text').textContent = `${body.jobId} (${body.status})`;
  const rows: Array<[string, string]> = [
    ['strategy', body.strategy],
    ['model', `${body.model.name ?? body.model.sha256.slice(0, 12)}${body.model.kind === null ? '' : ` (${body.model.kind})`}, LoRA rank ${body.rank} on ${body.model.targetModules.join(', ')}`],
    ['rounds', `${body.rounds} (${body.round} done), ${body.clientsPerRound} clients per round`],
    ['privacy target', privacyText(body.privacy)],
  ];
  const list = $('job-details');
  list.textContent = '';
  for (const [k, v] of rows) {
    const dt = Object.assign(document.createElement('dt'), { textContent: k });
    const dd = Object.assign(document.createElement('dd'), { textContent: v });
    dd.dataset.field = k;
    list.append(dt, dd);
  }
  list.hidden = false;
  const resuming = localStorage.getItem(ENROLLED_KEY) !== null;
  if (body.token.status === 'used' && !resuming) showError('FL_ERR_ENROLMENT', 'This enrolment link was already used: ask the job owner for a new link.');
  if (body.token.status === 'expired' && !resuming) showError('FL_ERR_ENROLMENT', `This enrolment link expired at ${new Date(body.token.expiresAt).toISOString()}: ask the job owner for a new link.`);
  if (body.status === 'completed' || body.status === 'failed') showError('FL_ERR_ROUND_STATE', `This job has ${body.status}; there is nothing left to join.`);
}

if (token !== null) {
  showJob(token).catch((e: unknown) => showError('FL_ERR_INTERNAL', `the coordinator did not answer: ${e instanceof Error ? e.message : String(e)}`));
}

function onEvent(e: WorkerEvent): void {
  switch (e.type) {
    case 'info':
      log(e.line);
      if (e.line.startsWith('job ')) $('job-text').textContent = e.line.slice(4);
      if (e.line.startsWith('connected') || e.line.startsWith('reconnected')) $('status').textContent = 'connected';
      if (e.line.startsWith('enrolled') || e.line.startsWith('authenticated')) {
        $('status').textContent = 'enrolled, waiting for a round';
        localStorage.setItem(ENROLLED_KEY, '1');
      }
      break;
    case 'enrolled':
      break;
    case 'backend':
      $('backend').textContent = `${e.name} (${e.device})`;
      $('backend').dataset.name = e.name;
      break;
    case 'round-start': {
      $('status').textContent = 'training';
      $('round-label').textContent = `Round ${e.round}${e.attempt > 0 ? ` (try ${e.attempt + 1})` : ''}: 0 / ${e.steps} steps`;
      $('round-label').dataset.round = String(e.round);
      const bar = $('round-progress') as HTMLProgressElement;
      bar.max = e.steps;
      bar.value = 0;
      break;
    }
    case 'step': {
      const bar = $('round-progress') as HTMLProgressElement;
      bar.value = e.step;
      $('round-label').textContent = `Round ${$('round-label').dataset.round}: ${e.step} / ${bar.max} steps`;
      if (Number.isFinite(e.loss)) $('loss').textContent = e.loss.toFixed(4);
      $('rate').textContent = e.examplesPerSecond.toFixed(0);
      break;
    }
    case 'round-end':
      $('status').textContent = 'update sent, waiting for the round to close';
      break;
    case 'round-result': {
      const r = e.result;
      const row = document.createElement('tr');
      row.dataset.round = String(r.round);
      const cells = [String(r.round), String(r.participants), r.metrics.loss?.toFixed(4) ?? '-', r.metrics.accuracy?.toFixed(3) ?? '-', r.epsilonSpent?.toFixed(3) ?? '-'];
      for (const c of cells) row.appendChild(Object.assign(document.createElement('td'), { textContent: c }));
      $('rounds').appendChild(row);
      if (r.epsilonSpent !== undefined) $('epsilon').textContent = r.epsilonSpent.toFixed(3);
      $('status').textContent = `round ${r.round} committed`;
      break;
    }
    case 'done': {
      const s = e.summary;
      $('status').textContent = `job ${s.status}`;
      $('status').dataset.final = s.status;
      if (s.clientEpsilon !== undefined) $('epsilon').textContent = s.clientEpsilon.epsilon.toFixed(3);
      log(`done: job ${s.status}, ${s.roundsTrained} rounds trained, ${s.updatesAccepted} updates accepted`);
      break;
    }
    case 'error':
      log(`error: ${e.code}: ${e.message}`);
      showError(e.code, e.message);
      break;
    default: {
      const _never: never = e;
      void _never;
    }
  }
}

$('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  $('error').hidden = true;
  const modelFiles = [...(($('model') as HTMLInputElement).files ?? [])];
  const dataFile = ($('data') as HTMLInputElement).files?.[0];
  if (backend === undefined) {
    showError('FL_ERR_INVALID_ARGUMENT', `This link asks for backend '${String(backendParam)}': it must be one of ${BROWSER_BACKENDS.join(', ')}.`);
    return;
  }
  if (modelFiles.length === 0 || dataFile === undefined) {
    showError('FL_ERR_INVALID_ARGUMENT', 'Pick the base model folder and the data file first.');
    return;
  }
  ($('join') as HTMLButtonElement).disabled = true;
  $('status-box').hidden = false;
  $('status').textContent = 'checking the model and the data';
  // Paths inside the picked folder: drop the folder's own name (webkitRelativePath = "folder/config.json").
  const model = modelFiles.map((f) => ({ path: (f.webkitRelativePath || f.name).split('/').slice(1).join('/') || f.name, file: f }));
  const worker = new Worker(new URL('/join/join-worker.js', location.href), { type: 'module' });
  worker.onmessage = (m: MessageEvent<WorkerEvent>) => onEvent(m.data);
  worker.onerror = (m) => showError('FL_ERR_INTERNAL', `the training worker failed: ${m.message}`);
  const req: JoinRequest = { type: 'join', coordinatorUrl: location.origin, token, backend, model, data: { name: dataFile.name, file: dataFile } };
  worker.postMessage(req);
});
