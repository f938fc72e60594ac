import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCoordinatorKey, coordinatorPinName, forgetCoordinatorKey } from '../../privacy/key-pinning.js';
import { fingerprintOf, formatFingerprint, generateKeyPairs, publicKeysOf } from '../../privacy/keys.js';
import { isFedloraError } from '../../shared/errors.js';

let dir: string;
let pins: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-pins-'));
  pins = join(dir, 'known-coordinators.json');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const original = publicKeysOf(generateKeyPairs());
const replacement = publicKeysOf(generateKeyPairs());
const URL_A = 'https://coord.example:8443';

describe('trust on first use', () => {
  it('pins on first contact (file mode 0600), accepts the same key later', () => {
    expect(checkCoordinatorKey(pins, URL_A, original)).toEqual({ fingerprint: fingerprintOf(original), status: 'first-use' });
    expect(statSync(pins).mode & 0o777).toBe(0o600);
    expect(checkCoordinatorKey(pins, `${URL_A}/api/`, original).status).toBe('pinned');
  });

  it('refuses a changed key with FL_ERR_KEY_CHANGED naming both fingerprints, and keeps the pin', () => {
    checkCoordinatorKey(pins, URL_A, original);
    const before = readFileSync(pins, 'utf8');
    let err: unknown;
    try {
      checkCoordinatorKey(pins, URL_A, replacement);
    } catch (e) {
      err = e;
    }
    expect(isFedloraError(err, 'FL_ERR_KEY_CHANGED')).toBe(true);
    const message = (err as Error).message;
    expect(message).toContain(formatFingerprint(fingerprintOf(replacement)));
    expect(message).toContain(formatFingerprint(fingerprintOf(original)));
    expect(message).toContain(`coordinator ${URL_A}`);
    expect(readFileSync(pins, 'utf8')).toBe(before);
    // a change of one of the two keys alone is caught too
    expect(() => checkCoordinatorKey(pins, URL_A, { ...original, boxPublicKey: replacement.boxPublicKey })).toThrow(/FL_ERR_KEY_CHANGED/);
  });

  it('pins per origin: another port or host is another coordinator', () => {
    checkCoordinatorKey(pins, URL_A, original);
    expect(checkCoordinatorKey(pins, 'https://coord.example:9443', replacement).status).toBe('first-use');
    expect(checkCoordinatorKey(pins, 'coordinator-7', replacement).status).toBe('first-use');
    expect(coordinatorPinName('HTTPS://Coord.Example:8443/x?y')).toBe(URL_A);
    expect(coordinatorPinName('coordinator-7')).toBe('coordinator-7');
  });

  it('after forgetCoordinatorKey the new key is pinned on next contact', () => {
    checkCoordinatorKey(pins, URL_A, original);
    expect(forgetCoordinatorKey(pins, URL_A)).toBe(true);
    expect(forgetCoordinatorKey(pins, URL_A)).toBe(false);
    expect(checkCoordinatorKey(pins, URL_A, replacement).status).toBe('first-use');
  });
});

describe('configured fingerprint', () => {
  it('accepts the matching key however the fingerprint is written, without touching the pins file', () => {
    const configured = formatFingerprint(fingerprintOf(original)).toUpperCase();
    expect(checkCoordinatorKey(pins, URL_A, original, { configuredFingerprint: configured }).status).toBe('configured');
    expect(existsSync(pins)).toBe(false);
  });

  it('refuses another key, even one pinned earlier, naming the configuration', () => {
    checkCoordinatorKey(pins, URL_A, replacement);
    expect(() => checkCoordinatorKey(pins, URL_A, replacement, { configuredFingerprint: fingerprintOf(original) })).toThrow(
      /FL_ERR_KEY_CHANGED: .*but the configuration \(coordinatorFingerprint\) pins/,
    );
    expect(() => checkCoordinatorKey(pins, URL_A, original, { configuredFingerprint: 'zz' })).toThrow(/FL_ERR_INVALID_ARGUMENT: coordinatorFingerprint must be 64 hex digits/);
  });
});

describe('the pins file', () => {
  it('refuses one writable by group or others, allows one readable by them', () => {
    checkCoordinatorKey(pins, URL_A, original);
    chmodSync(pins, 0o620);
    expect(() => checkCoordinatorKey(pins, URL_A, original)).toThrow(/FL_ERR_KEY_FILE: .*mode 0620, which lets other users change it/);
    chmodSync(pins, 0o644);
    expect(checkCoordinatorKey(pins, URL_A, original).status).toBe('pinned');
  });

  it('refuses a malformed pins file with FL_ERR_KEY_FILE', () => {
    writeFileSync(pins, '{"format":"fedlora-pins/1","coordinators":{"x":{"fingerprint":"abc","pinnedAt":"t"}}}', { mode: 0o600 });
    expect(() => checkCoordinatorKey(pins, URL_A, original)).toThrow(/FL_ERR_KEY_FILE: .*coordinators.x.fingerprint/);
    writeFileSync(pins, '[', { mode: 0o600 });
    expect(() => checkCoordinatorKey(pins, URL_A, original)).toThrow(/FL_ERR_KEY_FILE: .*is not JSON/);
  });
});
