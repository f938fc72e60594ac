// A worker thread that loads the client's backend module, as the agent's training worker does,
// and reports what a synchronous read does there.
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import '../../../client/backend.js';

const t = tf.tensor1d([1]);
let message = 'no error';
try {
  t.dataSync(); // eslint-disable-line no-restricted-properties -- the read this worker checks is refused
} catch (e) {
  message = e instanceof Error ? e.message : String(e);
}
parentPort!.postMessage(message);
