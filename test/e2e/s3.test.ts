/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents from the CLI */
/**
 * publish and deploy with --method s3 / bos / --store against a real Ceph radosgw on loopback
 * (scripts/ceph.sh): content-addressed uploads, immutability races, the download cache,
 * incremental transfers, mirrors, and failures (credentials, bucket, endpoint, corruption,
 * gateway killed mid-transfer).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readFile, readlink, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/store/bucket.js';
import type { S3Store } from '../../src/store/drivers/s3.js';
import {
  CLI,
  cleanupTempDirs,
  makeProject,
  noise,
  runCli,
  runJson,
  tempDir,
  writeTree,
} from '../helpers/cli.js';
import { gateway2, makeS3Store, startCeph, type Ceph } from '../store/ceph.js';

const MiB = 1024 * 1024;
const W = [0, 1, 2, 3].map((i) => noise(2 * MiB + i * 1000, 100 + i));

let ceph: Ceph;
let project: string;
let env: Record<string, string>;

async function ok(args: string[], cwd = project, extraEnv: Record<string, string> = {}): Promise<any> {
  const r = await runJson<any>(args, { cwd, env: { ...env, ...extraEnv } });
  if (r.code !== 0)
    throw new Error(`${args.join(' ')} failed (${r.code}):\n${JSON.stringify(r.json)}\n${r.stderr}`);
  return r.json;
}

/** Every file under dir with its size and mtime (to prove a dry run changed nothing). */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const st = await stat(p);
        out[p.slice(dir.length)] = `${st.size}:${st.mtimeMs}`;
      }
    }
  };
  await walk(dir);
  return out;
}

/** Compressed bytes of one file of a packed component: the frames that hold its data. */
async function compressedSize(type: string, version: string, path: string): Promise<number> {
  const m = JSON.parse(
    await readFile(join(project, 'deployment', 'manifests', `${type}-${version}.manifest.json`), 'utf8'),
  );
  const f = (m.files as { path: string; offset: number; size: number }[]).find((x) => x.path === path)!;
  return (m.frames as { tarOffset: number; tarSize: number; size: number }[])
    .filter((fr) => fr.tarOffset >= f.offset && fr.tarOffset + fr.tarSize <= f.offset + f.size)
    .reduce((s, fr) => s + fr.size, 0);
}

const s3Flags = (store: S3Store): string[] => [
  '--method',
  's3',
  '--bucket',
  store.bucket,
  '--endpoint',
  ceph.endpoint,
];

beforeAll(async () => {
  ceph = await startCeph();
  env = { ...ceph.env, DEPLOY_TOOL_S3_RETRY_BASE_MS: '50', DEPLOY_TOOL_S3_MAX_ATTEMPTS: '3' };
  project = await makeProject({
    'models/w0.bin': W[0]!,
    'models/w1.bin': W[1]!,
    'models/w2.bin': W[2]!,
    'models/w3.bin': W[3]!,
  });
  for (const [dir, type, version] of [
    ['./models', 'model', '1.0.0'],
    ['./configs', 'config', '1.0.0'],
    ['./runtime', 'runtime', '3.10.0'],
  ] as const) {
    const r = await runCli(['pack', dir, '--type', type, '--version', version], { cwd: project });
    expect(r.code, r.stderr).toBe(0);
  }
  // model 2.0.0: one of the weight files changed.
  await writeTree(project, { 'models/w2.bin': noise(2 * MiB + 2000, 999) });
  const r = await runCli(['pack', './models', '--type', 'model', '--version', '2.0.0'], { cwd: project });
  expect(r.code, r.stderr).toBe(0);
}, 240_000);

afterAll(cleanupTempDirs);

describe('publish and deploy with --method s3 (radosgw)', { timeout: 180_000 }, () => {
  let store: S3Store;
  let cache: string;
  const comps = [
    '--component',
    'model:1.0.0',
    '--component',
    'config:1.0.0',
    '--component',
    'runtime:3.10.0',
  ];

  beforeAll(async () => {
    store = await makeS3Store(ceph, 'e2e');
    cache = join(await tempDir('cache-'), 'c');
  });

  it('publishes content-addressed, release last, latest pointer; republishing uploads nothing', async () => {
    const r = await ok(['publish', ...comps, '--release-version', '2024.01.20', ...s3Flags(store)]);
    expect(r).toMatchObject({ status: 'published', method: 's3', release: '2024.01.20' });
    expect(r.store.bytesUploaded).toBeGreaterThan(8 * MiB);
    expect(r.store.pointer).toMatchObject({ name: 'latest', release: '2024.01.20', previous: null });
    const listed = (await store.list('')).map((o) => o.key);
    expect(listed).toContain('releases/2024.01.20/release.json');
    expect(listed).toContain('components/model/1.0.0/manifest.json');
    expect(listed).toContain('pointers/latest.json');
    // Each weight file is its own blob.
    expect(listed.filter((k) => k.startsWith('blobs/sha256/')).length).toBeGreaterThanOrEqual(5);
    // The git copy of the release manifest is the bucket's, byte for byte.
    const git = await readFile(join(project, 'deployment/releases/2024.01.20.release.json'), 'utf8');
    expect((await store.get('releases/2024.01.20/release.json'))?.toString()).toBe(git);

    const again = await ok(['publish', ...comps, '--release-version', '2024.01.20', ...s3Flags(store)]);
    expect(again.status).toBe('unchanged');
    expect(again.store.bytesUploaded).toBe(0);
    // Same components in a new release: no content bytes uploaded either.
    const r2 = await ok(['publish', ...comps, '--release-version', '2024.01.21', ...s3Flags(store)]);
    expect(r2.store.bytesUploaded).toBe(0);
    expect(r2.store.pointer).toMatchObject({ release: '2024.01.21', previous: '2024.01.20' });
  });

  it('a new model version with one changed weight file uploads and downloads about that file', async () => {
    const target = join(await tempDir('tgt-'), 't');
    const d1 = await ok([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target,
      ...s3Flags(store),
      '--cache-dir',
      cache,
    ]);
    expect(d1.status).toBe('deployed');
    expect((await readFile(join(target, 'model', 'w1.bin'))).equals(W[1]!)).toBe(true);
    expect(await readlink(join(target, 'current'))).toBe('releases/2024.01.20');

    const p = await ok([
      'publish',
      '--component',
      'model:2.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      '2024.02.01',
      ...s3Flags(store),
    ]);
    const fileSize = 2 * MiB + 2000;
    expect(p.store.bytesUploaded).toBeLessThanOrEqual(1.05 * fileSize + 64 * 1024);
    expect(p.store.bytesUploaded).toBeGreaterThanOrEqual(fileSize * 0.9);
    // model:1.0.0's recipe names the chunks the two versions share: only the changed file's chunk
    // is read from dist/ (and hashed), not the whole archive.
    const pub = p.store.components.find((c: any) => c.type === 'model');
    const changed = await compressedSize('model', '2.0.0', 'w2.bin');
    expect(pub.bytesRead).toBeGreaterThanOrEqual(changed);
    expect(pub.bytesRead).toBeLessThanOrEqual(1.05 * changed);
    expect(pub.archiveSize).toBeGreaterThan(4 * changed);

    const args = ['deploy', '--release', '2024.02.01', '--target', target, ...s3Flags(store)];
    // A dry run downloads nothing and changes nothing, and says what the deploy will download.
    const cacheBefore = await snapshot(cache);
    const targetBefore = await snapshot(target);
    const plan = await ok([...args, '--cache-dir', cache, '--dry-run']);
    expect(plan.status).toBe('planned');
    expect(await snapshot(cache)).toEqual(cacheBefore);
    expect(await snapshot(target)).toEqual(targetBefore);
    expect(await readlink(join(target, 'current'))).toBe('releases/2024.01.20');
    const compressed = await compressedSize('model', '2.0.0', 'w2.bin');
    expect(compressed).toBeGreaterThan(2 * MiB);
    const pm = plan.components.find((c: any) => c.type === 'model');
    expect(pm.action).toBe('extract');
    expect(pm.transfer.bytesToDownload).toBeGreaterThanOrEqual(compressed);
    expect(pm.transfer.bytesToDownload).toBeLessThanOrEqual(1.05 * compressed);
    expect(pm.transfer.bytesDownloaded).toBe(0);
    // The unchanged files are on the target (release 2024.01.20): their frames are not read at all.
    expect(pm).toMatchObject({ filesLinked: 5, linkedFrom: ['2024.01.20'] });
    expect(pm.transfer.bytesFromCache).toBe(0);
    expect(pm.transfer.bytesFromTarget).toBe(pm.archiveBytes - compressed);
    // config:1.0.0 is on the target already: none of its bytes are needed.
    const pc = plan.components.find((c: any) => c.type === 'config');
    expect(pc.transfer).toMatchObject({ bytesToDownload: 0, bytesFromTarget: pc.archiveBytes });
    expect(plan.transfer.bytesToDownload).toBe(pm.transfer.bytesToDownload);
    expect(plan.transfer.bytesDownloaded).toBe(0);

    const d2 = await ok([...args, '--cache-dir', cache]);
    expect(d2.status).toBe('deployed');
    const dm = d2.components.find((c: any) => c.type === 'model');
    // Only the changed file's frames are fetched, exactly what the dry run announced.
    expect(dm.transfer.bytesDownloaded).toBe(pm.transfer.bytesToDownload);
    expect(dm.transfer.bytesDownloaded).toBeLessThanOrEqual(1.05 * compressed);
    expect(dm.transfer.servedBy).toEqual(['s3', 'target']);
    expect(d2.transfer).toMatchObject({
      bytesDownloaded: dm.transfer.bytesDownloaded,
      bytesFromCache: 0,
      bytesFromTarget: pc.archiveBytes + dm.archiveBytes - compressed,
      servedBy: { 'model:2.0.0': ['s3', 'target'], 'config:1.0.0': ['target'] },
    });
    const w = (r: string, v: string, f: string) => stat(join(target, 'releases', r, 'model', v, f));
    expect((await w('2024.02.01', '2.0.0', 'w1.bin')).ino).toBe(
      (await w('2024.01.20', '1.0.0', 'w1.bin')).ino,
    );
    expect(await readlink(join(target, 'current'))).toBe('releases/2024.02.01');
  });

  it('incremental deploy with an EMPTY download cache: only the changed file is downloaded', async () => {
    const target = join(await tempDir('tgt-'), 't');
    const deployWith = (release: string, cacheDir: string) =>
      ok(['deploy', '--release', release, '--target', target, ...s3Flags(store), '--cache-dir', cacheDir]);
    expect((await deployWith('2024.01.20', join(await tempDir('cache-'), 'first'))).status).toBe('deployed');
    // A fresh cache: nothing of model 2.0.0 can come from it, only from the target or the bucket.
    const fresh = join(await tempDir('cache-'), 'fresh');
    const d = await deployWith('2024.02.01', fresh);
    const compressed = await compressedSize('model', '2.0.0', 'w2.bin');
    const dm = d.components.find((c: any) => c.type === 'model');
    expect(dm).toMatchObject({ action: 'extract', filesLinked: 5, linkedFrom: ['2024.01.20'] });
    expect(d.transfer.bytesDownloaded).toBeGreaterThanOrEqual(compressed);
    expect(d.transfer.bytesDownloaded).toBeLessThanOrEqual(1.05 * compressed);
    expect(d.transfer.bytesFromCache).toBe(0);
    expect(dm.transfer.bytesFromTarget).toBe(dm.archiveBytes - compressed);
    expect((await readFile(join(target, 'model', 'w2.bin'))).equals(noise(2 * MiB + 2000, 999))).toBe(true);
    expect((await readFile(join(target, 'model', 'w0.bin'))).equals(W[0]!)).toBe(true);
    const v = await runJson<any>(['verify', '--target', target], { cwd: project, env });
    expect(v.code, JSON.stringify(v.json)).toBe(0);
  });

  it('a dry run with an empty cache reports the whole archives and creates nothing', async () => {
    const empty = join(await tempDir('cache-'), 'never');
    const target = join(await tempDir('tgt-'), 't');
    const plan = await ok([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target,
      ...s3Flags(store),
      '--cache-dir',
      empty,
      '--dry-run',
    ]);
    const archives = plan.components.reduce(
      (s: number, c: { archiveBytes: number }) => s + c.archiveBytes,
      0,
    );
    expect(plan.transfer).toMatchObject({
      bytesToDownload: archives,
      bytesDownloaded: 0,
      bytesFromCache: 0,
      bytesFromTarget: 0,
    });
    await expect(stat(empty)).rejects.toThrow();
    await expect(stat(target)).rejects.toThrow();
  });

  it('a second target on the same host deploys from the cache (no archive bytes downloaded)', async () => {
    const target = join(await tempDir('tgt-'), 't2');
    const d = await ok([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target,
      ...s3Flags(store),
      '--cache-dir',
      cache,
    ]);
    const archives = d.components.reduce((s: number, c: { archiveBytes: number }) => s + c.archiveBytes, 0);
    expect(d.transfer).toEqual({
      bytesDownloaded: 0,
      bytesToDownload: 0,
      bytesFromCache: archives,
      bytesFromTarget: 0,
      servedBy: { 'model:1.0.0': ['cache'], 'config:1.0.0': ['cache'], 'runtime:3.10.0': ['cache'] },
    });
    expect((await readFile(join(target, 'model', 'w3.bin'))).equals(W[3]!)).toBe(true);
  });

  it('two publishers racing on one release version: exactly one wins, the other gets a conflict', async () => {
    const args = (component: string): string[] => [
      'publish',
      '--component',
      component,
      '--release-version',
      '2024.03.01',
      ...s3Flags(store),
      '--json',
    ];
    const [a, b] = await Promise.all([
      runCli(args('config:1.0.0'), { cwd: project, env }),
      runCli(args('runtime:3.10.0'), { cwd: project, env }),
    ]);
    const codes = [a.code, b.code].sort();
    expect(codes).toEqual([0, 1]);
    const loser = a.code === 0 ? b : a;
    expect(JSON.parse(loser.stdout).error.code).toBe('ERR_RELEASE_EXISTS');
  });

  it('a component version cannot be republished with other content', async () => {
    const dir = await makeProject();
    await writeTree(dir, { 'configs/settings.yaml': 'threshold: 0.99\n' });
    expect(
      (await runCli(['pack', './configs', '--type', 'config', '--version', '1.0.0'], { cwd: dir })).code,
    ).toBe(0);
    const r = await runJson<any>(['publish', '--component', 'config:1.0.0', ...s3Flags(store)], {
      cwd: dir,
      env,
    });
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe('ERR_COMPONENT_EXISTS');
  });
});

describe('--method bos and named stores', { timeout: 180_000 }, () => {
  it('bos: publish and deploy with --endpoint, credentials from BOS_ACCESS_KEY_ID/BOS_SECRET_ACCESS_KEY', async () => {
    const store = await makeS3Store(ceph, 'bos');
    const bosEnv = {
      BOS_ACCESS_KEY_ID: ceph.accessKeyId,
      BOS_SECRET_ACCESS_KEY: ceph.secretAccessKey,
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
    };
    const flags = ['--method', 'bos', '--bucket', store.bucket, '--endpoint', ceph.endpoint];
    const p = await ok(
      ['publish', '--component', 'config:1.0.0', '--release-version', '2024.01.20', ...flags],
      project,
      bosEnv,
    );
    expect(p.method).toBe('bos');
    const target = join(await tempDir('tgt-'), 't');
    const cache = await tempDir('cache-');
    const d = await ok(
      ['deploy', '--release', '2024.01.20', '--target', target, ...flags, '--cache-dir', cache],
      project,
      bosEnv,
    );
    expect(d.status).toBe('deployed');
    expect(await readFile(join(target, 'config', 'settings.yaml'), 'utf8')).toBe('threshold: 0.5\n');
  });

  it('--store NAME from .deploy-tool.yaml; a secret in the YAML is refused', async () => {
    const store = await makeS3Store(ceph, 'named');
    const dir = await makeProject();
    expect(
      (await runCli(['pack', './configs', '--type', 'config', '--version', '1.0.0'], { cwd: dir })).code,
    ).toBe(0);
    const yaml = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    const stores = `stores:\n  models:\n    type: s3\n    bucket: ${store.bucket}\n    endpoint: ${ceph.endpoint}\n    region: us-east-1\n    prefix: team/ml\n`;
    await writeTree(dir, { '.deploy-tool.yaml': yaml + stores });
    const p = await ok(
      ['publish', '--component', 'config:1.0.0', '--release-version', 'r1', '--store', 'models'],
      dir,
    );
    expect(p.store.name).toBe('models');
    expect((await store.list('team/ml/releases/')).map((o) => o.key)).toEqual([
      'team/ml/releases/r1/release.json',
    ]);
    const target = join(await tempDir('tgt-'), 't');
    const d = await ok(
      [
        'deploy',
        '--release',
        'r1',
        '--target',
        target,
        '--store',
        'models',
        '--cache-dir',
        await tempDir('c-'),
      ],
      dir,
    );
    expect(d.status).toBe('deployed');

    await writeTree(dir, {
      '.deploy-tool.yaml': `${yaml}${stores}    secret_access_key: abcdefgh12345678\n`,
    });
    const bad = await runJson<any>(['publish', '--component', 'config:1.0.0', '--store', 'models'], {
      cwd: dir,
      env,
    });
    expect(bad.code).not.toBe(0);
    expect(bad.json.error.code).toBe('ERR_CONFIG_SECRET');
    expect(JSON.stringify(bad.json)).not.toContain('abcdefgh12345678');
  });
});

describe('failures against radosgw', { timeout: 180_000 }, () => {
  let store: S3Store;
  beforeAll(async () => {
    store = await makeS3Store(ceph, 'fail');
    await ok([
      'publish',
      '--component',
      'model:1.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      'r1',
      ...s3Flags(store),
    ]);
  });

  it('wrong credentials: names endpoint and bucket, the secret is redacted', async () => {
    const secret = 'wrong-secret-value-0123456789';
    const r = await runJson<any>(
      ['deploy', '--release', 'r1', '--target', join(await tempDir('t-'), 't'), ...s3Flags(store)],
      {
        cwd: project,
        env: { ...env, AWS_SECRET_ACCESS_KEY: secret },
      },
    );
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe('ERR_STORE');
    expect(r.json.error.message).toContain(ceph.endpoint);
    expect(r.json.error.message).toContain(store.bucket);
    expect(r.json.error.message).toMatch(/access denied/);
    expect(JSON.stringify(r.json) + r.stderr).not.toContain(secret);
  });

  it('missing bucket and unreachable endpoint: clear errors', async () => {
    const t = join(await tempDir('t-'), 't');
    const nb = await runJson<any>(
      [
        'deploy',
        '--release',
        'r1',
        '--target',
        t,
        '--method',
        's3',
        '--bucket',
        'no-such-bucket-xyz',
        '--endpoint',
        ceph.endpoint,
      ],
      { cwd: project, env },
    );
    expect(nb.json.error.code).toBe('ERR_STORE');
    expect(nb.json.error.message).toMatch(/no-such-bucket-xyz.*does not exist/);
    const un = await runJson<any>(
      [
        'publish',
        '--component',
        'config:1.0.0',
        '--method',
        's3',
        '--bucket',
        store.bucket,
        '--endpoint',
        'http://127.0.0.1:1',
      ],
      { cwd: project, env },
    );
    expect(un.json.error.code).toBe('ERR_STORE');
    expect(un.json.error.message).toContain('http://127.0.0.1:1');
    expect(un.json.error.message).toContain(store.bucket);
    expect(un.json.error.message).toMatch(/cannot reach the endpoint \(ECONNREFUSED after 3 attempts\)/);
  });

  it('one byte overwritten in the bucket: refused before extracting; served by the mirror when there is one', async () => {
    const mirror = await makeS3Store(ceph, 'mirror');
    await ok([
      'publish',
      '--component',
      'model:1.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      'r1',
      ...s3Flags(mirror),
    ]);
    // Corrupt the blob of w1.bin in the primary bucket.
    const blobs = (await store.list('blobs/')).filter((o) => o.size > MiB);
    const victim = blobs[0]!;
    const bytes = (await store.get(victim.key))!;
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await store.put(victim.key, bytes);

    const target = join(await tempDir('t-'), 't');
    const bad = await runJson<any>(
      [
        'deploy',
        '--release',
        'r1',
        '--target',
        target,
        ...s3Flags(store),
        '--cache-dir',
        await tempDir('c-'),
      ],
      { cwd: project, env },
    );
    expect(bad.code).toBe(1);
    expect(bad.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(bad.json.error.message).toContain(victim.key);
    const releases = await readdir(join(target, 'releases')).catch(() => []);
    expect(releases).toEqual([]);
    await expect(readlink(join(target, 'current'))).rejects.toThrow();

    const dir = project;
    const yaml = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    try {
      await writeTree(dir, {
        '.deploy-tool.yaml': `${yaml}stores:\n  main:\n    type: s3\n    bucket: ${store.bucket}\n    endpoint: ${ceph.endpoint}\n    mirrors: [backup]\n  backup:\n    type: s3\n    bucket: ${mirror.bucket}\n    endpoint: ${ceph.endpoint}\n`,
      });
      const good = await runJson<any>(
        [
          'deploy',
          '--release',
          'r1',
          '--target',
          target,
          '--store',
          'main',
          '--cache-dir',
          await tempDir('c-'),
        ],
        { cwd: dir, env },
      );
      expect(good.code, good.stderr).toBe(0);
      // The corrupted chunk came from the mirror, the rest from the store itself.
      expect(good.json.transfer.servedBy['model:1.0.0']).toEqual(['main', 'backup']);
      expect(good.json.transfer.servedBy['config:1.0.0']).toEqual(['main']);
      // Every archive byte once, plus the rejected copy of the corrupted chunk (received, refused).
      expect(good.json.transfer.bytesDownloaded).toBe(
        good.json.components.reduce((s: number, c: { archiveBytes: number }) => s + c.archiveBytes, 0) +
          victim.size,
      );
      expect((await readFile(join(target, 'model', 'w1.bin'))).equals(W[1]!)).toBe(true);
    } finally {
      await writeTree(dir, { '.deploy-tool.yaml': yaml });
    }
  });

  it('gateway killed mid-download: retries, then a clear failure; current untouched; resumes later', async () => {
    await gateway2('start');
    const big = await makeS3Store(ceph, 'kill');
    const flags = ['--method', 's3', '--bucket', big.bucket, '--endpoint', ceph.endpoint2];
    await ok(['publish', '--component', 'config:1.0.0', '--release-version', 'r0', ...flags]);
    const dir = await makeProject({ 'models/big.bin': noise(48 * MiB, 5) });
    expect(
      (
        await runCli(['pack', './models', '--type', 'model', '--version', '9.0.0', '--compression', 'none'], {
          cwd: dir,
        })
      ).code,
    ).toBe(0);
    await ok(['publish', '--component', 'model:9.0.0', '--release-version', 'r9', ...flags], dir);
    const target = join(await tempDir('t-'), 't');
    const cache = await tempDir('c-');
    await ok(['deploy', '--release', 'r0', '--target', target, ...flags, '--cache-dir', cache], dir);

    // Deploy r9 and kill the gateway as soon as the archive download starts.
    const child = spawn(
      process.execPath,
      [CLI, 'deploy', '--release', 'r9', '--target', target, ...flags, '--cache-dir', cache, '-v', '--json'],
      {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1', ...env, DEPLOY_TOOL_S3_MAX_ATTEMPTS: '3' },
      },
    );
    let stderr = '';
    let stdout = '';
    let killed: Promise<void> | undefined;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (!killed && /model:9\.0\.0: \d+ chunks/.test(stderr)) killed = gateway2('kill');
    });
    const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
    await killed;
    expect(killed, stderr).toBeDefined();
    expect(code, stderr).toBe(1);
    const err = JSON.parse(stdout).error;
    expect(err.code).toBe('ERR_STORE');
    expect(err.message).toContain(ceph.endpoint2);
    expect(err.message).toMatch(/after 3 attempts/);
    expect(await readlink(join(target, 'current'))).toBe('releases/r0');
    expect(await readdir(join(target, 'releases'))).toEqual(['r0']);

    await gateway2('start');
    const d = await runCli(
      ['deploy', '--release', 'r9', '--target', target, ...flags, '--cache-dir', cache, '-v'],
      { cwd: dir, env },
    );
    expect(d.code, d.stderr).toBe(0);
    expect(await readlink(join(target, 'current'))).toBe('releases/r9');
    await gateway2('kill');
  });
});

describe('gateway killed mid-upload', { timeout: 180_000 }, () => {
  it('retries, then a clear failure; no release visible; publishing again completes it', async () => {
    await gateway2('start');
    const store = await makeS3Store(ceph, 'upkill');
    const flags = ['--method', 's3', '--bucket', store.bucket, '--endpoint', ceph.endpoint2];
    const dir = await makeProject({ 'models/big.bin': noise(64 * MiB, 6) });
    const packed = await runCli(
      ['pack', './models', '--type', 'model', '--version', '9.0.0', '--compression', 'none'],
      {
        cwd: dir,
      },
    );
    expect(packed.code, packed.stderr).toBe(0);
    const child = spawn(
      process.execPath,
      [CLI, 'publish', '--component', 'model:9.0.0', '--release-version', 'r9', ...flags, '-v', '--json'],
      { cwd: dir, env: { ...process.env, NO_COLOR: '1', ...env, DEPLOY_TOOL_S3_MAX_ATTEMPTS: '3' } },
    );
    let stderr = '';
    let stdout = '';
    let killed: Promise<void> | undefined;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (!killed && /uploading blobs\/sha256\/\w+ \((\d{8,}) bytes\)/.test(stderr))
        killed = gateway2('kill');
    });
    const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
    await killed;
    expect(killed, stderr).toBeDefined();
    expect(code, stderr).toBe(1);
    const err = JSON.parse(stdout).error;
    expect(err.code).toBe('ERR_STORE');
    expect(err.message).toContain(ceph.endpoint2);
    expect(err.message).toContain(store.bucket);
    // Nothing a reader would use: no release, no component manifest.
    expect(await store.list('releases/')).toEqual([]);
    expect(await store.list('components/')).toEqual([]);

    await gateway2('start');
    const again = await ok(
      ['publish', '--component', 'model:9.0.0', '--release-version', 'r9', ...flags],
      dir,
    );
    expect(again.status).toBe('published');
    expect((await store.list('releases/')).map((o) => o.key)).toEqual(['releases/r9/release.json']);
    await gateway2('kill');
  });
});

describe('publish checks the archive in the pass that hashes its chunks', { timeout: 180_000 }, () => {
  it('a corrupt archive in dist/: nothing that names it is written, also when its chunks are already in the bucket', async () => {
    const dir = await makeProject({ 'models/a.bin': noise(3 * MiB, 41), 'models/b.bin': noise(2 * MiB, 42) });
    const packed = await runCli(['pack', './models', '--type', 'model', '--version', '1.0.0'], { cwd: dir });
    expect(packed.code, packed.stderr).toBe(0);
    const archive = join(dir, 'dist', 'model-1.0.0.tar.zst');
    const good = await readFile(archive);
    const flip = async (): Promise<void> => {
      const bytes = Buffer.from(good);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      await writeFile(archive, bytes);
    };
    const refused = async (store: S3Store, release: string): Promise<any> => {
      const r = await runJson<any>(
        ['publish', '--component', 'model:1.0.0', '--release-version', release, ...s3Flags(store)],
        {
          cwd: dir,
          env,
        },
      );
      expect(r.code, r.stderr).toBe(1);
      expect(r.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
      expect(r.json.error.message).toContain('model:1.0.0');
      expect(r.json.error.message).toContain(archive);
      expect(r.json.error.message).toMatch(/archive sha256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
      expect(r.json.error.hint).toMatch(/pack it again/i);
      return r;
    };

    // A fresh bucket: the chunks may be sent meanwhile, but no recipe, manifest or release.
    const fresh = await makeS3Store(ceph, 'corrupt');
    await flip();
    await refused(fresh, 'c1');
    expect(await fresh.list('archives/')).toEqual([]);
    expect(await fresh.list('components/')).toEqual([]);
    expect(await fresh.list('releases/')).toEqual([]);
    expect(await fresh.list('pointers/')).toEqual([]);

    // The archive already in the bucket (its recipe is there): the local file is still checked.
    await writeFile(archive, good);
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'c1', ...s3Flags(fresh)], dir);
    await flip();
    await refused(fresh, 'c2');
    expect((await fresh.list('releases/')).map((o) => o.key)).toEqual(['releases/c1/release.json']);
    await writeFile(archive, good);
    const again = await ok(
      ['publish', '--component', 'model:1.0.0', '--release-version', 'c2', ...s3Flags(fresh)],
      dir,
    );
    expect(again.store.bytesUploaded).toBe(0);
  });

  it('a release that exists with other components is refused before any chunk is sent', async () => {
    const dir = await makeProject({ 'models/a.bin': noise(3 * MiB, 51) });
    const pack = async (version: string): Promise<void> => {
      const r = await runCli(['pack', './models', '--type', 'model', '--version', version], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
    };
    await pack('1.0.0');
    await writeTree(dir, { 'models/a.bin': noise(3 * MiB, 52) });
    await pack('1.0.1');
    const st = await makeS3Store(ceph, 'exists');
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'x1', ...s3Flags(st)], dir);
    const blobs = (await st.list('blobs/')).map((o) => o.key);
    const r = await runJson<any>(
      ['publish', '--component', 'model:1.0.1', '--release-version', 'x1', ...s3Flags(st)],
      { cwd: dir, env },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.json.error.code).toBe('ERR_RELEASE_EXISTS');
    expect((await st.list('blobs/')).map((o) => o.key)).toEqual(blobs);
    expect(await st.list('components/model/1.0.1/')).toEqual([]);
    expect(await st.list('archives/')).toHaveLength(1);
  });
});

describe('publish reads only the chunks an earlier version does not name', { timeout: 180_000 }, () => {
  it('a changed chunk that is damaged is refused; a damaged unchanged chunk is not read; a missing earlier blob is sent again', async () => {
    const dir = await makeProject({ 'models/a.bin': noise(3 * MiB, 51), 'models/b.bin': noise(3 * MiB, 52) });
    const pack = async (version: string): Promise<void> => {
      const r = await runCli(['pack', './models', '--type', 'model', '--version', version], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
    };
    await pack('1.0.0');
    await writeTree(dir, { 'models/b.bin': noise(3 * MiB, 53) });
    await pack('2.0.0');
    const manifest: any = JSON.parse(
      await readFile(join(dir, 'deployment', 'manifests', 'model-2.0.0.manifest.json'), 'utf8'),
    );
    const fileOf = (path: string): { offset: number; size: number } =>
      (manifest.files as { path: string; offset: number; size: number }[]).find((f) => f.path === path)!;
    /** Where in the archive the compressed frames of a file lie. */
    const span = (path: string): { start: number; end: number } => {
      const f = fileOf(path);
      const fr = manifest.frames.filter(
        (x: any) => x.tarOffset >= f.offset && x.tarOffset + x.tarSize <= f.offset + f.size,
      );
      return { start: fr[0].offset, end: fr.at(-1).offset + fr.at(-1).size };
    };
    const archive = join(dir, 'dist', 'model-2.0.0.tar.zst');
    const good = await readFile(archive);
    const damaged = async (at: number): Promise<void> => {
      const bytes = Buffer.from(good);
      bytes[at]! ^= 0x01;
      await writeFile(archive, bytes);
    };
    const publish = (store: S3Store, release: string) =>
      runJson<any>(
        ['publish', '--component', `model:2.0.0`, '--release-version', release, ...s3Flags(store)],
        {
          cwd: dir,
          env,
        },
      );
    const store = await makeS3Store(ceph, 'earlier');
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'r1', ...s3Flags(store)], dir);

    // A byte of the changed file's frames flipped: its frame's sha256 is not the manifest's.
    const b = span('b.bin');
    await damaged(Math.floor((b.start + b.end) / 2));
    const refused = await publish(store, 'r2');
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(refused.json.error.message).toContain(archive);
    expect(refused.json.error.message).toMatch(
      /frame \d+ has sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}/,
    );
    expect(await store.list(keys.recipe(manifest.archive.sha256))).toEqual([]);
    expect(await store.list('components/model/2.0.0/')).toEqual([]);
    expect(await store.list('releases/r2/')).toEqual([]);

    // A byte of the unchanged file flipped: those bytes are not read (the bucket has them, checked
    // when model:1.0.0 was published), so what is published, and deployed, is intact.
    const a = span('a.bin');
    await damaged(Math.floor((a.start + a.end) / 2));
    const r2 = await publish(store, 'r2');
    expect(r2.code, r2.stderr).toBe(0);
    const c2 = r2.json.store.components[0];
    expect(c2.bytesRead).toBeLessThan(manifest.archive.size / 2);
    expect(c2.bytesRead).toBeGreaterThanOrEqual(b.end - b.start);
    const target = join(await tempDir('tgt-'), 't');
    const d = await ok(
      [
        'deploy',
        '--release',
        'r2',
        '--target',
        target,
        ...s3Flags(store),
        '--cache-dir',
        join(target, '..', 'c'),
      ],
      dir,
    );
    expect(d.status).toBe('deployed');
    expect((await readFile(join(target, 'model', 'a.bin'))).equals(noise(3 * MiB, 51))).toBe(true);
    expect((await readFile(join(target, 'model', 'b.bin'))).equals(noise(3 * MiB, 53))).toBe(true);

    // A chunk the earlier recipe names but the bucket lost: read from dist/, checked, sent again.
    await writeFile(archive, good);
    const fresh = await makeS3Store(ceph, 'earlier-lost');
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'r1', ...s3Flags(fresh)], dir);
    const recipe1 = JSON.parse(
      (await fresh.get(
        keys.recipe(
          JSON.parse(
            await readFile(join(dir, 'deployment', 'manifests', 'model-1.0.0.manifest.json'), 'utf8'),
          ).archive.sha256,
        ),
      ))!.toString('utf8'),
    );
    // a.bin's chunk, the one model:2.0.0 shares (a.bin comes first: same offsets in both archives).
    const aChunk = recipe1.chunks.find((c: any) => c.offset === a.start && c.size === a.end - a.start);
    expect(aChunk).toBeDefined();
    await fresh.delete(keys.blob(aChunk.sha256));
    const r3 = await runJson<any>(
      ['publish', '--component', 'model:2.0.0', '--release-version', 'r2', ...s3Flags(fresh)],
      { cwd: dir, env },
    );
    expect(r3.code, r3.stderr).toBe(0);
    const c3 = r3.json.store.components[0];
    expect(c3.bytesUploaded).toBeGreaterThanOrEqual(aChunk.size + (b.end - b.start));
    expect(c3.bytesRead).toBe(c3.bytesUploaded);
    expect((await fresh.head(keys.blob(aChunk.sha256)))?.size).toBe(aChunk.size);
    const t3 = join(await tempDir('tgt-'), 't');
    const d3 = await ok(
      ['deploy', '--release', 'r2', '--target', t3, ...s3Flags(fresh), '--cache-dir', join(t3, '..', 'c')],
      dir,
    );
    expect(d3.status).toBe('deployed');
    expect((await readFile(join(t3, 'model', 'a.bin'))).equals(noise(3 * MiB, 51))).toBe(true);
  });
});

describe('bucket layout is readable with any S3 tool', { timeout: 180_000 }, () => {
  it('the recipe names the chunks that concatenate to the archive', async () => {
    const store = await makeS3Store(ceph, 'layout');
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'r1', ...s3Flags(store)]);
    const comp = JSON.parse((await store.get(keys.component('model', '1.0.0')))!.toString());
    const recipe = JSON.parse((await store.get(keys.recipe(comp.archive.sha256)))!.toString());
    const parts = await Promise.all(
      recipe.chunks.map(async (c: any) => (await store.get(keys.blob(c.sha256)))!),
    );
    const archive = Buffer.concat(parts);
    expect(archive.length).toBe(comp.archive.size);
    expect(archive.equals(await readFile(join(project, 'dist', comp.archive.name)))).toBe(true);
  }, 180_000);
});

describe('cache and mirrors commands', { timeout: 180_000 }, () => {
  it('cache list|prune|clear; mirrors check prints health and latency', async () => {
    const store = await makeS3Store(ceph, 'cmd');
    await ok(['publish', '--component', 'config:1.0.0', '--release-version', 'r1', ...s3Flags(store)]);
    const cache = await tempDir('c-');
    await ok([
      'deploy',
      '--release',
      'r1',
      '--target',
      join(await tempDir('t-'), 't'),
      ...s3Flags(store),
      '--cache-dir',
      cache,
    ]);
    const l = await ok(['cache', 'list', '--cache-dir', cache]);
    expect(l.entries.length).toBeGreaterThanOrEqual(1);
    expect(l.totalBytes).toBeGreaterThan(0);
    const p = await ok(['cache', 'prune', '--cache-dir', cache, '--max-size', '0']);
    // Chunks and recipes count toward the cap: all of them go.
    expect(l.recipes).toBeGreaterThanOrEqual(1);
    expect(p.removed).toBe(l.entries.length + l.recipes);
    expect(p.totalBytes).toBe(0);
    expect((await ok(['cache', 'list', '--cache-dir', cache])).entries).toEqual([]);
    await ok([
      'deploy',
      '--release',
      'r1',
      '--target',
      join(await tempDir('t-'), 't'),
      ...s3Flags(store),
      '--cache-dir',
      cache,
    ]);
    const c = await ok(['cache', 'clear', '--cache-dir', cache]);
    expect(c.removed).toBeGreaterThanOrEqual(1);

    const m = await ok(['mirrors', 'check', ...s3Flags(store)]);
    expect(m.stores).toHaveLength(1);
    expect(m.stores[0]).toMatchObject({ ok: true, latest: 'r1' });

    const dir = await makeProject();
    const yaml = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    await writeTree(dir, {
      '.deploy-tool.yaml': `${yaml}stores:\n  main:\n    type: s3\n    bucket: ${store.bucket}\n    endpoint: ${ceph.endpoint}\n    mirrors: [down]\n  down:\n    type: s3\n    bucket: ${store.bucket}\n    endpoint: http://127.0.0.1:1\n`,
    });
    const r = await runJson<any>(['mirrors', 'check', '--store', 'main'], { cwd: dir, env });
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ healthy: 1, total: 2 });
    expect(r.json.stores[1]).toMatchObject({ name: 'down', ok: false, priority: 1 });
    expect(r.json.stores[1].error.message).toContain('http://127.0.0.1:1');
  });
});

describe('mirror fallback to a filesystem path', { timeout: 180_000 }, () => {
  it('the S3 store is unreachable (closed port): the folder mirror serves everything, and the result says so', async () => {
    const dir = await makeProject();
    expect(
      (await runCli(['pack', './configs', '--type', 'config', '--version', '1.0.0'], { cwd: dir })).code,
    ).toBe(0);
    const yaml = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    const mirrorDir = join(await tempDir('mirror-'), 'bucket-copy');
    await mkdir(mirrorDir);
    await writeTree(dir, {
      '.deploy-tool.yaml': `${yaml}stores:\n  main:\n    type: s3\n    bucket: never-reached\n    endpoint: http://127.0.0.1:1\n    mirrors: [local]\n  local:\n    type: filesystem\n    path: ${mirrorDir}\n`,
    });
    await ok(['publish', '--component', 'config:1.0.0', '--release-version', 'r1', '--store', 'local'], dir);
    const target = join(await tempDir('t-'), 't');
    const r = await runJson<any>(
      [
        'deploy',
        '--release',
        'r1',
        '--target',
        target,
        '--store',
        'main',
        '--cache-dir',
        await tempDir('c-'),
      ],
      { cwd: dir, env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.transfer.servedBy).toEqual({ 'config:1.0.0': ['local'] });
    expect(r.json.transfer.bytesDownloaded).toBe(r.json.components[0].archiveBytes);
    // The failover is visible to the user: the warning names the endpoint and the mirror.
    expect(r.stderr).toMatch(/127\.0\.0\.1:1.*trying mirror local/);
    expect(await readFile(join(target, 'config', 'settings.yaml'), 'utf8')).toBe('threshold: 0.5\n');
  });
});

describe('mirror fallback for encrypted archives (chunks without frames)', { timeout: 180_000 }, () => {
  it('a chunk whose sha256 is wrong as a whole is fetched again from the mirror', async () => {
    const dir = await makeProject();
    execFileSync('age-keygen', ['-o', join(dir, 'id.txt')], { stdio: 'pipe' });
    const recipient = execFileSync('age-keygen', ['-y', join(dir, 'id.txt')], { encoding: 'utf8' }).trim();
    const packed = await runCli(
      ['pack', './models', '--type', 'model', '--version', '1.0.0', '--encrypt', '--recipient', recipient],
      { cwd: dir },
    );
    expect(packed.code, packed.stderr).toBe(0);
    const primary = await makeS3Store(ceph, 'encp');
    const mirror = await makeS3Store(ceph, 'encm');
    for (const st of [primary, mirror])
      await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'e1', ...s3Flags(st)], dir);
    // The ciphertext is one chunk without frames: only its whole sha256 can catch this.
    const blobs = await primary.list('blobs/');
    expect(blobs).toHaveLength(1);
    const bytes = (await primary.get(blobs[0]!.key))!;
    bytes[Math.floor(bytes.length / 3)]! ^= 0x01;
    await primary.put(blobs[0]!.key, bytes);

    const deployArgs = (target: string, extra: string[]): string[] => [
      'deploy',
      '--release',
      'e1',
      '--target',
      target,
      '--identity',
      'id.txt',
      ...extra,
    ];
    const alone = await runJson<any>(
      deployArgs(join(await tempDir('t-'), 't'), [...s3Flags(primary), '--cache-dir', await tempDir('c-')]),
      { cwd: dir, env },
    );
    expect(alone.code).toBe(1);
    expect(alone.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(alone.json.error.message).toContain(blobs[0]!.key);

    const yaml = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    await writeTree(dir, {
      '.deploy-tool.yaml': `${yaml}stores:\n  main:\n    type: s3\n    bucket: ${primary.bucket}\n    endpoint: ${ceph.endpoint}\n    mirrors: [backup]\n  backup:\n    type: s3\n    bucket: ${mirror.bucket}\n    endpoint: ${ceph.endpoint}\n`,
    });
    const target = join(await tempDir('t-'), 't');
    const good = await runJson<any>(
      deployArgs(target, ['--store', 'main', '--cache-dir', await tempDir('c-')]),
      { cwd: dir, env },
    );
    expect(good.code, good.stderr).toBe(0);
    expect(good.stderr).toMatch(/chunk sha256 is [0-9a-f]{64}, expected [0-9a-f]{64}; trying mirror backup/);
    expect(good.json.transfer.servedBy).toEqual({ 'model:1.0.0': ['backup'] });
    // The rejected copy and the good one.
    expect(good.json.transfer.bytesDownloaded).toBe(2 * blobs[0]!.size);
    expect((await readFile(join(target, 'model', 'weights.bin'))).length).toBe(3 * 1024 * 1024 + 123);
  });
});

describe('cache.max_size evicts least recently used chunks during deploy', { timeout: 180_000 }, () => {
  it('oldest-used chunk goes first; cache commands find cache.dir from a subfolder', async () => {
    const store = await makeS3Store(ceph, 'lru');
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'm1', ...s3Flags(store)]);
    await ok(['publish', '--component', 'config:1.0.0', '--release-version', 'c1', ...s3Flags(store)]);
    const yaml = await readFile(join(project, '.deploy-tool.yaml'), 'utf8');
    const withCache = (extra: string): Promise<void> =>
      writeTree(project, { '.deploy-tool.yaml': `${yaml}cache:\n  dir: .cache-lru\n${extra}` });
    try {
      await withCache('');
      const sub = join(project, 'models');
      await ok(['cache', 'clear'], sub);
      const t = join(await tempDir('t-'), 't');
      await ok(['deploy', '--release', 'm1', '--target', t, ...s3Flags(store)]);
      // cache.dir is relative to the project root, also from a subfolder.
      const l1 = await ok(['cache', 'list'], sub);
      expect(l1.dir).toBe(join(project, '.cache-lru'));
      const weights = l1.entries
        .filter((e: any) => e.size > 2 * MiB - 1 && e.size < 2 * MiB + 8000)
        .sort((a: any, b: any) => a.size - b.size);
      expect(weights).toHaveLength(4); // w0 < w1 < w2 < w3 by size
      expect(l1.recipes).toBe(1);
      // w0 used three days ago, w1 two days ago; the rest now.
      const day = 24 * 3600 * 1000;
      for (const [i, ago] of [
        [0, 3 * day],
        [1, 2 * day],
      ] as const) {
        const when = new Date(Date.now() - ago);
        await utimes(join(l1.dir, 'chunks', weights[i].sha256), when, when);
      }
      // A cap 1 MiB under what is there: the next deploy must evict about 1 MiB, oldest first.
      await withCache(`  max_size: ${l1.totalBytes - MiB}\n`);
      const d = await ok(['deploy', '--release', 'c1', '--target', t, ...s3Flags(store)]);
      expect(d.transfer.bytesDownloaded).toBeGreaterThan(0);
      const l2 = await ok(['cache', 'list'], sub);
      const left = new Set(l2.entries.map((e: { sha256: string }) => e.sha256));
      expect(left.has(weights[0].sha256)).toBe(false);
      expect(left.has(weights[1].sha256)).toBe(true);
      expect(left.has(weights[2].sha256)).toBe(true);
      expect(left.has(weights[3].sha256)).toBe(true);
      expect(l2.totalBytes).toBeLessThanOrEqual(l1.totalBytes - MiB);
      expect(l2.maxBytes).toBe(l1.totalBytes - MiB);
    } finally {
      await writeTree(project, { '.deploy-tool.yaml': yaml });
    }
  });
});

describe('an archive that holds the same large file twice', { timeout: 180_000 }, () => {
  it('fetches the shared chunk once and deploys both files', async () => {
    const same = noise(2 * MiB + 77, 4242);
    const dir = await makeProject({ 'models/a.bin': same, 'models/copy/b.bin': same });
    const packed = await runCli(['pack', './models', '--type', 'model', '--version', '1.0.0'], { cwd: dir });
    expect(packed.code, packed.stderr).toBe(0);
    const store = await makeS3Store(ceph, 'dup');
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'd1', ...s3Flags(store)], dir);
    const comp = JSON.parse((await store.get(keys.component('model', '1.0.0')))!.toString());
    const recipe = JSON.parse((await store.get(keys.recipe(comp.archive.sha256)))!.toString());
    const shas = (recipe.chunks as { sha256: string; size: number }[]).map((c) => c.sha256);
    const dup = (recipe.chunks as { sha256: string; size: number }[]).find(
      (c, i) => shas.indexOf(c.sha256) !== i,
    );
    expect(dup, 'the two copies are one chunk listed twice').toBeDefined();

    const target = join(await tempDir('t-'), 't');
    const d = await ok(
      [
        'deploy',
        '--release',
        'd1',
        '--target',
        target,
        ...s3Flags(store),
        '--cache-dir',
        await tempDir('c-'),
      ],
      dir,
    );
    expect(d.transfer.bytesDownloaded).toBe(comp.archive.size - dup!.size);
    expect(d.transfer.bytesFromCache).toBe(dup!.size);
    expect((await readFile(join(target, 'model', 'a.bin'))).equals(same)).toBe(true);
    expect((await readFile(join(target, 'model', 'copy', 'b.bin'))).equals(same)).toBe(true);
  });
});
