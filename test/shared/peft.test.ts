import { mkdtemp, readFile, rm, writeFile, mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peftTensorNames, scaling, type Adapter, type AdapterModule } from '../../shared/adapter.js';
import { WrittenAdapterConfigSchema } from '../../shared/config.js';
import { isFedloraError } from '../../shared/errors.js';
import { fedSbUnfoldedBName, peftPatternKey, peftTargetMatches, readPeftAdapterDir, writePeftAdapterDir } from '../../shared/peft.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../shared/safetensors/index.js';
import { makeTensor } from '../../shared/tensor.js';
import { llamaModules, naiveMatmul, randomAdapter, randomFloats, seededRandom } from './fixtures.js';
import { rawSafetensors } from './safetensors/raw.js';

let root: string;
let counter = 0;
const freshDir = (): string => join(root, `adapter-${counter++}`);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fl-peft-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function readConfig(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
}

/** Expects `promise` to reject with a FedloraError of `code` whose message contains every fragment. */
async function expectCoded(promise: Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isFedloraError(error), `expected a FedloraError, got ${String(error)}`).toBe(true);
  const e = error as Error & { code: string };
  expect(e.code).toBe(code);
  for (const f of fragments) expect(e.message).toContain(f);
}

const SHA = 'ab'.repeat(32);

describe('writePeftAdapterDir / readPeftAdapterDir round trips', () => {
  it.each(['lora', 'ffa'] as const)('%s: layout and factors come back bit for bit', async (variant) => {
    const adapter = randomAdapter(variant, llamaModules(3), 7, { baseModelSha256: SHA, baseModelName: 'HuggingFaceTB/SmolLM-135M' });
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter);
    const back = await readPeftAdapterDir(dir);
    expect(back.layout).toEqual(adapter.layout);
    expect(back.factors).toEqual(adapter.factors);
    expect((await readdir(dir)).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  });

  it('writes the config PEFT expects, with the fedlora record under its own key', async () => {
    const adapter = randomAdapter('lora', llamaModules(2), 3, { baseModelSha256: SHA });
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter, { baseModelName: 'my/base' });
    const config = await readConfig(dir);
    expect(WrittenAdapterConfigSchema.safeParse(config).success).toBe(true);
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 2,
      lora_alpha: 4,
      lora_dropout: 0,
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      base_model_name_or_path: 'my/base',
      rank_pattern: {},
      alpha_pattern: {},
      target_modules: adapter.layout.modules.map((m) => m.path),
      fedlora: { format_version: 1, variant: 'lora', base_model_sha256: SHA },
    });
    // Keys sorted as PEFT's save_pretrained writes them.
    expect(Object.keys(config)).toEqual(Object.keys(config).sort());
    const { tensors, metadata } = await readSafetensorsFile(join(dir, 'adapter_model.safetensors'));
    expect(metadata?.format).toBe('pt');
    expect(JSON.parse(metadata!.fedlora!)).toEqual(config.fedlora);
    expect(tensors.map((t) => t.name)).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
    const a = tensors.find((t) => t.name === peftTensorNames('model.layers.1.self_attn.v_proj').A)!;
    const b = tensors.find((t) => t.name === peftTensorNames('model.layers.1.self_attn.v_proj').B)!;
    expect(a.shape).toEqual([2, 8]); // [r, n]
    expect(b.shape).toEqual([4, 2]); // [m, r]
  });

  it('heterogeneous ranks and alphas go to rank_pattern / alpha_pattern and come back', async () => {
    const modules: AdapterModule[] = [
      { path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5, rank: 4, alpha: 8 },
      { path: 'model.layers.1.self_attn.q_proj', outFeatures: 6, inFeatures: 5, rank: 4, alpha: 8 },
      { path: 'model.layers.10.self_attn.q_proj', outFeatures: 6, inFeatures: 5, rank: 2, alpha: 8 },
      { path: 'model.layers.11.self_attn.q_proj', outFeatures: 6, inFeatures: 5, rank: 4, alpha: 3.5 },
    ];
    const adapter = randomAdapter('lora', modules, 11);
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter);
    const config = await readConfig(dir);
    expect(config.r).toBe(4);
    expect(config.lora_alpha).toBe(8);
    expect(config.rank_pattern).toEqual({ 'model.layers.10.self_attn.q_proj': 2 });
    expect(config.alpha_pattern).toEqual({ 'model.layers.11.self_attn.q_proj': 3.5 });
    const back = await readPeftAdapterDir(dir);
    expect(back.layout).toEqual(adapter.layout);
    expect(back.factors).toEqual(adapter.factors);
  });

  it('a path that ends another path still gets its own rank (longest pattern keys first)', async () => {
    const modules: AdapterModule[] = [
      { path: 'encoder.fc', outFeatures: 3, inFeatures: 3, rank: 1, alpha: 1 },
      { path: 'fc', outFeatures: 3, inFeatures: 3, rank: 2, alpha: 1 },
      { path: 'head.fc', outFeatures: 3, inFeatures: 3, rank: 2, alpha: 1 },
    ];
    const adapter = randomAdapter('lora', modules, 5);
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter, { taskType: null });
    const back = await readPeftAdapterDir(dir);
    expect(back.layout.modules).toEqual(modules);
    expect((await readConfig(dir)).task_type).toBeNull();
  });

  it('when a differing path ends a default one, every module goes into rank_pattern so PEFT cannot mismatch', async () => {
    const modules: AdapterModule[] = [
      { path: 'a.b', outFeatures: 3, inFeatures: 3, rank: 4, alpha: 2 },
      { path: 'x.a.b', outFeatures: 3, inFeatures: 3, rank: 8, alpha: 2 },
      { path: 'y.c', outFeatures: 3, inFeatures: 3, rank: 8, alpha: 2 },
    ];
    const dir = freshDir();
    await writePeftAdapterDir(dir, randomAdapter('lora', modules, 8));
    const config = await readConfig(dir);
    // {"a.b": 4} alone would give x.a.b rank 4 under PEFT's (.*\.)?(a.b)$ match.
    expect(config.r).toBe(8);
    expect(Object.entries(config.rank_pattern as object)).toEqual([['x.a.b', 8], ['a.b', 4], ['y.c', 8]]);
    expect((await readPeftAdapterDir(dir)).layout.modules).toEqual(modules);
  });

  it.each(['lora', 'ffa'] as const)('fedloraConfigKey false: the config has LoraConfig keys only, and the %s record comes from the safetensors metadata', async (variant) => {
    const adapter = randomAdapter(variant, llamaModules(1), 4, { baseModelSha256: SHA });
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter, { fedloraConfigKey: false });
    expect(Object.keys(await readConfig(dir))).not.toContain('fedlora');
    const back = await readPeftAdapterDir(dir);
    expect(back.layout).toEqual(adapter.layout);
  });

  it('property: random layouts (paths that end one another, mixed ranks and alphas) round trip through PEFT matching', async () => {
    // Paths from a small vocabulary, so suffix collisions such as a.b / x.a.b / y.x.a.b are frequent,
    // and integer-like paths ("0", "10"), which a JS object would move to the front of a pattern.
    const pathArb = fc.array(fc.constantFrom('a', 'b', 'x', '0', '1', '10'), { minLength: 1, maxLength: 4 }).map((parts) => parts.join('.'));
    const moduleArb = fc.record({ path: pathArb, rank: fc.integer({ min: 1, max: 4 }), alpha: fc.constantFrom(1, 2, 3.5, 16) });
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(moduleArb, { selector: (m) => m.path, minLength: 1, maxLength: 6 }), fc.integer(), async (specs, seed) => {
        const modules = specs.map((m) => ({ ...m, outFeatures: 3, inFeatures: 2 }));
        const adapter = randomAdapter('lora', modules, seed);
        const dir = freshDir();
        await writePeftAdapterDir(dir, adapter, { taskType: null });
        const back = await readPeftAdapterDir(dir);
        expect(back.layout.modules).toEqual(modules);
        expect(back.factors).toEqual(adapter.factors);
        await rm(dir, { recursive: true });
      }),
      { numRuns: 40 },
    );
  });

  describe('Fed-SB', () => {
    const modules = llamaModules(2, { rank: 3 });
    const adapter = randomAdapter('fedsb', modules, 21, { baseModelSha256: SHA });

    it('folds R into B by default: lora_B = B R, checked against a naive float64 product', async () => {
      const dir = freshDir();
      await writePeftAdapterDir(dir, adapter);
      const config = await readConfig(dir);
      expect(config.fedlora).toEqual({ format_version: 1, variant: 'fedsb', base_model_sha256: SHA, fedsb_folded: true });
      const { tensors } = await readSafetensorsFile(join(dir, 'adapter_model.safetensors'));
      expect(tensors.some((t) => t.name.includes('fedsb'))).toBe(false);
      for (const m of modules) {
        const f = adapter.factors.get(m.path)!;
        const written = tensors.find((t) => t.name === peftTensorNames(m.path).B)!;
        const expected = naiveMatmul(f.B!, f.R!, m.outFeatures, m.rank, m.rank);
        // Entries are O(1) sums of 3 products of values in [-1, 1]: float32 rounding of the result
        // is below 2^-24 * 3 relative, so 1e-6 absolute is a safe bound.
        for (let i = 0; i < expected.length; i++) expect(Math.abs(written.data[i]! - expected[i]!)).toBeLessThan(1e-6);
      }
      // It reads back as the standard LoRA adapter it is.
      const back = await readPeftAdapterDir(dir);
      expect(back.layout).toEqual({ ...adapter.layout, variant: 'lora' });
      expect(back.factors.get(modules[0]!.path)!.R).toBeUndefined();
    });

    it('foldFedSb false keeps A, B and R (the client update format) and reads back as fedsb', async () => {
      const dir = freshDir();
      await writePeftAdapterDir(dir, adapter, { foldFedSb: false });
      expect((await readConfig(dir)).fedlora).toMatchObject({ variant: 'fedsb', fedsb_folded: false });
      const back = await readPeftAdapterDir(dir);
      expect(back.layout).toEqual(adapter.layout);
      expect(back.factors).toEqual(adapter.factors);
    });

    it('foldFedSb with includeFedSbR is PEFT-exact and still reads back as the exact A, B, R', async () => {
      const dir = freshDir();
      await writePeftAdapterDir(dir, adapter, { includeFedSbR: true });
      const { tensors } = await readSafetensorsFile(join(dir, 'adapter_model.safetensors'));
      const path = modules[0]!.path;
      const loraB = tensors.find((t) => t.name === peftTensorNames(path).B)!;
      const f = adapter.factors.get(path)!;
      expect(loraB.data).not.toEqual(f.B);
      expect(tensors.find((t) => t.name === fedSbUnfoldedBName(path))!.data).toEqual(f.B);
      const back = await readPeftAdapterDir(dir);
      expect(back.layout).toEqual(adapter.layout);
      expect(back.factors).toEqual(adapter.factors);
    });

    it('refuses a folded export whose lora_B is not fedsb_B @ fedsb_R, or that lost fedsb_B', async () => {
      const dir = freshDir();
      await writePeftAdapterDir(dir, adapter, { includeFedSbR: true });
      const weights = join(dir, 'adapter_model.safetensors');
      const { tensors, metadata } = await readSafetensorsFile(weights);
      const bName = peftTensorNames(modules[1]!.path).B;
      const tampered = tensors.map((t) => (t.name === bName ? makeTensor(t.name, t.shape, t.data.map((v) => v * 1.01)) : t));
      await writeSafetensorsFile(weights, tampered, metadata);
      await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', bName, 'is not fedsb_B @ fedsb_R');
      await writeSafetensorsFile(weights, tensors.filter((t) => !t.name.endsWith('fedsb_B.weight')), metadata);
      await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', 'B cannot be recovered');
    });

    it('refuses an unfolded export that lost its R tensors, rather than read B as LoRA', async () => {
      const dir = freshDir();
      await writePeftAdapterDir(dir, adapter, { foldFedSb: false });
      const weights = join(dir, 'adapter_model.safetensors');
      const { tensors, metadata } = await readSafetensorsFile(weights);
      await writeSafetensorsFile(weights, tensors.filter((t) => !t.name.endsWith('fedsb_R.weight')), metadata);
      await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', 'unfolded B', 'fedsb_R.weight');
    });

    it('refuses to drop R (foldFedSb false without includeFedSbR)', async () => {
      await expectCoded(writePeftAdapterDir(freshDir(), adapter, { foldFedSb: false, includeFedSbR: false }), 'FL_ERR_INVALID_ARGUMENT', 'R would be lost');
    });
  });
});

describe('readPeftAdapterDir reads directories PEFT writes', () => {
  /** Writes a directory the way PEFT's save_pretrained does: short target names, regex patterns, no fedlora record. */
  async function peftStyleDir(config: Record<string, unknown>, tensors: ReturnType<typeof makeTensor>[]): Promise<string> {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
    await writeSafetensorsFile(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    return dir;
  }
  const random = seededRandom(99);
  const lora = (path: string, r: number, n: number, m: number) => [
    makeTensor(peftTensorNames(path).A, [r, n], randomFloats(r * n, random)),
    makeTensor(peftTensorNames(path).B, [m, r], randomFloats(m * r, random)),
  ];
  const base = { peft_type: 'LORA', task_type: 'CAUSAL_LM', lora_dropout: 0.05, bias: 'none', use_dora: false, exclude_modules: null, lora_bias: false };

  it('short target_modules, a regex rank_pattern, rsLoRA alpha, modules in natural order', async () => {
    const tensors = [
      ...lora('model.layers.10.self_attn.q_proj', 4, 8, 8),
      ...lora('model.layers.2.self_attn.q_proj', 4, 8, 8),
      ...lora('model.layers.2.self_attn.v_proj', 2, 8, 4),
    ];
    const dir = await peftStyleDir({ ...base, r: 4, lora_alpha: 16, use_rslora: true, target_modules: ['v_proj', 'q_proj'], rank_pattern: { 'v_pr.j': 2 }, alpha_pattern: {} }, tensors);
    const adapter = await readPeftAdapterDir(dir);
    expect(adapter.layout.variant).toBe('lora');
    expect(adapter.layout.modules.map((m) => m.path)).toEqual([
      'model.layers.2.self_attn.q_proj',
      'model.layers.2.self_attn.v_proj',
      'model.layers.10.self_attn.q_proj',
    ]);
    // rsLoRA scales by alpha / sqrt(r); fedlora's alpha / r must give the same scaling
    // (compared to 12 digits: alpha * sqrt(r) / r rounds differently from alpha / sqrt(r)).
    expect(adapter.layout.modules.map((m) => m.rank)).toEqual([4, 2, 4]);
    const scalings = adapter.layout.modules.map((m) => m.alpha / m.rank);
    [16 / 2, 16 / Math.SQRT2, 16 / 2].forEach((s, i) => expect(scalings[i]).toBeCloseTo(s, 12));
  });

  it('a regex target_modules string, as PEFT accepts it, and exclude_modules', async () => {
    const tensors = [...lora('model.layers.0.self_attn.q_proj', 4, 8, 8), ...lora('model.layers.0.mlp.up_proj', 4, 8, 8)];
    const ok = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: '.*\\.(q_proj|up_proj)' }, tensors);
    expect((await readPeftAdapterDir(ok)).layout.modules.map((m) => m.path)).toEqual(['model.layers.0.mlp.up_proj', 'model.layers.0.self_attn.q_proj']);
    const excluded = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: ['q_proj', 'up_proj'], exclude_modules: ['mlp.up_proj'] }, tensors);
    await expectCoded(readPeftAdapterDir(excluded), 'FL_ERR_ADAPTER_LAYOUT', 'model.layers.0.mlp.up_proj', 'PEFT would ignore it');
    const bad = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: '(?P<x>q_proj)' }, tensors);
    await expectCoded(readPeftAdapterDir(bad), 'FL_ERR_ADAPTER_DIR', 'target_modules', 'not a regular expression');
  });

  it('matches rank_pattern keys in text order, as Python does, even integer-like ones', async () => {
    // Text order: "a.0" is tried first for module a.0. In a JS object "0" would come first and match a.0 too.
    const tensors = [...lora('0', 1, 8, 8), ...lora('a.0', 2, 8, 8)];
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'adapter_config.json'), `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["0", "a.0"], "rank_pattern": {"a.0": 2, "0": 1}}`);
    await writeSafetensorsFile(join(dir, 'adapter_model.safetensors'), tensors);
    expect((await readPeftAdapterDir(dir)).layout.modules.map((m) => [m.path, m.rank])).toEqual([['0', 1], ['a.0', 2]]);
  });

  it('reads F16 and BF16 adapter weights (as PEFT saves a half-precision model), widened exactly', async () => {
    const names = peftTensorNames('model.layers.0.self_attn.q_proj');
    const header = JSON.stringify({
      [names.A]: { dtype: 'F16', shape: [1, 2], data_offsets: [0, 4] },
      [names.B]: { dtype: 'BF16', shape: [2, 1], data_offsets: [4, 8] },
    });
    // A = [1, 2^-24] (F16 0x3c00, 0x0001); B = [-3.140625, 0.5] (BF16 0xc049, 0x3f00)
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'adapter_model.safetensors'), rawSafetensors(header, [0x00, 0x3c, 0x01, 0x00, 0x49, 0xc0, 0x00, 0x3f]));
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ ...base, r: 1, lora_alpha: 2, target_modules: ['q_proj'] }));
    const adapter = await readPeftAdapterDir(dir);
    const f = adapter.factors.get('model.layers.0.self_attn.q_proj')!;
    expect([...f.A!]).toEqual([1, 2 ** -24]);
    expect([...f.B!]).toEqual([-3.140625, 0.5]);
  });

  it('refuses a tensor whose rank disagrees with the config, naming the tensor and r', async () => {
    const dir = await peftStyleDir({ ...base, r: 8, lora_alpha: 16, target_modules: ['q_proj'] }, lora('model.layers.0.self_attn.q_proj', 4, 8, 8));
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', dir, 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 'rank 4', 'r = 8');
  });

  it('refuses a module that target_modules does not select (PEFT would ignore it)', async () => {
    const dir = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: ['q_proj'] }, lora('model.layers.0.self_attn.k_proj', 4, 8, 8));
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', 'k_proj', 'target_modules');
  });

  it.each([
    [{ use_dora: true }, 'use_dora'],
    [{ bias: 'all' }, 'bias'],
    [{ modules_to_save: ['lm_head'] }, 'modules_to_save'],
    [{ layers_to_transform: [0] }, 'layers_to_transform'],
  ])('refuses unsupported config %j, naming the key', async (extra, key) => {
    const dir = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: ['q_proj'], ...extra }, lora('model.layers.0.self_attn.q_proj', 4, 8, 8));
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_DIR', join(dir, 'adapter_config.json'), key);
  });

  it('refuses a config that is not LoRA or lacks r, naming the field', async () => {
    const dir = await peftStyleDir({ peft_type: 'IA3', target_modules: ['q_proj'] }, []);
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_DIR', 'peft_type', 'r:');
  });

  it('refuses a tensor that is not a LoRA weight, naming it', async () => {
    const tensors = [...lora('model.layers.0.self_attn.q_proj', 4, 8, 8), makeTensor('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector', [8])];
    const dir = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: ['q_proj'] }, tensors);
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', 'lora_magnitude_vector', 'not a LoRA weight');
  });

  it('refuses a module with lora_A but no lora_B', async () => {
    const [a] = lora('model.layers.0.self_attn.q_proj', 4, 8, 8);
    const dir = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: ['q_proj'] }, [a!]);
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', 'lora_B.weight');
  });

  it('refuses B whose rank differs from A', async () => {
    const path = 'model.layers.0.self_attn.q_proj';
    const tensors = [makeTensor(peftTensorNames(path).A, [4, 8]), makeTensor(peftTensorNames(path).B, [8, 3])];
    const dir = await peftStyleDir({ ...base, r: 4, lora_alpha: 8, target_modules: ['q_proj'] }, tensors);
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_LAYOUT', peftTensorNames(path).B, 'rank 4');
  });
});

describe('a directory saved by PEFT 0.21.0 itself (save_pretrained on the GPU machine)', () => {
  it('reads back with the delta weights PEFT computed: short targets, regex patterns, rsLoRA', async () => {
    // data/peft-saved: LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'],
    // rank_pattern={'layers.1.self_attn.q_proj': 2}, alpha_pattern={'v_pr.j': 6}, use_rslora=True)
    // on a tiny random Llama (test/shared/peft-check/check_peft.py), with PEFT's get_delta_weight per module.
    const dir = new URL('./data/peft-saved/', import.meta.url).pathname;
    const adapter = await readPeftAdapterDir(dir);
    expect(adapter.layout.modules.map((m) => [m.path, m.rank])).toEqual([
      ['model.layers.0.self_attn.q_proj', 4],
      ['model.layers.0.self_attn.v_proj', 4],
      ['model.layers.1.self_attn.q_proj', 2],
      ['model.layers.1.self_attn.v_proj', 4],
    ]);
    const deltas = new Map((await readSafetensorsFile(join(dir, 'expected-deltas.safetensors'))).tensors.map((t) => [t.name, t]));
    for (const m of adapter.layout.modules) {
      const f = adapter.factors.get(m.path)!;
      const ours = naiveMatmul(f.B!, f.A!, m.outFeatures, m.rank, m.inFeatures).map((v) => v * scaling(m));
      const peft = deltas.get(`${m.path}.delta`)!;
      expect(peft.shape).toEqual([m.outFeatures, m.inFeatures]);
      // PEFT computed B @ A * s in float32; ours is float64: they agree to float32 rounding (~1e-7 relative).
      const scale = Math.max(...peft.data.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      for (let i = 0; i < ours.length; i++) expect(Math.abs(ours[i]! - peft.data[i]!)).toBeLessThan(1e-6 * scale);
    }
  });
});

describe('readPeftAdapterDir: missing and malformed files', () => {
  it('names a missing directory', async () => {
    const dir = join(root, 'does-not-exist');
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_DIR', dir);
  });

  it('names a missing adapter_config.json', async () => {
    const dir = freshDir();
    await mkdir(dir);
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_DIR', join(dir, 'adapter_config.json'), 'missing');
  });

  it('names a config that is not JSON', async () => {
    const dir = freshDir();
    await mkdir(dir);
    await writeFile(join(dir, 'adapter_config.json'), '{"r": 4,');
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_DIR', 'adapter_config.json', 'not JSON');
  });

  it('names a missing weights file, and says why when adapter_model.bin is there', async () => {
    const adapter = randomAdapter('lora', llamaModules(1), 2);
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter);
    await rm(join(dir, 'adapter_model.safetensors'));
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_DIR', join(dir, 'adapter_model.safetensors'), 'missing');
    await writeFile(join(dir, 'adapter_model.bin'), 'pickle');
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_ADAPTER_DIR', 'safe_serialization=True');
  });

  it('passes on a truncated weights file as a safetensors error naming the file', async () => {
    const adapter = randomAdapter('lora', llamaModules(1), 2);
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter);
    const path = join(dir, 'adapter_model.safetensors');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 3));
    await expectCoded(readPeftAdapterDir(dir), 'FL_ERR_SAFETENSORS_TRUNCATED', path);
  });

  it('refuses to write an adapter whose factor does not match its shape, naming module and factor', async () => {
    const adapter = randomAdapter('lora', llamaModules(1), 2);
    const path = adapter.layout.modules[0]!.path;
    const broken: Adapter = { layout: adapter.layout, factors: new Map([...adapter.factors, [path, { ...adapter.factors.get(path)!, B: new Float32Array(3) }]]) };
    await expectCoded(writePeftAdapterDir(freshDir(), broken), 'FL_ERR_ADAPTER_LAYOUT', path, 'B must hold 8 x 2 = 16');
  });
});

describe("PEFT's matching rules", () => {
  // The module tree of PEFT's own documentation of rank_pattern (docs/source/developer_guides/lora.md):
  // Outer(foo, module=Middle(foo, foobar, module=Inner(foo, barfoo))).
  const names = ['foo', 'module.foo', 'module.foobar', 'module.module.foo', 'module.module.barfoo'];
  const matched = (key: string): string[] => names.filter((n) => peftPatternKey([key], n, 'test') === key);

  it('rank_pattern keys match as PEFT documents', () => {
    expect(matched('foo')).toEqual(['foo', 'module.foo', 'module.module.foo']);
    expect(matched('^foo')).toEqual(['foo']);
    expect(matched('^module.foo')).toEqual(['module.foo']);
    expect(matched('module.foo')).toEqual(['module.foo', 'module.module.foo']);
    // No key matches: the name itself comes back, so an exact key still works in a dict lookup.
    expect(peftPatternKey(['bar'], 'module.foo', 'test')).toBe('module.foo');
    expect(peftPatternKey(['^module.foo', 'foo'], 'module.foo', 'test')).toBe('^module.foo');
  });

  it('target_modules: a list matches a name or a .suffix; a string must match the whole name', () => {
    expect(names.filter((n) => peftTargetMatches(['foo'], n))).toEqual(['foo', 'module.foo', 'module.module.foo']);
    expect(names.filter((n) => peftTargetMatches(['module.foo'], n))).toEqual(['module.foo', 'module.module.foo']);
    expect(names.filter((n) => peftTargetMatches('.*foo', n))).toEqual(['foo', 'module.foo', 'module.module.foo', 'module.module.barfoo']);
    expect(names.filter((n) => peftTargetMatches('module\\.foo.*', n))).toEqual(['module.foo', 'module.foobar']);
    expect(names.every((n) => peftTargetMatches('all-linear', n))).toBe(true);
    expect(() => peftTargetMatches('(?P<x>foo)', 'foo')).toThrow(/FL_ERR_ADAPTER_DIR: target_modules: '\(\?P<x>foo\)' is not a regular expression/);
  });
});

describe('readPeftAdapterDir on hostile configs', () => {
  it('any adapter_config.json either reads or fails with a coded error', async () => {
    const adapter = randomAdapter('lora', llamaModules(1), 6);
    const dir = freshDir();
    await writePeftAdapterDir(dir, adapter);
    const good = await readConfig(dir);
    const key = fc.constantFrom('r', 'lora_alpha', 'target_modules', 'rank_pattern', 'alpha_pattern', 'use_rslora', 'fedlora', 'peft_type', 'exclude_modules', 'bias');
    const value = fc.oneof(
      fc.anything(),
      fc.constantFrom('(', '[a-', '.*', 'q_proj', '*', '\\'),
      fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('(', '.*', '0', 'q_proj')), fc.oneof(fc.integer({ min: -1, max: 4 }), fc.anything()), { maxKeys: 3 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(key, value), { maxLength: 3 }), async (edits) => {
        const config: Record<string, unknown> = { ...good };
        for (const [k, v] of edits) config[k] = v;
        let text: string | undefined;
        try {
          text = JSON.stringify(config);
        } catch {
          return;
        }
        await writeFile(join(dir, 'adapter_config.json'), text!);
        try {
          await readPeftAdapterDir(dir);
        } catch (e) {
          expect(isFedloraError(e), `not a FedloraError: ${String(e)}`).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
