/**
 * `fedlora coordinator start` and `fedlora export`. SQLite, socket.io and express load only inside
 * the actions (`await import`), so other commands never pay for them.
 *   fedlora coordinator start [--db PATH] [--host H] [--port P] [--admin-token T] [--config FILE] [--log-level L]
 *   fedlora export --db PATH --job ID --out DIR
 */
import type { Command } from 'commander';
import { FedloraError } from '../shared/errors.js';

interface StartFlags {
  db?: string;
  host?: string;
  port?: string;
  adminToken?: string;
  config?: string;
  logLevel?: string;
}

function parsePort(raw: string): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isInteger(port) || port > 65535) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--port must be an integer in 0..65535, got ${JSON.stringify(raw)}`, { option: 'port' });
  }
  return port;
}

/** The config from `--config FILE`, overridden by flags. */
export async function configFromFlags(flags: StartFlags): Promise<Record<string, unknown>> {
  const { readConfigFile } = await import('./config.js');
  const config: Record<string, unknown> = flags.config === undefined ? {} : readConfigFile(flags.config);
  if (flags.db !== undefined) config.db = flags.db;
  if (flags.host !== undefined) config.host = flags.host;
  if (flags.port !== undefined) config.port = parsePort(flags.port);
  if (flags.adminToken !== undefined) config.adminToken = flags.adminToken;
  if (flags.logLevel !== undefined) config.logLevel = flags.logLevel;
  if (typeof config.db === 'string' && /^postgres(ql)?:\/\//i.test(config.db)) {
    // the PostgreSQL store exists (coordinator/store/postgres-store.ts) but the coordinator does not run
    // on it yet (docs/deployment.md): refuse rather than create a SQLite file named like the URL
    throw new FedloraError('FL_ERR_INVALID_CONFIG', 'db: a PostgreSQL URL is not supported by `coordinator start` yet (docs/deployment.md); pass a SQLite file path', { field: 'db' });
  }
  const engine = config.engine as Record<string, unknown> | undefined;
  if (engine?.seededSelection !== undefined && engine.seededSelection !== false) {
    // a seeded draw is recomputable by anyone with the seed: reproducible simulations only
    throw new FedloraError('FL_ERR_INVALID_CONFIG', 'engine.seededSelection is for `fedlora sim --reproducible-selection` only: a real coordinator selects clients with a secret CSPRNG draw', { field: 'engine.seededSelection' });
  }
  return config;
}

async function start(flags: StartFlags): Promise<void> {
  const config = await configFromFlags(flags);
  const { Coordinator } = await import('./coordinator.js');
  const coordinator = await Coordinator.start(config);
  const out = process.stdout;
  // A parent that stopped reading (a closed pipe) must not turn shutdown messages into a crash.
  out.on('error', () => {});
  out.write(`fedlora coordinator listening on ${coordinator.url}\n`);
  out.write(`key fingerprint: ${coordinator.printableFingerprint}\n`);
  out.write(`database: ${coordinator.config.db}\n`);
  const { adminTokenFile } = await import('./startup.js');
  const tokenFile = adminTokenFile(coordinator.config.db);
  if (coordinator.adminTokenGenerated) out.write(`admin token (generated, kept in ${tokenFile ?? 'memory'} for later starts): ${coordinator.adminToken}\n`);
  else if (config.adminToken === undefined && (process.env.FEDLORA_ADMIN_TOKEN ?? '') === '') out.write(`admin token (kept from an earlier start, in ${tokenFile}): ${coordinator.adminToken}\n`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const shutdown = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      out.write(`received ${signal}: stopping\n`);
      void coordinator.stop().then(resolve, (e: unknown) => {
        process.stderr.write(`fedlora: error while stopping: ${(e as Error).message}\n`);
        process.exitCode = 1;
        resolve();
      });
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });
}

async function exportAdapter(flags: { db: string; job: string; out: string; rank?: string }): Promise<void> {
  const rank = flags.rank === undefined ? undefined : Number(flags.rank);
  if (rank !== undefined && !(/^\d+$/.test(flags.rank!) && rank >= 1)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--rank must be an integer >= 1, got ${JSON.stringify(flags.rank)}`, { option: 'rank' });
  }
  const { existsSync } = await import('node:fs');
  if (!existsSync(flags.db)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--db ${flags.db} does not exist`, { option: 'db' });
  const { Store } = await import('./store/store.js');
  const { exportAdapterDir } = await import('./jobs.js');
  const store = Store.open(flags.db);
  try {
    const exported = await exportAdapterDir(store, flags.job, flags.out, rank);
    const job = store.requireJob(flags.job);
    const compressed = exported.compressionError === undefined ? '' : `, compressed to rank ${rank} (relative error ${exported.compressionError.toExponential(3)})`;
    process.stdout.write(`wrote the adapter of job ${flags.job} (${job.spec.strategy}, ${job.round} of ${job.spec.rounds} rounds, ${job.status}${compressed}) to ${flags.out}\n`);
  } finally {
    store.close();
  }
}

export function register(program: Command): void {
  const coordinator = program.command('coordinator').description('Run the federation coordinator');
  coordinator
    .command('start')
    .description('Start the coordinator: HTTP API, socket.io transport and round engine on one port')
    .option('--db <path>', 'SQLite database file, created if missing (default ./fedlora.db)')
    .option('--host <host>', 'interface to listen on (default 127.0.0.1)')
    .option('--port <port>', 'TCP port, 0 for any free one (default 8080)')
    .option('--admin-token <token>', 'bearer token of the admin API (else FEDLORA_ADMIN_TOKEN, else generated)')
    .option('--config <file>', 'JSON config file (docs/coordinator.md); flags override it')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .action(async (flags: StartFlags) => start(flags));

  program
    .command('export')
    .description("Write a job's current global adapter as a PEFT directory (adapter_config.json + adapter_model.safetensors)")
    .requiredOption('--db <path>', 'the coordinator database')
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--out <dir>', 'output directory (created if missing)')
    .option('--rank <r>', 'flora only: compress the accumulated adapter to this rank (truncated SVD; prints the relative error)')
    .action(async (flags: { db: string; job: string; out: string; rank?: string }) => exportAdapter(flags));
}
