/**
 * The top of the command tree. Each folder registers its own subcommands from its cli.ts; those
 * modules import their heavy dependencies (TensorFlow.js, SQLite) only inside the action, so
 * `fedlora privacy epsilon` never loads a model runtime.
 */
import { Command, CommanderError } from 'commander';
import { FedloraError } from '../shared/errors.js';

/** Codes that mean "the user typed something wrong": exit status 2, as for a usage error. */
const USAGE_CODES = new Set(['FL_ERR_INVALID_ARGUMENT', 'FL_ERR_PRIVACY_ARGUMENT', 'FL_ERR_INVALID_CONFIG', 'FL_ERR_UNKNOWN_STRATEGY']);

export async function buildProgram(): Promise<Command> {
  const program = new Command('fedlora')
    .description('Federated LoRA fine-tuning: coordinator, client agent, aggregation, privacy, simulation')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .option('--verbose', 'show backend noise (TensorFlow.js and Dawn warnings, each backend passed over); by default one line says which backend was chosen')
    .hook('preAction', (command) => {
      // Read by client/backend.ts and client/backends/webgpu.ts, here and in worker threads.
      if (command.opts<{ verbose?: boolean }>().verbose === true) process.env.FEDLORA_VERBOSE = '1';
    });
  const registrations: Array<Promise<{ register: (program: Command) => void }>> = [
    import('../aggregation/cli.js'),
    import('../privacy/cli.js'),
    import('../privacy/secagg/cli.js'),
    import('../coordinator/cli.js'),
    import('../client/cli.js'),
    import('../client/agent-cli.js').then((m) => ({ register: m.registerClientCommands })),
    import('../simulations/cli.js'),
  ];
  for (const r of await Promise.all(registrations)) r.register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed its message; --help and --version exit 0.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof FedloraError) {
      process.stderr.write(`fedlora: ${e.message}\n`);
      process.exitCode = USAGE_CODES.has(e.code) ? 2 : 1;
      return;
    }
    throw e;
  }
}
