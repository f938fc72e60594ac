/**
 * `fedlora client join` refuses a data file with errors before any training and before any
 * contact with the coordinator, naming the file and the line. The coordinator URL here points at
 * a closed port: reaching the connection step would fail with FL_ERR_CONNECTION instead.
 */
import { writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { join, registerClientCommands } from '../../client/agent-cli.js';
import { isFedloraError } from '../../shared/errors.js';
import { freePort, tempDir, writeBaseModel } from '../e2e/harness.js';

let modelDir: string;
let closedUrl: string;

beforeAll(async () => {
  modelDir = await writeBaseModel();
  closedUrl = `http://127.0.0.1:${await freePort()}`;
});

const header = [...Array.from({ length: 64 }, (_, i) => `p${i}`), 'label'].join(',');
const row = (label: number | string, bad?: string): string => [...Array.from({ length: 64 }, (_, i) => (i === 5 && bad !== undefined ? bad : String(i % 17))), String(label)].join(',');

function dataFile(lines: string[]): string {
  const file = joinPath(tempDir('data'), 'local.csv');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function joinError(data: string): Promise<unknown> {
  const flags = { coordinator: closedUrl, token: 'x'.repeat(43), data, model: modelDir, state: tempDir('state'), job: 'job1', quiet: true };
  return join(flags, { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream).then(() => null, (e: unknown) => e);
}

describe('client join: data checked before training', () => {
  it('names the file and line of a malformed field', async () => {
    const file = dataFile([header, row(1), row(2, 'abc'), row(3)]);
    const e = await joinError(file);
    expect(isFedloraError(e, 'FL_ERR_DATA')).toBe(true);
    expect((e as Error).message).toContain(`${file}:3`);
  });

  it('names the line of a label the model has no class for', async () => {
    const file = dataFile([header, row(1), row(2), row(12)]);
    const e = await joinError(file);
    expect(isFedloraError(e, 'FL_ERR_DATA')).toBe(true);
    expect((e as Error).message).toBe(`FL_ERR_DATA: ${file}:4: label 12 is out of range: the model has 10 classes (0..9)`);
  });

  it('refuses a table with another number of features than the model takes', async () => {
    const file = dataFile(['a,b,label', '1,2,0', '3,4,1']);
    const e = await joinError(file);
    expect(isFedloraError(e, 'FL_ERR_DATA')).toBe(true);
    expect((e as Error).message).toMatch(/local\.csv:2: has 2 feature columns, the model .* takes 64/);
  });

  it('refuses a --coordinator that is not an http(s) URL before loading anything', async () => {
    const file = dataFile([header, row(1), row(2)]);
    const bad = await join({ coordinator: 'ftp://x', data: file, model: modelDir, state: tempDir('state'), quiet: true }).then(() => null, (e: unknown) => e);
    expect(isFedloraError(bad, 'FL_ERR_INVALID_ARGUMENT')).toBe(true);
    expect((bad as Error).message).toMatch(/--coordinator must be an http/);
  });

  it('registers `client join` with its options, under an existing `client` command too', () => {
    const program = new Command('fedlora');
    program.command('client').description('from another module');
    registerClientCommands(program);
    const client = program.commands.filter((c) => c.name() === 'client');
    expect(client).toHaveLength(1);
    const joinCommand = client[0]!.commands.find((c) => c.name() === 'join')!;
    expect(joinCommand.options.map((o) => o.long)).toEqual(
      expect.arrayContaining(['--coordinator', '--token', '--data', '--model', '--backend', '--state', '--job', '--coordinator-fingerprint', '--quiet']),
    );
  });
});
