/** Data sets as the loaders return them: plain typed arrays, no tfjs. */

/** Numeric features and integer class labels, row-major. */
export interface ClassificationTable {
  readonly kind: 'classification';
  /** Where the rows came from (a file path), for messages. */
  readonly source: string;
  readonly featureNames: readonly string[];
  /** [rows, featureNames.length], row-major. */
  readonly features: Float32Array;
  /** [rows], each >= 0. */
  readonly labels: Int32Array;
  /** The line (1-based) each row came from, for messages. */
  readonly lines: Int32Array;
}

/** Texts for language modelling, optionally with integer labels (text classification). */
export interface TextCorpus {
  readonly kind: 'text';
  readonly source: string;
  readonly texts: readonly string[];
  /** Present when every record has a label. */
  readonly labels?: Int32Array;
  readonly lines: Int32Array;
}

/**
 * Pre-tokenised sequences for language modelling (JSONL rows `{"input_ids": [...]}`): used as
 * they are, no tokenizer and no BOS/EOS added. Ids are checked against the model's vocabulary
 * when a model is known (client/data/sequences.ts).
 */
export interface TokenCorpus {
  readonly kind: 'tokens';
  readonly source: string;
  /** Each row's ids, every one a non-negative integer. */
  readonly sequences: readonly Int32Array[];
  readonly lines: Int32Array;
}

export type DataSet = ClassificationTable | TextCorpus | TokenCorpus;

/** Data a causal language model trains on: texts, or pre-tokenised rows. */
export type LanguageData = TextCorpus | TokenCorpus;

export function rowCount(data: DataSet): number {
  switch (data.kind) {
    case 'classification': return data.labels.length;
    case 'text': return data.texts.length;
    case 'tokens': return data.sequences.length;
    default: {
      const never: never = data;
      throw new Error(`unknown data kind ${String(never)}`);
    }
  }
}

/** The rows at `indices` (in that order) as a new data set. */
export function subset<T extends DataSet>(data: T, indices: ArrayLike<number>): T {
  const lines = Int32Array.from({ length: indices.length }, (_, i) => data.lines[indices[i]!]!);
  if (data.kind === 'classification') {
    const d = data.featureNames.length;
    const features = new Float32Array(indices.length * d);
    const labels = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i]!;
      features.set(data.features.subarray(r * d, (r + 1) * d), i * d);
      labels[i] = data.labels[r]!;
    }
    return { ...data, features, labels, lines } as T;
  }
  if (data.kind === 'tokens') {
    return { ...data, sequences: Array.from({ length: indices.length }, (_, i) => data.sequences[indices[i]!]!), lines } as T;
  }
  const texts = Array.from({ length: indices.length }, (_, i) => data.texts[indices[i]!]!);
  const labels = data.labels === undefined ? undefined : Int32Array.from({ length: indices.length }, (_, i) => data.labels![indices[i]!]!);
  return { ...data, texts, lines, ...(labels === undefined ? {} : { labels }) } as T;
}

/** The indices of the rows whose label is in `keep`. */
export function indicesWithLabels(labels: Int32Array, keep: ReadonlySet<number>): Int32Array {
  const out: number[] = [];
  labels.forEach((l, i) => { if (keep.has(l)) out.push(i); });
  return Int32Array.from(out);
}
