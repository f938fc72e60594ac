/**
 * The client's GPU path end to end, as a user runs it, on one backend (docs/verification.md):
 *
 *   1. `fedlora train --backend B` for lora, ffa and fedsb, each with and without DP-SGD;
 *   2. a real coordinator (`fedlora coordinator start`) and two `fedlora client join --backend B`
 *      agents completing a llama job, then `fedlora export` of the global adapter;
 *   3. the logits of base + exported adapter on B, written for tools/gpu/peft_logits.py, which
 *      compares them with PEFT's `PeftModel` on the same folder.
 *
 * Every step runs the real CLI in its own process (bin/fedlora.mjs), so what is checked is what a
 * user gets. Prints one line per row and writes `<out>/verify.json`.
 *
 *   npx tsx tools/gpu/verify.ts --backend wasm --out out/gpu-verify            # here (no GPU)
 *   bash tools/gpu/run.sh                                                      # the GPU machine
 *
 * --model DIR uses a transformers-written checkpoint folder (a byte tokenizer.json is added when it
 * has none); without it a small random llama is written with our own writer.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Command } from 'commander';

const ROOT = resolve(import.meta.dirname, '../..');
const FEDLORA = join(ROOT, 'bin/fedlora.mjs');

interface Row { check: string; ok: boolean; seconds: number; detail: string }

const program = new Command()
  .requiredOption('--backend <name>', 'the backend every step is forced onto')
  .requiredOption('--out <dir>', 'working folder; verify.json is written here')
  .option('--model <dir>', 'a llama checkpoint folder (transformers-written)')
  .option('--steps <n>', 'optimizer steps per train run', '6')
  .option('--seq-len <n>', 'tokens per example', '64')
  .option('--rounds <n>', 'federated rounds', '2')
  .option('--only <list>', 'comma-separated subset: train, federation, logits', 'train,federation,logits')
  .parse();
const opts = program.opts<{ backend: string; out: string; model?: string; steps: string; seqLen: string; rounds: string; only: string }>();
const only = new Set(opts.only.split(','));
const out = resolve(opts.out);
const rows: Row[] = [];

/** Runs the fedlora CLI; resolves with its exit code and output (never rejects). */
function fedlora(args: string[], log: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [FEDLORA, ...args], { cwd: out, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => {
      void writeFile(join(out, `${log}.log`), `$ fedlora ${args.join(' ')}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`).then(() => done({ code: code ?? 1, stdout, stderr }));
    });
  });
}

async function row(check: string, f: () => Promise<{ ok: boolean; detail: string }>): Promise<void> {
  const t0 = performance.now();
  let r: { ok: boolean; detail: string };
  try {
    r = await f();
  } catch (e) {
    r = { ok: false, detail: e instanceof Error ? e.message.split('\n')[0]! : String(e) };
  }
  const entry = { check, ok: r.ok, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)), detail: r.detail };
  rows.push(entry);
  process.stdout.write(`${entry.ok ? 'PASS' : 'FAIL'}  ${check}  (${entry.seconds} s)  ${entry.detail}\n`);
}

function lastLine(s: string): string {
  return s.trim().split('\n').filter((l) => /FL_ERR|Error/.test(l)).at(-1) ?? s.trim().split('\n').at(-1) ?? '';
}

await mkdir(out, { recursive: true });

// The model: a given folder (tokenizer added when missing), or a small random llama of our own.
const { byteTokenizerJson } = await import('../../client/tokenizer-bytes.js');
let modelDir: string;
if (opts.model !== undefined) {
  modelDir = resolve(opts.model);
  if (!existsSync(join(modelDir, 'tokenizer.json'))) {
    const { tokenizer, config } = byteTokenizerJson();
    await writeFile(join(modelDir, 'tokenizer.json'), JSON.stringify(tokenizer));
    await writeFile(join(modelDir, 'tokenizer_config.json'), JSON.stringify(config));
  }
} else {
  modelDir = join(out, 'model');
  const [{ parseLlamaConfig }, { randomLlamaWeights }, { LlamaModel }, { saveLlamaCheckpoint }, tf] = await Promise.all([
    import('../../client/models/llama-config.js'), import('../../client/models/llama-init.js'), import('../../client/models/llama.js'),
    import('../../client/checkpoint-save.js'), import('@tensorflow/tfjs'),
  ]);
  await tf.setBackend('cpu');
  const config = parseLlamaConfig({
    model_type: 'llama', vocab_size: 259, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 256, tie_word_embeddings: true,
  });
  const weights = randomLlamaWeights(config, 11);
  const model = await LlamaModel.build(config, (n) => weights.get(n)!);
  await saveLlamaCheckpoint(model, modelDir, { tokenizer: byteTokenizerJson() });
  model.dispose();
}
const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
process.stdout.write(`model: ${modelDir} (${String(config.model_type)}, hidden ${String(config.hidden_size)}, ${String(config.num_hidden_layers)} layers, vocab ${String(config.vocab_size)}); backend ${opts.backend}\n`);

// Data: WordNet glosses (simulations/data, with its licence), two shards of 48 lines.
const glosses = gunzipSync(await readFile(join(ROOT, 'simulations/data/wordnet-glosses.txt.gz'))).toString('utf8').split('\n').filter((l) => l.trim().length > 20);
const shards: string[] = [];
for (let k = 0; k < 2; k++) {
  const file = join(out, `texts-${k}.jsonl`);
  await writeFile(file, glosses.slice(k * 48, (k + 1) * 48).map((text) => JSON.stringify({ text })).join('\n') + '\n');
  shards.push(file);
}

const common = ['--backend', opts.backend, '--model', modelDir, '--seq-len', opts.seqLen];
if (only.has('train')) {
  for (const variant of ['lora', 'ffa', 'fedsb']) {
    for (const dp of [false, true]) {
      const name = `train-${variant}${dp ? '-dp' : ''}`;
      await row(`fedlora train --variant ${variant}${dp ? ' + DP-SGD' : ''}`, async () => {
        const r = await fedlora(['train', ...common, '--data', shards[0]!, '--out', join(out, name), '--variant', variant, '--rank', '4',
          '--max-steps', opts.steps, '--batch-size', '4', '--lr', '0.01', '--test-fraction', '0.25',
          ...(dp ? ['--dp-sigma', '1', '--dp-clip', '1'] : [])], name);
        if (r.code !== 0) return { ok: false, detail: `exit ${r.code}: ${lastLine(r.stderr)}` };
        const result = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { train: { finalLoss: number; steps: number }; before?: { loss: number }; after?: { loss: number }; backend?: { name: string } };
        const adapter = existsSync(join(out, name, 'adapter_model.safetensors'));
        const finite = Number.isFinite(result.train.finalLoss);
        return { ok: adapter && finite, detail: `${result.train.steps} steps, final train loss ${result.train.finalLoss.toFixed(4)}${result.before && result.after ? `, test loss ${result.before.loss.toFixed(4)} -> ${result.after.loss.toFixed(4)}` : ''}${adapter ? '' : ', no adapter written'}` };
      });
    }
  }
}

const adapterDir = join(out, 'global-adapter');
if (only.has('federation')) {
  await row(`coordinator + 2 x fedlora client join (${opts.rounds} rounds)`, async () => {
    const db = join(out, 'coordinator.db');
    const adminToken = 'gpu-verify-admin-token-0123456789';
    const coordinator = spawn(process.execPath, [FEDLORA, 'coordinator', 'start', '--db', db, '--port', '0', '--admin-token', adminToken, '--log-level', 'warn'], { cwd: out, stdio: ['ignore', 'pipe', 'pipe'] });
    let coordinatorLog = '';
    coordinator.stderr.on('data', (d: Buffer) => { coordinatorLog += d.toString(); });
    try {
      const url = await new Promise<string>((ok, fail) => {
        let text = '';
        coordinator.stdout.on('data', (d: Buffer) => {
          text += d.toString();
          const m = /listening on (http:\/\/\S+)/.exec(text);
          if (m) ok(m[1]!);
        });
        coordinator.once('exit', (code) => fail(new Error(`the coordinator exited (${code}) before listening: ${coordinatorLog.slice(-300)}`)));
      });
      const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
        const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
        const text = await res.text();
        return { status: res.status, json: text === '' ? undefined : JSON.parse(text) as unknown };
      };
      const { checkpointSha256 } = await import('../../client/checkpoint.js');
      const job = await call('POST', '/api/jobs', {
        strategy: 'fedavg', rounds: Number(opts.rounds), clientsPerRound: 2, minClients: 2, overSelection: 0,
        model: { sha256: await checkpointSha256(modelDir), targetModules: ['q_proj', 'v_proj'] }, rank: 4, seed: 7,
        training: { epochs: 1, batchSize: 8, lr: 0.01 },
      });
      if (job.status !== 201) return { ok: false, detail: `job creation: ${job.status} ${JSON.stringify(job.json)}` };
      const jobId = (job.json as { id: string }).id;
      const clients = await Promise.all(shards.map(async (data, k) => {
        const e = await call('POST', `/api/jobs/${jobId}/enrolments`, {});
        const token = (e.json as { token: string }).token;
        return fedlora(['client', 'join', '--coordinator', url, '--job', jobId, '--token', token, '--data', data, '--model', modelDir,
          '--backend', opts.backend, '--seq-len', opts.seqLen, '--state', join(out, `client-${k}`), '--quiet'], `client-${k}`);
      }));
      const status = (await call('GET', `/api/jobs/${jobId}`)).json as { status: string; roundsDetail: Array<{ participants: unknown[]; metrics: Record<string, number> }> };
      const failed = clients.findIndex((c) => c.code !== 0);
      if (failed >= 0) return { ok: false, detail: `client ${failed} exit ${clients[failed]!.code}: ${lastLine(clients[failed]!.stderr + clients[failed]!.stdout)}` };
      const exported = await fedlora(['export', '--db', db, '--job', jobId, '--out', adapterDir], 'export');
      const losses = status.roundsDetail.map((r) => r.metrics.train_loss?.toFixed(4) ?? '?').join(', ');
      return {
        ok: status.status === 'completed' && exported.code === 0 && status.roundsDetail.every((r) => r.participants.length === 2),
        detail: `job ${status.status}, ${status.roundsDetail.length} rounds of 2 clients, train loss per round ${losses}; export exit ${exported.code}`,
      };
    } finally {
      coordinator.kill('SIGTERM');
      await writeFile(join(out, 'coordinator.log'), coordinatorLog);
    }
  });
}

if (only.has('logits')) {
  await row('logits of base + exported adapter written for PEFT', async () => {
    if (!existsSync(join(adapterDir, 'adapter_config.json'))) return { ok: false, detail: 'no exported adapter (the federation row failed)' };
    const [{ chooseBackend, shutdownBackend }, { loadLlamaCheckpoint }, { LlamaLoraModel }, { readPeftAdapterDir }, tf] = await Promise.all([
      import('../../client/backend.js'), import('../../client/checkpoint.js'), import('../../client/models/llama-lora.js'), import('../../shared/peft.js'), import('@tensorflow/tfjs'),
    ]);
    await chooseBackend({ backend: opts.backend as 'webgpu' });
    try {
      const adapter = await readPeftAdapterDir(adapterDir);
      const { model: base } = await loadLlamaCheckpoint(modelDir);
      const model = LlamaLoraModel.attach(base, { targetModules: adapter.layout.modules.map((m) => m.path), variant: adapter.layout.variant, rank: adapter.layout.modules[0]!.rank, alpha: adapter.layout.modules[0]!.alpha });
      model.loadGlobal(adapter);
      const ids = [1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 2];
      const logits = model.forward(tf.tensor2d([ids], [1, ids.length], 'int32'));
      const values = Array.from(await logits.data());
      logits.dispose();
      model.dispose();
      await writeFile(join(out, 'ours-logits.json'), JSON.stringify({ ids, logits: values, backend: opts.backend, model: modelDir, adapter: adapterDir }));
      return { ok: values.every(Number.isFinite), detail: `${values.length} logits; compare with: python3 tools/gpu/peft_logits.py ${join(out, 'ours-logits.json')}` };
    } finally {
      await shutdownBackend();
    }
  });
}

await writeFile(join(out, 'verify.json'), `${JSON.stringify({ backend: opts.backend, model: modelDir, rows }, null, 1)}\n`);
process.stdout.write(`${rows.filter((r) => r.ok).length} passed, ${rows.filter((r) => !r.ok).length} failed\n`);
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
