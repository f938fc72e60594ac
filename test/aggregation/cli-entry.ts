/**
 * The `fedlora` entry for the aggregation CLI tests. Once bin/cli.ts registers aggregation/cli.ts,
 * this is exactly `main` of the real binary; until then it adds the registration to the real
 * program and maps errors to exit codes the way bin/cli.ts does (2 for usage codes, 1 otherwise).
 */
import { CommanderError } from 'commander';
import { register } from '../../aggregation/cli.js';
import { buildProgram, main } from '../../bin/cli.js';
import { FedloraError } from '../../shared/errors.js';

const USAGE = new Set(['FL_ERR_INVALID_ARGUMENT', 'FL_ERR_PRIVACY_ARGUMENT', 'FL_ERR_INVALID_CONFIG', 'FL_ERR_UNKNOWN_STRATEGY']);

const program = await buildProgram();
if (program.commands.some((c) => c.name() === 'aggregate')) {
  await main(process.argv);
} else {
  register(program);
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
    else if (e instanceof FedloraError) {
      process.stderr.write(`fedlora: ${e.message}\n`);
      process.exitCode = USAGE.has(e.code) ? 2 : 1;
    } else throw e;
  }
}
