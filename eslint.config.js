// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Imports point one way: core ← ports ← domain ← runtime ← wiring/processes; adapters implement
 * ports, http is the edge (routes and their helpers, which the domain's api.ts files use). Each
 * folder names what it may not import, as a relative path from one or two folders down.
 */
const above = (...targets) => targets.flatMap((t) => [`../${t}`, `../../${t}`]);
const layer = (message, ...targets) => ['error', { patterns: [{ group: above(...targets), message }] }];

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The console's scripts run in the browser as they are: no types, browser globals.
    files: ['src/console/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: Object.fromEntries(['document', 'window', 'location', 'fetch', 'performance', 'setTimeout', 'clearTimeout', 'URLSearchParams', 'FormData', 'Node', 'EventSource', 'console', 'sessionStorage', 'confirm'].map((name) => [name, 'readonly'])),
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-floating-promises': 'off', '@typescript-eslint/no-misused-promises': 'off', '@typescript-eslint/await-thenable': 'off', '@typescript-eslint/switch-exhaustiveness-check': 'off' },
  },
  {
    files: ['src/ports/**'],
    rules: { 'no-restricted-imports': layer('Ports are interfaces over the core only.', 'domain/*', 'runtime/*', 'http/*', 'adapters/*', 'wiring/*', 'processes/*', 'tools/*', 'config.ts', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/domain/**'],
    ignores: ['src/domain/**/api.ts', 'src/domain/**/*Api.ts'],
    rules: { 'no-restricted-imports': layer('The domain is business logic over the core and the ports: no engine, adapters, wiring or HTTP (only the routes, api.ts and *Api.ts, use http/).', 'runtime/*', 'http/*', 'adapters/*', 'wiring/*', 'processes/*', 'tools/*', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/domain/**/api.ts', 'src/domain/**/*Api.ts'],
    rules: { 'no-restricted-imports': layer('A service\'s routes see it through ports/service.ts: no engine, adapters or wiring.', 'runtime/*', 'adapters/*', 'wiring/*', 'processes/*', 'tools/*', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/runtime/**'],
    // dataDirLock.ts guards the embedded process's data directory: wiring's, kept here for now.
    ignores: ['src/runtime/dataDirLock.ts'],
    rules: { 'no-restricted-imports': layer('The runtime is the engine: it knows the core and the ports, no domain, HTTP, adapters or wiring.', 'domain/*', 'http/*', 'adapters/*', 'wiring/*', 'processes/*', 'tools/*', 'config.ts', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/adapters/**'],
    rules: { 'no-restricted-imports': layer('Adapters implement the ports: they know the core and the ports, nothing above.', 'domain/*', 'runtime/*', 'http/*', 'wiring/*', 'processes/*', 'tools/*', 'config.ts', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/http/**'],
    rules: { 'no-restricted-imports': layer('HTTP is the edge: it sees services through ports, never the engine, adapters or wiring.', 'runtime/*', 'adapters/*', 'wiring/*', 'processes/*', 'tools/*', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/observability/**'],
    rules: { 'no-restricted-imports': layer('Observability is a leaf every layer may use: it knows the core only.', 'domain/*', 'runtime/*', 'http/*', 'adapters/*', 'wiring/*', 'processes/*', 'tools/*', 'ports/*', 'config.ts', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/wiring/**'],
    rules: { 'no-restricted-imports': layer('Processes are built from the wiring, not the other way round.', 'processes/*', 'cli.ts', 'main.ts') },
  },
  {
    files: ['src/core/**'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-imports': ['error', { patterns: [{ group: ['node:*', '../adapters/*', '../runtime/*', '../http/*', 'pg', 'ioredis', 'amqplib', 'nats', '@electric-sql/*'], message: 'The saga core is pure: no I/O, no adapters.' }] }],
      'no-restricted-globals': ['error', { name: 'Date', message: 'Time comes in as data (now).' }, { name: 'setTimeout', message: 'The core has no clock.' }],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'The core has no randomness.' }],
    },
  },
);
