/**
 * The Kaiming-uniform initialisation PEFT gives lora_A: `nn.init.kaiming_uniform_(A, a=sqrt(5))`,
 * gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in), with
 * fan_in = n (the columns of A [r, n]). Drawn from the specified seeded generator, so the same seed
 * and module path give the same bytes on every machine.
 */
import { SeededRandom } from './seeded-random.js';

/**
 * A [rank, inFeatures] uniform in [-1/sqrt(n), 1/sqrt(n)), row-major, from
 * SeededRandom.fromSeed(domain, seed, path): value_i = fround((2 u_i - 1) / sqrt(n)).
 * @param domain names the use, e.g. `fedlora/ffa/lora_A/v1`
 */
export function kaimingUniformA(domain: string, seed: string, path: string, rank: number, inFeatures: number): Float32Array {
  return SeededRandom.fromSeed(domain, seed, path).uniformArray(rank * inFeatures, 1 / Math.sqrt(inFeatures));
}
