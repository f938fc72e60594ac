/**
 * `fedlora client join`: run the client agent (client/agent/agent.ts) until the job ends.
 *
 *   fedlora client join --coordinator URL[,URL...] --token T --data FILE --model DIR [--backend B] [--state DIR]
 *                       [--job ID] [--label COL] [--seq-len N] [--connect-timeout S]
 *                       [--coordinator-fingerprint F] [--quiet]
 *
 * The job (its id, target modules, model hash, variant and rank) comes from the coordinator, which
 * knows it from the enrolment token; `--job` is only a check. The model and the data are loaded
 * and checked before connecting, so a data file with errors is refused (file and line named)
 * before any training or any contact with the coordinator. TensorFlow.js, socket.io-client and the
 * models load inside the action. Several URLs name the nodes of one cluster (docs/deployment.md):
 * the agent moves to the next when one cannot be reached or drops it; the first names the pin.
 */
import type { Command } from 'commander';
import { FedloraError } from '../shared/errors.js';

/** Seconds without reaching the coordinator before `client join` gives up. */
export const DEFAULT_CONNECT_TIMEOUT_S = 120;

interface JoinFlags {
  coordinator: string;
  token?: string;
  data: string;
  model: string;
  backend?: string;
  state: string;
  job?: string;
  label?: string;
  seqLen?: string;
  connectTimeout?: string;
  coordinatorFingerprint?: string;
  quiet?: boolean;
  threads?: string;
}

function positiveInt(raw: string, option: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option} must be a positive integer, got '${raw}'`, { option });
  return n;
}

/** Runs `client join`; resolves with the process exit status (0: the job completed, 1: it failed). */
export async function join(flags: JoinFlags, out: NodeJS.WriteStream = process.stderr): Promise<number> {
  const { coordinatorUrls, jobIdFromUrl } = await import('./agent/connection.js');
  // validated before anything is loaded; the first URL names the cluster (pin, enrolment record)
  const [coordinator, ...fallbackUrls] = coordinatorUrls(flags.coordinator) as [string, ...string[]];
  const seqLen = flags.seqLen === undefined ? undefined : positiveInt(flags.seqLen, 'seq-len');
  const threads = flags.threads === undefined ? (await import('node:os')).availableParallelism() : positiveInt(flags.threads, 'threads');
  const connectTimeoutS = flags.connectTimeout === undefined ? DEFAULT_CONNECT_TIMEOUT_S : positiveInt(flags.connectTimeout, 'connect-timeout');
  const { parseBackendName } = await import('./backend.js');
  const backendName = flags.backend === undefined ? undefined : parseBackendName(flags.backend);
  const quiet = flags.quiet === true;
  const { barProgress, quietProgress } = await import('./agent/progress.js');
  const log = (line: string): void => void out.write(`${line}\n`);
  const progress = quiet || !out.isTTY ? quietProgress(log) : await barProgress(out);

  const { loadBaseModel } = await import('./agent/base-model.js');
  const { loadLocalData } = await import('./agent/local-data.js');
  const { StateFolder } = await import('./agent/state-folder.js');
  const { ClientAgent } = await import('./agent/agent.js');
  const { backendForHello } = await import('./agent/handshake.js');
  const { formatSummary } = await import('./agent/summary.js');

  // Credentials first (cheap): a first join without a token fails before anything heavy loads.
  const state = StateFolder.open(flags.state);
  if (state.createdKeys) progress.info(`created the client keys in ${flags.state} (fingerprint ${state.fingerprint})`);
  // The coordinator knows the job from the token; --job (or a URL ending in /jobs/ID) is a check.
  const jobId = flags.job ?? jobIdFromUrl(coordinator) ?? state.enrolment(coordinator, undefined)?.jobId;
  if (flags.token === undefined && state.enrolment(coordinator, jobId) === null) {
    const which = jobId === undefined ? '' : ` for job '${jobId}'`;
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `the state folder ${flags.state} holds no enrolment${which}: pass the enrolment token (--token)`, { option: 'token' });
  }
  const model = await loadBaseModel(flags.model);
  progress.info(`model: ${model.kind} from ${flags.model}, sha256 ${model.sha256}`);
  // The data is checked before the backend starts and before any connection.
  const data = await loadLocalData(flags.data, model, { ...(flags.label !== undefined && { label: flags.label }), ...(seqLen !== undefined && { seqLen }) });
  progress.info(`data: ${data.examples} examples from ${flags.data}`);
  // Training runs in a worker thread (which chooses the backend), so the socket keeps answering
  // heartbeats during long rounds; this thread never loads TensorFlow.js.
  const { WorkerTrainer } = await import('./agent/worker-trainer.js');
  const trainer = await WorkerTrainer.start({
    modelDir: flags.model,
    dataFile: flags.data,
    ...(backendName !== undefined && { backend: backendName }),
    ...(flags.label !== undefined && { label: flags.label }),
    ...(seqLen !== undefined && { seqLen }),
    threads,
  });
  const backend = trainer.backend;
  progress.info(`backend: ${backend.name} on ${backend.device}; self-test ${backend.selfTest.ok ? 'ok' : 'failed'} (max relative error ${backend.selfTest.maxError.toExponential(2)}); ${trainer.threads} training thread${trainer.threads === 1 ? '' : 's'}`);
  const agent = new ClientAgent({
    coordinatorUrl: coordinator,
    fallbackUrls,
    ...(jobId !== undefined && { jobId }),
    ...(flags.token !== undefined && { token: flags.token }),
    state,
    model,
    data,
    backend: backendForHello(backend),
    connectTimeoutMs: connectTimeoutS * 1000,
    ...(flags.coordinatorFingerprint !== undefined && { coordinatorFingerprint: flags.coordinatorFingerprint }),
    progress,
    trainer,
  });
  try {
    const summary = await agent.run();
    out.write(`${formatSummary(summary)}\n`);
    return summary.status === 'failed' ? 1 : 0;
  } finally {
    progress.stop();
    await trainer.close();
  }
}

/**
 * Registers `client join` on the program (under an existing `client` command when another module
 * registered one).
 */
export function registerClientCommands(program: Command): void {
  const client = program.commands.find((c) => c.name() === 'client') ?? program.command('client').description('Run a federated client');
  client
    .command('join')
    .description('Join a federation job and train every round it offers, until the job ends')
    .requiredOption('--coordinator <url[,url...]>', 'the coordinator URL, e.g. http://127.0.0.1:8080 (a URL ending in /jobs/ID also checks the job); several, comma-separated, for the nodes of one cluster, tried in turn')
    .option('--token <token>', 'one-use enrolment token (first join only)')
    .requiredOption('--data <file>', 'local training data: .csv(.gz) for mlp, .jsonl(.gz) with "text" for llama')
    .requiredOption('--model <dir>', 'base model folder (config.json + model.safetensors)')
    .option('--backend <name>', 'tensorflow, webgpu, wasm or cpu (default: the first that works)')
    .option('--state <dir>', 'state folder: keys (mode 0600), pinned coordinator key, enrolment', './fedlora-client')
    .option('--job <id>', "check that the token is for this job (the coordinator knows the job from the token)")
    .option('--label <column>', 'label column or field of the data file')
    .option('--seq-len <n>', 'llama: tokens per training example (default 128)')
    .option('--connect-timeout <seconds>', `give up when the coordinator cannot be reached for this long, at the start or after losing it (default ${DEFAULT_CONNECT_TIMEOUT_S})`)
    .option('--coordinator-fingerprint <hex>', 'pin this coordinator key fingerprint instead of trusting on first use')
    .option('--quiet', 'no progress bars, one line per event')
    .option('--threads <n>', "threads that train data-parallel, each with its own backend and model copy; 1: one thread (default: the machine's cores)")
    .action(async (flags: JoinFlags) => {
      process.exitCode = await join(flags);
    });
}

/** The `register` name the other folders use. */
export const register = registerClientCommands;
