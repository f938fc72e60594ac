/**
 * Checks and state the coordinator needs before it creates anything: the listening address must be
 * free (checked before the database and keys are created, so a busy port leaves nothing behind),
 * and the admin token survives restarts (kept in a file beside the database, mode 0600, like the
 * key file).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { FedloraError } from '../shared/errors.js';

/** The coded error for a busy address. */
export function addressInUse(host: string, port: number): FedloraError {
  return new FedloraError('FL_ERR_ADDRESS_IN_USE', `${host}:${port} is already in use (another coordinator, or another program): stop it or pass another --port (0 picks a free one)`, { host, port });
}

/**
 * Binds the address and releases it at once.
 * @throws FL_ERR_ADDRESS_IN_USE when another socket holds it; other bind errors as they are
 */
export async function checkAddressFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? addressInUse(host, port) : e));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** Where the admin token of a database is kept: `<db>.admin-token`. */
export function adminTokenFile(db: string): string | undefined {
  return db === ':memory:' ? undefined : `${db}.admin-token`;
}

/**
 * The admin token: the one given (flag, config or FEDLORA_ADMIN_TOKEN), else the one kept from an
 * earlier start, else a new random one; the token in use is written to `file` (0600), so a restart
 * without `--admin-token` keeps it and the dashboard links made with it keep working.
 * @returns the token and where it came from
 * @throws FL_ERR_KEY_FILE when the kept file is unreadable, empty or readable by others
 */
export function resolveAdminToken(given: string | undefined, file: string | undefined): { token: string; source: 'given' | 'kept' | 'generated' } {
  if (file !== undefined && given === undefined && existsSync(file)) {
    const mode = statSync(file).mode & 0o077;
    if (mode !== 0) throw new FedloraError('FL_ERR_KEY_FILE', `${file} can be read by others (mode ${(statSync(file).mode & 0o777).toString(8)}): chmod 600 it`, { path: file });
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < 16) throw new FedloraError('FL_ERR_KEY_FILE', `${file} holds no admin token (at least 16 characters): remove it to generate one, or pass --admin-token`, { path: file });
    return { token, source: 'kept' };
  }
  const token = given ?? randomBytes(24).toString('base64url');
  if (file !== undefined) {
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return { token, source: given === undefined ? 'generated' : 'given' };
}
