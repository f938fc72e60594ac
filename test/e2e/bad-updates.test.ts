/**
 * Bad updates from a hand-driven client (real socket, real keys, real envelopes) while three real
 * agents train: each bad update is refused with its own code, recorded and counted, and the
 * round completes with the agents' updates. Also: a client whose base model differs from the
 * job's is refused at join.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBaseModel } from '../../client/agent/base-model.js';
import { isFedloraError } from '../../shared/errors.js';
import { HandClient } from './hand-client.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, startRun, writeBaseModel } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(3, 48));
});

describe('bad updates', () => {
  it('malformed, oversized, NaN, wrong-shape, unsigned, replayed and wrong-job updates are each refused with their code while the round completes', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      // One round of five clients: three agents, the hand client, and a silent client that holds the
      // round open (the quorum of five is never reached, and a selected client is still waiting)
      // until the hand client is done, so every bad update meets an open round.
      const jobId = await api.createJob(mlpJob('fedavg', sha256, { rounds: 1, clientsPerRound: 5, minClients: 4 }));
      const otherJob = await api.createJob(mlpJob('fedavg', sha256));
      const model = await loadBaseModel(modelDir);
      const hand = new HandClient(api.url);
      await hand.join(jobId, await api.token(jobId), { sha256, modules: [...model.adaptable] });
      const silent = new HandClient(api.url);
      await silent.join(jobId, await api.token(jobId), { sha256, modules: [...model.adaptable] });
      const offered = hand.nextOffer();
      const clients = await Promise.all(shards.map(async (file) => makeAgent(api.url, jobId, await api.token(jobId), modelDir, file)));
      const runs = clients.map((c) => startRun(c.agent));
      const offer = await offered;

      const codes: Record<string, string> = {};
      const refusal = async (what: string, envelope: Uint8Array, jobIdOnWire?: string): Promise<void> => {
        const ack = await hand.send(offer, envelope, jobIdOnWire);
        expect(ack.ok, `${what} must be refused`).toBe(false);
        if (!ack.ok) codes[what] = ack.error.code;
      };
      const good = (_name: string, i: number): number => 0.01 * ((i % 7) - 3);
      await refusal('malformed', Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 255));
      await refusal('oversized', new Uint8Array(offer.maxUpdateBytes + 1));
      const unsigned = hand.seal(offer, HandClient.payload(offer, good));
      unsigned.fill(0, unsigned.length - 64);
      await refusal('unsigned', unsigned);
      await refusal('wrong-job (envelope bound to another job)', hand.seal(offer, HandClient.payload(offer, good), { jobId: otherJob }));
      await refusal('wrong-job (update names another job)', hand.seal(offer, HandClient.payload(offer, good)), otherJob);
      const first = offer.plan.updateTensors[0]!.name;
      await refusal('wrong-shape', hand.seal(offer, HandClient.payload(offer, good, (name, s) => (name === first ? [s[0]! + 1, s[1]!] : s))));
      await refusal('NaN', hand.seal(offer, HandClient.payload(offer, (name, i) => (name === first && i === 3 ? NaN : good(name, i)))));
      // A valid update is accepted; the same envelope again is a replay.
      const valid = hand.seal(offer, HandClient.payload(offer, good));
      expect((await hand.send(offer, valid)).ok).toBe(true);
      await refusal('replayed', valid);
      expect(codes).toEqual({
        malformed: 'FL_ERR_ENVELOPE_MALFORMED',
        oversized: 'FL_ERR_UPDATE_TOO_LARGE',
        unsigned: 'FL_ERR_ENVELOPE_SIGNATURE',
        'wrong-job (envelope bound to another job)': 'FL_ERR_ENVELOPE_BINDING',
        'wrong-job (update names another job)': 'FL_ERR_ENVELOPE_BINDING',
        'wrong-shape': 'FL_ERR_SHAPE_MISMATCH',
        NaN: 'FL_ERR_UPDATE_NOT_FINITE',
        replayed: 'FL_ERR_ENVELOPE_REPLAY',
      });
      // The hand and silent clients leave; the round commits with the agents' updates and the hand client's valid one.
      hand.close();
      silent.close();
      const summaries = await Promise.all(runs);
      const job = await api.job(jobId);
      expect(job.status).toBe('completed');
      expect(job.roundsDetail[0]!.participants.sort()).toEqual([...clients.map((c) => c.agent.id!), hand.clientId].sort());
      expect(job.roundsDetail[0]!.accepted).toBe(4);
      expect(job.roundsDetail[0]!.refused).toBe(8);
      for (const s of summaries) {
        expect(s.status).toBe('completed');
        expect(s.roundsFailed).toEqual([]);
        expect(s.updatesAccepted).toBe(1);
      }
      const metrics = await (await fetch(`${api.url}/metrics`)).text();
      for (const code of new Set(Object.values(codes))) {
        const count = Object.values(codes).filter((c) => c === code).length;
        expect(metrics).toMatch(new RegExp(`fedlora_updates_refused_total\\{reason="${code}"\\} ${count}\\b`));
      }
    } finally {
      await coordinator.stop();
    }
  });

  it('refuses a client whose base model differs from the job at join, before it trains', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('fedavg', sha256, { clientsPerRound: 1, minClients: 1 }));
      const otherModel = await writeBaseModel(2); // same shapes, other weights
      let trained = false;
      const client = await makeAgent(api.url, jobId, await api.token(jobId), otherModel, shards[0]!, {
        progress: { info: () => undefined, roundStart: () => (trained = true), step: () => undefined, roundEnd: () => undefined, stop: () => undefined },
      });
      const error = await client.agent.run().then(
        () => null,
        (e: unknown) => e,
      );
      expect(isFedloraError(error, 'FL_ERR_BASE_MODEL_MISMATCH')).toBe(true);
      expect((error as Error).message).toMatch(/base model SHA-256 [0-9a-f]{64} differs from the job's [0-9a-f]{64}/);
      expect(trained).toBe(false);
      const job = await api.job(jobId);
      expect(job.clients).toBe(0);
      expect(job.status).toBe('pending');
      // The token was not spent: a client with the right model enrols with another token and completes the job.
      const right = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[0]!);
      expect((await right.agent.run()).status).toBe('completed');
    } finally {
      await coordinator.stop();
    }
  });
});
