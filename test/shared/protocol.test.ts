import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import {
  AUTH_DOMAIN,
  HelloSchema,
  JobSpecSchema,
  OfferSchema,
  UpdateAckSchema,
  UpdateSchema,
  authMessage,
  clientRank,
  offeredPerRound,
  parseOrThrow,
  toBase64,
  fromBase64,
} from '../../shared/protocol/index.js';
import { isFedloraError } from '../../shared/errors.js';

const SHA = 'AB'.repeat(32);
const minimal = {
  strategy: 'fedsb',
  rounds: 3,
  clientsPerRound: 2,
  minClients: 2,
  model: { sha256: SHA, targetModules: ['q_proj', 'v_proj'] },
  rank: 4,
  seed: 1,
};

function errorOf(f: () => unknown): { code: string; message: string; field: unknown } {
  try {
    f();
  } catch (e) {
    if (isFedloraError(e)) return { code: e.code, message: e.message, field: e.details.field };
    throw e;
  }
  throw new Error('expected a FedloraError');
}

describe('job spec', () => {
  it('accepts the minimal body of issue 5 and fills every default', () => {
    const spec = parseOrThrow(JobSpecSchema, minimal, 'job spec');
    expect(spec).toEqual({
      ...minimal,
      model: { sha256: SHA.toLowerCase(), targetModules: ['q_proj', 'v_proj'] },
      overSelection: 0.2,
      roundDeadlineSeconds: 600,
      belowMinimum: { policy: 'retry', retries: 3 },
      training: { epochs: 1, batchSize: 16, lr: 0.001, schedule: 'constant', warmupSteps: 0, weightDecay: 0 },
      privacy: {},
      deterministicAggregation: false,
      secureAggregation: { enabled: false, clipRange: 8, quantRange: 2 ** 22, stepTimeoutSeconds: 30 },
    });
    expect(offeredPerRound(spec)).toBe(3); // ceil(2 * 1.2)
  });

  it('keeps given values over defaults, including nested ones', () => {
    const spec = JobSpecSchema.parse({ ...minimal, training: { lr: 0.05 }, belowMinimum: { policy: 'fail' }, overSelection: 0 });
    expect(spec.training.lr).toBe(0.05);
    expect(spec.training.batchSize).toBe(16);
    expect(spec.belowMinimum).toEqual({ policy: 'fail', retries: 3 });
    expect(offeredPerRound(spec)).toBe(2);
  });

  it.each([
    [{ rounds: 0 }, 'rounds'],
    [{ rounds: 1.5 }, 'rounds'],
    [{ strategy: 'fedprox' }, 'strategy'],
    [{ minClients: 3 }, 'minClients'],
    [{ model: { sha256: 'xyz', targetModules: ['q_proj'] } }, 'model.sha256'],
    [{ model: { sha256: SHA, targetModules: [] } }, 'model.targetModules'],
    [{ rank: 0 }, 'rank'],
    [{ ranks: [2, 4] }, 'ranks'],
    [{ privacy: { client: { clip: 1 } } }, 'privacy.client.noiseMultiplier'],
    [{ privacy: { budget: { epsilon: 1, delta: 2 } } }, 'privacy.budget.delta'],
    [{ strategy: 'flora', secureAggregation: { enabled: true } }, 'secureAggregation.enabled'],
    [{ secureAggregation: { enabled: true, dp: { noiseMultiplier: 1 } } }, 'secureAggregation.clipNorm'],
    [{ secureAggregation: { enabled: true, degree: 3 } }, 'secureAggregation.degree'],
    [{ secureAggregation: { enabled: true, degree: 4, threshold: 2 } }, 'secureAggregation.threshold'],
    [{ clientsPerRound: 2000, minClients: 2, secureAggregation: { enabled: true } }, 'secureAggregation.quantRange'],
    [{ secureAggregation: { enabled: true }, privacy: { user: { noiseMultiplier: 1 } } }, 'privacy.user'],
    [{ training: { lr: -1 } }, 'training.lr'],
  ])('refuses %j with FL_ERR_INVALID_CONFIG naming %s', (patch, field) => {
    const e = errorOf(() => parseOrThrow(JobSpecSchema, { ...minimal, ...patch }, 'job spec'));
    expect(e.code).toBe('FL_ERR_INVALID_CONFIG');
    expect(e.field).toBe(field);
    expect(e.message).toContain(`job spec: ${field}:`);
  });

  it('refuses user-level DP on flora and says to use client-side DP-SGD', () => {
    const e = errorOf(() => parseOrThrow(JobSpecSchema, { ...minimal, strategy: 'flora', privacy: { user: { noiseMultiplier: 1 } } }, 'job spec'));
    expect(e.field).toBe('privacy.user');
    expect(e.message).toMatch(/privacy\.client/);
  });

  it('refuses unknown fields, naming them', () => {
    const e = errorOf(() => parseOrThrow(JobSpecSchema, { ...minimal, rnds: 3 }, 'job spec'));
    expect(e.message).toContain('rnds');
  });

  it('assigns per-client ranks by enrolment order, cycling', () => {
    const spec = JobSpecSchema.parse({ ...minimal, strategy: 'flora', ranks: [2, 8, 4] });
    expect([0, 1, 2, 3, 4].map((i) => clientRank(spec, i))).toEqual([2, 8, 4, 2, 8]);
    const plain = JobSpecSchema.parse(minimal);
    expect(clientRank(plain, 7)).toBe(4);
  });

  it('never throws anything but a coded error on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          parseOrThrow(JobSpecSchema, value, 'job spec');
        } catch (e) {
          expect(isFedloraError(e, 'FL_ERR_INVALID_CONFIG')).toBe(true);
        }
      }),
    );
  });
});

describe('socket events', () => {
  const keys = nacl.sign.keyPair();
  const hello = {
    protocolVersion: 1,
    jobId: 'job_1',
    enrolmentToken: 'x'.repeat(32),
    signPublicKey: toBase64(keys.publicKey),
    backend: { name: 'wasm', device: 'cpu', selfTest: { passed: true } },
    model: { sha256: SHA, modules: [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 8, inFeatures: 8 }] },
  };

  it('hello needs exactly one of enrolmentToken and clientId', () => {
    expect(HelloSchema.safeParse(hello).success).toBe(true);
    expect(HelloSchema.safeParse({ ...hello, clientId: 'c1' }).success).toBe(false);
    const { enrolmentToken: _t, ...bare } = hello;
    expect(HelloSchema.safeParse(bare).success).toBe(false);
    expect(HelloSchema.safeParse({ ...bare, clientId: 'c1' }).success).toBe(true);
  });

  it('hello refuses a key of the wrong length and another protocol version', () => {
    expect(HelloSchema.safeParse({ ...hello, signPublicKey: toBase64(new Uint8Array(31)) }).success).toBe(false);
    expect(HelloSchema.safeParse({ ...hello, protocolVersion: 2 }).success).toBe(false);
  });

  it('update payloads accept Buffer, Uint8Array and ArrayBuffer and give bytes', () => {
    for (const envelope of [Buffer.from([1, 2, 3]), new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]).buffer]) {
      const u = UpdateSchema.parse({ jobId: 'j', round: 0, attempt: 0, envelope });
      expect(u.envelope).toBeInstanceOf(Uint8Array);
      // Never a Buffer (whose slice aliases): a plain view over the same bytes.
      expect(Buffer.isBuffer(u.envelope)).toBe(false);
      expect([...u.envelope]).toEqual([1, 2, 3]);
    }
    expect(UpdateSchema.safeParse({ jobId: 'j', round: 0, attempt: 0, envelope: 'AQID' }).success).toBe(false);
  });

  it('acks are a discriminated union on ok', () => {
    expect(UpdateAckSchema.parse({ ok: false, error: { code: 'FL_ERR_UPDATE_REFUSED', message: 'm' } }).ok).toBe(false);
    expect(UpdateAckSchema.safeParse({ ok: true }).success).toBe(false);
  });

  it('offer defaults the strategy extras to {}', () => {
    const offer = OfferSchema.parse({
      jobId: 'j',
      round: 0,
      attempt: 0,
      deadline: 1,
      maxUpdateBytes: 10,
      state: new Uint8Array(0),
      plan: { strategy: 'ffa', variant: 'ffa', rank: 2, alpha: 2, modules: [], trainable: ['B'], start: 'global', updateTensors: [], training: {}, seed: 0 },
    });
    expect(offer.plan.extra).toEqual({});
    expect(offer.plan.training.batchSize).toBe(16);
  });

  it('the auth message is the documented bytes and a signature over it verifies', () => {
    const nonce = toBase64(nacl.randomBytes(32));
    const pk = toBase64(keys.publicKey);
    const msg = authMessage('job_1', nonce, pk);
    expect(new TextDecoder().decode(msg)).toBe(`${AUTH_DOMAIN}\njob_1\n${nonce}\n${pk}`);
    const sig = nacl.sign.detached(msg, keys.secretKey);
    expect(nacl.sign.detached.verify(msg, sig, fromBase64(pk))).toBe(true);
    expect(nacl.sign.detached.verify(authMessage('job_2', nonce, pk), sig, keys.publicKey)).toBe(false);
  });
});
