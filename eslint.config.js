// Lint rules, and the import boundaries of docs/architecture.md:
//   shared <- privacy <- aggregation <- coordinator;  shared <- privacy <- client;
//   coordinator, client <- simulations.  Only client/ imports TensorFlow.js;
//   only coordinator/store/ imports the database drivers (better-sqlite3, pg), and
//   coordinator/cluster/ pg (leases, node registry, shared secrets, the socket.io adapter's pool).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const TFJS = ['@tensorflow/*', '@tensorflow/**'];
const DB_DRIVERS = ['better-sqlite3', 'pg', 'pg/*'];
const folder = (name) => [`**/${name}/*`, `**/${name}`, `../${name}/**`];

/** A no-restricted-imports rule that forbids the given folders and packages. */
function boundary(files, forbiddenFolders, forbiddenPackages, why) {
  const patterns = [];
  if (forbiddenFolders.length > 0) {
    patterns.push({ group: forbiddenFolders.flatMap(folder), message: why });
  }
  if (forbiddenPackages.length > 0) {
    patterns.push({ group: forbiddenPackages, message: why });
  }
  return { files, rules: { 'no-restricted-imports': ['error', { patterns }] } };
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', 'bench/results/**', 'out/**', 'reports/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  // WebGPU in Node has no synchronous tensor read (client/backends/sync-reads.ts): read with await.
  {
    rules: {
      'no-restricted-properties': ['error',
        ...[['dataSync', 'data'], ['arraySync', 'array'], ['bufferSync', 'buffer']].map(([property, instead]) => ({
          property, message: `synchronous tensor reads throw on webgpu in Node: use 'await t.${instead}()'`,
        }))],
    },
  },
  boundary(['shared/**'], ['privacy', 'aggregation', 'coordinator', 'client', 'simulations'], [...TFJS, ...DB_DRIVERS],
    'shared/ is the bottom layer: it imports nothing of the project (docs/architecture.md, "The folders").'),
  boundary(['privacy/**'], ['aggregation', 'coordinator', 'client', 'simulations'], [...TFJS, ...DB_DRIVERS],
    'privacy/ imports only shared/ (docs/architecture.md, "The folders").'),
  boundary(['aggregation/**'], ['coordinator', 'client', 'simulations'], [...TFJS, ...DB_DRIVERS],
    'aggregation/ imports only shared/ and privacy/, and works on typed arrays, never tfjs.'),
  boundary(['coordinator/**'], ['client', 'simulations'], [...TFJS, ...DB_DRIVERS],
    'coordinator/ never imports client/, simulations/ or TensorFlow.js; only coordinator/store/ imports the database drivers (better-sqlite3, pg).'),
  boundary(['coordinator/store/**'], ['client', 'simulations'], TFJS,
    'coordinator/ never imports client/, simulations/ or TensorFlow.js.'),
  boundary(['coordinator/cluster/**'], ['client', 'simulations'], [...TFJS, 'better-sqlite3'],
    'coordinator/ never imports client/, simulations/ or TensorFlow.js; coordinator/cluster/ talks to PostgreSQL only (pg).'),
  boundary(['client/**'], ['aggregation', 'coordinator', 'simulations'], DB_DRIVERS,
    'client/ imports shared/ and privacy/ only; the coordinator and the client never import each other.'),
  boundary(['simulations/**', 'bench/**'], [], DB_DRIVERS, 'only coordinator/store/ imports the database drivers (better-sqlite3, pg).'),
);
