/**
 * Replay protection for update envelopes: the coordinator remembers every envelope nonce it has
 * accepted and refuses a second envelope with the same one (FL_ERR_ENVELOPE_REPLAY).
 *
 * Nonces are scoped to the envelope's binding (job, round, client). An envelope replayed into
 * another job or round already fails its binding check, so a store only has to remember the
 * rounds still open and may forget the rest ({@link MemoryNonceStore.forgetRoundsBefore}).
 */

/** What identifies one accepted envelope. */
export interface NonceKey {
  readonly jobId: string;
  readonly round: number;
  readonly clientId: string;
  /** The envelope's 24-byte nonce, base64 as in its header. */
  readonly nonce: string;
}

/**
 * Where accepted nonces are kept. The in-memory store serves one process; the coordinator backs it
 * with its database so replays are refused across restarts (and across processes). Methods may be
 * synchronous (better-sqlite3) or asynchronous (a network database).
 */
export interface NonceStore {
  /** Whether the nonce was already accepted: a cheap check before decrypting. */
  has(key: NonceKey): boolean | Promise<boolean>;
  /**
   * Records the nonce if it is new, atomically: true when it was added, false when it was
   * already there (then the envelope is a replay). A database implements it as an INSERT that a
   * unique constraint refuses, so two concurrent openings of one envelope cannot both succeed.
   */
  checkAndAdd(key: NonceKey): boolean | Promise<boolean>;
}

/** A NonceStore in a Map, for one process (tests, simulations, a single coordinator's cache). */
export class MemoryNonceStore implements NonceStore {
  /** jobId -> round -> set of `${clientId}\n${nonce}` */
  private readonly jobs = new Map<string, Map<number, Set<string>>>();

  private roundSet(key: NonceKey, create: boolean): Set<string> | undefined {
    let rounds = this.jobs.get(key.jobId);
    if (rounds === undefined) {
      if (!create) return undefined;
      rounds = new Map();
      this.jobs.set(key.jobId, rounds);
    }
    let set = rounds.get(key.round);
    if (set === undefined && create) {
      set = new Set();
      rounds.set(key.round, set);
    }
    return set;
  }

  has(key: NonceKey): boolean {
    return this.roundSet(key, false)?.has(`${key.clientId}\n${key.nonce}`) ?? false;
  }

  checkAndAdd(key: NonceKey): boolean {
    const set = this.roundSet(key, true)!;
    const id = `${key.clientId}\n${key.nonce}`;
    if (set.has(id)) return false;
    set.add(id);
    return true;
  }

  /**
   * Forgets the nonces of a job's rounds before `round` (their envelopes fail the binding check
   * from then on anyway), so memory stays bounded by the open rounds.
   */
  forgetRoundsBefore(jobId: string, round: number): void {
    const rounds = this.jobs.get(jobId);
    if (rounds === undefined) return;
    for (const r of [...rounds.keys()]) if (r < round) rounds.delete(r);
    if (rounds.size === 0) this.jobs.delete(jobId);
  }

  /** Forgets everything about a finished job. */
  forgetJob(jobId: string): void {
    this.jobs.delete(jobId);
  }

  /** Number of nonces held. */
  get size(): number {
    let n = 0;
    for (const rounds of this.jobs.values()) for (const set of rounds.values()) n += set.size;
    return n;
  }
}
