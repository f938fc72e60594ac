/**
 * Named option sets for `fedlora sim --preset NAME`. `demo` is what `npm run demo` runs: 8 clients
 * on the bundled digits, non-IID (Dirichlet alpha 0.5), a base mlp pre-trained only on the public
 * digits 0-4, so the federated LoRA fine-tuning has to learn 5-9 from the clients' data, over the
 * four strategies with the same partition, seeds and budget.
 */
export const PRESETS = {
  demo: {
    data: 'digits',
    clients: 8,
    rounds: 8,
    strategy: 'all',
    seed: 1,
    out: 'out/demo',
    partition: 'dirichlet',
    alpha: 0.5,
    rank: 4,
    epochs: 2,
    lr: 0.01,
    publicLabels: '0-4',
    publicFraction: 0.3,
    hidden: '64,64',
  },
} as const;
export type PresetName = keyof typeof PRESETS;
