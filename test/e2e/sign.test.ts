/* eslint-disable @typescript-eslint/no-explicit-any -- JSON output of the CLI */
/**
 * Signing end to end with the built CLI: keys generate, publish --sign, sign --release, deploy
 * --require-signature, verify --signature, and minisign (an independent implementation) accepting
 * what we sign.
 */
import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Store } from '../../src/store/drivers/s3.js';
import { cleanupTempDirs, makeProject, runCli, runJson, tempDir } from '../helpers/cli.js';
import { makeS3Store, startCeph, type Ceph } from '../store/ceph.js';

afterAll(cleanupTempDirs);

const hasMinisign = spawnSync('minisign', ['-v']).status === 0;
/** The interop checks are required, not optional: scripts/test.sh installs minisign. */
const needMinisign = (): void => {
  expect(hasMinisign, 'minisign is not installed: run scripts/test.sh (it installs minisign and age)').toBe(
    true,
  );
};
let project: string;
const rel = (p: string): string => join(project, 'deployment', 'releases', p);

async function ok(args: string[]): Promise<string> {
  const r = await runCli(args, { cwd: project });
  if (r.code !== 0) throw new Error(`${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  project = await makeProject();
  await ok(['keys', 'generate', '--out', 'keys']);
  await ok(['keys', 'generate', '--out', 'keys', '--name', 'other']);
  await ok(['pack', './models', '--type', 'model', '--version', '1.0.0']);
  await ok(['pack', './configs', '--type', 'config', '--version', '1.0.0']);
  await ok([
    'publish',
    '--component',
    'model:1.0.0',
    '--component',
    'config:1.0.0',
    '--release-version',
    'r1',
    '--sign',
    'keys/deploy-tool.key',
  ]);
  await ok([
    'publish',
    '--component',
    'model:1.0.0',
    '--component',
    'config:1.0.0',
    '--release-version',
    'r2',
  ]);
});

describe('signing with the CLI', () => {
  it('keys generate: a 0600 private key, a minisign public key, no overwrite', async () => {
    expect((await stat(join(project, 'keys', 'deploy-tool.key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(project, 'keys', 'deploy-tool.pub'), 'utf8')).toMatch(
      /^untrusted comment: minisign public key [0-9A-F]{16}\n/,
    );
    const again = await runJson<any>(['keys', 'generate', '--out', 'keys'], { cwd: project });
    expect(again.code).toBe(1);
    expect(again.json.error.code).toBe('ERR_KEY_EXISTS');
  });

  it('publish --sign writes detached signatures beside the manifests', async () => {
    for (const f of [
      'r1/release.json.minisig',
      'r1.release.json.minisig',
      'r1/model/1.0.0/model-1.0.0.manifest.json.minisig',
    ]) {
      expect(await readFile(rel(f), 'utf8')).toMatch(
        /^untrusted comment: .*\n[A-Za-z0-9+/=]+\ntrusted comment: .*\n[A-Za-z0-9+/=]+\n$/,
      );
    }
  });

  it('minisign -V (prehashed required) accepts the release and component signatures', () => {
    needMinisign();
    for (const f of ['r1/release.json', 'r1.release.json', 'r1/config/1.0.0/config-1.0.0.manifest.json']) {
      const r = spawnSync(
        'minisign',
        ['-V', '-H', '-p', join(project, 'keys', 'deploy-tool.pub'), '-m', rel(f)],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
    }
    const wrong = spawnSync(
      'minisign',
      ['-V', '-p', join(project, 'keys', 'other.pub'), '-m', rel('r1/release.json')],
      { encoding: 'utf8' },
    );
    expect(wrong.status).not.toBe(0);
  });

  it('sign --release signs an existing release; minisign agrees', async () => {
    await ok(['sign', '--release', 'r2', '--key', 'keys/deploy-tool.key']);
    needMinisign();
    const r = spawnSync(
      'minisign',
      ['-V', '-p', join(project, 'keys', 'deploy-tool.pub'), '-m', rel('r2/release.json')],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const other = await runJson<any>(['sign', '--release', 'r2', '--key', 'keys/other.key'], {
      cwd: project,
    });
    expect(other.json.error?.code).toBe('ERR_SIGNATURE_INVALID');
  });

  it('verify --signature checks a published release and names what is wrong', async () => {
    const v = await runJson<any>(
      ['verify', '--signature', '--release', 'r1', '--trusted-key', 'keys/deploy-tool.pub'],
      { cwd: project },
    );
    expect(v.code, JSON.stringify(v.json)).toBe(0);
    expect(v.json.status).toBe('verified');
    const unknown = await runJson<any>(
      ['verify', '--signature', '--release', 'r1', '--trusted-key', 'keys/other.pub'],
      { cwd: project },
    );
    expect(unknown.json.error.code).toBe('ERR_UNTRUSTED_KEY');
  });

  it('deploy --require-signature deploys a signed release and refuses a changed one', async () => {
    const target = join(project, 'target');
    const d = await runJson<any>(
      [
        'deploy',
        '--release',
        'r1',
        '--target',
        target,
        '--require-signature',
        '--trusted-key',
        'keys/deploy-tool.pub',
      ],
      { cwd: project },
    );
    expect(d.code, JSON.stringify(d.json)).toBe(0);
    const text = await readFile(rel('r2/release.json'), 'utf8');
    await writeFile(rel('r2/release.json'), text.replace('"notes": null', '"notes": "changed"'));
    const bad = await runCli(
      [
        'deploy',
        '--release',
        'r2',
        '--target',
        target,
        '--require-signature',
        '--trusted-key',
        'keys/deploy-tool.pub',
      ],
      { cwd: project },
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/error \[ERR_SIGNATURE_INVALID\]: release r2 .* does not match its signature/);
    const v = await runJson<any>(
      ['verify', '--signature', '--release', 'r2', '--trusted-key', 'keys/deploy-tool.pub'],
      { cwd: project },
    );
    expect(v.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    await writeFile(rel('r2/release.json'), text);
    const still = await runJson<any>(['verify', '--target', target], { cwd: project });
    expect(still.json.release).toBe('r1');
  });
});

describe('sign and verify --signature of a release published to S3 (radosgw)', { timeout: 180_000 }, () => {
  let ceph: Ceph;
  let store: S3Store;
  let flags: string[];
  /** Downloads of verify --signature and deploy land here, never in the user's cache. */
  let cacheHome: string;
  const run = (args: string[]): Promise<{ code: number; json: any; stderr: string }> =>
    runJson<any>(args, { cwd: project, env: { ...ceph.env, XDG_CACHE_HOME: cacheHome } });
  const must = async (args: string[]): Promise<any> => {
    const r = await run(args);
    if (r.code !== 0)
      throw new Error(`${args.join(' ')}: exit ${r.code}\n${JSON.stringify(r.json)}\n${r.stderr}`);
    return r.json;
  };
  const comps = ['--component', 'model:1.0.0', '--component', 'config:1.0.0'];
  const verifyArgs = (release: string, key = 'keys/deploy-tool.pub'): string[] => [
    'verify',
    '--signature',
    '--release',
    release,
    '--trusted-key',
    key,
    ...flags,
  ];

  beforeAll(async () => {
    ceph = await startCeph();
    cacheHome = await tempDir('s3sig-xdg-');
    store = await makeS3Store(ceph, 'sign');
    flags = ['--method', 's3', '--bucket', store.bucket, '--endpoint', ceph.endpoint];
    await must(['publish', ...comps, '--release-version', 's3r1', ...flags]);
    await must(['publish', ...comps, '--release-version', 's3r2', ...flags]);
  }, 240_000);

  it('an unsigned release in the bucket is refused by verify --signature', async () => {
    const v = await run(verifyArgs('s3r1'));
    expect(v.code).toBe(1);
    expect(v.json.error.code).toBe('ERR_UNSIGNED');
    expect(v.json.error.message).toMatch(/s3r1/);
  });

  it('sign --release --method s3 writes releases/R/release.json.minisig; minisign and verify --signature accept it', async () => {
    const s = await must(['sign', '--release', 's3r1', '--key', 'keys/deploy-tool.key', ...flags]);
    expect(s.store.key).toBe('releases/s3r1/release.json.minisig');
    const sig = (await store.get('releases/s3r1/release.json.minisig'))?.toString('utf8');
    expect(sig).toMatch(/^untrusted comment: .*\n[A-Za-z0-9+/=]+\ntrusted comment: .*\n[A-Za-z0-9+/=]+\n$/);
    // An independent implementation checks the bytes as stored in the bucket.
    needMinisign();
    const dir = await tempDir('s3sig-');
    await writeFile(join(dir, 'release.json'), (await store.get('releases/s3r1/release.json'))!);
    await writeFile(join(dir, 'release.json.minisig'), sig!);
    const m = spawnSync(
      'minisign',
      ['-V', '-p', join(project, 'keys', 'deploy-tool.pub'), '-m', join(dir, 'release.json')],
      { encoding: 'utf8' },
    );
    expect(m.status, m.stderr).toBe(0);

    const v = await must(verifyArgs('s3r1'));
    expect(v.status).toBe('verified');
    expect(v.components.map((c: any) => `${c.type}:${c.version}`).sort()).toEqual([
      'config:1.0.0',
      'model:1.0.0',
    ]);
    const unknown = await run(verifyArgs('s3r1', 'keys/other.pub'));
    expect(unknown.json.error.code).toBe('ERR_UNTRUSTED_KEY');
    // and a deploy from the bucket that requires signatures goes through
    const target = join(await tempDir('s3sig-t-'), 't');
    const d = await must([
      'deploy',
      '--release',
      's3r1',
      '--target',
      target,
      '--require-signature',
      '--trusted-key',
      'keys/deploy-tool.pub',
      '--cache-dir',
      join(dir, 'cache'),
      ...flags,
    ]);
    expect(d.status).toBe('deployed');
  });

  it('a signature by another key is not replaced without --force', async () => {
    const other = await run(['sign', '--release', 's3r1', '--key', 'keys/other.key', ...flags]);
    expect(other.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    expect(other.json.error.message).toMatch(/releases\/s3r1\/release\.json\.minisig already exists/);
    expect((await must(verifyArgs('s3r1'))).status).toBe('verified');
  });

  it('sign --component --method s3 signs a component manifest in the bucket', async () => {
    await must(['sign', '--component', 'config:1.0.0', '--key', 'keys/deploy-tool.key', ...flags]);
    expect((await store.get('components/config/1.0.0/manifest.json.minisig'))?.toString()).toMatch(
      /^untrusted comment: /,
    );
    const v = await must(verifyArgs('s3r1'));
    expect(v.components.find((c: any) => c.type === 'config').manifestSigned).toBe(true);
  });

  it('verify --signature names what changed in the bucket: release text, component manifest, archive bytes', async () => {
    await must(['sign', '--release', 's3r2', '--key', 'keys/deploy-tool.key', ...flags]);
    expect((await must(verifyArgs('s3r2'))).status).toBe('verified');
    // release.json changed after signing
    const relKey = 'releases/s3r2/release.json';
    const relText = (await store.get(relKey))!.toString('utf8');
    await store.put(relKey, relText.replace('"notes": null', '"notes": "changed"'));
    const changed = await run(verifyArgs('s3r2'));
    expect(changed.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    expect(changed.json.error.message).toMatch(/release s3r2 .* does not match its signature/);
    await store.put(relKey, relText);
    expect((await must(verifyArgs('s3r2'))).status).toBe('verified');
    // a component manifest replaced in the bucket
    const mKey = 'components/model/1.0.0/manifest.json';
    const mText = (await store.get(mKey))!.toString('utf8');
    await store.put(mKey, mText.replace(/"createdAt": "[^"]*"/, '"createdAt": "2000-01-01T00:00:00.000Z"'));
    const swapped = await run(verifyArgs('s3r2'));
    expect(swapped.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    expect(swapped.json.error.message).toMatch(/model:1\.0\.0/);
    await store.put(mKey, mText);
    // one byte of an archive chunk flipped
    const blob = (await store.list('blobs/sha256/')).sort((a, b) => b.size - a.size)[0]!;
    const bytes = (await store.get(blob.key))!;
    bytes[10]! ^= 1;
    await store.put(blob.key, bytes);
    const corrupt = await run([...verifyArgs('s3r2'), '--cache-dir', join(await tempDir('s3sig-c-'), 'c')]);
    expect(corrupt.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(corrupt.json.error.message).toMatch(/blobs\/sha256\//);
    bytes[10]! ^= 1;
    await store.put(blob.key, bytes);
  });

  it('a store flag without --signature, or with --releases-dir, is a usage error', async () => {
    const a = await run(['verify', '--release', 's3r1', ...flags]);
    expect(a.json.error.code).toBe('ERR_USAGE');
    const b = await run([...verifyArgs('s3r1'), '--releases-dir', 'deployment/releases']);
    expect(b.json.error.code).toBe('ERR_USAGE');
    expect(b.json.error.message).toMatch(/--releases-dir/);
  });
});
