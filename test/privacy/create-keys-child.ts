/**
 * Child process of the key-creation race test (keys.test.ts): says "ready", waits for a line on
 * stdin, then creates-or-loads the key file and prints {created, fingerprint} as JSON.
 */
import { loadOrCreateKeys } from '../../privacy/keys.js';

const path = process.argv[2]!;
process.stdout.write('ready\n');
process.stdin.once('data', () => {
  const { created, fingerprint } = loadOrCreateKeys(path, 'coordinator');
  process.stdout.write(`${JSON.stringify({ created, fingerprint })}\n`);
  process.stdin.destroy();
});
