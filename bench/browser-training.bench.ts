/**
 * `npm run bench browser-training`: local training speed of the browser client (the join page's
 * Web Worker in headless Debian chromium, on wasm) against the Node agent (on wasm), on the same
 * machine, through the same agent code (client/agent/, client/train/trainer.ts).
 *
 * Each measurement is a real one-client job on an in-process coordinator on loopback: the digits
 * mlp of the e2e tests (64 -> 12 -> 10, LoRA r = 2 on both layers), 1,024 rows, 2 rounds of
 * STEPS local steps of batch BATCH. Examples/s is the trainer's own figure at the last step of
 * round 1 (round 0 warms the kernels up): examples trained / time since the round's first step,
 * read from the page's `#rate` for the browser and from the agent's progress for Node. The page
 * trains on wasm because its link says `&backend=wasm`. Browser and Node jobs alternate, REPS
 * each, medians printed with the ratio browser / Node and the machine line.
 * Skips, saying so, when /usr/bin/chromium is missing.
 * FEDLORA_BENCH_STEPS overrides STEPS (default 100), FEDLORA_BENCH_REPS REPS (default 3).
 */
import { existsSync } from 'node:fs';
import { buildWebClient } from '../client/web/build.js';
import type { AgentProgress } from '../client/agent/progress.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, startRun, wasmBackend, writeDigitShards, type Api } from '../test/e2e/harness.js';
import { machineLine } from './machine.js';

const CHROMIUM = '/usr/bin/chromium';
const STEPS = Number(process.env.FEDLORA_BENCH_STEPS ?? 100);
const REPS = Number(process.env.FEDLORA_BENCH_REPS ?? 3);
const BATCH = 64;
const ROWS = 1024;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function run(): Promise<void> {
  if (!existsSync(CHROMIUM)) {
    console.log(`skipped: ${CHROMIUM} is missing (apt-get install chromium); this benchmark runs the join page in headless Debian chromium`);
    return;
  }
  const { chromium } = await import('playwright-core');
  await buildWebClient();
  const fixture = await mlpFixture(0, 0);
  const [shard] = await writeDigitShards(1, ROWS);
  const nodeBackend = await wasmBackend();
  const spec = (api: Api) => api.createJob(mlpJob('fedavg', fixture.sha256, { rounds: 2, clientsPerRound: 1, minClients: 1, training: { epochs: 1, steps: STEPS, batchSize: BATCH, lr: 0.02 } }));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const { coordinator, api } = await startCoordinator();
  const browserRates: number[] = [];
  const nodeRates: number[] = [];
  let browserDevice = '';
  try {
    for (let rep = 0; rep < REPS; rep++) {
      // The browser: a fresh context (its own IndexedDB), the join link with backend=wasm.
      const jobId = await spec(api);
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${coordinator.url}/join#token=${await api.token(jobId)}&backend=wasm`);
      await page.setInputFiles('#model', fixture.modelDir);
      await page.setInputFiles('#data', shard!);
      await page.click('#join');
      await page.waitForSelector('#status[data-final]', { timeout: 300_000 });
      const final = await page.getAttribute('#status', 'data-final');
      if (final !== 'completed') throw new Error(`the page's job ended ${String(final)}: ${await page.textContent('#error')}`);
      browserDevice = (await page.textContent('#backend')) ?? '';
      browserRates.push(Number(await page.textContent('#rate')));
      await context.close();

      // Node: the agent of `fedlora client join`, in this process, on wasm.
      const nodeJob = await spec(api);
      let last = 0;
      const progress: AgentProgress = { info: () => undefined, roundStart: () => undefined, step: (p) => (last = p.examplesPerSecond), roundEnd: () => undefined, stop: () => undefined };
      const node = await makeAgent(coordinator.url, nodeJob, await api.token(nodeJob), fixture.modelDir, shard!, { progress });
      const summary = await startRun(node.agent);
      if (summary.status !== 'completed') throw new Error(`the Node agent's job ended ${summary.status}`);
      nodeRates.push(last);
      console.log(`rep ${rep + 1}/${REPS}: browser ${browserRates[rep]!.toFixed(0)} examples/s, node ${last.toFixed(0)} examples/s`);
    }
  } finally {
    await browser.close();
    await coordinator.stop();
  }
  const b = median(browserRates);
  const n = median(nodeRates);
  console.log(`digits mlp 64-12-10, LoRA r 2, batch ${BATCH}, ${STEPS} local steps (round 1 of 2), medians of ${REPS}:`);
  console.log(`  browser worker: ${b.toFixed(0)} examples/s on ${browserDevice}`);
  console.log(`  node agent:     ${n.toFixed(0)} examples/s on ${nodeBackend.name} (${nodeBackend.device})`);
  console.log(`  ratio browser / node: ${(b / n).toFixed(2)}`);
  console.log(machineLine());
}
