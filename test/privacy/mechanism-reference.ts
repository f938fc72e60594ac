/** Runs test/privacy/mechanism-reference.py (python3 with mpmath) on a request; see its docstring. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ORDERS } from '../../privacy/rdp.js';

const script = fileURLToPath(new URL('./mechanism-reference.py', import.meta.url));

export interface ReferenceEvent {
  readonly q: number;
  readonly sigma: number;
  readonly steps: number;
}

export interface MechanismRequest {
  readonly epsilon?: ReadonlyArray<{ events: readonly ReferenceEvent[]; delta: number; orders: readonly number[] }>;
  readonly gaussians?: ReadonlyArray<{ releases: ReadonlyArray<{ sensitivity: number; std: number }> }>;
  readonly honest?: ReadonlyArray<{ n: number; h: number; s: number }>;
}

export interface MechanismAnswer {
  readonly epsilon: Array<{ epsilon: number; order: number }>;
  readonly gaussians: number[];
  readonly honest: number[];
}

export function mechanismReference(request: MechanismRequest): MechanismAnswer {
  const r = spawnSync('python3', [script], { input: JSON.stringify(request), encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`mechanism reference failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as MechanismAnswer;
}

/**
 * Orders for the reference: the integer default orders plus the fractional ones within 0.3 of
 * `near` (quadrature is slow; epsilon is smooth in the order, as accountant-reference.test.ts).
 */
export function referenceOrders(near: number): number[] {
  return DEFAULT_ORDERS.filter((a) => Number.isInteger(a) || Math.abs(a - near) <= 0.3);
}
