import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import { createPrivateFileOnce, readPrivateFile, writePrivateFileAtomic } from '../../privacy/key-file.js';
import { fingerprintOf, formatFingerprint, loadKeys, loadOrCreateKeys, normalizeFingerprint, publicKeyMessage } from '../../privacy/keys.js';
import { isFedloraError, type ErrorCode } from '../../shared/errors.js';
import { CoordinatorKeySchema } from '../../shared/protocol/events.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-keys-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const modeOf = (p: string) => statSync(p).mode & 0o777;

function codeOf(fn: () => unknown): ErrorCode {
  try {
    fn();
  } catch (e) {
    if (isFedloraError(e)) return e.code;
    throw e;
  }
  throw new Error('expected a FedloraError');
}

describe('loadOrCreateKeys', () => {
  it('creates the key file once with mode 0600 (even under umask 000), then loads the same keys', () => {
    const path = join(dir, 'nested', 'coordinator.key.json');
    const old = process.umask(0);
    let first;
    try {
      first = loadOrCreateKeys(path, 'coordinator');
    } finally {
      process.umask(old);
    }
    expect(first.created).toBe(true);
    expect(modeOf(path)).toBe(0o600);
    expect(modeOf(join(dir, 'nested'))).toBe(0o700);
    const second = loadOrCreateKeys(path, 'coordinator');
    expect(second.created).toBe(false);
    expect(second.fingerprint).toBe(first.fingerprint);
    expect(second.keys.box.secretKey).toEqual(first.keys.box.secretKey);
    expect(second.keys.sign.secretKey).toEqual(first.keys.sign.secretKey);
    expect(readdirSync(join(dir, 'nested'))).toEqual(['coordinator.key.json']); // no temp file left
  });

  it('the loaded keys work: box and sign pairs are consistent', () => {
    const { keys } = loadOrCreateKeys(join(dir, 'client.json'), 'client');
    const loaded = loadKeys(join(dir, 'client.json'), 'client');
    const msg = new TextEncoder().encode('hello');
    expect(nacl.sign.detached.verify(msg, nacl.sign.detached(msg, loaded.sign.secretKey), keys.sign.publicKey)).toBe(true);
    const other = nacl.box.keyPair();
    const nonce = nacl.randomBytes(24);
    expect(nacl.box.open(nacl.box(msg, nonce, keys.box.publicKey, other.secretKey), nonce, other.publicKey, loaded.box.secretKey)).toEqual(msg);
  });

  it('refuses a key file readable or writable by group or others, and names the fix', () => {
    const path = join(dir, 'k.json');
    loadOrCreateKeys(path, 'coordinator');
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      chmodSync(path, mode);
      expect(codeOf(() => loadOrCreateKeys(path, 'coordinator'))).toBe('FL_ERR_KEY_FILE');
    }
    chmodSync(path, 0o644);
    expect(() => loadKeys(path, 'coordinator')).toThrow(`has mode 0644, which lets other users read or change it; run: chmod 600 ${path}`);
    chmodSync(path, 0o400);
    expect(loadKeys(path, 'coordinator').sign.publicKey.length).toBe(32);
  });

  it('refuses a missing, non-JSON, wrong-owner, tampered or directory key file', () => {
    const path = join(dir, 'k.json');
    expect(codeOf(() => loadKeys(path, 'client'))).toBe('FL_ERR_KEY_FILE');
    writeFileSync(path, 'not json', { mode: 0o600 });
    expect(codeOf(() => loadKeys(path, 'client'))).toBe('FL_ERR_KEY_FILE');
    rmSync(path);
    loadOrCreateKeys(path, 'client');
    expect(() => loadKeys(path, 'coordinator')).toThrow(/holds client keys, not coordinator keys/);
    const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
    json.boxPublicKey = Buffer.alloc(32, 7).toString('base64');
    writeFileSync(path, JSON.stringify(json));
    expect(() => loadKeys(path, 'client')).toThrow(/a public key does not match its secret key/);
    json.signSecretKey = 'AAAA';
    writeFileSync(path, JSON.stringify(json));
    expect(() => loadKeys(path, 'client')).toThrow(/FL_ERR_KEY_FILE: .*field 'signSecretKey'/);
    expect(codeOf(() => loadKeys(dir, 'client'))).toBe('FL_ERR_KEY_FILE');
  });
});

describe('concurrent creation', () => {
  it('processes racing to create one key file agree on one key pair; exactly one creates it', async () => {
    const path = join(dir, 'raced.key.json');
    const child = join(dirname(fileURLToPath(import.meta.url)), 'create-keys-child.ts');
    const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--import', 'tsx', child, path], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const lines = children.map((c) => {
      const rl = createInterface({ input: c.stdout! });
      const next = () => new Promise<string>((resolve) => rl.once('line', resolve));
      return next;
    });
    await Promise.all(lines.map((next) => next().then((l) => expect(l).toBe('ready'))));
    const results = lines.map((next) => next());
    for (const c of children) c.stdin!.write('go\n'); // all start together
    const outcomes = (await Promise.all(results)).map((l) => JSON.parse(l) as { created: boolean; fingerprint: string });
    await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode === null ? c.once('exit', resolve) : resolve(c.exitCode)))));
    expect(outcomes.filter((o) => o.created)).toHaveLength(1);
    expect(new Set(outcomes.map((o) => o.fingerprint)).size).toBe(1);
    expect(outcomes[0]!.fingerprint).toBe(loadOrCreateKeys(path, 'coordinator').fingerprint);
    expect(readdirSync(dir)).toEqual(['raced.key.json']); // no temp file left behind
  }, 30_000);
});

describe('key files', () => {
  it('createPrivateFileOnce never replaces an existing file', () => {
    const path = join(dir, 'once');
    expect(createPrivateFileOnce(path, 'first')).toBe(true);
    expect(createPrivateFileOnce(path, 'second')).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('first');
    expect(readdirSync(dir)).toEqual(['once']);
  });

  it('writePrivateFileAtomic replaces contents and keeps mode 0600', () => {
    const path = join(dir, 'pins');
    writePrivateFileAtomic(path, 'a');
    writePrivateFileAtomic(path, 'b');
    expect(readFileSync(path, 'utf8')).toBe('b');
    expect(modeOf(path)).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['pins']);
  });

  it('readPrivateFile returns undefined for a missing file and checks only the bits asked for', () => {
    expect(readPrivateFile(join(dir, 'none'), 0o077)).toBeUndefined();
    const path = join(dir, 'public');
    writeFileSync(path, 'x');
    chmodSync(path, 0o644);
    expect(readPrivateFile(path, 0o022)).toBe('x');
    expect(codeOf(() => readPrivateFile(path, 0o077))).toBe('FL_ERR_KEY_FILE');
  });
});

describe('fingerprints', () => {
  it('is SHA-256 over domain, sign key, box key (checked against python3 hashlib)', () => {
    // python3 -c "import hashlib; print(hashlib.sha256(b'fedlora-key-fingerprint-v1\n'+b'\x01'*32+b'\x02'*32).hexdigest())"
    const fp = fingerprintOf({ signPublicKey: new Uint8Array(32).fill(1), boxPublicKey: new Uint8Array(32).fill(2) });
    expect(fp).toBe('413fb87f21af5e4b447191048cc112e620628085dd5dd159c48154b1f44e16bc');
    expect(formatFingerprint(fp)).toBe('413f:b87f:21af:5e4b:4471:9104:8cc1:12e6:2062:8085:dd5d:d159:c481:54b1:f44e:16bc');
    // swapping the two keys changes it: both are covered, in order
    expect(fingerprintOf({ signPublicKey: new Uint8Array(32).fill(2), boxPublicKey: new Uint8Array(32).fill(1) })).not.toBe(fp);
  });

  it('normalises what people type and refuses what is not a SHA-256', () => {
    const fp = '413fb87f21af5e4b447191048cc112e620628085dd5dd159c48154b1f44e16bc';
    expect(normalizeFingerprint(formatFingerprint(fp).toUpperCase())).toBe(fp);
    expect(normalizeFingerprint(`SHA256:${fp.match(/.{4}/g)!.join(' ')}`)).toBe(fp);
    expect(() => normalizeFingerprint('abcd', 'client.coordinatorFingerprint')).toThrow(/FL_ERR_INVALID_ARGUMENT: client.coordinatorFingerprint must be 64 hex digits/);
  });

  it('publicKeyMessage matches the protocol shape with a formatted fingerprint', () => {
    const { keys, fingerprint } = loadOrCreateKeys(join(dir, 'c.json'), 'coordinator');
    const m = publicKeyMessage(keys);
    expect(Buffer.from(m.boxPublicKey, 'base64')).toEqual(Buffer.from(keys.box.publicKey));
    expect(normalizeFingerprint(m.fingerprint)).toBe(fingerprint);
    expect(CoordinatorKeySchema.safeParse(m).success).toBe(true); // what the challenge event carries
  });
});
