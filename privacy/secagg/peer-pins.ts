/**
 * The agent's pins of its secure aggregation peers' enrolled signing keys: trust on first use, as
 * SSH's known_hosts and as the coordinator's own key (key-pinning.ts). The first time a client is
 * shown a peer (coordinator origin, job, client id) with a signing key, the key is pinned; a later
 * round that relays another key for the same peer is refused with FL_ERR_SECAGG_IDENTITY naming
 * both fingerprints, since a coordinator that swaps a peer's key can open what the client seals
 * for that peer.
 *
 * The file is JSON, mode 0600, replaced atomically; not secret, but it must not be writable by
 * others (FL_ERR_KEY_FILE). Its fingerprints can be compared out of band with each peer's own
 * (`fedlora client join` prints the client's fingerprint), which is what turns "pinned on first
 * sight" into "verified" (docs/secure-aggregation.md, "Threat model").
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FedloraError } from '../../shared/errors.js';
import { readPrivateFile, writePrivateFileAtomic } from '../key-file.js';
import type { PeerTrust } from './identity.js';

const FORMAT = 'fedlora-peer-pins/1';

const PeerPinsSchema = z.strictObject({
  format: z.literal(FORMAT),
  /** By `<scope>\n<peer id>`: hex of the peer's 32-byte Ed25519 public key, and when it was pinned. */
  peers: z.record(z.string(), z.strictObject({ signPublicKey: z.string().regex(/^[0-9a-f]{64}$/), pinnedAt: z.string() })),
});
type PeerPinsFile = z.infer<typeof PeerPinsSchema>;

/** SHA-256 of a signing public key, hex: what a person compares out of band. */
export const signKeyFingerprint = (key: Uint8Array) => createHash('sha256').update('fedlora-signing-key-v1\n').update(key).digest('hex');

function read(path: string): PeerPinsFile {
  const text = readPrivateFile(path, 0o022);
  if (text === undefined) return { format: FORMAT, peers: {} };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FedloraError('FL_ERR_KEY_FILE', `${path} (secure aggregation peer pins) is not JSON`, { path }, { cause: e });
  }
  const parsed = PeerPinsSchema.safeParse(json);
  if (!parsed.success) throw new FedloraError('FL_ERR_KEY_FILE', `${path} (secure aggregation peer pins): ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`, { path });
  return parsed.data;
}

/**
 * A file-backed PeerTrust.
 * @param path the pins file (created on the first pin)
 * @param scope where the ids live: the coordinator's origin and the job id (ids are per job)
 * @param onPinned told the first time a peer is pinned (for the agent's log)
 */
export function pinnedPeerTrust(path: string, scope: string, onPinned?: (peer: string, fingerprint: string) => void): PeerTrust {
  return (peers) => {
    const pins = read(path);
    const fresh: Array<[string, string]> = [];
    for (const { id: peer, signPublicKey: key } of peers) {
      const name = `${scope}\n${peer}`;
      const hex = Buffer.from(key).toString('hex');
      const pin = pins.peers[name];
      if (pin === undefined) {
        pins.peers[name] = { signPublicKey: hex, pinnedAt: new Date().toISOString() };
        fresh.push([peer, signKeyFingerprint(key)]);
        continue;
      }
      if (pin.signPublicKey === hex) continue;
      throw new FedloraError(
        'FL_ERR_SECAGG_IDENTITY',
        `secure aggregation: the coordinator relays signing key ${signKeyFingerprint(key).slice(0, 16)}... for peer '${peer}', but ${path} pinned ${signKeyFingerprint(Buffer.from(pin.signPublicKey, 'hex')).slice(0, 16)}... on ${pin.pinnedAt}; refusing the round (the coordinator may be substituting the peer's keys)`,
        { client: peer, presented: hex, pinned: pin.signPublicKey },
      );
    }
    // one write for the round's new peers, and only once every relayed key passed
    if (fresh.length === 0) return;
    writePrivateFileAtomic(path, `${JSON.stringify(pins, null, 2)}\n`);
    for (const [peer, fingerprint] of fresh) onPinned?.(peer, fingerprint);
  };
}
