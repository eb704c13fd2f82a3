/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents from the CLI */
/**
 * Incremental transfers through `deploy-tool serve`, as with S3: a new model version in which one
 * of four weight files changed uploads about that file only (its chunk; the server checks the
 * recipe), and a deploy downloads about that file only, from the files already on the target or
 * from the download cache of chunks the previous version had. Everything runs the built CLI.
 */
import { readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupTempDirs,
  compressedFileBytes,
  makeProject,
  noise,
  runCli,
  runJson,
  startServe,
  tempDir,
  writeTree,
  type Served,
} from '../helpers/cli.js';

const BOOT = 'dtr_incremental-bootstrap-0123456789abcdef';
const MiB = 1024 * 1024;
const W = [0, 1, 2, 3].map((i) => noise(2 * MiB + i * 1000, 200 + i));
const W2 = noise(2 * MiB + 2000, 777);

let server: Served | undefined;
let url = '';
let project = '';
let env: Record<string, string>;

async function ok(args: string[], extra: Record<string, string> = {}, cwd = project): Promise<any> {
  const r = await runJson<any>(args, { cwd, env: { ...env, ...extra } });
  if (r.code !== 0)
    throw new Error(`${args.join(' ')} failed (${r.code}):\n${JSON.stringify(r.json)}\n${r.stderr}`);
  return r.json;
}

const compressedSize = (version: string, path: string): Promise<number> =>
  compressedFileBytes(project, 'model', version, path);

const reg = (): string[] => ['--method', 'registry', '--registry', url];

beforeAll(async () => {
  const data = await tempDir('serve-');
  await writeFile(join(data, 'boot'), `${BOOT}\n`);
  server = await startServe(data, ['--bootstrap-token-file', 'boot']);
  url = server.url;
  env = { DEPLOY_TOOL_TOKEN: BOOT, DEPLOY_TOOL_CREDENTIALS: join(data, 'no-credentials.json') };
  project = await makeProject({
    'models/w0.bin': W[0]!,
    'models/w1.bin': W[1]!,
    'models/w2.bin': W[2]!,
    'models/w3.bin': W[3]!,
  });
  for (const [dir, type, version] of [
    ['./models', 'model', '1.0.0'],
    ['./configs', 'config', '1.0.0'],
  ] as const) {
    const r = await runCli(['pack', dir, '--type', type, '--version', version], { cwd: project });
    expect(r.code, r.stderr).toBe(0);
  }
  await writeTree(project, { 'models/w2.bin': W2 });
  const r = await runCli(['pack', './models', '--type', 'model', '--version', '2.0.0'], { cwd: project });
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await cleanupTempDirs();
});

describe('incremental transfers through the registry', { timeout: 180_000 }, () => {
  let target = '';
  let cache = '';

  it('publishes version 1 as chunks, one per weight file', async () => {
    const p = await ok([
      'publish',
      '--component',
      'model:1.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      '1',
      ...reg(),
    ]);
    expect(p.status).toBe('published');
    const model = p.store.components.find((c: any) => c.type === 'model');
    expect(model.chunks).toBeGreaterThanOrEqual(4);
    expect(model.chunksUploaded).toBe(model.chunks);
    expect(model.bytesUploaded).toBe(model.archiveSize);
    expect(model.bytesRead).toBe(model.archiveSize);
    target = join(await tempDir('tgt-'), 't');
    cache = join(await tempDir('cache-'), 'c');
    const d = await ok([
      'deploy',
      '--release',
      '1',
      '--target',
      target,
      '--namespace',
      'test-project',
      ...reg(),
      '--cache-dir',
      cache,
    ]);
    expect(d.status).toBe('deployed');
    expect((await readFile(join(target, 'model', 'w2.bin'))).equals(W[2]!)).toBe(true);
  });

  it('a new model version with one changed weight file uploads about that file only', async () => {
    const p = await ok([
      'publish',
      '--component',
      'model:2.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      '2',
      ...reg(),
    ]);
    const fileSize = W2.length;
    const model = p.store.components.find((c: any) => c.type === 'model');
    expect(model.chunksUploaded).toBe(1);
    expect(p.store.bytesUploaded).toBeGreaterThanOrEqual(fileSize * 0.9);
    expect(p.store.bytesUploaded).toBeLessThanOrEqual(1.05 * fileSize + 64 * 1024);
    expect(p.store.bytesReused).toBeGreaterThan(3 * 2 * MiB);
    // Version 1's recipe on the server names the shared chunks: only the changed one is read.
    expect(model.bytesRead).toBeGreaterThanOrEqual(fileSize * 0.9);
    expect(model.bytesRead).toBeLessThanOrEqual(1.05 * fileSize + 64 * 1024);
    // The archive the server assembled from its chunks is byte for byte the one packed.
    const info = await ok(['info', 'model:2.0.0', '--registry', url, '--namespace', 'test-project']);
    expect(info.component.archive.sha256).toBe(model.archiveSha256);
    // Republishing sends nothing.
    const again = await ok([
      'publish',
      '--component',
      'model:2.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      '2',
      ...reg(),
    ]);
    expect(again.status).toBe('unchanged');
    expect(again.store.bytesUploaded).toBe(0);
  });

  it('deploying it downloads about the changed file only; the others come from the target', async () => {
    const compressed = await compressedSize('2.0.0', 'w2.bin');
    const d = await ok([
      'deploy',
      '--release',
      '2',
      '--target',
      target,
      '--namespace',
      'test-project',
      ...reg(),
      '--cache-dir',
      join(await tempDir('cache-'), 'empty'),
    ]);
    expect(d.status).toBe('deployed');
    const dm = d.components.find((c: any) => c.type === 'model');
    // Every unchanged file (three weight files and the fixture's two) is linked from release 1.
    expect(dm).toMatchObject({ action: 'extract', filesLinked: 5, linkedFrom: ['1'] });
    expect(d.transfer.bytesDownloaded).toBeGreaterThanOrEqual(compressed);
    expect(d.transfer.bytesDownloaded).toBeLessThanOrEqual(1.05 * compressed);
    expect(dm.transfer.bytesFromTarget).toBe(dm.archiveBytes - compressed);
    expect((await readFile(join(target, 'model', 'w2.bin'))).equals(W2)).toBe(true);
    expect((await readFile(join(target, 'model', 'w0.bin'))).equals(W[0]!)).toBe(true);
    expect(await readlink(join(target, 'current'))).toBe('releases/2');
    const w = (r: string, f: string) =>
      stat(join(target, 'releases', r, 'model', r === '1' ? '1.0.0' : '2.0.0', f));
    expect((await w('2', 'w1.bin')).ino).toBe((await w('1', 'w1.bin')).ino);
    const v = await runJson<any>(['verify', '--target', target], { cwd: project, env });
    expect(v.code, JSON.stringify(v.json)).toBe(0);
  });

  it('on a fresh target, the chunks of version 1 in the download cache are reused', async () => {
    const fresh = join(await tempDir('tgt-'), 'fresh');
    const compressed = await compressedSize('2.0.0', 'w2.bin');
    const d = await ok([
      'deploy',
      '--release',
      '2',
      '--target',
      fresh,
      '--namespace',
      'test-project',
      ...reg(),
      '--cache-dir',
      cache,
    ]);
    expect(d.status).toBe('deployed');
    // Only the changed file's chunk is fetched; the unchanged weight files' chunks (and the
    // config) are in the cache from version 1's deploy.
    expect(d.transfer.bytesDownloaded).toBeGreaterThanOrEqual(compressed);
    expect(d.transfer.bytesDownloaded).toBeLessThanOrEqual(1.05 * compressed + 64 * 1024);
    expect(d.transfer.bytesFromCache).toBeGreaterThan(3 * 2 * MiB);
    expect((await readFile(join(fresh, 'model', 'w3.bin'))).equals(W[3]!)).toBe(true);
    expect((await readFile(join(fresh, 'model', 'w2.bin'))).equals(W2)).toBe(true);
  });
});
