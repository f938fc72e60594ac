/**
 * FLoRA on the client: the rounds it has merged, kept in its state folder, so that the coordinator
 * sends only the rounds it lacks (aggregation/flora.ts `floraOffer`; issue 12).
 *
 * A FLoRA offer's plan carries `extra.flora = {from, through, ranks}`: its state holds the stacks
 * of rounds [from, through) (0-based counts of aggregated rounds), and `ranks[path]` the rank each
 * of them added to a module. The client keeps the stacks of rounds [0, through) it has merged as
 * one stacked adapter (their concatenation in round order, exactly as the coordinator's
 * accumulated adapter) in `DIR/flora-merged.safetensors`, and before training replaces the offer's
 * state by its own rounds [0, from) followed by the offered ones: the sum of every round, which the
 * round handler merges into the pristine base weights as before. A client that has merged more
 * than `from` (an update of its that the coordinator did not count) drops its rounds from `from`
 * on and takes the offered ones. A module whose missing rounds hold more values as a stack than as
 * its dense delta comes dense (`extra.flora.dense`), and is kept as one identity-factor term
 * covering those rounds (shared/flora-dense.ts).
 *
 * ```
 * DIR/flora-merged.safetensors   mode 0600: the stacked adapter (PEFT names, F32) with
 *   __metadata__["fedlora.layout"] (its AdapterLayout) and ["fedlora.flora"] ({jobId, through, ranks})
 * ```
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Adapter } from '../../shared/adapter.js';
import { adapterToTensors } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import { concatenateAdapters, sliceStack } from '../../shared/lora-stack.js';
import type { Offer } from '../../shared/protocol/events.js';
import { decodeSafetensors, encodeSafetensors } from '../../shared/safetensors/index.js';
import { writePrivateFileAtomic } from '../../privacy/key-file.js';
import { decodeOfferedState, LAYOUT_METADATA_KEY } from './update-payload.js';
import { decodeFloraOfferState } from '../../shared/flora-dense.js';

export const FLORA_MERGED_FILE = 'flora-merged.safetensors';
const FLORA_METADATA_KEY = 'fedlora.flora';

/** Per module, the rank each round adds; 0 for the rounds of a dense block but its last (shared/flora-dense.ts). */
const RanksSchema = z.record(z.string(), z.array(z.int().min(0)));

/** The plan's `extra.flora`: which rounds the offered state holds, and which modules come as a dense delta. */
export const FloraOfferSchema = z.strictObject({
  from: z.int().min(0),
  through: z.int().min(0),
  ranks: RanksSchema,
  dense: z.array(z.string()).optional(),
});

const MergedMetaSchema = z.strictObject({
  jobId: z.string().min(1),
  through: z.int().min(0),
  ranks: RanksSchema,
});

interface Merged {
  readonly jobId: string;
  /** Rounds merged: [0, through). */
  readonly through: number;
  readonly ranks: Readonly<Record<string, readonly number[]>>;
  readonly adapter: Adapter | null;
}

function encodeStacked(adapter: Adapter | null, meta: z.infer<typeof MergedMetaSchema>): Uint8Array {
  const tensors = adapter === null ? [] : adapterToTensors(adapter);
  return encodeSafetensors(tensors, { ...(adapter !== null && { [LAYOUT_METADATA_KEY]: JSON.stringify(adapter.layout) }), [FLORA_METADATA_KEY]: JSON.stringify(meta) });
}

function encodeState(adapter: Adapter | null): Uint8Array {
  return adapter === null ? encodeSafetensors([]) : encodeSafetensors(adapterToTensors(adapter), { [LAYOUT_METADATA_KEY]: JSON.stringify(adapter.layout) });
}

/** What a client has merged of a FLoRA job, in its state folder (or only in memory without one). */
export class FloraMerged {
  private cache: Merged | null | undefined;

  /** @param dir the agent's state folder; null keeps the merged rounds in memory only */
  constructor(private readonly dir: string | null) {}

  get path(): string | null {
    return this.dir === null ? null : join(this.dir, FLORA_MERGED_FILE);
  }

  /** The merged rounds of `jobId`, or null (none, or another job's). @throws FL_ERR_CLIENT_STATE for a corrupt file */
  load(jobId: string): Merged | null {
    if (this.cache === undefined) this.cache = this.read();
    return this.cache !== null && this.cache.jobId === jobId ? this.cache : null;
  }

  private read(): Merged | null {
    const path = this.path;
    if (path === null) return null;
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new FedloraError('FL_ERR_IO', `cannot read ${path}: ${(e as Error).message}`, { path }, { cause: e });
    }
    try {
      const { metadata } = decodeSafetensors(bytes, path);
      const meta = MergedMetaSchema.parse(JSON.parse(metadata?.[FLORA_METADATA_KEY] ?? 'null'));
      return { ...meta, adapter: decodeOfferedState(bytes) };
    } catch (e) {
      throw new FedloraError('FL_ERR_CLIENT_STATE', `${path} is not a FLoRA merged-rounds file: ${(e as Error).message.split('\n')[0]}; delete it to start from the full state`, { path }, { cause: e });
    }
  }

  private save(merged: Merged): void {
    this.cache = merged;
    const path = this.path;
    if (path !== null) writePrivateFileAtomic(path, encodeStacked(merged.adapter, { jobId: merged.jobId, through: merged.through, ranks: { ...merged.ranks } as Record<string, number[]> }));
  }

  /**
   * The offer with its state replaced by every round the client has then merged (its own rounds
   * before the offer's `from`, then the offered ones), which it records. Offers without
   * `extra.flora` come back as they are.
   * @throws FL_ERR_ROUND_STATE when the offer starts after rounds the client does not have (it
   *   then has to reconnect: the coordinator offers a reconnected client every round)
   */
  resolve(offer: Offer): Offer {
    const raw = offer.plan.extra.flora;
    if (raw === undefined) return offer;
    const parsed = FloraOfferSchema.safeParse(raw);
    if (!parsed.success || parsed.data.from > parsed.data.through) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `round ${offer.round}: the offer's plan.extra.flora is not {from, through, ranks} with from <= through`);
    }
    const { from, through, ranks } = parsed.data;
    // a module sent dense becomes one identity-factor term, merged as any stack (shared/flora-dense.ts)
    const offered = decodeFloraOfferState(offer.state, parsed.data.dense ?? []);
    for (const m of offered?.layout.modules ?? []) {
      const added = (ranks[m.path] ?? []).reduce((t, r) => t + r, 0);
      if (added !== m.rank || (ranks[m.path]?.length ?? 0) !== through - from) {
        throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `round ${offer.round}: the offered stack of module '${m.path}' has rank ${m.rank}, but its ${through - from} rounds add ${added}`);
      }
    }
    let prefix: Adapter | null = null;
    const keptRanks: Record<string, number[]> = {};
    if (from > 0) {
      const mine = this.load(offer.jobId);
      if (mine === null || mine.through < from) {
        throw new FedloraError(
          'FL_ERR_ROUND_STATE',
          `round ${offer.round}: the offer holds rounds ${from + 1}-${through} of FLoRA's stack, but this client has merged ${mine === null ? 'none' : `only rounds 1-${mine.through}`} (${this.path ?? 'in memory'}); it needs the whole state, which the coordinator sends after a reconnect`,
        );
      }
      const ranges = new Map<string, readonly [number, number]>();
      for (const m of mine.adapter?.layout.modules ?? []) {
        const r = mine.ranks[m.path] ?? [];
        if (from < mine.through && r[from - 1] === 0) {
          // round `from` ends inside a dense block: its rounds cannot be told apart
          throw new FedloraError(
            'FL_ERR_ROUND_STATE',
            `round ${offer.round}: the offer starts after round ${from} of FLoRA's stack, but this client holds rounds up to ${mine.through} of module '${m.path}' as one dense delta (${this.path ?? 'in memory'}); it needs the whole state, which the coordinator sends after a reconnect`,
          );
        }
        keptRanks[m.path] = r.slice(0, from);
        ranges.set(m.path, [0, keptRanks[m.path]!.reduce((t, v) => t + v, 0)]);
      }
      prefix = mine.adapter === null ? null : sliceStack(mine.adapter, ranges);
    }
    const adapter = prefix === null ? offered : offered === null ? prefix : concatenateAdapters(prefix, offered);
    const allRanks: Record<string, number[]> = {};
    for (const m of adapter?.layout.modules ?? []) allRanks[m.path] = [...(keptRanks[m.path] ?? []), ...(ranks[m.path] ?? [])];
    this.save({ jobId: offer.jobId, through, ranks: allRanks, adapter });
    return { ...offer, state: encodeState(adapter) };
  }
}
