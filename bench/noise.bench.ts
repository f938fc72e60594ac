/**
 * `npm run bench noise`: the cost of the DP mechanisms on a 33 MB update (8.4 M float32 values,
 * a 7B model's q/v adapters at r = 16): Gaussian noise (privacy/gaussian.ts: Ziggurat on the ChaCha20
 * CSPRNG) and
 * flat L2 clipping (privacy/clipping.ts), against baselines measured in the same run:
 * - the same polar method fed by Math.random (insecure: the cost of the method without the CSPRNG);
 * - a plain copy of the vector (the floor of anything that writes it once).
 */
import { randomFillSync } from 'node:crypto';
import { clipL2 } from '../privacy/clipping.js';
import { addGaussianNoise } from '../privacy/gaussian.js';
import { machineLine } from './machine.js';

const N = 8_388_608; // 33.5 MB of float32

/** Median seconds of fn over reps calls, after one warm-up call. */
function medianSeconds(reps: number, fn: () => void): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(reps / 2)]!;
}

/** The polar method on Math.random: a baseline only, never noise for privacy. */
function insecurePolar(target: Float32Array, std: number): void {
  for (let i = 0; i < target.length; ) {
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * Math.random() - 1;
      v = 2 * Math.random() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = std * Math.sqrt((-2 * Math.log(s)) / s);
    target[i] = target[i]! + u * f;
    if (++i < target.length) target[i] = target[i]! + v * f;
    i++;
  }
}

export async function run(): Promise<void> {
  console.log(machineLine());
  const update = new Float32Array(N);
  randomFillSync(update);
  for (let i = 0; i < N; i++) update[i] = (update[i]! % 1) || 0; // finite values
  const target = new Float32Array(N);

  const noise = medianSeconds(5, () => addGaussianNoise(target, 0.01));
  const baseline = medianSeconds(5, () => insecurePolar(target, 0.01));
  const clip = medianSeconds(5, () => clipL2([update], 1));
  const copy = medianSeconds(5, () => {
    update.slice();
  });

  const rate = (s: number) => `${(N / s / 1e6).toFixed(1)} M values/s (${((N * 4) / s / 1e6).toFixed(0)} MB/s)`;
  console.log(`Gaussian noise, Ziggurat on ChaCha20:  ${rate(noise)}, ${(noise * 1e3).toFixed(0)} ms per 33.5 MB update`);
  console.log(`baseline: polar method on Math.random: ${rate(baseline)}; ours / Math.random polar speed ratio ${(baseline / noise).toFixed(2)}`);
  console.log(`flat L2 clip (norm + scaled copy):      ${rate(clip)}, ${(clip * 1e3).toFixed(0)} ms`);
  console.log(`baseline: copy of the vector:           ${rate(copy)}; clip / copy speed ratio ${(copy / clip).toFixed(2)}`);
}
