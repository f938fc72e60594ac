/**
 * The join page's script: reads the enrolment token from the link's fragment (`/join#token=T`,
 * never sent to the server), takes the picked model folder and data file, starts the worker
 * (worker.ts) and draws what it reports. It sends nothing itself.
 */
import type { JoinRequest, WorkerEvent } from './messages.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const token = new URLSearchParams(location.hash.replace(/^#/, '')).get('token');
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
  const req: JoinRequest = { type: 'join', coordinatorUrl: location.origin, token, model, data: { name: dataFile.name, file: dataFile } };
  worker.postMessage(req);
});
