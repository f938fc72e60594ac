/**
 * The browser client's Web Worker: the client agent of client/agent/ (the same code as
 * `fedlora client join`), on the browser's tfjs backend, with the page's picked files in the
 * in-memory file system and the state folder in IndexedDB. The page (page.ts) only draws what
 * this posts. Model and data are checked before anything is sent: a bad folder or file ends here
 * with its message and no connection is made.
 */
import { isFedloraError } from '../../shared/errors.js';
import { mountFile } from '../platform/browser/fs.js';
import { ClientAgent } from '../agent/agent.js';
import { loadBaseModel } from '../agent/base-model.js';
import { backendForHello } from '../agent/handshake.js';
import { loadLocalData } from '../agent/local-data.js';
import type { AgentProgress } from '../agent/progress.js';
import { StateFolder } from '../agent/state-folder.js';
import { chooseBackend, type BackendName } from '../backend.js';
import { browserBackends } from './backends.js';
import type { JoinRequest, WorkerEvent } from './messages.js';
import { mountState, STATE_DIR } from './state-store.js';

const post = (e: WorkerEvent): void => (self as unknown as { postMessage(m: WorkerEvent): void }).postMessage(e);

function progress(state: { flush(): Promise<void> }): AgentProgress {
  return {
    // The page takes 'enrolled ...' / 'authenticated ...' as "a reload can resume": say it only once
    // the enrolment record is in IndexedDB, or a reload in between would find the token spent and
    // no record to resume with.
    info: (line) => {
      if (/^(enrolled in job|authenticated as client)/.test(line)) void state.flush().then(() => post({ type: 'info', line }), () => post({ type: 'info', line }));
      else post({ type: 'info', line });
    },
    roundStart: (round, attempt, steps) => post({ type: 'round-start', round, attempt, steps }),
    step: (p) => post({ type: 'step', step: p.step, loss: p.loss, examplesPerSecond: p.examplesPerSecond }),
    roundEnd: () => post({ type: 'round-end' }),
    roundResult: (result) => post({ type: 'round-result', result }),
    stop: () => undefined,
  };
}

async function join(req: JoinRequest): Promise<void> {
  const state = await mountState();
  const p = progress(state);
  // The picked files, under the names the loaders report in their messages.
  const folder = '/model';
  for (const f of req.model) mountFile(`${folder}/${f.path}`, f.file);
  const dataPath = `/data/${req.data.name}`;
  mountFile(dataPath, req.data.file);
  const model = await loadBaseModel(folder);
  p.info(`model: ${model.kind}, sha256 ${model.sha256}`);
  const data = await loadLocalData(dataPath, model);
  p.info(`data: ${data.examples} examples from ${req.data.name}`);
  // A link's `backend=NAME` forces that one (chooseBackend then fails loudly instead of falling back).
  const backend = await chooseBackend({
    candidates: browserBackends(new URL('wasm/', self.location.href).href),
    ...(req.backend !== null && { backend: req.backend as BackendName }),
    log: (line) => p.info(line),
  });
  post({ type: 'backend', name: backend.name, device: backend.device, skipped: backend.skipped.map((s) => `${s.name}: ${s.reason}`) });
  const stateFolder = StateFolder.open(STATE_DIR);
  if (stateFolder.createdKeys) p.info(`created this browser's client keys (fingerprint ${stateFolder.fingerprint}), kept in IndexedDB`);
  const agent = new ClientAgent({
    coordinatorUrl: req.coordinatorUrl,
    ...(req.token !== null && { token: req.token }),
    state: stateFolder,
    model,
    data,
    backend: backendForHello(backend),
    progress: p,
    connectTimeoutMs: 60_000,
  });
  const enrolled = stateFolder.enrolment(new URL(req.coordinatorUrl).origin, undefined);
  post({ type: 'enrolled', clientId: enrolled?.clientId ?? null, jobId: enrolled?.jobId ?? null });
  const summary = await agent.run();
  await state.flush();
  post({ type: 'done', summary });
}

self.onmessage = (e: MessageEvent<JoinRequest>) => {
  if (e.data.type !== 'join') return;
  join(e.data).catch((error: unknown) => {
    const err = error instanceof Error ? error : new Error(String(error));
    post({ type: 'error', code: isFedloraError(err) ? err.code : err.name, message: err.message });
  });
};
