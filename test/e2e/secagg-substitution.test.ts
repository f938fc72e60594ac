/**
 * Secure aggregation against key substitution, in the runtime: one real agent of a secure job
 * talks to the real coordinator through a TCP proxy on loopback that plays the active coordinator
 * of the threat model (docs/secure-aggregation.md): in each `keys` message it relays, it replaces
 * the first neighbour's advertised X25519 key by a key of its own (so the shares this agent seals
 * for that neighbour would open for the attacker). The agent refuses the round with
 * FL_ERR_SECAGG_IDENTITY naming the neighbour and reveals nothing; the other agents, connected
 * directly, complete the round without it.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import nacl from 'tweetnacl';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, startRun } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(4, 24));
});

/**
 * A proxy that rewrites, in server-to-client WebSocket text frames (unmasked, RFC 6455 5.1), the
 * first `"cPublicKey":"<44 base64 chars>"` of every secagg `keys` message: the same length, so
 * the frame header stays valid.
 */
async function startKeySwapProxy(target: string): Promise<{ url: string; swapped: () => number; close: () => Promise<void> }> {
  const upstream = new URL(target);
  const attackerKey = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
  let swapped = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = connect(Number(upstream.port), upstream.hostname);
    sockets.add(client).add(up);
    let buffer = Buffer.alloc(0);
    let inHeaders = true;
    client.on('data', (c: Buffer) => up.write(c));
    up.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const out: Buffer[] = [];
      if (inHeaders) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        out.push(buffer.subarray(0, end + 4));
        buffer = buffer.subarray(end + 4);
        inHeaders = false;
      }
      for (;;) {
        if (buffer.length < 2) break;
        const opcode = buffer[0]! & 0x0f;
        let length = buffer[1]! & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffer.length < 4) break;
          length = buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (buffer.length < 10) break;
          length = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (buffer.length < offset + length) break;
        const frame = Buffer.from(buffer.subarray(0, offset + length));
        if (opcode === 0x1) {
          const text = frame.subarray(offset).toString('utf8');
          const m = /"step":"keys".*?"cPublicKey":"([A-Za-z0-9+/=]{44})"/.exec(text);
          if (m !== null) {
            const at = offset + Buffer.byteLength(text.slice(0, m.index + m[0].length - 45), 'utf8');
            frame.write(attackerKey, at, 'utf8');
            swapped++;
          }
        }
        out.push(frame);
        buffer = buffer.subarray(offset + length);
      }
      if (out.length > 0) client.write(Buffer.concat(out));
    });
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end).on('error', end);
    up.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    swapped: () => swapped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('secure aggregation: a relayed key swapped on the way', () => {
  it('the agent refuses the round with FL_ERR_SECAGG_IDENTITY; the others complete it without that agent', async () => {
    const { coordinator, api } = await startCoordinator();
    const proxy = await startKeySwapProxy(coordinator.url);
    try {
      // n = 4: k = 3, t = 2; with the attacked client out, each of the others keeps 2 neighbours
      const spec = mlpJob('fedavg', sha256, { rounds: 1, clientsPerRound: 4, minClients: 3, secureAggregation: { enabled: true, stepTimeoutSeconds: 3 } });
      const jobId = await api.createJob(spec);
      const attacked = await makeAgent(proxy.url, jobId, await api.token(jobId), modelDir, shards[0]!);
      const honest = [];
      for (let i = 1; i < 4; i++) honest.push(await makeAgent(coordinator.url, jobId, await api.token(jobId), modelDir, shards[i]!));
      const [victim, ...others] = await Promise.all([startRun(attacked.agent), ...honest.map((a) => startRun(a.agent))]);

      expect(proxy.swapped()).toBeGreaterThanOrEqual(1);
      expect(victim!.updatesAccepted).toBe(0);
      expect(victim!.roundsFailed).toHaveLength(1);
      expect(victim!.roundsFailed[0]!.code).toBe('FL_ERR_SECAGG_IDENTITY');
      expect(victim!.roundsFailed[0]!.message).toMatch(/the keys relayed for 'cl_[^']+' are not signed by its enrolled key/);
      for (const s of others) expect(s!.status).toBe('completed');

      const view = await api.job(jobId);
      expect(view.status).toBe('completed');
      expect(view.roundsDetail[0]!.participants).toHaveLength(3);
      expect(view.roundsDetail[0]!.participants).not.toContain(attacked.agent.id);
    } finally {
      await proxy.close();
      await coordinator.stop();
    }
  }, 90_000);
});
