/**
 * The preamble the round-engine tests share (issue 14): a real coordinator on a temp SQLite file
 * (../helpers.ts startHarness), jobs made over its HTTP API and hand-driven socket.io clients
 * (../protocol-client.ts), all closed after each test so no test sees another's sockets or store.
 */
import { afterEach, expect } from 'vitest';
import type { CoordinatorConfigInput } from '../../../coordinator/config.js';
import type { ModuleShape } from '../../../shared/protocol/job-spec.js';
import { CreateJobResponseSchema } from '../../../shared/protocol/http.js';
import { SHA, startHarness, type Harness } from '../helpers.js';
import { enrolTestClients, type TestClient } from '../protocol-client.js';

export interface EngineHarness {
  /** The coordinator of the running test; throws when the test has not started one. */
  readonly h: Harness;
  /** Clients closed after each test: enrol() tracks its own, push any made by hand. */
  readonly clients: TestClient[];
  start(config?: CoordinatorConfigInput): Promise<Harness>;
  /** POST /api/jobs with the file's defaults under `body`; expects 201 and returns the job id. */
  createJob(body: Record<string, unknown>): Promise<string>;
  /** Enrols and joins `n` clients reporting the file's modules (base model SHA). */
  enrol(jobId: string, n: number): Promise<TestClient[]>;
}

/**
 * Call once at the top of a test file: registers the afterEach that closes the clients and the
 * coordinator.
 * @param o.modules the modules every client reports
 * @param o.job defaults of every job this file creates (model, rank, seed, ...)
 */
export function useEngineHarness(o: { modules: readonly ModuleShape[]; job: Record<string, unknown> }): EngineHarness {
  let current: Harness | undefined;
  const clients: TestClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await current?.close();
    current = undefined;
  });
  const t: EngineHarness = {
    get h(): Harness {
      if (current === undefined) throw new Error('no coordinator: call start() first in this test');
      return current;
    },
    clients,
    async start(config = {}) {
      current = await startHarness(config);
      return current;
    },
    async createJob(body) {
      const r = await t.h.api('POST', '/api/jobs', { ...o.job, ...body });
      expect(r.status, JSON.stringify(r.json)).toBe(201);
      return CreateJobResponseSchema.parse(r.json).id;
    },
    enrol(jobId, n) {
      return enrolTestClients(t.h.api, t.h.coordinator.url, { jobId, sha256: SHA, modules: o.modules, n, track: clients });
    },
  };
  return t;
}
