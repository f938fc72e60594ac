/** Test helpers: a real coordinator on port 0 with a temp SQLite file, and HTTP calls to it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator } from '../../coordinator/coordinator.js';
import type { CoordinatorConfigInput } from '../../coordinator/config.js';

export const ADMIN = 'test-admin-token-0123456789';
export const SHA = 'ab'.repeat(32);

export const minimalJob = {
  strategy: 'fedsb',
  rounds: 3,
  clientsPerRound: 2,
  minClients: 2,
  model: { sha256: SHA, targetModules: ['q_proj', 'v_proj'] },
  rank: 4,
  seed: 1,
};

export interface Harness {
  readonly dir: string;
  readonly db: string;
  coordinator: Coordinator;
  api(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; json: unknown; headers: Headers; bytes: Uint8Array }>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(config: CoordinatorConfigInput = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-coord-'));
  const db = join(dir, 'fedlora.db');
  const full: CoordinatorConfigInput = { db, port: 0, adminToken: ADMIN, logLevel: 'silent', ...config };
  const h: Harness = {
    dir,
    db,
    coordinator: await Coordinator.start(full),
    async api(method, path, body, token = ADMIN) {
      const headers: Record<string, string> = {};
      if (token !== null) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${h.coordinator.url}${path}`, { method, headers, ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
      const bytes = new Uint8Array(await res.arrayBuffer());
      const type = res.headers.get('content-type') ?? '';
      return { status: res.status, headers: res.headers, bytes, json: type.includes('json') ? JSON.parse(new TextDecoder().decode(bytes)) : undefined };
    },
    async restart() {
      await h.coordinator.stop();
      h.coordinator = await Coordinator.start(full);
    },
    async close() {
      if (h.coordinator.store.isOpen) await h.coordinator.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}
