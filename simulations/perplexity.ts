/**
 * Perplexity of a causal LM on several named test sets (the language task's categories) and on
 * their union. The union is not the mean of the sets' perplexities: it is exp of the total
 * negative log-likelihood over the total counted tokens, i.e. the token-weighted mean loss.
 */
import type { ExampleSource } from '../client/data/batches.js';
import type { TrainableModel } from '../client/lora/lora-model.js';

export interface NamedSource {
  readonly name: string;
  readonly source: ExampleSource;
}

export interface PerplexityResult {
  /** exp(mean NLL per token) over the union of the sets. */
  readonly perplexity: number;
  /** Mean NLL per counted token over the union, nats. */
  readonly loss: number;
  readonly tokens: number;
  /** Per set: its perplexity. */
  readonly byCategory: Record<string, number>;
}

/** Evaluates the model on every set (client/train/evaluate.ts) and combines them. */
export async function evaluatePerplexity(model: TrainableModel, sets: readonly NamedSource[]): Promise<PerplexityResult> {
  const { evaluate } = await import('../client/train/evaluate.js');
  let nll = 0;
  let tokens = 0;
  const byCategory: Record<string, number> = {};
  for (const { name, source } of sets) {
    const ev = await evaluate(model, source);
    byCategory[name] = ev.perplexity ?? Math.exp(ev.loss);
    nll += ev.loss * (ev.tokens ?? 0);
    tokens += ev.tokens ?? 0;
  }
  const loss = nll / Math.max(1, tokens);
  return { perplexity: Math.exp(loss), loss, tokens, byCategory };
}
