/**
 * Coordinator key pinning on the client: trust on first use (as SSH's known_hosts), or a
 * fingerprint given in configuration. A coordinator that later presents another key is refused
 * with FL_ERR_KEY_CHANGED naming both fingerprints, since an attacker in the middle (or a
 * replaced server) would present its own key to read the updates sealed to it.
 *
 * Pins live in a small JSON file the client owns, mode 0600, replaced atomically on change.
 * The file is not secret, but it must not be writable by others (FL_ERR_KEY_FILE).
 */
import { z } from 'zod';
import { FedloraError } from '../shared/errors.js';
import { readPrivateFile, writePrivateFileAtomic } from './key-file.js';
import { fingerprintOf, formatFingerprint, normalizeFingerprint, type PublicKeys } from './keys.js';

const PINS_FORMAT = 'fedlora-pins/1';

const PinsFileSchema = z.strictObject({
  format: z.literal(PINS_FORMAT),
  coordinators: z.record(
    z.string(),
    z.strictObject({
      fingerprint: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
      pinnedAt: z.string(),
    }),
  ),
});
type PinsFile = z.infer<typeof PinsFileSchema>;

/** How a coordinator key was accepted. */
export type PinStatus =
  /** It matched the fingerprint given in configuration. */
  | 'configured'
  /** It matched the fingerprint pinned on an earlier contact. */
  | 'pinned'
  /** First contact: it was pinned now. */
  | 'first-use';

/**
 * The name a coordinator is pinned under: the origin of a URL (scheme, host, port; so paths and a
 * trailing slash do not matter), or the string itself when it is not a URL.
 */
export function coordinatorPinName(coordinator: string): string {
  try {
    const url = new URL(coordinator);
    if (url.origin !== 'null') return url.origin;
  } catch {
    // not a URL: an id
  }
  return coordinator;
}

function readPins(path: string): PinsFile {
  const text = readPrivateFile(path, 0o022);
  if (text === undefined) return { format: PINS_FORMAT, coordinators: {} };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FedloraError('FL_ERR_KEY_FILE', `${path} (coordinator key pins) is not JSON`, { path }, { cause: e });
  }
  const parsed = PinsFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FedloraError('FL_ERR_KEY_FILE', `${path} (coordinator key pins): field '${issue.path.join('.')}': ${issue.message}`, { path });
  }
  return parsed.data;
}

function changed(name: string, presented: string, expected: string, source: string): FedloraError {
  return new FedloraError(
    'FL_ERR_KEY_CHANGED',
    `coordinator ${name} presents key fingerprint ${formatFingerprint(presented)}, but ${source} pins ${formatFingerprint(expected)}. ` +
      'Someone may be intercepting the connection. If the coordinator really changed its key, confirm the new fingerprint with its operator and update the pin.',
    { coordinator: name, presented, expected },
  );
}

/**
 * Checks the keys a coordinator presents against the pinned or configured fingerprint, pinning
 * them on first contact.
 * @param pinsPath the client's pins file (created with mode 0600 on first pin)
 * @param coordinator the coordinator's URL (pinned by origin) or id
 * @param presented the public keys the coordinator sent; the fingerprint is computed from them,
 *   never taken from the coordinator's word
 * @param options.configuredFingerprint a fingerprint from configuration: when given it decides
 *   alone and the pins file is neither read nor written
 * @throws FL_ERR_KEY_CHANGED naming both fingerprints; FL_ERR_KEY_FILE for an unsafe or malformed
 *   pins file; FL_ERR_INVALID_ARGUMENT for a malformed configured fingerprint
 */
export function checkCoordinatorKey(
  pinsPath: string,
  coordinator: string,
  presented: PublicKeys,
  options: { configuredFingerprint?: string; now?: Date } = {},
): { fingerprint: string; status: PinStatus } {
  const name = coordinatorPinName(coordinator);
  const fingerprint = fingerprintOf(presented);
  if (options.configuredFingerprint !== undefined) {
    const expected = normalizeFingerprint(options.configuredFingerprint, 'coordinatorFingerprint');
    if (expected !== fingerprint) throw changed(name, fingerprint, expected, 'the configuration (coordinatorFingerprint)');
    return { fingerprint, status: 'configured' };
  }
  const pins = readPins(pinsPath);
  const pin = pins.coordinators[name];
  if (pin !== undefined) {
    if (pin.fingerprint !== fingerprint) throw changed(name, fingerprint, pin.fingerprint, `${pinsPath} (pinned ${pin.pinnedAt})`);
    return { fingerprint, status: 'pinned' };
  }
  pins.coordinators[name] = { fingerprint, pinnedAt: (options.now ?? new Date()).toISOString() };
  writePrivateFileAtomic(pinsPath, `${JSON.stringify(pins, null, 2)}\n`);
  return { fingerprint, status: 'first-use' };
}

/**
 * Removes a coordinator's pin (after its operator confirmed a key change), so the next contact pins
 * the new key. @returns whether a pin was removed
 */
export function forgetCoordinatorKey(pinsPath: string, coordinator: string): boolean {
  const pins = readPins(pinsPath);
  const name = coordinatorPinName(coordinator);
  if (pins.coordinators[name] === undefined) return false;
  delete pins.coordinators[name];
  writePrivateFileAtomic(pinsPath, `${JSON.stringify(pins, null, 2)}\n`);
  return true;
}
