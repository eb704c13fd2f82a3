#!/usr/bin/env node
/**
 * Bundles the CLI (after `tsc` has written dist/) into dist/bin/. Node resolves and compiles one
 * file per module, and the CLI's module graph (zod, yaml, commander, the AWS SDK...) is several
 * hundred files: bundled, `deploy-tool deploy` starts in about 0.35 s instead of 0.6 s here.
 * - cli.cjs: the whole CLI as one CommonJS file, which deploy-tool.js (src/cli/bin.ts) loads with
 *   the V8 code cache cli.cache, recorded here by running the main commands once
 *   (scripts/record-cache.mjs). Commands stay lazily initialized inside it.
 * - deploy-tool.js, codec-worker.js and shared ES module chunks: the executable, the codec worker
 *   threads, and the CLI as ES modules (what deploy-tool.js runs when cli.cjs is missing).
 * Native addons stay in node_modules (required at run time); the library (dist/index.js) is not
 * bundled.
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'bin');
rmSync(out, { recursive: true, force: true });

const external = ['zstd-napi', 'lz4-napi', 'lzma-native', 'better-sqlite3', 'pg-native', 'playwright-core'];

await build({
  absWorkingDir: root,
  entryPoints: { 'deploy-tool': 'dist/cli/bin.js', 'codec-worker': 'dist/archive/codec-worker.js' },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  // ES module builds where a package has one (the AWS SDK): real named exports, and smaller.
  mainFields: ['module', 'main'],
  target: 'node20',
  // Shorter source parses faster; names are kept so that --verbose stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  external,
  // CommonJS dependencies call require() for node's built-ins; ES modules have none of their own.
  banner: {
    js: "import { createRequire as __deployToolRequire } from 'node:module'; const require = __deployToolRequire(import.meta.url);",
  },
});

await build({
  absWorkingDir: root,
  entryPoints: ['dist/cli/main.js'],
  outfile: join(out, 'cli.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  mainFields: ['module', 'main'],
  target: 'node20',
  // import() becomes require(): code compiled by vm.Script has no loader for dynamic imports.
  supported: { 'dynamic-import': false },
  // import.meta.url (codec worker path, package.json, createRequire) is this file's URL.
  define: { 'import.meta.url': '__deployToolUrl' },
  banner: { js: "var __deployToolUrl = require('node:url').pathToFileURL(__filename).href;" },
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  external,
});

// The code cache: a separate process, with node's default flags (V8 refuses a cache made with others).
const rec = spawnSync(process.execPath, [join(root, 'scripts', 'record-cache.mjs')], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
if (rec.status !== 0) {
  console.warn('bundle: recording the code cache failed; the CLI works without it, only starts slower');
}
