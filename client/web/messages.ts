/** The messages between the join page (page.ts) and its Web Worker (worker.ts). */
import type { RoundResult } from '../../shared/protocol/events.js';
import type { AgentSummary } from '../agent/summary.js';

/** Page -> worker: join with these files (they stay in this browser). */
export interface JoinRequest {
  readonly type: 'join';
  readonly coordinatorUrl: string;
  /** The enrolment token from the link's fragment; not needed once enrolled (IndexedDB). */
  readonly token: string | null;
  /** The backend the link asks for (`#token=T&backend=wasm`): forced, no fallback; null: the page's order. */
  readonly backend: BrowserBackendName | null;
  /** The model folder's files, with their path inside the folder. */
  readonly model: ReadonlyArray<{ readonly path: string; readonly file: Blob }>;
  readonly data: { readonly name: string; readonly file: Blob };
}

/** The browser's tfjs backends (client/web/backends.ts), the names a link's `backend=` may give. */
export const BROWSER_BACKENDS = ['webgpu', 'webgl', 'wasm'] as const;
export type BrowserBackendName = (typeof BROWSER_BACKENDS)[number];

/** Worker -> page. */
export type WorkerEvent =
  | { readonly type: 'info'; readonly line: string }
  | { readonly type: 'enrolled'; readonly clientId: string | null; readonly jobId: string | null }
  | { readonly type: 'backend'; readonly name: string; readonly device: string; readonly skipped: string[] }
  | { readonly type: 'round-start'; readonly round: number; readonly attempt: number; readonly steps: number }
  | { readonly type: 'step'; readonly step: number; readonly loss: number; readonly examplesPerSecond: number }
  | { readonly type: 'round-end' }
  | { readonly type: 'round-result'; readonly result: RoundResult }
  | { readonly type: 'done'; readonly summary: AgentSummary }
  | { readonly type: 'error'; readonly code: string; readonly message: string };
