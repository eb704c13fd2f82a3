#!/usr/bin/env node
/**
 * Records dist/bin/cli.cache, the V8 code cache of dist/bin/cli.cjs (see src/cli/launch.ts): loads
 * the bundle, runs the everyday commands once in a temporary project (init, pack, publish, deploy,
 * a config-only redeploy, version list|switch|rollback, verify, status, the lists, and publish and
 * deploy with --method s3), then saves the cache, which then holds every function those commands
 * compiled. Called by scripts/bundle.mjs; output goes to stdout (ignored there), failures to stderr
 * with a non-zero exit.
 *
 * The S3 commands run against `warmupS3` below: a few lines of object store on loopback, in this
 * process, that keeps objects in memory. It exists only so that the S3 SDK's code (client, signing,
 * requests, responses) is compiled into the cache; it checks nothing and proves nothing (the S3
 * tests run against Ceph).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
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

/** Path-style HEAD/GET (with Range)/PUT (If-None-Match: *, If-Match)/DELETE of objects in memory. */
async function warmupS3() {
  const objects = new Map();
  const server = createServer((req, res) => {
    const body = [];
    req.on('data', (d) => body.push(d));
    req.on('end', () => {
      const key = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const bucketOnly = key.split('/').filter(Boolean).length < 2;
      const have = objects.get(key);
      const missing = () => {
        res.writeHead(404, { 'content-type': 'application/xml' });
        res.end(
          req.method === 'HEAD' ? undefined : '<Error><Code>NoSuchKey</Code><Message>none</Message></Error>',
        );
      };
      if (req.method === 'HEAD' && bucketOnly) return res.writeHead(200).end();
      if (req.method === 'PUT') {
        if (
          (req.headers['if-none-match'] === '*' && have) ||
          (req.headers['if-match'] &&
            req.headers['if-match'].replaceAll('"', '') !== have?.etag.replaceAll('"', ''))
        ) {
          res.writeHead(412, { 'content-type': 'application/xml' });
          return res.end('<Error><Code>PreconditionFailed</Code><Message>no</Message></Error>');
        }
        const data = Buffer.concat(body);
        const etag = `"${createHash('md5').update(data).digest('hex')}"`;
        objects.set(key, { data, etag });
        return res.writeHead(200, { etag }).end();
      }
      if (req.method === 'DELETE') {
        objects.delete(key);
        return res.writeHead(204).end();
      }
      if (!have) return missing();
      const headers = {
        etag: have.etag,
        'last-modified': new Date(0).toUTCString(),
        'accept-ranges': 'bytes',
      };
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        const end = Math.min(have.data.length - 1, range[2] ? Number(range[2]) : have.data.length - 1);
        const part = have.data.subarray(start, end + 1);
        res.writeHead(206, {
          ...headers,
          'content-length': part.length,
          'content-range': `bytes ${start}-${end}/${have.data.length}`,
        });
        return res.end(req.method === 'HEAD' ? undefined : part);
      }
      res.writeHead(200, { ...headers, 'content-length': have.data.length });
      res.end(req.method === 'HEAD' ? undefined : have.data);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

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
  const s3 = await warmupS3();
  const env = { ...process.env };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'WARMUP',
    AWS_SECRET_ACCESS_KEY: 'warmup-not-a-secret',
    AWS_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(work, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-aws-credentials'),
  });
  try {
    const s3Flags = ['--method', 's3', '--bucket', 'warmup', '--endpoint', s3.endpoint];
    for (const [release, config] of [
      ['s1', 'config:1.0.0'],
      ['s2', 'config:1.0.1'],
    ]) {
      await run(
        'publish',
        ...c('model:1.0.0', config, 'runtime:1.0.0'),
        '--release-version',
        release,
        ...s3Flags,
      );
      // A new cache for each: the second deploy downloads too (and reuses the kept model).
      const cacheDir = join(work, `s3-cache-${release}`);
      await run(
        'deploy',
        '--release',
        release,
        '--target',
        join(work, 's3-target'),
        '--cache-dir',
        cacheDir,
        ...s3Flags,
      );
    }
  } finally {
    process.env = env;
    s3.close();
  }
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
