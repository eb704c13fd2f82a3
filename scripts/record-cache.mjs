#!/usr/bin/env node
/**
 * Records dist/bin/cli.cache, the V8 code cache of dist/bin/cli.cjs (see src/cli/launch.ts): loads
 * the bundle, runs the everyday commands once in a temporary project (init, pack, publish, deploy,
 * a config-only redeploy, version list|switch|rollback, verify, status, the lists), then saves the
 * cache, which then holds every function those commands compiled. Called by scripts/bundle.mjs;
 * output goes to stdout (ignored there), failures to stderr with a non-zero exit.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'bin', 'cli.cjs');
const cacheFile = join(root, 'dist', 'bin', 'cli.cache');
const { loadCli } = await import(join(root, 'dist', 'cli', 'launch.js'));

const cli = loadCli(bundle);
const work = mkdtempSync(join(tmpdir(), 'dt-cache-'));
const project = join(work, 'project');
const target = join(work, 'target');
const files = {
  'models/weights.bin': randomBytes(3 * 1024 * 1024),
  'models/tokenizer.json': '{"vocab": 1000}\n',
  'configs/settings.yaml': 'threshold: 0.5\n',
  'runtime/run.sh': '#!/bin/sh\necho run\n',
};
const cwd = process.cwd();
const failures = [];
async function run(...args) {
  process.exitCode = 0;
  await cli.runCli([process.execPath, 'deploy-tool', ...args]);
  if (process.exitCode) failures.push(`deploy-tool ${args.join(' ')} (exit ${process.exitCode})`);
  process.exitCode = 0;
}
try {
  mkdirSync(project);
  for (const [p, data] of Object.entries(files)) {
    mkdirSync(dirname(join(project, p)), { recursive: true });
    writeFileSync(join(project, p), data);
  }
  process.chdir(project);
  await run('init', '--name', 'cache', '--type', 'ml', '--no-git');
  await run('pack', './models', '--type', 'model', '--version', '1.0.0', '--auto');
  await run('pack', './configs', '--type', 'config', '--version', '1.0.0');
  await run('pack', './runtime', '--type', 'runtime', '--version', '1.0.0', '--compression', 'gzip');
  writeFileSync(join(project, 'configs/settings.yaml'), 'threshold: 0.7\n');
  await run('pack', './configs', '--type', 'config', '--version', '1.0.1', '--json');
  const c = (...v) => v.flatMap((x) => ['--component', x]);
  await run('publish', ...c('model:1.0.0', 'config:1.0.0', 'runtime:1.0.0'), '--release-version', 'r1');
  await run('publish', ...c('model:1.0.0', 'config:1.0.1', 'runtime:1.0.0'), '--release-version', 'r2');
  await run('component', 'list');
  await run('release', 'list');
  await run('deploy', '--release', 'r1', '--target', target, '--dry-run');
  await run('deploy', '--release', 'r1', '--target', target);
  await run('deploy', '--release', 'r2', '--target', target, '--json');
  await run('version', 'list', '--target', target);
  await run('version', 'rollback', '--target', target);
  await run('version', 'switch', 'r2', '--target', target);
  await run('verify', '--target', target);
  await run('status', '--target', target, '--json');
  await run('deploy', '--help');
  const tmp = `${cacheFile}.tmp-${process.pid}`;
  writeFileSync(tmp, cli.createCachedData());
  renameSync(tmp, cacheFile);
} finally {
  process.chdir(cwd);
  rmSync(work, { recursive: true, force: true });
}
if (failures.length) {
  console.error(`record-cache: these commands failed while recording:\n  ${failures.join('\n  ')}`);
  process.exitCode = 1;
}
