import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { isFedloraError } from '../../../shared/errors.js';
import { chooseBackend, shutdownBackend } from '../../../client/backend.js';
import type { BackendCandidate } from '../../../client/backends/types.js';
import { tableSource } from '../../../client/data/batches.js';
import { MlpClassifier } from '../../../client/models/mlp.js';
import { MLP_MODEL_TYPE, mlpTensorShapes, type MlpConfig } from '../../../client/models/mlp-config.js';
import { train } from '../../../client/train/trainer.js';
import { digitsParts } from '../digits.js';
import { testValues } from '../lora/reference.js';

describe('device errors during training', () => {
  it('a device that reports an error after its self-test fails the training with FL_ERR_BACKEND', async () => {
    // the real cpu backend, with an error stream like WebGPU's uncapturederror
    const errors: string[] = [];
    const cpuWithErrorStream: BackendCandidate = {
      name: 'webgpu',
      tfName: 'cpu',
      async load() {
        await tf.setBackend('cpu');
        return { device: 'cpu with an error stream', asyncErrors: () => errors };
      },
    };
    const info = await chooseBackend({ candidates: [cpuWithErrorStream] });
    expect(info.selfTest.ok).toBe(true);
    const digits = await digitsParts();
    const config: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [8], num_labels: 10, hidden_act: 'relu' };
    const weights = new Map([...mlpTensorShapes(config)].map(([name, shape], i) => [name, name === 'input_norm.std' ? new Float32Array(shape[0]!).fill(8) : testValues(shape.reduce((a, b) => a * b, 1), i)]));
    const model = MlpClassifier.fromCheckpoint({ config, weights }, { variant: 'lora', rank: 2 });
    // a clean run passes
    await train(model, tableSource(digits.highTrain), { maxSteps: 2, batchSize: 16 });
    let err: unknown;
    try {
      await train(model, tableSource(digits.highTrain), { maxSteps: 3, batchSize: 16, onProgress: (p) => { if (p.step === 2) errors.push('Dispatch size exceeds limit'); } });
    } catch (e) {
      err = e;
    }
    expect(isFedloraError(err, 'FL_ERR_BACKEND')).toBe(true);
    expect(String(err)).toMatch(/the device reported errors during training.*Dispatch size exceeds limit/);
    model.dispose();
    await shutdownBackend();
  });
});
