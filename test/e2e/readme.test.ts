/**
 * The README's "Using it" block, run as a user would: its five commands are read from README.md
 * and run with bash as child processes (a real coordinator, curl, two data owners each in their
 * own folder with their own ./my.jsonl and ./base-model, then the export). The only changes made
 * to the text: `npx fedlora` runs this clone's bin/fedlora.mjs (what npx resolves inside the
 * clone), port 8080 becomes a free port, HOST is 127.0.0.1, the sha256 placeholder is the model's,
 * and $TOKEN, $JOB, $ENROLMENT are what the user reads from the earlier commands' output. The base
 * model is a tiny random Llama the test writes (HF layout, byte tokenizer).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveLlamaCheckpoint } from '../../client/checkpoint-save.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaModel } from '../../client/models/llama.js';
import { byteTokenizerJson } from '../../client/tokenizer-bytes.js';
import { readPeftAdapterDir } from '../../shared/peft.js';
import { freePort, tempDir, wasmBackend } from './harness.js';

const REPO = resolve('.');
const TEXTS = [
  'the cat sat on the mat', 'a stitch in time saves nine', 'all that glitters is not gold', 'fortune favours the bold',
  'the early bird catches the worm', 'look before you leap', 'time and tide wait for no one', 'practice makes perfect',
];

/** The commands of the README's "Using it" block: comments dropped, `\` continuations joined. */
function readmeCommands(): string[] {
  const readme = readFileSync('README.md', 'utf8');
  const block = /## Using it\n```sh\n([\s\S]*?)```/.exec(readme);
  if (block === null) throw new Error('README.md has no "## Using it" sh block');
  return block[1]!
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

interface Run {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

function sh(command: string, cwd: string, env: Record<string, string>): Run {
  const child = spawn('bash', ['-c', `exec ${command}`], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  return { child, exited: new Promise((r) => child.once('exit', (code) => r(code))), stdout: () => out, stderr: () => err };
}

async function finished(run: Run, what: string): Promise<string> {
  const code = await run.exited;
  expect(code, `${what}: exit ${code}\n${run.stderr()}`).toBe(0);
  return run.stdout();
}

let modelDir: string;
let sha256: string;

beforeAll(async () => {
  await wasmBackend();
  const config = parseLlamaConfig({
    model_type: 'llama', vocab_size: 259, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 100, max_position_embeddings: 32, tie_word_embeddings: false,
  });
  const weights = randomLlamaWeights(config, 5);
  const model = await LlamaModel.build(config, (name) => weights.get(name)!);
  modelDir = tempDir('readme-llama');
  sha256 = await saveLlamaCheckpoint(model, modelDir, { tokenizer: byteTokenizerJson() });
  model.dispose();
});

describe('the README "Using it" block', () => {
  it('runs as written: coordinator, job, enrolment tokens, two data owners joining with only --coordinator --token --data --model, export', async () => {
    const commands = readmeCommands();
    expect(commands).toHaveLength(5);
    const [startCmd, jobCmd, enrolCmd, joinCmd, exportCmd] = commands as [string, string, string, string, string];
    expect(startCmd).toMatch(/^npx fedlora coordinator start /);
    expect(jobCmd).toMatch(/^curl .*\/api\/jobs /);
    expect(enrolCmd).toMatch(/^curl .*\/api\/jobs\/\$JOB\/enrolments /);
    expect(joinCmd).toBe('npx fedlora client join --coordinator http://HOST:8080 --token $ENROLMENT --data ./my.jsonl --model ./base-model');
    expect(exportCmd).toMatch(/^npx fedlora export /);

    const port = await freePort();
    const asRun = (c: string): string =>
      c
        .replaceAll('npx fedlora', `node ${join(REPO, 'bin/fedlora.mjs')}`)
        .replaceAll('8080', String(port))
        .replaceAll('HOST', '127.0.0.1')
        .replaceAll('<sha256 of model.safetensors>', sha256);
    const operator = tempDir('readme-operator');
    const env: Record<string, string> = {};

    const coordinator = sh(asRun(`${startCmd} --log-level warn`), operator, {});
    try {
      // The user reads the admin token from what the coordinator prints.
      const printed = await new Promise<string>((ok, fail) => {
        coordinator.child.stdout!.on('data', () => {
          if (/admin token[^\n]*: \S+\n/.test(coordinator.stdout())) ok(coordinator.stdout());
        });
        void coordinator.exited.then((code) => fail(new Error(`the coordinator exited (${code}): ${coordinator.stderr()}`)));
      });
      env.TOKEN = /admin token[^\n]*: (\S+)\n/.exec(printed)![1]!;
      env.JOB = (JSON.parse(await finished(sh(asRun(jobCmd), operator, env), 'job')) as { id: string }).id;

      // Two data owners, each on "their own machine": a folder with ./my.jsonl and ./base-model.
      const owners = [0, 1].map((k) => {
        const dir = tempDir(`readme-owner${k}`);
        symlinkSync(modelDir, join(dir, 'base-model'));
        writeFileSync(join(dir, 'my.jsonl'), TEXTS.slice(k * 4, k * 4 + 4).map((text) => JSON.stringify({ text })).join('\n') + '\n');
        return dir;
      });
      const joins = [];
      for (const dir of owners) {
        const enrolment = JSON.parse(await finished(sh(asRun(enrolCmd), operator, env), 'enrolment')) as { token: string };
        joins.push(sh(asRun(joinCmd), dir, { ENROLMENT: enrolment.token }));
      }
      for (const j of joins) {
        await finished(j, 'client join');
        const log = j.stderr();
        // What the job is came from the coordinator, not from flags.
        expect(log).toMatch(new RegExp(`job ${env.JOB}: fedsb \\(fedsb\\), rank 4, 3 rounds, LoRA on q_proj, v_proj \\(4 modules\\)`));
        expect(log).toMatch(new RegExp(`job ${env.JOB}: completed; 3 rounds committed`));
        expect(log).toMatch(/trained 3 rounds, 3 updates accepted, 0 refused/);
      }

      await finished(sh(asRun(exportCmd), operator, env), 'export');
      const adapter = await readPeftAdapterDir(join(operator, 'adapter'));
      expect([...adapter.factors.keys()].sort()).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    } finally {
      coordinator.child.kill('SIGTERM');
      await coordinator.exited;
    }
  }, 240_000);
});
