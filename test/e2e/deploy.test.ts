/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- JSON documents from the CLI */
/**
 * The deploy engine end to end with the built CLI: the seed README's section 4, Advanced Usage and
 * Best Practices commands as written (with temporary folders for /opt/...), and every flag.
 */
import { spawn } from 'node:child_process';
import {
  appendFile,
  cp,
  mkdir,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, noise, runCli, runJson, tempDir, writeTree } from '../helpers/cli.js';
import {
  exists,
  expectRelease,
  listTree,
  makeDeployFixture,
  MODEL1,
  readState,
  transfer,
  type Fixture,
} from './deploy-fixture.js';

afterAll(cleanupTempDirs);

let f: Fixture;
let opt: string;
let serverReleases: string;
beforeAll(async () => {
  f = await makeDeployFixture();
  opt = join(await tempDir('opt-'), 'opt');
  serverReleases = join(opt, 'deployments', 'releases');
  await mkdir(serverReleases, { recursive: true });
  for (const r of ['2024.01.19', '2024.01.20', '2024.02.01']) await transfer(f, r, serverReleases);
}, 120_000);

/** Whether this machine lets the tests mount a small tmpfs (root, not in a restricted container). */
async function probeTmpfs(): Promise<boolean> {
  const dir = join(await tempDir('probe-mnt-'), 'mnt');
  await mkdir(dir);
  if ((await runCmd('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir])) !== 0) return false;
  return (await runCmd('umount', [dir])) === 0;
}
/** Whether chattr +i works here (ext4/xfs/btrfs and CAP_LINUX_IMMUTABLE): then root cannot write either. */
async function probeChattr(): Promise<boolean> {
  const dir = await tempDir('probe-attr-');
  if ((await runCmd('chattr', ['+i', dir])) !== 0) return false;
  let blocked = false;
  try {
    await writeFile(join(dir, 'x'), 'x');
  } catch {
    blocked = true;
  }
  return (await runCmd('chattr', ['-i', dir])) === 0 && blocked;
}
/**
 * A small ext4 file system in a loop-mounted image (root, loop devices, mkfs.ext4): unlike tmpfs it
 * takes direct I/O, so a full disk is met by the direct writes of large files. The mount point, or
 * undefined when that is not possible here (the probe's own image is unmounted again).
 */
async function mountExt4(sizeMiB: number): Promise<string | undefined> {
  const dir = await tempDir('ext4-');
  const img = join(dir, 'fs.img');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  if ((await runCmd('truncate', ['-s', `${sizeMiB}M`, img])) !== 0) return undefined;
  if ((await runCmd('mkfs.ext4', ['-q', '-F', img])) !== 0) return undefined;
  if ((await runCmd('mount', ['-o', 'loop', img, mnt])) !== 0) return undefined;
  return mnt;
}
async function probeExt4(): Promise<boolean> {
  const mnt = await mountExt4(4);
  return mnt !== undefined && (await runCmd('umount', [mnt])) === 0;
}
const canMountTmpfs = await probeTmpfs();
const canMountExt4 = await probeExt4();
const canChattr = await probeChattr();
/** Appended to the name of a test that is skipped, so the report says why. */
const skipNote = (runs: boolean, why: string): string => (runs ? '' : ` [skipped: ${why}]`);

const run = (args: string[], cwd = opt) => runCli(args, { cwd });
const json = <T = any>(args: string[], cwd = opt) => runJson<T>(args, { cwd });

describe('seed README section 4: deploy a release from the filesystem', () => {
  it('deploys with --method filesystem --releases-dir, as written, into the layout the seed shows', async () => {
    const target = join(opt, 'ml-apps', 'my-project');
    const r = await run([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target,
      '--method',
      'filesystem',
      '--releases-dir',
      serverReleases,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Deployed 2024.01.20');
    // model -> releases/2024.01.20/model/1.0.0/ (through current), and so on.
    await expectRelease(target, '2024.01.20', { model: '1.0.0', config: '1.1.0', runtime: '3.10.0' });
    expect(await readFile(join(target, 'runtime', 'requirements.txt'), 'utf8')).toBe('numpy==1.26.0\n');
    expect(await readFile(join(target, 'model', 'sub', 'notes.txt'), 'utf8')).toBe('v1 notes\n');
    expect(await readlink(join(target, 'model'))).toBe('current/.links/model');
    expect(await readlink(join(target, 'current'))).toBe('releases/2024.01.20');
    const files = await readdir(join(target, 'releases', '2024.01.20', 'model', '1.0.0'));
    expect(files.sort()).toEqual(['sub', 'vocab.json', 'weights.bin']);
    const st = await readState(target);
    expect(st.schemaVersion).toBe(1);
    expect(st.current).toBe('2024.01.20');
    const h = st.history.at(-1);
    expect(h).toMatchObject({ action: 'deploy', release: '2024.01.20', status: 'success', host: hostname() });
    expect(h.components.map((c: any) => `${c.type}:${c.version}`).sort()).toEqual([
      'config:1.1.0',
      'model:1.0.0',
      'runtime:3.10.0',
    ]);
    expect(h.components[0].archiveSha256).toMatch(/^[0-9a-f]{64}$/);
    // No lock left, staging empty.
    expect(await exists(join(target, '.deploy-tool', 'lock'))).toBe(false);
    expect(await readdir(join(target, '.deploy-tool', 'staging'))).toEqual([]);
  });

  it('deploy --release R (no --target) uses the project default target; --target production works', async () => {
    const a = await run(['deploy', '--release', '2024.01.20'], f.project);
    expect(a.code, a.stderr).toBe(0);
    await expectRelease(join(f.project, 'deployment', 'targets', 'default'), '2024.01.20', {
      model: '1.0.0',
      config: '1.1.0',
    });
    const b = await run(['deploy', '--release', '2024.01.20', '--target', 'production'], f.project);
    expect(b.code, b.stderr).toBe(0);
    await expectRelease(join(f.project, 'production'), '2024.01.20', { model: '1.0.0', config: '1.1.0' });
  });

  it('a named target from deploy.targets in .deploy-tool.yaml', async () => {
    const cfg = join(f.project, '.deploy-tool.yaml');
    const orig = await readFile(cfg, 'utf8');
    const named = join(opt, 'named-prod');
    try {
      await writeFile(
        cfg,
        `${orig}deploy:\n  target: staging\n  targets:\n    prod: ${named}\n    staging: targets/stg\n`,
      );
      const a = await run(['deploy', '--release', '2024.01.19', '--target', 'prod'], f.project);
      expect(a.code, a.stderr).toBe(0);
      await expectRelease(named, '2024.01.19', { model: '1.0.0', config: '1.0.0' });
      const b = await run(['deploy', '--release', '2024.01.19'], f.project);
      expect(b.code, b.stderr).toBe(0);
      await expectRelease(join(f.project, 'targets', 'stg'), '2024.01.19', { config: '1.0.0' });
      const s = await json(['status', '--target', 'prod'], f.project);
      expect(s.json.target).toBe(named);
    } finally {
      await writeFile(cfg, orig);
    }
  });
});

describe('large files: direct I/O (the default) and the page cache (DEPLOY_TOOL_DIRECT_IO=0)', () => {
  it.each([
    ['direct', {}],
    ['page-cache', { DEPLOY_TOOL_DIRECT_IO: '0' }],
  ] as const)('%s: deploys the same bytes, and verify passes', async (name, env) => {
    const target = join(opt, `io-${name}`);
    const r = await runCli(['deploy', '--release', '2024.01.19', '--target', target], {
      cwd: f.project,
      env,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // weights.bin is 2 MiB + 77 bytes: with direct I/O, aligned pieces go direct and the unaligned
    // tail through the page cache.
    expect(await readFile(join(target, 'model', 'weights.bin'))).toEqual(MODEL1);
    const v = await runCli(['verify', '--target', target], { cwd: f.project });
    expect(v.code).toBe(0);
  });
});

describe('reuse, dry run, verify, status', () => {
  const target = () => join(opt, 'ml-apps', 'reuse');

  it('--dry-run prints the plan and changes nothing', async () => {
    await mkdir(target(), { recursive: true });
    const r = await run([
      'deploy',
      '--release',
      '2024.01.19',
      '--target',
      target(),
      '--releases-dir',
      serverReleases,
      '--dry-run',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('dry run, nothing changed');
    expect(r.stdout).toMatch(/model:1\.0\.0\s+extract/);
    expect(r.stdout).toContain('current: (none) -> releases/2024.01.19');
    expect(await readdir(target())).toEqual([]);
  });

  it('a release that changes only the config extracts only the config; the rest is hard-linked', async () => {
    const a = await json([
      'deploy',
      '--release',
      '2024.01.19',
      '--target',
      target(),
      '--releases-dir',
      serverReleases,
    ]);
    expect(a.code).toBe(0);
    const before = await listTree(target());
    const plan = await json([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target(),
      '--releases-dir',
      serverReleases,
      '--dry-run',
    ]);
    expect(plan.json.status).toBe('planned');
    expect(plan.json.components.find((c: any) => c.type === 'model')).toMatchObject({
      action: 'reuse',
      reuseFrom: '2024.01.19',
    });
    expect(plan.json.components.find((c: any) => c.type === 'config')).toMatchObject({ action: 'extract' });
    expect(plan.json.bytesToWrite).toBe('threshold: 0.7\n'.length);
    expect(plan.json.links).toEqual([
      { path: 'current', from: 'releases/2024.01.19', to: 'releases/2024.01.20' },
    ]);
    expect(await listTree(target())).toEqual(before);

    const b = await json([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target(),
      '--releases-dir',
      serverReleases,
    ]);
    expect(b.code).toBe(0);
    expect(b.json.components.map((c: any) => `${c.type}:${c.action}`).sort()).toEqual([
      'config:extract',
      'model:reuse',
      'runtime:reuse',
    ]);
    const w19 = await stat(join(target(), 'releases', '2024.01.19', 'model', '1.0.0', 'weights.bin'));
    const w20 = await stat(join(target(), 'releases', '2024.01.20', 'model', '1.0.0', 'weights.bin'));
    expect(w20.ino).toBe(w19.ino);
    const c19 = await stat(join(target(), 'releases', '2024.01.19', 'config', '1.0.0', 'settings.yaml'));
    const c20 = await stat(join(target(), 'releases', '2024.01.20', 'config', '1.1.0', 'settings.yaml'));
    expect(c20.ino).not.toBe(c19.ino);
    await expectRelease(target(), '2024.01.20', { model: '1.0.0', config: '1.1.0', runtime: '3.10.0' });
  });

  it('deploying the current release again changes nothing', async () => {
    const r = await json([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target(),
      '--releases-dir',
      serverReleases,
    ]);
    expect(r.code).toBe(0);
    expect(r.json.status).toBe('unchanged');
  });

  it('status shows the current release, components with resolved paths, who, kept releases, disk, lock', async () => {
    const r = await run(['status', '--target', target()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Current release: 2024.01.20');
    expect(r.stdout).toContain(
      `${join(target(), 'model')} -> ${join(target(), 'releases', '2024.01.20', 'model', '1.0.0')}`,
    );
    expect(r.stdout).toMatch(/Deployed: \d{4}-\d\d-\d\dT.* by .+@/);
    expect(r.stdout).toContain('Kept releases (2)');
    expect(r.stdout).toContain('Rollback target: 2024.01.19');
    expect(r.stdout).toMatch(/Disk use: [\d.]+ MB/);
    expect(r.stdout).toContain('Lock: free');
    const j = await json(['status', '--target', target()]);
    expect(j.json.components.map((c: any) => c.type).sort()).toEqual(['config', 'model', 'runtime']);
    // Hard links counted once: about one copy of the 2 MiB model, not two.
    expect(j.json.diskUsage.bytes).toBeLessThan(3.5 * 1024 * 1024);
  });

  it('verify reports modified, missing and extra files and exits 1; --release checks a kept one', async () => {
    const t = await tempDir('verify-');
    const d = await run([
      'deploy',
      '--release',
      '2024.01.19',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
    ]);
    expect(d.code, d.stderr).toBe(0);
    const d2 = await run([
      'deploy',
      '--release',
      '2024.02.01',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
    ]);
    expect(d2.code, d2.stderr).toBe(0);
    expect((await run(['verify', '--release', '2024.01.19', '--target', t])).code).toBe(0);
    await appendFile(join(t, 'config', 'settings.yaml'), '# edited\n');
    await rm(join(t, 'model', 'vocab.json'));
    await writeFile(join(t, 'model', 'sub', 'stray.txt'), 'x');
    const v = await run(['verify', '--target', t]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/MODIFIED\s+config\/1\.1\.0\/settings\.yaml/);
    expect(v.stdout).toMatch(/MISSING\s+model\/2\.0\.0\/vocab\.json/);
    expect(v.stdout).toMatch(/EXTRA\s+model\/2\.0\.0\/sub\/stray\.txt/);
    expect(v.stderr).toContain('ERR_VERIFY_FAILED');
    const same = await writeFile(
      join(t, 'model', 'weights.bin'),
      Buffer.alloc((await stat(join(t, 'model', 'weights.bin'))).size),
    );
    void same;
    const v2 = await json(['verify', '--release', '2024.02.01', '--target', t]);
    expect(v2.code).toBe(1);
    expect(
      v2.json.error.details.problems.some(
        (p: any) => p.path === 'model/2.0.0/weights.bin' && p.detail.includes('sha256'),
      ),
    ).toBe(true);
    // The kept release is untouched.
    expect((await run(['verify', '--release', '2024.01.19', '--target', t])).code).toBe(0);
  });

  it('verify reports extra entries in the release folder itself, outside the component folders', async () => {
    const t = await tempDir('verify-extra-');
    const d = await run([
      'deploy',
      '--release',
      '2024.01.19',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
    ]);
    expect(d.code, d.stderr).toBe(0);
    expect((await run(['verify', '--target', t])).code).toBe(0);
    const rel = join(t, 'releases', '2024.01.19');
    // A stray version beside model/1.0.0, an unknown TYPE folder, a file at the top, a link and a
    // manifest nobody recorded.
    await mkdir(join(rel, 'model', '9.9.9'), { recursive: true });
    await writeFile(join(rel, 'model', '9.9.9', 'weights.bin'), 'stray');
    await mkdir(join(rel, 'tokenizer', '1.0.0'), { recursive: true });
    await writeFile(join(rel, 'README.txt'), 'x');
    await symlink('../model/9.9.9', join(rel, '.links', 'tokenizer'));
    await writeFile(join(rel, '.deploy-tool', 'manifests', 'tokenizer-1.0.0.manifest.json'), '{}');
    const v = await json(['verify', '--target', t]);
    expect(v.code).toBe(1);
    const extras = v.json.error.details.problems
      .filter((p: any) => p.problem === 'extra')
      .map((p: any) => p.path)
      .sort();
    // Each reported once at its top; the folders' contents are not listed one by one.
    expect(extras).toEqual([
      '.deploy-tool/manifests/tokenizer-1.0.0.manifest.json',
      '.links/tokenizer',
      'README.txt',
      'model/9.9.9',
      'tokenizer',
    ]);
    expect(v.json.error.details.problems).toHaveLength(5);
    const text = await run(['verify', '--target', t]);
    expect(text.stdout).toMatch(
      /EXTRA\s+model\/9\.9\.9\s+\(release 2024\.01\.19: folder not in the release record\)/,
    );
    expect(text.stdout).toMatch(/EXTRA\s+tokenizer\s/);
    for (const p of [
      'model/9.9.9',
      'tokenizer',
      'README.txt',
      '.links/tokenizer',
      '.deploy-tool/manifests/tokenizer-1.0.0.manifest.json',
    ])
      await rm(join(rel, p), { recursive: true });
    expect((await run(['verify', '--target', t])).code).toBe(0);
  });
});

describe('seed Advanced Usage: version list|switch|rollback, multi-environment, selective', () => {
  const prod = () => join(opt, 'ml-apps', 'prod');

  it('version list, switch 2024.01.19, rollback, as written', async () => {
    for (const r of ['2024.01.19', '2024.01.20']) {
      const d = await run(['deploy', '--release', r, '--target', prod(), '--releases-dir', serverReleases]);
      expect(d.code, d.stderr).toBe(0);
    }
    const l = await run(['version', 'list', '--target', prod()]);
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toMatch(/\*\t2024\.01\.20\tsuccess/);
    expect(l.stdout).toMatch(/r\t2024\.01\.19\tsuccess/);
    const s = await run(['version', 'switch', '2024.01.19', '--target', prod()]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toContain('Switched');
    await expectRelease(prod(), '2024.01.19', { model: '1.0.0', config: '1.0.0', runtime: '3.10.0' });
    const rb = await json(['version', 'rollback', '--target', prod()]);
    expect(rb.code).toBe(0);
    expect(rb.json).toMatchObject({ action: 'rollback', release: '2024.01.20', previous: '2024.01.19' });
    await expectRelease(prod(), '2024.01.20', { model: '1.0.0', config: '1.1.0', runtime: '3.10.0' });
    const st = await readState(prod());
    expect(st.history.map((h: any) => `${h.action}:${h.release}:${h.status}`)).toEqual([
      'deploy:2024.01.19:success',
      'deploy:2024.01.20:success',
      'switch:2024.01.19:success',
      'rollback:2024.01.20:success',
    ]);
    const bad = await json(['version', 'switch', '2023.01.01', '--target', prod()]);
    expect(bad.code).toBe(1);
    expect(bad.json.error.code).toBe('ERR_RELEASE_NOT_FOUND');
  });

  it('switching takes the same short time whatever the release size (no copying, no hashing)', async () => {
    const j = await json(['version', 'switch', '2024.01.19', '--target', prod()]);
    expect(j.code).toBe(0);
    expect(j.json.switchMs).toBeLessThan(200);
    expect((await json(['version', 'rollback', '--target', prod()])).code).toBe(0);
  });

  it('a release with a type removed drops its link; switching back restores it', async () => {
    const d = await run([
      'deploy',
      '--release',
      '2024.02.01',
      '--target',
      prod(),
      '--releases-dir',
      serverReleases,
    ]);
    expect(d.code, d.stderr).toBe(0);
    await expectRelease(prod(), '2024.02.01', { model: '2.0.0', config: '1.1.0' });
    expect(await exists(join(prod(), 'runtime'))).toBe(false);
    expect((await run(['version', 'rollback', '--target', prod()])).code).toBe(0);
    expect(await readFile(join(prod(), 'runtime', 'requirements.txt'), 'utf8')).toBe('numpy==1.26.0\n');
  });

  it('multi-environment: dev, staging, prod each get their own release', async () => {
    const pub = (rel: string) =>
      run(
        ['publish', '--component', 'model:1.0.0', '--component', 'config:1.1.0', '--release-version', rel],
        f.project,
      );
    expect((await pub('2024.01.20-dev')).code).toBe(0);
    expect((await pub('2024.01.20-rc1')).code).toBe(0);
    const apps = join(opt, 'ml-apps');
    for (const [rel, env] of [
      ['2024.01.20-dev', 'dev'],
      ['2024.01.20-rc1', 'staging'],
      ['2024.01.20', 'prod-env'],
    ] as const) {
      const r = await run(['deploy', '--release', rel, '--target', join(apps, env)], f.project);
      expect(r.code, r.stderr).toBe(0);
      expect(await readlink(join(apps, env, 'current'))).toBe(`releases/${rel}`);
    }
  });

  it('selective: --component model:1.0.0 into an empty target, as written (found in the project)', async () => {
    const t = join(opt, 'ml-apps', 'test');
    const r = await json(['deploy', '--component', 'model:1.0.0', '--target', t], f.project);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(r.json.release).toBe('model-1.0.0');
    await expectRelease(t, 'model-1.0.0', { model: '1.0.0' });
    expect(await exists(join(t, 'config'))).toBe(false);
  });

  it('selective: --component config:1.1.0 on a live target replaces only the config', async () => {
    const t = join(opt, 'ml-apps', 'sel');
    expect(
      (await run(['deploy', '--release', '2024.01.19', '--target', t, '--releases-dir', serverReleases]))
        .code,
    ).toBe(0);
    // From outside the project: found in a release folder under --releases-dir.
    const r = await json([
      'deploy',
      '--component',
      'config:1.1.0',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
    ]);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(r.json.release).toBe('2024.01.19+config-1.1.0');
    expect(r.json.components.map((c: any) => `${c.type}:${c.version}:${c.action}`).sort()).toEqual([
      'config:1.1.0:extract',
      'model:1.0.0:reuse',
      'runtime:3.10.0:reuse',
    ]);
    await expectRelease(t, '2024.01.19+config-1.1.0', { model: '1.0.0', config: '1.1.0', runtime: '3.10.0' });
    // With --release: the release's components with this one replaced.
    const r2 = await json([
      'deploy',
      '--release',
      '2024.02.01',
      '--component',
      'config:1.0.0',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
    ]);
    expect(r2.code, JSON.stringify(r2.json)).toBe(0);
    expect(r2.json.release).toBe('2024.02.01+config-1.0.0');
    await expectRelease(t, '2024.02.01+config-1.0.0', { model: '2.0.0', config: '1.0.0' });
    // A component-only publish (deployment/components/), as the seed's "Update configuration" line.
    await rm(join(f.project, 'dist', 'config-1.2.0.tar.zst'));
    const r3 = await json(['deploy', '--component', 'config:1.2.0', '--target', t], f.project);
    expect(r3.code, JSON.stringify(r3.json)).toBe(0);
    expect(r3.json.source).toContain('components');
    await expectRelease(t, '2024.02.01+config-1.0.0+config-1.2.0', { model: '2.0.0', config: '1.2.0' });
    const missing = await json([
      'deploy',
      '--component',
      'config:9.9.9',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.json.error.code).toBe('ERR_COMPONENT_NOT_FOUND');
  });
});

describe('seed Best Practices and Troubleshooting commands, as written', () => {
  it('deploy --dry-run, deploy --verbose, status, verify --release', async () => {
    const prod = join(opt, 'ml-apps', 'bp');
    await cp(serverReleases, join(f.project, '..', 'unused'), { recursive: true }).catch(() => undefined);
    const dry = await run(['deploy', '--release', '2024.01.20', '--target', prod, '--dry-run'], f.project);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await exists(prod)).toBe(false);
    const v = await run(['deploy', '--release', '2024.01.20', '--target', prod, '--verbose'], f.project);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/extracted model:1\.0\.0 .*ms\)/);
    expect(v.stderr).toMatch(/switch took [\d.]+ ms/);
    const s = await run(['status', '--target', prod], f.project);
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('Current release: 2024.01.20');
    const ver = await run(['verify', '--release', '2024.01.20', '--target', prod], f.project);
    expect(ver.code, ver.stderr).toBe(0);
    expect(ver.stdout).toContain('no differences');
  });
});

describe('hooks, health checks, retention', () => {
  it('--health-check failing: switches back, marks the release failed, exits 1; passing: success', async () => {
    const t = join(opt, 'hc');
    expect(
      (await run(['deploy', '--release', '2024.01.19', '--target', t, '--releases-dir', serverReleases]))
        .code,
    ).toBe(0);
    const bad = await json([
      'deploy',
      '--release',
      '2024.02.01',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
      '--health-check',
      'test "$(cat config/settings.yaml)" = "threshold: 0.5"',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.json.error.code).toBe('ERR_HEALTH_CHECK_FAILED');
    expect(bad.json.error.message).toContain('switched back to 2024.01.19');
    await expectRelease(t, '2024.01.19', { model: '1.0.0', config: '1.0.0', runtime: '3.10.0' });
    const st = await readState(t);
    expect(st.releases['2024.02.01'].status).toBe('failed');
    expect(st.history.at(-1)).toMatchObject({ release: '2024.02.01', status: 'failed' });
    const list = await run(['version', 'list', '--target', t]);
    expect(list.stdout).toMatch(/2024\.02\.01\tfailed/);
    const good = await json([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      t,
      '--releases-dir',
      serverReleases,
      '--health-check',
      'test -s model/weights.bin && test -f runtime/requirements.txt',
    ]);
    expect(good.code, JSON.stringify(good.json)).toBe(0);
    expect(good.json.healthCheck).toMatchObject({ ok: true, exitCode: 0 });
  });

  it('hooks from .deploy-tool.yaml run with output shown; a failing health_check triggers post_rollback', async () => {
    const cfg = join(f.project, '.deploy-tool.yaml');
    const orig = await readFile(cfg, 'utf8');
    const t = join(opt, 'hooks');
    try {
      await writeFile(
        cfg,
        `${orig}hooks:\n  pre_deploy: "echo pre $DEPLOY_TOOL_RELEASE"\n  post_deploy: "echo restarted for $DEPLOY_TOOL_RELEASE; cat model/sub/notes.txt"\n  post_rollback: "echo rolled back to $DEPLOY_TOOL_RELEASE from $DEPLOY_TOOL_PREVIOUS_RELEASE failed=$DEPLOY_TOOL_FAILED_RELEASE >&2"\n  timeout: 2\nhealth_check: "test -f runtime/requirements.txt"\n`,
      );
      const a = await run(['deploy', '--release', '2024.01.19', '--target', t], f.project);
      expect(a.code, a.stderr).toBe(0);
      expect(a.stdout).toContain('[pre_deploy] pre 2024.01.19');
      expect(a.stdout).toContain('[post_deploy] restarted for 2024.01.19');
      expect(a.stdout).toContain('[post_deploy] v1 notes');
      expect(a.stdout).toContain('Health check passed');
      // 2024.02.01 has no runtime: the configured health check fails.
      const b = await run(['deploy', '--release', '2024.02.01', '--target', t], f.project);
      expect(b.code).toBe(1);
      expect(b.stderr).toContain('ERR_HEALTH_CHECK_FAILED');
      expect(b.stdout).toContain('[post_deploy] v2 notes');
      // post_rollback after the automatic switch back sees the release that is live again.
      expect(b.stdout).toContain(
        '[post_rollback] rolled back to 2024.01.19 from 2024.02.01 failed=2024.02.01',
      );
      expect(await readlink(join(t, 'current'))).toBe('releases/2024.01.19');
      // Rollback runs post_rollback.
      expect((await run(['deploy', '--release', '2024.01.20', '--target', t], f.project)).code).toBe(0);
      const rb = await run(['version', 'rollback', '--target', t], f.project);
      expect(rb.code, rb.stderr).toBe(0);
      expect(rb.stdout).toContain('[post_rollback] rolled back to 2024.01.19 from 2024.01.20 failed=\n');
      // A hook that runs too long is killed at hooks.timeout and the deploy is undone.
      await writeFile(cfg, `${orig}hooks:\n  post_deploy: "sleep 30"\n  timeout: 1\n`);
      const t0 = Date.now();
      const c = await json(['deploy', '--release', '2024.01.20', '--target', t], f.project);
      expect(c.code).toBe(1);
      expect(c.json.error.code).toBe('ERR_HOOK_FAILED');
      expect(c.json.error.message).toContain('timed out');
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(await readlink(join(t, 'current'))).toBe('releases/2024.01.19');
      // A failing pre_deploy: nothing is switched.
      await writeFile(cfg, `${orig}hooks:\n  pre_deploy: "echo no; exit 4"\n`);
      const d = await json(['deploy', '--release', '2024.01.20', '--target', t], f.project);
      expect(d.code).toBe(1);
      expect(d.json.error.code).toBe('ERR_HOOK_FAILED');
      expect(await readlink(join(t, 'current'))).toBe('releases/2024.01.19');
    } finally {
      await writeFile(cfg, orig);
    }
  });

  it('--keep N keeps N successful releases plus current and rollback target; failed ones do not count', async () => {
    const t = join(opt, 'keep');
    const dep = (args: string[]) =>
      json(['deploy', ...args, '--target', t, '--releases-dir', serverReleases]);
    expect((await dep(['--release', '2024.01.19'])).code).toBe(0);
    expect((await dep(['--release', '2024.01.20'])).code).toBe(0);
    expect((await dep(['--release', '2024.02.01', '--health-check', 'false'])).code).toBe(1);
    expect(await readdir(join(t, 'releases'))).toContain('2024.02.01');
    expect((await dep(['--component', 'config:1.0.0'])).code).toBe(0); // 2024.01.20+config-1.0.0
    const kept = async () => (await readdir(join(t, 'releases'))).sort();
    // The failed release was kept for inspection until this successful deploy; it never counts.
    expect(await kept()).toEqual(['2024.01.19', '2024.01.20', '2024.01.20+config-1.0.0']);
    const r = await dep(['--component', 'runtime:3.10.0', '--keep', '1']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    // current + rollback target stay even with --keep 1; the failed one and the oldest go.
    expect(await kept()).toEqual(['2024.01.20+config-1.0.0', '2024.01.20+config-1.0.0+runtime-3.10.0']);
    expect(r.json.removed.sort()).toEqual(['2024.01.19', '2024.01.20']);
    expect((await run(['version', 'rollback', '--target', t])).code).toBe(0);
    await expectRelease(t, '2024.01.20+config-1.0.0', { model: '1.0.0', config: '1.0.0' });
  });
});

describe('the target lock', () => {
  it('fails at once naming the holder, waits with --wait, takes over a dead holder with a warning', async () => {
    const t = join(opt, 'locked');
    expect(
      (await run(['deploy', '--release', '2024.01.19', '--target', t, '--releases-dir', serverReleases]))
        .code,
    ).toBe(0);
    const holder = spawn('sleep', ['30']);
    const lockFile = join(t, '.deploy-tool', 'lock');
    const lock = {
      schemaVersion: 1,
      kind: 'deploy-tool/lock',
      pid: holder.pid,
      host: hostname(),
      user: 'alice',
      startedAt: '2024-01-20T10:00:00.000Z',
      command: 'deploy-tool deploy --release 2024.01.18',
      token: 'abc',
      processStart: null,
    };
    try {
      await writeFile(lockFile, JSON.stringify(lock));
      const t0 = Date.now();
      const r = await run([
        'deploy',
        '--release',
        '2024.01.20',
        '--target',
        t,
        '--releases-dir',
        serverReleases,
      ]);
      expect(r.code).toBe(1);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(r.stderr).toContain('ERR_LOCKED');
      expect(r.stderr).toContain(`pid ${holder.pid} on ${hostname()}`);
      expect(r.stderr).toContain('2024-01-20T10:00:00.000Z');
      expect(r.stderr).toContain('deploy-tool deploy --release 2024.01.18');
      for (const cmd of [
        ['version', 'rollback'],
        ['version', 'switch', '2024.01.19'],
      ]) {
        const x = await run([...cmd, '--target', t]);
        expect(x.stderr).toContain('ERR_LOCKED');
      }
      const st = await run(['status', '--target', t]);
      expect(st.stdout).toContain(`Lock: held by pid ${holder.pid}`);
      // --wait: proceeds once the holder lets go.
      const waiting = run([
        'deploy',
        '--release',
        '2024.01.20',
        '--target',
        t,
        '--releases-dir',
        serverReleases,
        '--wait',
      ]);
      await new Promise((r2) => setTimeout(r2, 1500));
      await rm(lockFile);
      const w = await waiting;
      expect(w.code, w.stderr).toBe(0);
      await expectRelease(t, '2024.01.20', { config: '1.1.0' });
    } finally {
      holder.kill('SIGKILL');
    }
    // A dead holder on this host: taken over with a warning.
    await new Promise((r2) => setTimeout(r2, 100));
    await writeFile(lockFile, JSON.stringify({ ...lock, pid: holder.pid }));
    const r = await run(['version', 'rollback', '--target', t]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('taking over the lock of a process that is gone');
    expect(await exists(lockFile)).toBe(false);
  });
});

describe('bad input: a clear error and the current release untouched', () => {
  let t: string;
  let rel: string;
  beforeAll(async () => {
    t = join(await tempDir('bad-'), 'target');
    rel = join(await tempDir('badrel-'), 'releases');
    await mkdir(rel, { recursive: true });
    for (const r of ['2024.01.19', '2024.01.20']) await transfer(f, r, rel);
    expect(
      (await run(['deploy', '--release', '2024.01.19', '--target', t, '--releases-dir', rel])).code,
    ).toBe(0);
  });
  const deploy20 = () => json(['deploy', '--release', '2024.01.20', '--target', t, '--releases-dir', rel]);
  const untouched = async () => {
    await expectRelease(t, '2024.01.19', { model: '1.0.0', config: '1.0.0' });
    expect(await readdir(join(t, '.deploy-tool', 'staging'))).toEqual([]);
    expect(await exists(join(t, 'releases', '2024.01.20'))).toBe(false);
  };
  const archive = () => join(rel, '2024.01.20', 'config', '1.1.0', 'config-1.1.0.tar.zst');
  const manifest = () => join(rel, '2024.01.20', 'config', '1.1.0', 'config-1.1.0.manifest.json');

  it('corrupted archive', async () => {
    const orig = await readFile(archive());
    const bad = Buffer.from(orig);
    bad[bad.length - 5] = (bad[bad.length - 5] ?? 0) ^ 0xff;
    await rm(archive());
    await writeFile(archive(), bad);
    const r = await deploy20();
    expect(r.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(r.json.error.message).toContain('config-1.1.0.tar.zst');
    await untouched();
    await writeFile(archive(), orig);
  });

  it('truncated archive', async () => {
    const orig = await readFile(archive());
    await rm(archive());
    await writeFile(archive(), orig.subarray(0, orig.length - 10));
    const r = await deploy20();
    expect(r.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(r.json.error.hint).toContain('truncated');
    await untouched();
    await writeFile(archive(), orig);
  });

  it('component manifest altered after publishing (release.json disagrees)', async () => {
    const orig = await readFile(manifest(), 'utf8');
    await writeFile(manifest(), orig.replace('"tool"', '"tool" ').replace('"tool" ', '"tool"') + ' ');
    const r = await deploy20();
    expect(r.json.error.code).toBe('ERR_MANIFEST_INVALID');
    await untouched();
    await writeFile(manifest(), orig);
  });

  it('manifest consistent with release.json but disagreeing with the archive', async () => {
    const origM = await readFile(manifest(), 'utf8');
    const relFile = join(rel, '2024.01.20', 'release.json');
    const origR = await readFile(relFile, 'utf8');
    const m = JSON.parse(origM);
    m.files.find((x: any) => x.type === 'file').sha256 = 'a'.repeat(64);
    const text = `${JSON.stringify(m, null, 2)}\n`;
    await writeFile(manifest(), text);
    const { createHash } = await import('node:crypto');
    const r0 = JSON.parse(origR);
    r0.components.find((c: any) => c.type === 'config').manifestSha256 = createHash('sha256')
      .update(text)
      .digest('hex');
    await writeFile(relFile, JSON.stringify(r0));
    const r = await deploy20();
    expect(r.json.error.code).toBe('ERR_INDEX_MISMATCH');
    expect(r.json.error.message).toContain('settings.yaml');
    await untouched();
    await writeFile(manifest(), origM);
    await writeFile(relFile, origR);
  });

  it('missing release, missing archive', async () => {
    const r = await json(['deploy', '--release', '2099.01.01', '--target', t, '--releases-dir', rel]);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe('ERR_RELEASE_NOT_FOUND');
    expect(r.json.error.message).toContain('2099.01.01');
    const orig = await readFile(archive());
    await rm(archive());
    const r2 = await deploy20();
    expect(r2.json.error.code).toBe('ERR_ARCHIVE_MISSING');
    await untouched();
    await writeFile(archive(), orig);
    const ok = await deploy20();
    expect(ok.code, JSON.stringify(ok.json)).toBe(0);
    expect((await run(['version', 'rollback', '--target', t])).code).toBe(0);
  });

  it.skipIf(!canMountTmpfs)(
    `target not writable (read-only tmpfs mount)${skipNote(canMountTmpfs, 'mount -t tmpfs is not permitted here')}`,
    async () => {
      const ro = join(await tempDir('ro-'), 'mnt');
      await mkdir(ro);
      expect(await runCmd('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro])).toBe(0);
      try {
        const r = await json([
          'deploy',
          '--release',
          '2024.01.19',
          '--target',
          join(ro, 'app'),
          '--releases-dir',
          rel,
        ]);
        expect(r.code).toBe(1);
        expect(r.json.error.code).toBe('ERR_TARGET_NOT_WRITABLE');
        expect(r.json.error.message).toContain(join(ro, 'app'));
      } finally {
        await runCmd('umount', [ro]);
      }
    },
  );

  // Root ignores permission bits, but not the immutable attribute: every folder of a deployed
  // target is made immutable (chattr +i), so nothing can be created, renamed or removed in it.
  it.skipIf(!canChattr)(
    `target not writable, without mounting (chattr +i on a deployed target): clear error, current kept${skipNote(canChattr, 'chattr +i is not supported on this filesystem or not permitted')}`,
    async () => {
      const dir = join(await tempDir('immutable-'), 'app');
      const d = await json(['deploy', '--release', '2024.01.19', '--target', dir, '--releases-dir', rel]);
      expect(d.code, JSON.stringify(d.json)).toBe(0);
      const setImmutable = (on: boolean) =>
        runCmd('find', [dir, '-type', 'd', '-exec', 'chattr', on ? '+i' : '-i', '{}', '+']);
      expect(await setImmutable(true)).toBe(0);
      try {
        const r = await json(['deploy', '--release', '2024.01.20', '--target', dir, '--releases-dir', rel]);
        expect(r.code).toBe(1);
        expect(r.json.error.code).toBe('ERR_TARGET_NOT_WRITABLE');
        expect(r.json.error.message).toContain(dir);
        expect(r.json.error.hint).toBeTruthy();
        await expectRelease(dir, '2024.01.19', { model: '1.0.0', config: '1.0.0' });
        expect(await exists(join(dir, 'releases', '2024.01.20'))).toBe(false);
        expect((await run(['verify', '--target', dir])).code).toBe(0);
      } finally {
        await setImmutable(false);
      }
      // Writable again: the deploy goes through.
      const ok = await json(['deploy', '--release', '2024.01.20', '--target', dir, '--releases-dir', rel]);
      expect(ok.code, JSON.stringify(ok.json)).toBe(0);
      await expectRelease(dir, '2024.01.20', { config: '1.1.0' });
    },
  );

  it('a file where the target needs a folder (DIR/releases is a regular file): clear error, nothing written', async () => {
    const dir = join(await tempDir('notdir-'), 'app');
    await mkdir(dir);
    await writeFile(join(dir, 'releases'), 'not a folder\n');
    const r = await json(['deploy', '--release', '2024.01.19', '--target', dir, '--releases-dir', rel]);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe('ERR_TARGET_INVALID');
    expect(r.json.error.message).toContain(dir);
    expect(await readFile(join(dir, 'releases'), 'utf8')).toBe('not a folder\n');
    expect(await exists(join(dir, 'current'))).toBe(false);
    expect(await exists(join(dir, '.deploy-tool', 'lock'))).toBe(false);
  });

  /**
   * On a small file system at `mnt`: a config-only release deploys, the full release fails with
   * ERR_NO_SPACE naming the target, and the config release stays current, intact, with nothing left
   * in staging.
   */
  async function expectNoSpaceKeepsCurrent(mnt: string): Promise<void> {
    const small = await json([
      'deploy',
      '--component',
      'config:1.0.0',
      '--target',
      mnt,
      '--releases-dir',
      rel,
    ]);
    expect(small.code, JSON.stringify(small.json)).toBe(0);
    const r = await json(['deploy', '--release', '2024.01.20', '--target', mnt, '--releases-dir', rel]);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe('ERR_NO_SPACE');
    expect(r.json.error.message).toContain(mnt);
    expect(r.json.error.hint).toContain('Free some disk space');
    expect(await readlink(join(mnt, 'current'))).toBe('releases/config-1.0.0');
    expect(await readFile(join(mnt, 'config', 'settings.yaml'), 'utf8')).toBe('threshold: 0.5\n');
    expect((await run(['verify', '--target', mnt])).code).toBe(0);
    expect(await readdir(join(mnt, '.deploy-tool', 'staging'))).toEqual([]);
  }

  it.skipIf(!canMountTmpfs)(
    `disk full (1 MiB tmpfs): ERR_NO_SPACE, current kept, leftovers cleaned by the next deploy${skipNote(canMountTmpfs, 'mount -t tmpfs is not permitted here')}`,
    async () => {
      const mnt = join(await tempDir('full-'), 'mnt');
      await mkdir(mnt);
      expect(await runCmd('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt])).toBe(0);
      try {
        await expectNoSpaceKeepsCurrent(mnt);
        const next = await json([
          'deploy',
          '--component',
          'config:1.1.0',
          '--target',
          mnt,
          '--releases-dir',
          rel,
        ]);
        expect(next.code, JSON.stringify(next.json)).toBe(0);
        expect((await readdir(join(mnt, 'releases'))).sort()).toEqual([
          'config-1.0.0',
          'config-1.0.0+config-1.1.0',
        ]);
      } finally {
        await runCmd('umount', [mnt]);
      }
    },
  );

  it.skipIf(!canMountExt4)(
    `disk full during direct writes (3 MiB ext4 image): ERR_NO_SPACE, current kept${skipNote(canMountExt4, 'no loop-mounted ext4 image here (needs root, a loop device and mkfs.ext4)')}`,
    async () => {
      const mnt = await mountExt4(3);
      expect(mnt).toBeDefined();
      if (!mnt) return;
      try {
        // A weights file of 2 MiB and more: written with direct I/O (ext4 takes it) until the disk is full.
        await expectNoSpaceKeepsCurrent(mnt);
      } finally {
        await runCmd('umount', [mnt]);
      }
    },
  );

  it('usage errors: no --release/--component, unknown method', async () => {
    const a = await json(['deploy', '--target', t]);
    expect(a.code).toBe(2);
    expect(a.json.error.code).toBe('ERR_USAGE');
    const b = await json(['deploy', '--release', '2024.01.20', '--target', t, '--method', 'ftp']);
    expect(b.code).toBe(2);
    expect(b.json.error.hint).toContain('filesystem');
  });
});

function runCmd(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('error', () => resolve(-1));
    c.on('close', (code) => resolve(code ?? -1));
  });
}

describe('incremental deploy: files a kept release holds are linked, only the others extracted', () => {
  const MiB = 1024 * 1024;
  const B2 = noise(MiB + 4321, 502);
  let project: string;
  let rel: string;
  beforeAll(async () => {
    project = await makeProject({
      'models/a.bin': noise(MiB + 1000, 501),
      'models/b.bin': noise(MiB + 2000, 2),
      'models/c.bin': noise(MiB + 3000, 503),
      'models/sub/readme.txt': 'model notes\n',
    });
    const ok = async (args: string[]): Promise<void> => {
      const r = await runCli(args, { cwd: project });
      expect(r.code, r.stderr).toBe(0);
    };
    await ok(['pack', './models', '--type', 'model', '--version', '1.0.0']);
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', '1.0']);
    await writeTree(project, { 'models/b.bin': B2 });
    await ok(['pack', './models', '--type', 'model', '--version', '2.0.0']);
    await ok(['publish', '--component', 'model:2.0.0', '--release-version', '2.0']);
    rel = join(project, 'deployment', 'releases');
  }, 120_000);

  const deployTo = (target: string, release: string, extra: string[] = []) =>
    json(['deploy', '--release', release, '--target', target, '--releases-dir', rel, ...extra], project);

  it('model 2.0.0 with one changed file: the unchanged files are hard links to the kept release', async () => {
    const target = join(await tempDir('inc-'), 't');
    const a = await deployTo(target, '1.0');
    expect(a.code, JSON.stringify(a.json)).toBe(0);
    const plan = await deployTo(target, '2.0', ['--dry-run']);
    const pm = plan.json.components[0];
    expect(pm).toMatchObject({ type: 'model', version: '2.0.0', action: 'extract', linkedFrom: ['1.0'] });
    expect(plan.json.bytesToWrite).toBe(B2.length);

    const b = await deployTo(target, '2.0', ['--verbose']);
    expect(b.code, JSON.stringify(b.json)).toBe(0);
    const m = b.json.components[0];
    // Linked: weights.bin, vocab.json, a.bin, c.bin, sub/readme.txt; extracted: b.bin alone.
    expect(m).toMatchObject({ action: 'extract', filesLinked: 5, linkedFrom: ['1.0'] });
    expect(m.bytesLinked).toBe(m.bytes - B2.length);
    expect(b.json.bytesToWrite).toBe(B2.length);
    expect(b.stderr).toContain('extracting model:2.0.0 b.bin');
    expect(b.stderr).not.toContain('extracting model:2.0.0 a.bin');
    const f = (r: string, v: string, p: string) => stat(join(target, 'releases', r, 'model', v, p));
    for (const p of ['weights.bin', 'vocab.json', 'a.bin', 'c.bin', 'sub/readme.txt'])
      expect((await f('2.0', '2.0.0', p)).ino, p).toBe((await f('1.0', '1.0.0', p)).ino);
    expect((await f('2.0', '2.0.0', 'b.bin')).ino).not.toBe((await f('1.0', '1.0.0', 'b.bin')).ino);
    expect((await readFile(join(target, 'model', 'b.bin'))).equals(B2)).toBe(true);
    expect(await readlink(join(target, 'current'))).toBe('releases/2.0');
    const v = await json(['verify', '--target', target], project);
    expect(v.code, JSON.stringify(v.json)).toBe(0);
    const v1 = await json(['verify', '--target', target, '--release', '1.0'], project);
    expect(v1.code, JSON.stringify(v1.json)).toBe(0);
  });

  it('a kept file changed on the target is not linked but extracted', async () => {
    const target = join(await tempDir('inc-'), 't');
    expect((await deployTo(target, '1.0')).code).toBe(0);
    // c.bin of the kept release grows by a byte: its size no longer matches.
    await appendFile(join(target, 'releases', '1.0', 'model', '1.0.0', 'c.bin'), 'x');
    const b = await deployTo(target, '2.0');
    expect(b.code, JSON.stringify(b.json)).toBe(0);
    expect(b.json.components[0]).toMatchObject({ action: 'extract', filesLinked: 4 });
    const c1 = await stat(join(target, 'releases', '1.0', 'model', '1.0.0', 'c.bin'));
    const c2 = await stat(join(target, 'releases', '2.0', 'model', '2.0.0', 'c.bin'));
    expect(c2.ino).not.toBe(c1.ino);
    expect(c2.size).toBe(MiB + 3000);
    expect((await json(['verify', '--target', target], project)).code).toBe(0);
  });

  it('a corrupted frame of the changed file is refused; the current release is untouched', async () => {
    const target = join(await tempDir('inc-'), 't');
    const copy = join(await tempDir('rel-'), 'releases');
    await cp(rel, copy, { recursive: true });
    expect((await deployTo(target, '1.0')).code).toBe(0);
    const m = JSON.parse(
      await readFile(join(project, 'deployment', 'manifests', 'model-2.0.0.manifest.json'), 'utf8'),
    );
    const fb = m.files.find((x: any) => x.path === 'b.bin');
    const fr = m.frames.find((x: any) => x.tarOffset === fb.offset);
    const archives = (await readdir(join(copy, '2.0', 'model', '2.0.0'))).filter((n) => n.includes('.tar'));
    const archivePath = join(copy, '2.0', 'model', '2.0.0', archives[0]!);
    const buf = await readFile(archivePath);
    const at = fr.offset + Math.floor(fr.size / 2);
    buf.writeUInt8(buf.readUInt8(at) ^ 0xff, at);
    await rm(archivePath);
    await writeFile(archivePath, buf);
    const r = await json(['deploy', '--release', '2.0', '--target', target, '--releases-dir', copy], project);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(r.json.error.message).toMatch(/frame \d+/);
    expect(await readlink(join(target, 'current'))).toBe('releases/1.0');
    expect(await readdir(join(target, 'releases'))).toEqual(['1.0']);
  });
});
