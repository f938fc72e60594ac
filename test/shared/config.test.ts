import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AdapterLayoutSchema, configError, formatFieldPath, parseConfig, PeftLoraConfigSchema } from '../../shared/config.js';
import { isFedloraError } from '../../shared/errors.js';

describe('config schemas', () => {
  const module = { path: 'model.layers.0.self_attn.q_proj', outFeatures: 8, inFeatures: 8, rank: 2, alpha: 4 };

  it('parse a valid layout and infer its type', () => {
    const layout = parseConfig(AdapterLayoutSchema, { variant: 'fedsb', modules: [module], baseModelSha256: 'a'.repeat(64) }, 'layout');
    expect(layout.modules[0]!.rank).toBe(2);
  });

  it('turn a zod failure into FL_ERR_INVALID_CONFIG naming the field path and rule', () => {
    let error: unknown;
    try {
      parseConfig(AdapterLayoutSchema, { variant: 'lora', modules: [module, { ...module, path: 'x', rank: 0 }] }, 'job.json');
    } catch (e) {
      error = e;
    }
    expect(isFedloraError(error, 'FL_ERR_INVALID_CONFIG')).toBe(true);
    expect((error as Error).message).toMatch(/^FL_ERR_INVALID_CONFIG: job\.json: modules\[1\]\.rank: /);
    expect((error as { details: { field: string } }).details.field).toBe('modules[1].rank');
  });

  it('report duplicate module paths at the duplicate', () => {
    expect(() => parseConfig(AdapterLayoutSchema, { variant: 'lora', modules: [module, module] }, 'layout')).toThrow(/modules\[1\]\.path: module 'model\.layers\.0\.self_attn\.q_proj' appears twice/);
  });

  it('take another code when asked, and name the root', () => {
    const result = z.object({ a: z.string() }).safeParse(3);
    expect(result.success).toBe(false);
    const e = configError(result.error!, 'x', 'FL_ERR_ADAPTER_DIR');
    expect(e.code).toBe('FL_ERR_ADAPTER_DIR');
    expect(e.message).toContain('(root)');
    expect(formatFieldPath(['a', 0, 'b'])).toBe('a[0].b');
  });

  it('read PEFT configs with keys fedlora does not know', () => {
    const config = parseConfig(PeftLoraConfigSchema, { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: 'q_proj|v_proj', some_new_key: [1] }, 'cfg');
    expect(config.r).toBe(8);
    expect(() => parseConfig(PeftLoraConfigSchema, { peft_type: 'LORA', r: 8 }, 'cfg')).toThrow(/lora_alpha/);
  });
});
