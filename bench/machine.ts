import os from 'node:os';

/** One line that says what machine a benchmark ran on. */
export function machineLine(): string {
  const cpus = os.cpus();
  return `machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.platform()} ${os.release()}, node ${process.version}`;
}
