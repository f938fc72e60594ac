/**
 * Splitting a labelled data set among simulated clients, reproducibly from a seed:
 *  - `iid`: a seeded shuffle cut into N near-equal parts;
 *  - `dirichlet`: label skew (Hsu, Qi and Brown 2019, "Measuring the effects of non-identical data
 *    distribution"): for each class c, proportions p_c ~ Dir(alpha 1_N) over the clients and the
 *    class's shuffled rows are cut at the cumulative proportions. Small alpha (0.1) gives clients
 *    one or two classes; large alpha (100) approaches IID;
 *  - `category`: one category per client: client k holds only class k mod C (clients that share a
 *    class split its rows evenly); with fewer clients than classes, some classes are unused.
 * Pure functions on label arrays; no tfjs.
 */
import { FedloraError } from '../shared/errors.js';
import { SeededRandom } from '../client/data/seeded-random.js';

export type Partitioner = { readonly kind: 'iid' } | { readonly kind: 'dirichlet'; readonly alpha: number } | { readonly kind: 'category' };

/** Row indices per client (each sorted ascending); every row goes to at most one client. */
export type Partition = Int32Array[];

/**
 * Parses `iid`, `category` or `dirichlet:<alpha>` (also `dirichlet` with `alpha` given apart).
 * @param alpha @default 0.5 when the text names no alpha
 */
export function parsePartitioner(text: string, alpha?: number): Partitioner {
  const [kind, value] = text.split(':', 2);
  if (kind === 'iid' && value === undefined) return { kind: 'iid' };
  if ((kind === 'category' || kind === 'one-category') && value === undefined) return { kind: 'category' };
  if (kind === 'dirichlet') {
    const a = value === undefined ? (alpha ?? 0.5) : Number(value);
    if (!(Number.isFinite(a) && a > 0)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--partition: dirichlet alpha must be a number > 0, got '${value ?? alpha}'`, { option: 'partition' });
    return { kind: 'dirichlet', alpha: a };
  }
  throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--partition must be iid, category or dirichlet:<alpha>, got '${text}'`, { option: 'partition' });
}

/** Short label of a partitioner for reports (`dirichlet(0.1)`). */
export function describePartitioner(p: Partitioner): string {
  return p.kind === 'dirichlet' ? `dirichlet(${p.alpha})` : p.kind;
}

/**
 * One standard normal draw (Box-Muller) from the seeded stream. Used only to sample Gamma
 * variates for the partition, never for privacy noise.
 */
function normal(rng: SeededRandom): number {
  const u = 1 - rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat());
}

/**
 * A Gamma(shape, 1) variate: Marsaglia and Tsang (2000), "A simple method for generating gamma
 * variables", with the boost Gamma(a) = Gamma(a + 1) U^(1/a) for a < 1. Written here because no
 * installed library samples Gamma from a seeded stream (ml-matrix does not).
 */
export function sampleGamma(shape: number, rng: SeededRandom): number {
  if (shape < 1) return sampleGamma(shape + 1, rng) * Math.pow(1 - rng.nextFloat(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.nextFloat();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** A Dir(alpha 1_n) draw: n Gamma(alpha) variates normalised to sum 1. */
export function sampleDirichlet(alpha: number, n: number, rng: SeededRandom): Float64Array {
  const g = Float64Array.from({ length: n }, () => sampleGamma(alpha, rng));
  let sum = g.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) {
    // every variate underflowed (alpha tiny): all mass on one client, chosen uniformly
    g.fill(0);
    g[rng.nextInt(n)] = 1;
    sum = 1;
  }
  return g.map((v) => v / sum);
}

function classRows(labels: Int32Array): Map<number, number[]> {
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => {
    let rows = byClass.get(l);
    if (rows === undefined) byClass.set(l, (rows = []));
    rows.push(i);
  });
  return new Map([...byClass].sort((a, b) => a[0] - b[0]));
}

function cutEvenly(rows: ArrayLike<number>, parts: number): number[][] {
  const out: number[][] = Array.from({ length: parts }, () => []);
  for (let p = 0; p < parts; p++) {
    const from = Math.floor((p * rows.length) / parts);
    const to = Math.floor(((p + 1) * rows.length) / parts);
    for (let i = from; i < to; i++) out[p]!.push(rows[i]!);
  }
  return out;
}

/**
 * Splits the rows of `labels` among `clients` clients.
 * @param minPerClient fewest rows a client may get; Dirichlet draws are repeated (up to 1000 times) until every client has that many. @default 1
 * @throws FL_ERR_INVALID_ARGUMENT when there are too few rows, or no Dirichlet draw gives every client `minPerClient` rows
 */
export function partitionRows(labels: Int32Array, clients: number, partitioner: Partitioner, seed: number, minPerClient = 1): Partition {
  if (!Number.isInteger(clients) || clients < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--clients must be an integer >= 1, got ${clients}`, { option: 'clients' });
  if (labels.length < clients * minPerClient) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${labels.length} training rows cannot give ${clients} clients ${minPerClient} rows each: use fewer clients`, { option: 'clients' });
  }
  const rng = new SeededRandom(seed, `partition:${describePartitioner(partitioner)}`);
  const sorted = (rows: number[][]): Partition => rows.map((r) => Int32Array.from(r).sort());
  if (partitioner.kind === 'iid') {
    const order = rng.shuffle(Int32Array.from({ length: labels.length }, (_, i) => i));
    return sorted(cutEvenly(order, clients));
  }
  const byClass = classRows(labels);
  if (partitioner.kind === 'category') {
    const classes = [...byClass.keys()];
    const out: number[][] = Array.from({ length: clients }, () => []);
    classes.forEach((c, ci) => {
      const holders = Array.from({ length: clients }, (_, k) => k).filter((k) => k % classes.length === ci);
      if (holders.length === 0) return;
      const rows = rng.shuffle(byClass.get(c)!.slice());
      cutEvenly(rows, holders.length).forEach((part, h) => out[holders[h]!]!.push(...part));
    });
    const empty = out.findIndex((r) => r.length < minPerClient);
    if (empty >= 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `category partition: client ${empty} gets ${out[empty]!.length} rows (< ${minPerClient}); use fewer clients`, { option: 'clients' });
    return sorted(out);
  }
  for (let attempt = 0; attempt < 1000; attempt++) {
    const out: number[][] = Array.from({ length: clients }, () => []);
    for (const rows0 of byClass.values()) {
      const rows = rng.shuffle(rows0.slice());
      const p = sampleDirichlet(partitioner.alpha, clients, rng);
      let cum = 0;
      let from = 0;
      for (let k = 0; k < clients; k++) {
        cum += p[k]!;
        const to = k === clients - 1 ? rows.length : Math.min(rows.length, Math.round(cum * rows.length));
        for (let i = from; i < to; i++) out[k]!.push(rows[i]!);
        from = Math.max(from, to);
      }
    }
    if (out.every((r) => r.length >= minPerClient)) return sorted(out);
  }
  throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `dirichlet(${partitioner.alpha}): no draw in 1000 gave each of ${clients} clients >= ${minPerClient} rows; raise alpha or use fewer clients`, { option: 'partition' });
}

/** Rows per class for each client: [clients][classes] (for reports and tests). */
export function classCounts(labels: Int32Array, partition: Partition, classes: number): number[][] {
  return partition.map((rows) => {
    const counts = new Array<number>(classes).fill(0);
    for (const r of rows) counts[labels[r]!]!++;
    return counts;
  });
}
