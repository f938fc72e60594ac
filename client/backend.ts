/**
 * Chooses the TensorFlow.js backend the client trains on (docs/training.md, "Backends"):
 * in order `tensorflow`, `webgpu`, `wasm`, `cpu`, the first that loads AND passes the
 * known-answer self-test; `--backend NAME` forces one and fails loudly (FL_ERR_BACKEND) when it
 * does not load or fails the test. Each backend is one file in client/backends/ and one line in
 * BACKENDS below.
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../shared/errors.js';
import { cpuBackend } from './backends/cpu.js';
import { runSelfTest } from './backends/self-test.js';
import { forbidSyncReadsIfAsked } from './backends/sync-reads.js';
import { tensorflowBackend } from './backends/tensorflow.js';
import { BACKEND_NAMES, type BackendCandidate, type BackendInfo, type BackendName, type LoadedBackend } from './backends/types.js';
import { wasmBackend } from './backends/wasm.js';
import { webgpuBackend } from './backends/webgpu.js';

export { BACKEND_NAMES, type BackendInfo, type BackendName } from './backends/types.js';

forbidSyncReadsIfAsked();

/**
 * Whether backend noise is shown: set by the CLI's `--verbose` (FEDLORA_VERBOSE=1, inherited by
 * worker threads and child processes).
 */
export function backendVerbose(): boolean {
  return process.env.FEDLORA_VERBOSE === '1';
}

// TensorFlow.js' console warnings ("looks like you are running TensorFlow.js in Node.js ... install
// our node backend") only when verbose: PROD silences tfjs' warn() and nothing else
// (tfjs-core's flags.ts); the backend chosen is said in one line by the caller.
if (!backendVerbose()) tf.env().set('PROD', true);

/** The registry, in order of preference. */
export const BACKENDS: readonly BackendCandidate[] = [tensorflowBackend, webgpuBackend(), wasmBackend, cpuBackend];

export interface ChooseBackendOptions {
  /** Force this backend (the CLI's `--backend`); fails instead of falling back. */
  readonly backend?: BackendName;
  /** Called with a line for the backend chosen and (see logPassedOver) for each one passed over. */
  readonly log?: (line: string) => void;
  /** Also log the backends passed over, and why. @default true (the CLI passes `backendVerbose()`) */
  readonly logPassedOver?: boolean;
  /** The candidates, in order. @default BACKENDS */
  readonly candidates?: readonly BackendCandidate[];
}

let active: { info: BackendInfo; loaded: LoadedBackend } | null = null;

/** Checks a `--backend` value. @throws FL_ERR_INVALID_ARGUMENT naming the allowed values */
export function parseBackendName(value: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--backend must be one of ${BACKEND_NAMES.join(', ')}, got '${value}'`);
}

/**
 * Loads, self-tests and sets the backend.
 * @returns what to log and report in the client's hello
 * @throws FL_ERR_BACKEND when the forced backend is not usable, or none is
 */
export async function chooseBackend(options: ChooseBackendOptions = {}): Promise<BackendInfo> {
  const log = options.log ?? (() => undefined);
  const candidates = options.candidates ?? BACKENDS;
  const order = options.backend === undefined ? candidates : candidates.filter((c) => c.name === options.backend);
  if (order.length === 0) {
    throw new FedloraError('FL_ERR_BACKEND', `backend '${String(options.backend)}' is not one of ${candidates.map((c) => c.name).join(', ')}`);
  }
  // Asking again for the backend in use keeps it (WebGPU cannot be started twice in one process).
  if (options.backend !== undefined && active !== null && active.info.name === options.backend && options.candidates === undefined) return active.info;
  await shutdownBackend();
  const skipped: Array<{ name: BackendName; reason: string }> = [];
  for (const candidate of order) {
    const reason = await tryCandidate(candidate, skipped);
    if (reason === null) {
      const info = active!.info;
      log(`backend: ${info.name} on ${info.device}; self-test ok (max relative error ${info.selfTest.maxError.toExponential(2)})`);
      return info;
    }
    skipped.push({ name: candidate.name, reason });
    if (options.backend !== undefined) {
      throw new FedloraError('FL_ERR_BACKEND', `backend '${candidate.name}' was requested but is not usable: ${reason}`, { backend: candidate.name });
    }
    if (options.logPassedOver !== false) log(`backend: ${candidate.name} not used: ${reason}`);
  }
  throw new FedloraError('FL_ERR_BACKEND', `no usable backend: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}

/** @returns null when the candidate is now the active backend, else why not */
async function tryCandidate(candidate: BackendCandidate, skipped: ReadonlyArray<{ name: BackendName; reason: string }>): Promise<string | null> {
  let loaded: LoadedBackend;
  try {
    loaded = await candidate.load();
  } catch (e) {
    return `not available: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  }
  if (tf.getBackend() !== candidate.tfName) {
    await loaded.shutdown?.();
    return `tfjs runs on '${tf.getBackend()}' after loading it`;
  }
  const selfTest = await runSelfTest(loaded.asyncErrors);
  if (!selfTest.ok) {
    await loaded.shutdown?.();
    return `failed its self-test: ${selfTest.reason ?? 'wrong results'}`;
  }
  active = { info: { name: candidate.name, device: loaded.device, selfTest, skipped: [...skipped] }, loaded };
  return null;
}

/**
 * Errors the active device has reported since it was chosen (WebGPU's uncapturederror and device
 * loss); empty for backends that report none. The trainer checks it after training, so a GPU that
 * starts failing after its self-test cannot hand back silently wrong factors.
 */
export function backendErrors(): readonly string[] {
  return active?.loaded.asyncErrors?.() ?? [];
}

/** The backend chosen last, or null. */
export function activeBackend(): BackendInfo | null {
  return active?.info ?? null;
}

/** Releases the active backend's device (Dawn keeps Node alive otherwise). Safe to call twice. */
export async function shutdownBackend(): Promise<void> {
  const current = active;
  active = null;
  await current?.loaded.shutdown?.();
}
