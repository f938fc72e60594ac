/**
 * Reading an opened update payload (a safetensors file) into a ClientUpdate the strategy can add,
 * checking it against the client's plan first: exactly the planned tensor names, F32, the planned
 * shapes, finite values, and a valid example count. Each failure is its own code, naming the
 * tensor (docs/architecture.md, "One round, end to end", step 5).
 */
import type { Adapter, FactorName, ModuleFactors } from '../../shared/adapter.js';
import { parsePeftTensorName } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import type { Plan } from '../../shared/protocol/events.js';
import { decodeSafetensors, decodeSafetensorsHeader } from '../../shared/safetensors/index.js';
import type { ClientUpdate } from '../../aggregation/strategy.js';

/** `__metadata__` key of the example count n_k (a decimal integer >= 1). */
export const EXAMPLES_METADATA_KEY = 'fedlora.examples';
/** Suffix of the gradient tensors of Fed-SB's init phase: `base_model.model.<path>.fedsb_G.weight` [m, n]. */
export const FEDSB_GRADIENT_SUFFIX = '.fedsb_G.weight';

/** `__metadata__` key of the client's training metrics (JSON object of finite numbers). */
export const METRICS_METADATA_KEY = 'fedlora.metrics';

export interface DecodedUpdate {
  readonly update: ClientUpdate;
  readonly metrics: Readonly<Record<string, number>>;
}

/** Index of the first NaN or infinity, or -1. */
function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

/**
 * @param payload the opened envelope's payload
 * @param plan the plan this client was offered
 * @param source names the client in messages
 */
export function decodeUpdate(payload: Uint8Array, plan: Plan, source: string): DecodedUpdate {
  const what = `update from ${source}`;
  const header = decodeSafetensorsHeader(payload, what);
  const expected = new Map(plan.updateTensors.map((t) => [t.name, t.shape]));
  const got = new Map(header.tensors.map((t) => [t.name, t]));
  for (const name of expected.keys()) {
    if (!got.has(name)) throw new FedloraError('FL_ERR_UPDATE_TENSORS', `${what}: tensor '${name}' is missing; the plan asks for ${expected.size} tensors`, { tensor: name });
  }
  for (const info of header.tensors) {
    const shape = expected.get(info.name);
    if (shape === undefined) throw new FedloraError('FL_ERR_UPDATE_TENSORS', `${what}: tensor '${info.name}' is not one the plan asks for`, { tensor: info.name });
    if (info.dtype !== 'F32') throw new FedloraError('FL_ERR_UPDATE_DTYPE', `${what}: tensor '${info.name}' is ${info.dtype}; updates must be F32`, { tensor: info.name });
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `${what}: tensor '${info.name}' has shape [${info.shape.join(', ')}], the plan asks for [${shape.join(', ')}]`, { tensor: info.name });
    }
  }

  const examplesText = header.metadata?.[EXAMPLES_METADATA_KEY];
  const examples = examplesText !== undefined && /^[1-9][0-9]{0,14}$/.test(examplesText) ? Number(examplesText) : NaN;
  if (!Number.isSafeInteger(examples)) {
    throw new FedloraError('FL_ERR_UPDATE_METADATA', `${what}: __metadata__["${EXAMPLES_METADATA_KEY}"] must be the example count as a decimal integer >= 1, got ${JSON.stringify(examplesText ?? null)}`);
  }
  const metrics: Record<string, number> = {};
  const metricsText = header.metadata?.[METRICS_METADATA_KEY];
  if (metricsText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(metricsText);
    } catch {
      parsed = undefined;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new FedloraError('FL_ERR_UPDATE_METADATA', `${what}: __metadata__["${METRICS_METADATA_KEY}"] must be a JSON object of numbers`);
    }
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(k) || typeof v !== 'number' || !Number.isFinite(v)) {
        throw new FedloraError('FL_ERR_UPDATE_METADATA', `${what}: metric '${k}' must be a finite number under a name of [A-Za-z0-9_], got ${JSON.stringify(v)}`);
      }
      metrics[k] = v;
    }
  }

  const { tensors } = decodeSafetensors(payload, what);
  const factors = new Map<string, Partial<Record<FactorName, Float32Array>>>();
  const gradients = new Map<string, Float32Array>();
  const initPhase = plan.extra.phase === 'fedsb-init';
  for (const t of tensors) {
    const bad = firstNonFinite(t.data);
    if (bad >= 0) throw new FedloraError('FL_ERR_UPDATE_NOT_FINITE', `${what}: tensor '${t.name}' holds ${t.data[bad]} at flat index ${bad}`, { tensor: t.name, index: bad });
    // names and shapes were checked against the plan above: a planned gradient name is well formed
    if (initPhase && t.name.startsWith('base_model.model.') && t.name.endsWith(FEDSB_GRADIENT_SUFFIX)) {
      gradients.set(t.name.slice('base_model.model.'.length, -FEDSB_GRADIENT_SUFFIX.length), t.data);
      continue;
    }
    const parsed = parsePeftTensorName(t.name);
    if (parsed === undefined) throw new FedloraError('FL_ERR_UPDATE_TENSORS', `${what}: tensor '${t.name}' is not a PEFT LoRA name`, { tensor: t.name });
    const f = factors.get(parsed.path) ?? {};
    f[parsed.factor] = t.data;
    factors.set(parsed.path, f);
  }
  const adapter: Adapter = {
    layout: { variant: plan.variant, modules: plan.modules.map((m) => ({ path: m.path, outFeatures: m.outFeatures, inFeatures: m.inFeatures, rank: m.rank, alpha: m.alpha })) },
    factors: new Map<string, ModuleFactors>(plan.modules.map((m) => [m.path, factors.get(m.path) ?? {}])),
  };
  return { update: { adapter, numExamples: examples, source, ...(initPhase && { gradients }) }, metrics };
}
