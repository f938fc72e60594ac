/**
 * The refusal of updates whose frozen factors differ from the global ones (FFA-LoRA's A, Fed-SB's
 * A and B), compared by SHA-256 of their float32 bytes (frozen-hash.ts). The global factors'
 * hashes are cached per array (global adapters are immutable); an update's are computed each time.
 */
import type { Adapter } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { sha256OfFloat32 } from './frozen-hash.js';
import type { ClientUpdate } from './strategy.js';
import { tensorName } from './validate-update.js';

const globalHashes = new WeakMap<Float32Array, string>();

/** SHA-256 of a global (immutable) factor, computed once per array. */
export function globalFactorHash(data: Float32Array): string {
  let hash = globalHashes.get(data);
  if (hash === undefined) {
    hash = sha256OfFloat32(data);
    globalHashes.set(data, hash);
  }
  return hash;
}

/**
 * Throws FL_ERR_FROZEN_MISMATCH when a frozen factor the update carries differs from the reference's.
 * Factors the update leaves out pass (the client checked the hash on join).
 * @param hint the rule to state in the message, e.g. "ffa clients must use the A derived from the job seed"
 */
export function checkFrozenFactors(update: ClientUpdate, reference: Adapter, factors: readonly ('A' | 'B')[], hint: string): void {
  for (const m of update.adapter.layout.modules) {
    const mine = update.adapter.factors.get(m.path);
    const global = reference.factors.get(m.path);
    for (const factor of factors) {
      const data = mine?.[factor];
      const expected = global?.[factor];
      if (data === undefined || expected === undefined || data === expected) continue;
      const hash = sha256OfFloat32(data);
      const want = globalFactorHash(expected);
      if (hash !== want) {
        const name = tensorName(m.path, factor);
        throw new FedloraError('FL_ERR_FROZEN_MISMATCH', `${update.source}: ${name} differs from the global frozen ${factor} (sha256 ${hash.slice(0, 16)}... vs ${want.slice(0, 16)}...); ${hint}`, {
          source: update.source,
          tensor: name,
        });
      }
    }
  }
}
