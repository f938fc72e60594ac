/**
 * `fedlora coordinator start` as a user runs it (bin/fedlora.mjs, a child process): a restart
 * without --admin-token keeps the admin token of the first start; a busy port is a coded error
 * that leaves no database, keys or token file behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function fedlora(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const env = { ...process.env };
  delete env.FEDLORA_ADMIN_TOKEN;
  const child = spawn(process.execPath, ['bin/fedlora.mjs', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Starts a coordinator and resolves with its URL and admin token once it printed them. */
async function start(db: string): Promise<{ url: string; token: string; stop: () => Promise<number | null> }> {
  const run = fedlora(['coordinator', 'start', '--db', db, '--port', '0', '--log-level', 'silent']);
  const printed = await new Promise<string>((resolve, reject) => {
    run.child.stdout!.on('data', () => {
      if (/admin token[^\n]*: \S+\n/.test(run.stdout())) resolve(run.stdout());
    });
    void run.exited.then((code) => reject(new Error(`exited ${code}: ${run.stderr()}`)));
  });
  const url = /listening on (\S+)/.exec(printed)![1]!;
  const token = /admin token[^\n]*: (\S+)\n/.exec(printed)![1]!;
  return {
    url,
    token,
    stop: async () => {
      run.child.kill('SIGTERM');
      return run.exited;
    },
  };
}

describe('fedlora coordinator start', () => {
  it('keeps the admin token across a restart without --admin-token', async () => {
    const db = join(mkdtempSync(join(tmpdir(), 'fedlora-start-')), 'fedlora.db');
    const first = await start(db);
    expect(first.token.length).toBeGreaterThanOrEqual(16);
    expect(await first.stop()).toBe(0);
    expect(statSync(`${db}.admin-token`).mode & 0o777).toBe(0o600);
    const second = await start(db);
    try {
      expect(second.token).toBe(first.token);
      expect((await fetch(`${second.url}/api/jobs`, { headers: { authorization: `Bearer ${first.token}` } })).status).toBe(200);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  }, 60_000);

  it('refuses a port in use with FL_ERR_ADDRESS_IN_USE before creating the database or keys', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    const db = join(mkdtempSync(join(tmpdir(), 'fedlora-busy-')), 'fedlora.db');
    try {
      const run = fedlora(['coordinator', 'start', '--db', db, '--port', String(port)]);
      expect(await run.exited).toBe(1);
      expect(run.stderr()).toMatch(new RegExp(`FL_ERR_ADDRESS_IN_USE: 127\\.0\\.0\\.1:${port} is already in use`));
      expect(run.stderr()).not.toMatch(/EADDRINUSE|\n\s+at /);
      for (const f of [db, `${db}.keys.json`, `${db}.admin-token`]) expect(existsSync(f), f).toBe(false);
    } finally {
      busy.close();
    }
  }, 60_000);
});
