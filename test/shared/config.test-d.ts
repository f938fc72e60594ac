import { expectTypeOf, test } from 'vitest';
import type { AdapterLayout, AdapterModule, AdapterVariant } from '../../shared/adapter.js';
import type { AdapterLayoutConfig, FedloraAdapterMetadata, WrittenAdapterConfig } from '../../shared/config.js';
import type { WritePeftOptions } from '../../shared/peft.js';

test('the zod-inferred layout is an AdapterLayout, and an AdapterModule fits the schema', () => {
  expectTypeOf<AdapterLayoutConfig>().toExtend<AdapterLayout>();
  expectTypeOf<AdapterLayoutConfig['modules'][number]>().toExtend<AdapterModule>();
  expectTypeOf<AdapterModule>().toExtend<AdapterLayoutConfig['modules'][number]>();
  expectTypeOf<AdapterLayout['variant']>().toEqualTypeOf<AdapterLayoutConfig['variant']>();
  expectTypeOf<FedloraAdapterMetadata['variant']>().toEqualTypeOf<AdapterVariant>();
});

test('the written config has the PEFT keys with their fixed values', () => {
  expectTypeOf<WrittenAdapterConfig['peft_type']>().toEqualTypeOf<'LORA'>();
  expectTypeOf<WrittenAdapterConfig['bias']>().toEqualTypeOf<'none'>();
  expectTypeOf<WrittenAdapterConfig['target_modules']>().toEqualTypeOf<string[]>();
  expectTypeOf<WritePeftOptions['foldFedSb']>().toEqualTypeOf<boolean | undefined>();
});
