/**
 * Named option sets for `fedlora sim --preset NAME`. `demo` is what `npm run demo` runs: 8 clients
 * on the bundled digits, non-IID (Dirichlet alpha 0.5), a base mlp pre-trained only on the public
 * digits 0-4, so the federated LoRA fine-tuning has to learn 5-9 from the clients' data, over the
 * four strategies with the same partition, seeds and budget. Per strategy, as the papers tune
 * them: FFA-LoRA (only B trains) and Fed-SB (only R trains) take a 5x larger learning rate, and
 * Fed-SB rank 8 (its upload is r^2 = 64 floats per matrix, still the smallest; rank 16 would exceed
 * the head's min(m, n) = 10).
 */
export const PRESETS = {
  demo: {
    data: 'digits',
    clients: 8,
    rounds: 10,
    strategy: 'all',
    seed: 1,
    out: 'out/demo',
    partition: 'dirichlet',
    alpha: 0.5,
    rank: '4,fedsb=8',
    epochs: 2,
    lr: '0.01,ffa=0.05,fedsb=0.05',
    publicLabels: '0-4',
    publicFraction: 0.3,
    hidden: '64,64',
  },
} as const;
export type PresetName = keyof typeof PRESETS;
