/** Timing helpers shared by the benchmarks. */

/** Median of the numbers (the upper middle one for an even count). */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Seconds one call of fn takes. */
export async function seconds(fn: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * Median seconds of each function over `reps` rounds, the functions interleaved within a round so
 * that load from other processes and GC pauses fall on all of them alike (after one warm-up round).
 */
export async function interleavedMedians(reps: number, fns: Record<string, () => unknown>): Promise<Record<string, number>> {
  const times: Record<string, number[]> = {};
  for (let r = -1; r < reps; r++) {
    for (const [name, fn] of Object.entries(fns)) {
      const t = await seconds(fn);
      if (r >= 0) (times[name] ??= []).push(t);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}
