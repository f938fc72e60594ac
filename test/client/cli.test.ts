import { execFileSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readPeftAdapterDir } from '../../shared/peft.js';
import { isFedloraError } from '../../shared/errors.js';
import { formatLabelSet, parseDpClip, parseLabelSet, register } from '../../client/cli.js';

/** Runs `fedlora <args>` with the client's commands; returns what it printed on stdout. */
async function run(...args: string[]): Promise<string> {
  const program = new Command('fedlora').exitOverride();
  register(program);
  let out = '';
  const spyOut = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { out += String(chunk); return true; });
  const spyErr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await program.parseAsync(['node', 'fedlora', ...args]);
  } finally {
    spyOut.mockRestore();
    spyErr.mockRestore();
  }
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try { await p; return 'ok'; } catch (e) { return isFedloraError(e) ? e.code : String(e); }
}

afterEach(() => vi.restoreAllMocks());

describe('fedlora pretrain mlp / train', () => {
  it('pre-trains on digits 0-4, fine-tunes LoRA on 5-9 and writes a PEFT adapter that reads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-cli-'));
    const modelDir = join(dir, 'mlp');
    const pre = JSON.parse(await run('pretrain', 'mlp', '--hidden', '16', '--epochs', '3', '--out', modelDir, '--backend', 'wasm')) as { sha256: string; heldOut: { accuracy: number } };
    expect(pre.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(pre.heldOut.accuracy).toBeGreaterThan(0.8);
    const adapterDir = join(dir, 'adapter');
    const res = JSON.parse(await run('train', '--model', modelDir, '--data', 'simulations/data/digits.csv.gz', '--labels', '5-9', '--rank', '4', '--epochs', '3', '--out', adapterDir, '--backend', 'wasm')) as {
      baseModelSha256: string; before: { accuracy: number }; after: { accuracy: number };
    };
    expect(res.baseModelSha256).toBe(pre.sha256);
    expect(res.before.accuracy).toBeLessThan(0.05);
    expect(res.after.accuracy).toBeGreaterThan(0.7);
    const adapter = await readPeftAdapterDir(adapterDir);
    expect(adapter.layout.variant).toBe('lora');
    expect(adapter.layout.baseModelSha256).toBe(pre.sha256);
    expect(adapter.layout.modules.map((m) => [m.path, m.rank, m.alpha])).toEqual([['layers.0', 4, 8], ['head', 4, 8]]);
    const head = adapter.factors.get('head')!;
    expect(head.A!.length).toBe(4 * 16);
    expect(head.B!.some((v) => v !== 0)).toBe(true);

    // fedlora eval: base and base + adapter on 5-9, against numpy in float64 reading the same files
    const ev = JSON.parse(await run('eval', '--model', modelDir, '--adapter', adapterDir, '--data', 'simulations/data/digits.csv.gz', '--labels', '5-9', '--backend', 'wasm')) as {
      task: string; adapter: { variant: string; rank: number }; base: { examples: number; accuracy: number; loss: number }; adapted: { examples: number; accuracy: number; loss: number };
    };
    expect(ev.task).toBe('classification');
    expect(ev.adapter).toMatchObject({ variant: 'lora', rank: 4 });
    const ref = JSON.parse(execFileSync('python3', ['test/client/eval_reference.py', modelDir, adapterDir, 'simulations/data/digits.csv.gz', '5,6,7,8,9'], { encoding: 'utf8' })) as {
      examples: number; base: { accuracy: number; loss: number }; adapted: { accuracy: number; loss: number };
    };
    expect(ev.base.examples).toBe(ref.examples);
    // float32 against float64: an argmax may flip on a near tie, the losses agree to ~1e-5
    expect(Math.abs(ev.base.accuracy - ref.base.accuracy)).toBeLessThanOrEqual(1 / ref.examples);
    expect(Math.abs(ev.adapted.accuracy - ref.adapted.accuracy)).toBeLessThanOrEqual(1 / ref.examples);
    expect(ev.base.loss).toBeCloseTo(ref.base.loss, 3);
    expect(ev.adapted.loss).toBeCloseTo(ref.adapted.loss, 3);
    expect(ev.adapted.accuracy).toBeGreaterThan(ev.base.accuracy + 0.5);
    // an adapter for another base model is refused
    const otherBase = join(dir, 'other');
    await run('pretrain', 'mlp', '--hidden', '16', '--epochs', '1', '--seed', '1', '--out', otherBase, '--backend', 'wasm');
    expect(await codeOf(run('eval', '--model', otherBase, '--adapter', adapterDir, '--data', 'simulations/data/digits.csv.gz', '--backend', 'wasm'))).toBe('FL_ERR_BASE_MODEL_MISMATCH');
  });

  it('pretrain mlp reports the labels it trained on, not the --labels default', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-cli-labels-'));
    const csv = join(dir, 'two.csv');
    const rows = Array.from({ length: 40 }, (_, i) => [...Array.from({ length: 4 }, (_, j) => ((i * 7 + j * 3) % 11) + (i % 2) * 5), i % 2].join(','));
    await writeFile(csv, rows.join('\n') + '\n');
    const out = await run('pretrain', 'mlp', '--data', csv, '--hidden', '4', '--epochs', '1', '--out', join(dir, 'm'), '--backend', 'cpu');
    const summary = JSON.parse(out) as { labels: number[]; numLabels: number };
    expect(summary.labels).toEqual([0, 1]);
    expect(summary.numLabels).toBe(2);
    expect(await codeOf(run('pretrain', 'mlp', '--data', csv, '--labels', '5-9', '--hidden', '4', '--epochs', '1', '--out', join(dir, 'n'), '--backend', 'cpu'))).toBe('FL_ERR_DATA');
  });

  it('refuses bad arguments and data with coded errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-cli-bad-'));
    await expect(run('train', '--model', dir, '--data', 'x.csv', '--variant', 'dora')).rejects.toThrow(/FL_ERR_INVALID_ARGUMENT: --variant must be lora, ffa or fedsb, got 'dora'/);
    expect(await codeOf(run('train', '--model', dir, '--data', 'x.csv', '--dp-sigma', '1'))).toBe('FL_ERR_PRIVACY_ARGUMENT');
    await expect(run('train', '--model', dir, '--data', 'x.csv', '--rank', '0')).rejects.toThrow(/--rank must be a positive integer, got '0'/);
    await expect(run('train', '--model', dir, '--data', 'x.csv', '--backend', 'cpu')).rejects.toThrow(/FL_ERR_MODEL_CONFIG: cannot read .*config\.json/);
    // a data file with the wrong number of features for the model
    const modelDir = join(dir, 'mlp');
    await run('pretrain', 'mlp', '--hidden', '8', '--epochs', '1', '--out', modelDir, '--backend', 'cpu');
    const csv = join(dir, 'three.csv');
    await writeFile(csv, 'a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n');
    await expect(run('train', '--model', modelDir, '--data', csv, '--backend', 'cpu')).rejects.toThrow(/FL_ERR_DATA: .*three\.csv: has 2 feature columns, the model expects 64/);
    await expect(run('train', '--model', modelDir, '--data', csv, '--header', 'maybe')).rejects.toThrow(/--header must be auto, yes or no, got 'maybe'/);
    // read as headerless, the header line itself is a row with non-numeric fields
    await expect(run('train', '--model', modelDir, '--data', csv, '--header', 'no', '--backend', 'cpu')).rejects.toThrow(/FL_ERR_DATA: .*three\.csv:1 field 'c0': 'a' is not a finite number/);
    await expect(run('backend', '--backend', 'metal')).rejects.toThrow(/FL_ERR_INVALID_ARGUMENT: --backend must be one of tensorflow, webgpu, wasm, cpu/);
  });

  it('llama: pre-trains a small base in a few steps, then fine-tunes q_proj/v_proj with DP-SGD on texts to a PEFT adapter', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-cli-llama-'));
    const lines = ['the cat sat on the mat', 'a dog ran in the park', 'birds fly south in winter', 'fish swim in the deep sea', 'rain falls on green hills'];
    await writeFile(join(dir, 'texts.txt'), lines.join('\n') + '\n');
    await writeFile(join(dir, 'texts.jsonl'), [...lines, ...lines].map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
    const modelDir = join(dir, 'model');
    const pre = JSON.parse(await run('pretrain', 'llama', '--steps', '1', '--data', join(dir, 'texts.txt'), '--batch-size', '2', '--seq-len', '8', '--out', modelDir, '--backend', 'wasm')) as { sha256: string };
    const res = JSON.parse(await run('train', '--model', modelDir, '--data', join(dir, 'texts.jsonl'), '--epochs', '1', '--seq-len', '8', '--batch-size', '4', '--rank', '2',
      '--dp-sigma', '1', '--dp-clip', '1', '--out', join(dir, 'adapter'), '--backend', 'wasm')) as {
      modelType: string; baseModelSha256: string; before: { perplexity: number }; after: { perplexity: number }; train: { dp: { q: number; steps: number } }; privacy: { epsilon: number };
    };
    expect(res.modelType).toBe('llama');
    expect(res.baseModelSha256).toBe(pre.sha256);
    expect(res.before.perplexity).toBeGreaterThan(1);
    expect(Number.isFinite(res.after.perplexity)).toBe(true);
    expect(res.train.dp.q).toBeCloseTo(4 / 8, 12); // 8 training texts after the 20% hold-out
    expect(res.privacy.epsilon).toBeGreaterThan(0);
    const adapter = await readPeftAdapterDir(join(dir, 'adapter'));
    const paths = adapter.layout.modules.map((m) => m.path);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.every((p) => /^model\.layers\.\d+\.self_attn\.(q_proj|v_proj)$/.test(p))).toBe(true);

    // fedlora eval on the texts: perplexity of the base and with the adapter, over every text
    const ev = JSON.parse(await run('eval', '--model', modelDir, '--adapter', join(dir, 'adapter'), '--data', join(dir, 'texts.jsonl'), '--seq-len', '8', '--backend', 'wasm')) as {
      task: string; base: { examples: number; perplexity: number; loss: number; tokens: number }; adapted: { perplexity: number; loss: number; tokens: number };
    };
    expect(ev.task).toBe('causal-lm');
    expect(ev.base.examples).toBe(10);
    expect(ev.base.tokens).toBe(ev.adapted.tokens);
    expect(ev.base.perplexity).toBeCloseTo(Math.exp(ev.base.loss), 10);
    expect(ev.adapted.perplexity).not.toBe(ev.base.perplexity);
    expect(Number.isFinite(ev.adapted.perplexity) && ev.adapted.perplexity > 1).toBe(true);
  });

  it('fedlora backend prints the chosen backend and its self-test', async () => {
    const info = JSON.parse(await run('backend', '--backend', 'cpu')) as { name: string; selfTest: { ok: boolean; maxError: number } };
    expect(info.name).toBe('cpu');
    expect(info.selfTest.ok).toBe(true);
    expect(info.selfTest.maxError).toBeLessThan(1e-5);
  });

  it('parses --dp-clip as one bound or per-factor bounds', () => {
    expect(parseDpClip('0.5')).toBe(0.5);
    expect(parseDpClip('A=0.5, B=1')).toEqual({ A: 0.5, B: 1 });
    expect(() => parseDpClip('0')).toThrow(/FL_ERR_PRIVACY_ARGUMENT: --dp-clip must be a positive number/);
    expect(() => parseDpClip('C=1')).toThrow(/--dp-clip must be/);
  });

  it('formats label sets compactly', () => {
    expect(formatLabelSet([4, 0, 1, 2, 2, 7, 8])).toBe('0-2,4,7-8');
    expect(formatLabelSet([3])).toBe('3');
  });

  it('parses label sets', () => {
    expect([...parseLabelSet('0-2,7')]).toEqual([0, 1, 2, 7]);
    expect(() => parseLabelSet('a-b')).toThrow(/--labels must look like 0-4/);
    expect(() => parseLabelSet('4-2')).toThrow(/range 4-2 is empty/);
  });
});
