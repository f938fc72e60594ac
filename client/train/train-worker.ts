/**
 * Worker-thread entry of train-worker-pool.ts: one data-parallel training worker. It holds its own
 * single-threaded backend (tfjs' wasm backend runs one thread in Node), its own copy of the base
 * model and of the examples, and, between `begin` and `end`, its own LoRA model, whose factors
 * the pool keeps equal to the main thread's. It computes gradients of the shards it is sent and
 * nothing else: no optimizer state, no random source, no noise (the main thread sums the shards'
 * gradients once, adds DP noise once and steps the optimizer once).
 *
 * Tensor ownership: every request frees what it creates; `end` disposes the model; the `ok` reply
 * carries tf.memory().numTensors so the pool (and its tests) can check that nothing leaks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { ModuleFactors } from '../../shared/adapter.js';
import { FedloraError, reasonOf } from '../../shared/errors.js';
import { disposeBatch, sourceFromSpec, type ExampleSource } from '../data/batches.js';
import type { BaseModel, LoraBuild } from '../agent/base-model.js';
import type { LoraModel } from '../lora/lora-model.js';
import { lossUnits, type TrainWorkerReply, type TrainWorkerRequest, type TrainWorkerSetup } from './train-worker-pool.js';

const setup = workerData as TrainWorkerSetup;
const port = parentPort!;
const post = (m: TrainWorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

interface Base { build(lora: LoraBuild): Promise<LoraModel>; full?: BaseModel }

async function loadBase(): Promise<Base> {
  if (setup.base.kind === 'dir') {
    const { loadBaseModel } = await import('../agent/base-model.js');
    const full = await loadBaseModel(setup.base.modelDir);
    return { build: (lora) => full.build(lora), full };
  }
  const { MlpClassifier } = await import('../models/mlp.js');
  const checkpoint = setup.base.checkpoint;
  return { build: async (lora) => MlpClassifier.fromCheckpoint(checkpoint, { variant: lora.variant, rank: lora.rank, alpha: lora.alpha, seed: lora.seed }) };
}

async function main(): Promise<void> {
  const { chooseBackend, parseBackendName } = await import('../backend.js');
  await chooseBackend({ backend: parseBackendName(setup.backend) });
  const base = await loadBase();
  const source: ExampleSource = sourceFromSpec(setup.source);
  const { clippedGradientSum } = await import('./dp-sgd.js');
  let model: LoraModel | null = null;

  const setParams = (params: Float32Array[] | undefined): void => {
    if (params === undefined) return;
    const vars = model!.trainableVariables();
    if (params.length !== vars.length) throw new FedloraError('FL_ERR_TRAINING', `train worker ${setup.index}: ${params.length} parameter arrays for ${vars.length} trainable variables`);
    vars.forEach((v, i) => {
      const p = params[i]!;
      if (p.length !== v.size) throw new FedloraError('FL_ERR_TRAINING', `train worker ${setup.index}: variable ${i} has ${v.size} values, got ${p.length}`);
      const t = tf.tensor(p, v.shape);
      v.assign(t);
      t.dispose();
    });
  };
  const needModel = (): LoraModel => {
    if (model === null) throw new FedloraError('FL_ERR_TRAINING', `train worker ${setup.index}: no model (begin was not called)`);
    return model;
  };

  const handle = async (m: TrainWorkerRequest): Promise<void> => {
    switch (m.type) {
      case 'begin': {
        model?.dispose();
        model = null;
        if (m.recipe.kind === 'offer') {
          if (base.full === undefined) throw new FedloraError('FL_ERR_TRAINING', 'a round offer needs a base model folder in the train workers');
          const [{ startModel }, { decodeOfferedState }] = await Promise.all([import('../agent/round-handler.js'), import('../agent/update-payload.js')]);
          model = await startModel(m.recipe.offer, base.full, decodeOfferedState(m.recipe.offer.state));
        } else {
          model = await base.build(m.recipe.lora);
        }
        const modules = model.modules();
        for (const [path, f] of m.factors) {
          const layer = modules.get(path);
          if (layer === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `train worker ${setup.index}: the main model has module '${path}', this worker's model does not`);
          layer.setFactors(f as ModuleFactors);
        }
        const shapes = model.trainableVariables().map((v) => v.shape.join('x')).join(',');
        const want = m.shapes.map((s) => s.join('x')).join(',');
        if (shapes !== want) throw new FedloraError('FL_ERR_TRAINING', `train worker ${setup.index}: trainable variables [${shapes}] differ from the main thread's [${want}]`);
        post({ type: 'ok', id: m.id, numTensors: tf.memory().numTensors });
        return;
      }
      case 'grad': {
        const mdl = needModel();
        setParams(m.params);
        const vars = mdl.trainableVariables();
        const batch = source.batch(m.indices);
        try {
          const units = await lossUnits(mdl, batch);
          const { value, grads } = tf.variableGrads(() => mdl.loss(batch), vars);
          const arrays = await Promise.all(vars.map((v) => grads[v.name]!.data() as Promise<Float32Array>));
          const loss = (await value.data())[0]!;
          tf.dispose([value, ...Object.values(grads)]);
          post({ type: 'grad', id: m.id, grads: arrays, units, loss }, arrays.map((a) => a.buffer as ArrayBuffer));
        } finally {
          disposeBatch(batch);
        }
        return;
      }
      case 'clip': {
        const mdl = needModel();
        setParams(m.params);
        const r = await clippedGradientSum(mdl, source, m.indices, m.clip, m.mode, m.chunk);
        post({ type: 'clip', id: m.id, sums: r.sums, norms: r.norms, unclipped: r.unclipped, lossSum: r.lossSum }, r.sums.map((s) => s.buffer as ArrayBuffer));
        return;
      }
      case 'end':
        model?.dispose();
        model = null;
        post({ type: 'ok', id: m.id, numTensors: tf.memory().numTensors });
        return;
      case 'memory':
        post({ type: 'ok', id: m.id, numTensors: tf.memory().numTensors });
        return;
      default: {
        const never: never = m;
        throw new FedloraError('FL_ERR_INTERNAL', `train worker: unknown request ${JSON.stringify(never)}`);
      }
    }
  };

  // Requests are handled one at a time, in the order they arrive.
  let chain = Promise.resolve();
  port.on('message', (m: TrainWorkerRequest) => {
    chain = chain.then(() => handle(m)).catch((e: unknown) => {
      const err = e as Error & { code?: string };
      post({ type: 'error', id: m.id, name: err.name ?? 'Error', ...(err.code !== undefined && { code: err.code }), message: reasonOf(e) });
    });
  });
  post({ type: 'ready' });
}

main().catch((e: unknown) => {
  const err = e as { code?: string };
  post({ type: 'fatal', ...(err.code !== undefined && { code: err.code }), message: reasonOf(e) });
});
