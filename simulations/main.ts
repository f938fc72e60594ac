/**
 * Standalone entry for the sim commands until (and besides) bin/cli.ts registers them:
 * `node --import tsx simulations/main.ts sim --preset demo`. Same exit codes as bin/cli.ts.
 */
import { Command, CommanderError } from 'commander';
import { FedloraError } from '../shared/errors.js';
import { register } from './cli.js';

const program = new Command('fedlora').exitOverride();
register(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else if (e instanceof FedloraError) {
    process.stderr.write(`fedlora: ${e.message}\n`);
    process.exitCode = ['FL_ERR_INVALID_ARGUMENT', 'FL_ERR_PRIVACY_ARGUMENT', 'FL_ERR_INVALID_CONFIG'].includes(e.code) ? 2 : 1;
  } else throw e;
}
