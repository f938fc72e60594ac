import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { writeUstar } from '../../../coordinator/export/ustar.js';

describe('ustar writer', () => {
  const entries = [
    { name: 'adapter/adapter_config.json', data: new TextEncoder().encode('{"r": 4}\n') },
    { name: 'adapter/adapter_model.safetensors', data: new Uint8Array(randomBytes(1537)) },
    { name: 'empty', data: new Uint8Array(0) },
    { name: 'exact-block', data: new Uint8Array(512).fill(7) },
  ];

  it('is read back byte for byte by GNU tar', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-tar-'));
    try {
      writeFileSync(join(dir, 'a.tar'), writeUstar(entries));
      const listing = execFileSync('tar', ['-tvf', join(dir, 'a.tar')], { encoding: 'utf8' });
      expect(listing).toContain('adapter/adapter_model.safetensors');
      execFileSync('tar', ['-xf', join(dir, 'a.tar'), '-C', dir]);
      for (const e of entries) expect(new Uint8Array(readFileSync(join(dir, e.name)))).toEqual(e.data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is read by Python's tarfile as ustar with valid checksums", () => {
    const archive = Buffer.from(writeUstar(entries));
    const script = [
      'import sys, tarfile, io, hashlib, json',
      'data = sys.stdin.buffer.read()',
      'with tarfile.open(fileobj=io.BytesIO(data), format=tarfile.USTAR_FORMAT) as t:',
      '    print(json.dumps([[m.name, m.size, m.isreg(), hashlib.sha256(t.extractfile(m).read()).hexdigest()] for m in t.getmembers()]))',
    ].join('\n');
    const out = JSON.parse(execFileSync('python3', ['-c', script], { input: archive, encoding: 'utf8' })) as Array<[string, number, boolean, string]>;
    expect(out).toEqual(entries.map((e) => [e.name, e.data.length, true, createHash('sha256').update(e.data).digest('hex')]));
  });

  it('pads to blocks and ends with two zero blocks', () => {
    const tar = writeUstar(entries.slice(0, 1));
    expect(tar.length).toBe(512 * 4);
    expect(tar.subarray(1024).every((b) => b === 0)).toBe(true);
  });

  it('refuses names longer than 100 bytes', () => {
    expect(() => writeUstar([{ name: 'x'.repeat(101), data: new Uint8Array(1) }])).toThrow(/longer than 100 bytes/);
  });
});
