import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

// The import direction of docs/architecture.md, checked through the project's own lint config.
const eslint = new ESLint({ cwd: process.cwd() });

async function restrictedImports(filePath: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const cases: Array<[string, string, boolean]> = [
  ['shared/x.ts', "import { a } from '../privacy/a.js';", false],
  ['privacy/x.ts', "import { a } from '../shared/a.js';", true],
  ['privacy/x.ts', "import { a } from '../aggregation/a.js';", false],
  ['aggregation/x.ts', "import { a } from '../privacy/a.js';", true],
  ['aggregation/x.ts', "import * as tf from '@tensorflow/tfjs';", false],
  ['aggregation/sub/x.ts', "import { a } from '../../coordinator/a.js';", false],
  ['coordinator/x.ts', "import { a } from '../aggregation/a.js';", true],
  ['coordinator/x.ts', "import { a } from '../client/a.js';", false],
  ['coordinator/x.ts', "import Database from 'better-sqlite3';", false],
  ['coordinator/store/x.ts', "import Database from 'better-sqlite3';", true],
  ['coordinator/x.ts', "import pg from 'pg';", false],
  ['bench/x.ts', "import pg from 'pg';", false],
  ['coordinator/store/x.ts', "import pg from 'pg';", true],
  ['coordinator/cluster/x.ts', "import pg from 'pg';", true],
  ['coordinator/cluster/x.ts', "import Database from 'better-sqlite3';", false],
  ['coordinator/store/x.ts', "import * as tf from '@tensorflow/tfjs';", false],
  ['client/x.ts', "import * as tf from '@tensorflow/tfjs';", true],
  ['client/x.ts', "import { a } from '../privacy/a.js';", true],
  ['client/x.ts', "import { a } from '../coordinator/a.js';", false],
  ['client/x.ts', "import { a } from '../aggregation/a.js';", false],
  ['simulations/x.ts', "import { a } from '../coordinator/a.js';", true],
  ['simulations/x.ts', "import { a } from '../client/a.js';", true],
];

describe('import boundaries (eslint no-restricted-imports)', () => {
  it.each(cases)('%s: %s is allowed = %s', async (file, source, allowed) => {
    const messages = await restrictedImports(file, `${source}\n`);
    expect(messages.length === 0).toBe(allowed);
  });
});
