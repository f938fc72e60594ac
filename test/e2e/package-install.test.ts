/**
 * The package installs and runs outside a clone (issue 12): `npm pack` makes a tarball of what
 * `files` lists, `npm install -g --prefix` installs it (its dependencies from the registry or npm's
 * cache), and the installed `fedlora` runs from another directory, its default data (the bundled
 * digits) found from the package rather than the working directory.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIGITS_DATA, WORDNET_DATA } from '../../client/data/bundled.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fedlora-pack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm pack + npm install -g --prefix', () => {
  it('installs a fedlora that runs --help and pretrain mlp (bundled data) from another directory', () => {
    // --ignore-scripts: no browser bundle build (prepare) and no native builds; neither is needed here
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: root, stdio: 'pipe' });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const prefix = join(dir, 'prefix');
    execFileSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--omit=optional', '--no-audit', '--no-fund', join(dir, tarball!)], { cwd: dir, stdio: 'pipe' });
    const bin = join(prefix, 'bin', 'fedlora');
    expect(existsSync(bin)).toBe(true);
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    const help = spawnSync(bin, ['--help'], { cwd: elsewhere, encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: fedlora/);
    expect(help.stdout).toContain('client');
    const pretrain = spawnSync(bin, ['pretrain', 'mlp', '--hidden', '8', '--epochs', '1', '--out', 'base'], { cwd: elsewhere, encoding: 'utf8' });
    expect(pretrain.status, pretrain.stderr).toBe(0);
    expect(existsSync(join(elsewhere, 'base', 'model.safetensors'))).toBe(true);
    // no test/, bench/ or tools/ in the package
    const installed = join(prefix, 'lib', 'node_modules', 'fedlora');
    for (const absent of ['test', 'bench', 'tools']) expect(existsSync(join(installed, absent))).toBe(false);
  }, 240_000);

  it('resolves the bundled data sets from the package, as absolute paths that exist', () => {
    for (const p of [DIGITS_DATA, WORDNET_DATA]) {
      expect(isAbsolute(p)).toBe(true);
      expect(existsSync(p)).toBe(true);
    }
  });
});
