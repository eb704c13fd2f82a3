import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  chmod,
  chown,
  mkdir,
  readFile,
  readdir,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  cleanupTempDirs,
  makeProject,
  noise,
  runCli,
  runJson,
  tempDir,
  writeTree,
  CLI,
} from '../helpers/cli.js';
import { expectUserError, leftovers } from '../helpers/expect-cli.js';
import { parseComponentManifestText, type ComponentManifest } from '../../src/manifest/component.js';

afterAll(cleanupTempDirs);

const readManifest = async (dir: string, id: string): Promise<ComponentManifest> =>
  parseComponentManifestText(
    await readFile(join(dir, 'deployment/manifests', `${id}.manifest.json`), 'utf8'),
    id,
  );

const listing = (dir: string, file: string, flag: string): string[] =>
  execFileSync('tar', [flag, '-tf', join(dir, 'dist', file)])
    .toString()
    .trim()
    .split('\n');

/** dist/ and deployment/ hold nothing but what was there before, and no temporary files. */
async function expectNothingWritten(
  dir: string,
  before: { dist: string[]; manifests: string[]; configs: string[] },
): Promise<void> {
  expect(await readdir(join(dir, 'dist'))).toEqual(before.dist);
  expect(await readdir(join(dir, 'deployment/manifests'))).toEqual(before.manifests);
  expect(await readdir(join(dir, 'deployment/package-configs'))).toEqual(before.configs);
  expect(await leftovers(dir)).toEqual([]);
}

async function state(dir: string): Promise<{ dist: string[]; manifests: string[]; configs: string[] }> {
  return {
    dist: await readdir(join(dir, 'dist')),
    manifests: await readdir(join(dir, 'deployment/manifests')),
    configs: await readdir(join(dir, 'deployment/package-configs')),
  };
}

describe('pack: output', () => {
  it('writes dist/TYPE-VERSION.tar.zst and the manifest, and prints the seed summary and git commands', async () => {
    const dir = await makeProject();
    const r = await runCli(['pack', './models', '--type', 'model', '--version', '1.0.0'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines).toContain('✓ Scanning directory: models');
    expect(lines).toContain('✓ Found 2 files (3.0 MB total)');
    expect(r.stdout).toMatch(/^✓ Creating package: dist\/model-1\.0\.0\.tar\.zst \(zstd level 3, /m);
    expect(lines).toContain('✓ Generating manifest: deployment/manifests/model-1.0.0.manifest.json');
    expect(lines).toContain('   git add deployment/manifests/model-1.0.0.manifest.json');
    expect(lines).toContain('   git commit -m "Add model v1.0.0 manifest"');
    expect(lines).toContain('2. The package file (dist/model-1.0.0.tar.zst) is NOT tracked by Git');
    const m = await readManifest(dir, 'model-1.0.0');
    expect(m).toMatchObject({
      type: 'model',
      version: '1.0.0',
      archive: { name: 'model-1.0.0.tar.zst', compression: 'zstd', level: 3 },
    });
    expect(m.archive.size).toBe((await stat(join(dir, 'dist/model-1.0.0.tar.zst'))).size);
    expect(m.summary).toEqual({
      files: 2,
      directories: 0,
      symlinks: 0,
      totalSize: 3 * 1024 * 1024 + 123 + 17,
    });
    expect(m.source).toEqual({ path: 'models', git: null });
  });

  it('reports the summary in --json', async () => {
    const dir = await makeProject();
    const r = await runJson<Record<string, unknown>>(
      ['pack', 'configs', '--type', 'config', '--version', '1.0.0'],
      { cwd: dir },
    );
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({
      ok: true,
      status: 'packed',
      type: 'config',
      version: '1.0.0',
      files: 1,
      compression: 'zstd',
      level: 3,
      archivePath: join(dir, 'dist/config-1.0.0.tar.zst'),
      manifestPath: join(dir, 'deployment/manifests/config-1.0.0.manifest.json'),
    });
  });
});

describe('pack --auto and package configurations', () => {
  it('--auto writes deployment/package-configs/TYPE.yaml, and a later pack reuses (and honours edits to) it', async () => {
    const dir = await makeProject({ 'models/train.log': 'noise\n', 'models/sub/extra.json': '{}' });
    const first = await runCli(['pack', './models', '--auto', '--type', 'model', '--version', '1.0.0'], {
      cwd: dir,
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('✓ Saved package configuration: deployment/package-configs/model.yaml');
    const cfgPath = join(dir, 'deployment/package-configs/model.yaml');
    const cfg = await readFile(cfgPath, 'utf8');
    expect(cfg).toMatch(/^schema_version: 1$/m);
    expect(cfg).toMatch(/^type: model$/m);
    expect(cfg).toMatch(/^compression: zstd$/m);
    expect(cfg).toMatch(/^level: 3$/m);
    expect(cfg).toMatch(/^exclude:$/m);
    // The user edits it: gzip 9 and leave out logs.
    await writeFile(
      cfgPath,
      cfg
        .replace('compression: zstd', 'compression: gzip')
        .replace('level: 3', 'level: 9')
        .replace(/^exclude:$/m, 'exclude:\n  - "*.log"'),
    );
    const second = await runJson<{
      archivePath: string;
      packageConfigPath: string;
      packageConfigWritten: boolean;
    }>(['pack', './models', '--type', 'model', '--version', '1.0.1'], { cwd: dir });
    expect(second.code, second.stderr).toBe(0);
    expect(second.json.archivePath).toBe(join(dir, 'dist/model-1.0.1.tar.gz'));
    expect(second.json.packageConfigPath).toBe(cfgPath);
    expect(second.json.packageConfigWritten).toBe(false);
    const m = await readManifest(dir, 'model-1.0.1');
    expect(m.archive).toMatchObject({ compression: 'gzip', level: 9 });
    expect(m.files.map((f) => f.path)).toEqual(['sub', 'sub/extra.json', 'vocab.json', 'weights.bin']);
    // Flags beat the package configuration; its level stays with its compression.
    const third = await runJson<{ compression: string; level: number }>(
      ['pack', './models', '--type', 'model', '--version', '1.0.2', '--compression', 'xz'],
      { cwd: dir },
    );
    expect(third.json).toMatchObject({ compression: 'xz', level: 6 });
  });

  it('supports include patterns in the package configuration', async () => {
    const dir = await makeProject({ 'models/notes.md': '# notes', 'models/sub/more.json': '[]' });
    await writeFile(
      join(dir, 'deployment/package-configs/model.yaml'),
      'schema_version: 1\ntype: model\ncompression: zstd\nlevel: 3\ninclude:\n  - "**/*.json"\n',
    );
    const r = await runJson<{ excluded: number }>(['pack', 'models', '--type', 'model', '--version', '1'], {
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    expect((await readManifest(dir, 'model-1')).files.map((f) => f.path)).toEqual([
      'sub',
      'sub/more.json',
      'vocab.json',
    ]);
    expect(r.json.excluded).toBe(2);
  });

  it('--exclude leaves files and folders out (repeatable)', async () => {
    const dir = await makeProject({ 'models/cache/a.tmp': 'x', 'models/b.tmp': 'y', 'models/keep.txt': 'k' });
    const r = await runCli(
      ['pack', 'models', '--type', 'model', '--version', '1', '--exclude', '*.tmp', '--exclude', 'cache'],
      {
        cwd: dir,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Found 3 files (3.0 MB total), 2 excluded');
    expect((await readManifest(dir, 'model-1')).files.map((f) => f.path)).toEqual([
      'keep.txt',
      'vocab.json',
      'weights.bin',
    ]);
  });

  it('leaves out .git, __pycache__ and editor files by default', async () => {
    const dir = await makeProject({
      'models/.git/HEAD': 'ref',
      'models/__pycache__/m.pyc': 'x',
      'models/x.swp': 's',
      'models/m.py': 'p',
    });
    const r = await runCli(['pack', 'models', '--type', 'model', '--version', '1'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect((await readManifest(dir, 'model-1')).files.map((f) => f.path)).toEqual([
      'm.py',
      'vocab.json',
      'weights.bin',
    ]);
  });

  it('--auto with bad input fails before writing a package configuration', async () => {
    const dir = await makeProject();
    await mkdir(join(dir, 'empty'));
    const before = await state(dir);
    expectUserError(
      await runCli(['pack', 'empty', '--auto', '--type', 'model', '--version', '1'], { cwd: dir }),
      'ERR_SOURCE_EMPTY',
    );
    await expectNothingWritten(dir, before);
  });
});

describe('pack: compression flags', () => {
  it('--level is recorded and changes the output; out-of-range levels and unknown algorithms are usage errors', async () => {
    const dir = await makeProject({ 'text/a.txt': 'the quick brown fox '.repeat(20000) });
    const fast = await runJson<{ archiveSize: number; level: number }>(
      ['pack', 'text', '--type', 'a', '--version', '1', '--compression', 'zstd', '--level', '1'],
      { cwd: dir },
    );
    const slow = await runJson<{ archiveSize: number; level: number }>(
      ['pack', 'text', '--type', 'b', '--version', '1', '--compression', 'zstd', '--level', '19'],
      { cwd: dir },
    );
    expect(fast.json.level).toBe(1);
    expect(slow.json.level).toBe(19);
    expect((await readManifest(dir, 'b-1')).archive.level).toBe(19);
    expect(slow.json.archiveSize).toBeLessThanOrEqual(fast.json.archiveSize);
    const before = await state(dir);
    expect(
      expectUserError(
        await runCli(
          ['pack', 'text', '--type', 'c', '--version', '1', '--compression', 'gzip', '--level', '12'],
          { cwd: dir },
        ),
        'ERR_USAGE',
      ),
    ).toMatch(/--level 12 is out of range for gzip \(1-9\)/);
    expect(
      expectUserError(
        await runCli(['pack', 'text', '--type', 'c', '--version', '1', '--compression', 'rar'], { cwd: dir }),
        'ERR_USAGE',
      ),
    ).toMatch(/Unknown compression "rar"/);
    expectUserError(
      await runCli(['pack', 'text', '--type', 'c', '--version', '1', '--level', 'fast'], { cwd: dir }),
      'ERR_USAGE',
    );
    await expectNothingWritten(dir, before);
  });

  it.each([
    ['zstd', 'tar.zst'],
    ['gzip', 'tar.gz'],
    ['bzip2', 'tar.bz2'],
    ['xz', 'tar.xz'],
    ['lz4', 'tar.lz4'],
    ['none', 'tar'],
  ])('--compression %s writes dist/TYPE-VERSION.%s', async (alg, ext) => {
    const dir = await makeProject();
    const r = await runJson<{ archivePath: string; compression: string }>(
      ['pack', 'configs', '--type', 'config', '--version', '1.0.0', '--compression', alg],
      { cwd: dir },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.archivePath).toBe(join(dir, `dist/config-1.0.0.${ext}`));
    expect((await readManifest(dir, 'config-1.0.0')).archive.compression).toBe(alg);
  });
});

describe('pack: git provenance', () => {
  it('records the commit and whether the tree was dirty', async () => {
    const dir = await tempDir('git-');
    const init = await runCli(['init', '--name', 'p', '--type', 'algorithm'], { cwd: dir });
    expect(init.code, init.stderr).toBe(0);
    await writeTree(dir, { 'models/w.bin': noise(1000, 3) });
    const git = (...args: string[]): string =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir })
        .toString()
        .trim();
    git('add', '-A');
    git('commit', '-qm', 'first');
    const head = git('rev-parse', 'HEAD');
    const clean = await runCli(['pack', 'models', '--type', 'model', '--version', '1'], { cwd: dir });
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stderr).toBe('');
    expect((await readManifest(dir, 'model-1')).source.git).toEqual({ commit: head, dirty: false });
    await writeFile(join(dir, 'models/w.bin'), noise(1000, 4));
    const dirty = await runCli(['pack', 'models', '--type', 'model', '--version', '2'], { cwd: dir });
    expect(dirty.code, dirty.stderr).toBe(0);
    expect(dirty.stderr).toMatch(/^warning: the git tree has uncommitted changes/m);
    expect((await readManifest(dir, 'model-2')).source.git).toEqual({ commit: head, dirty: true });
  });
});

describe('pack: determinism', () => {
  it('packs the same tree in two projects to byte-identical archives', async () => {
    const tree = {
      'm/b.bin': noise(1536 * 1024, 9),
      'm/a/config.json': '{"x": 1}',
      'm/a/empty.txt': '',
      'm/run.sh': '#!/bin/sh\necho hi\n',
      'm/latest': { symlink: 'b.bin' },
    };
    const results: { sha: string; bytes: Buffer; manifest: ComponentManifest }[] = [];
    for (const [i, order] of [Object.keys(tree), Object.keys(tree).reverse()].entries()) {
      const dir = await makeProject();
      // Different creation order, times and permissions on each side.
      for (const k of order) await writeTree(dir, { [k]: tree[k as keyof typeof tree] });
      await chmod(join(dir, 'm/run.sh'), i === 0 ? 0o755 : 0o700);
      await chmod(join(dir, 'm/a/config.json'), i === 0 ? 0o644 : 0o600);
      await utimes(join(dir, 'm/b.bin'), 1000 * i + 5, 1000 * i + 5);
      const r = await runJson<{ archiveSha256: string }>(['pack', 'm', '--type', 'model', '--version', '1'], {
        cwd: dir,
      });
      expect(r.code, r.stderr).toBe(0);
      results.push({
        sha: r.json.archiveSha256,
        bytes: await readFile(join(dir, 'dist/model-1.tar.zst')),
        manifest: await readManifest(dir, 'model-1'),
      });
    }
    const [a, b] = results;
    expect(a!.bytes.equals(b!.bytes)).toBe(true);
    expect(a!.sha).toBe(b!.sha);
    expect(a!.manifest.archive).toEqual(b!.manifest.archive);
    expect(a!.manifest.files).toEqual(b!.manifest.files);
    const verbose = execFileSync('tar', ['--zstd', '-tvf', '-'], { input: a!.bytes }).toString();
    expect(verbose).toMatch(/^-rwxr-xr-x 0\/0 +\d+ 1970-01-01 00:00 run\.sh$/m);
  });
});

describe('pack: immutability', () => {
  it('identical content is a no-op that says so; different content fails clearly; --force replaces', async () => {
    const dir = await makeProject();
    const args = ['pack', 'models', '--type', 'model', '--version', '1.0.0'];
    expect((await runCli(args, { cwd: dir })).code).toBe(0);
    const manifestPath = join(dir, 'deployment/manifests/model-1.0.0.manifest.json');
    const manifest1 = await readFile(manifestPath, 'utf8');
    const archive1 = await readFile(join(dir, 'dist/model-1.0.0.tar.zst'));

    const again = await runCli(args, { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('model:1.0.0 is already packed with identical content; nothing changed');
    expect(await readFile(manifestPath, 'utf8')).toBe(manifest1);

    await writeFile(join(dir, 'models/vocab.json'), '{"a": 2}\n');
    const changed = await runCli(args, { cwd: dir });
    const msg = expectUserError(changed, 'ERR_COMPONENT_EXISTS');
    expect(msg).toContain('model:1.0.0 already exists with different content');
    expect(changed.stderr).toMatch(/hint: .*bump --version.*--force/);
    expect(await readFile(manifestPath, 'utf8')).toBe(manifest1);
    expect((await readFile(join(dir, 'dist/model-1.0.0.tar.zst'))).equals(archive1)).toBe(true);
    expect(await leftovers(dir)).toEqual([]);

    const forced = await runJson<{ status: string; archiveSha256: string }>([...args, '--force'], {
      cwd: dir,
    });
    expect(forced.json.status).toBe('replaced');
    expect(forced.stderr).toMatch(/^warning: replaced the previous model:1.0.0 \(--force\)$/m);
    const m = await readManifest(dir, 'model-1.0.0');
    expect(m.archive.sha256).toBe(forced.json.archiveSha256);
    expect(m.files.find((f) => f.path === 'vocab.json')).toMatchObject({ size: 9 });
  });

  it('restores a deleted or damaged archive when the content is identical', async () => {
    const dir = await makeProject();
    const args = ['pack', 'configs', '--type', 'config', '--version', '1'];
    expect((await runCli(args, { cwd: dir })).code).toBe(0);
    const archive = join(dir, 'dist/config-1.tar.zst');
    const good = await readFile(archive);
    await rm(archive);
    expect((await runCli(args, { cwd: dir })).code).toBe(0);
    expect((await readFile(archive)).equals(good)).toBe(true);
    const bad = Buffer.from(good);
    bad[bad.length - 3] = (bad[bad.length - 3] ?? 0) ^ 0xff;
    await writeFile(archive, bad);
    expect((await runCli(args, { cwd: dir })).code).toBe(0);
    expect((await readFile(archive)).equals(good)).toBe(true);
  });

  it('a different compression is different content', async () => {
    const dir = await makeProject();
    expect((await runCli(['pack', 'configs', '--type', 'config', '--version', '1'], { cwd: dir })).code).toBe(
      0,
    );
    expectUserError(
      await runCli(['pack', 'configs', '--type', 'config', '--version', '1', '--compression', 'gzip'], {
        cwd: dir,
      }),
      'ERR_COMPONENT_EXISTS',
    );
  });
});

describe('pack: bad input', () => {
  it('a missing PATH', async () => {
    const dir = await makeProject();
    const before = await state(dir);
    expect(
      expectUserError(
        await runCli(['pack', 'nope', '--type', 'model', '--version', '1'], { cwd: dir }),
        'ERR_SOURCE_NOT_FOUND',
      ),
    ).toContain(join(dir, 'nope'));
    expect(
      expectUserError(await runCli(['pack', '--type', 'model', '--version', '1'], { cwd: dir }), 'ERR_USAGE'),
    ).toMatch(/path/);
    expect(
      expectUserError(
        await runCli(['pack', '', '--type', 'model', '--version', '1'], { cwd: dir }),
        'ERR_USAGE',
      ),
    ).toMatch(/PATH/);
    await expectNothingWritten(dir, before);
  });

  it('a PATH that is a file, not a folder', async () => {
    const dir = await makeProject();
    expect(
      expectUserError(
        await runCli(['pack', 'models/vocab.json', '--type', 'model', '--version', '1'], { cwd: dir }),
        'ERR_SOURCE_NOT_FOUND',
      ),
    ).toContain('not a folder');
  });

  it('an empty PATH, or one where everything is excluded', async () => {
    const dir = await makeProject({ 'only-logs/a.log': 'x' });
    await mkdir(join(dir, 'empty/sub'), { recursive: true });
    const before = await state(dir);
    expect(
      expectUserError(
        await runCli(['pack', 'empty', '--type', 'model', '--version', '1'], { cwd: dir }),
        'ERR_SOURCE_EMPTY',
      ),
    ).toContain('Nothing to pack');
    expect(
      expectUserError(
        await runCli(['pack', 'only-logs', '--type', 'model', '--version', '1', '--exclude', '*.log'], {
          cwd: dir,
        }),
        'ERR_SOURCE_EMPTY',
      ),
    ).toContain('1 excluded');
    await expectNothingWritten(dir, before);
  });

  it('invalid types and versions', async () => {
    const dir = await makeProject();
    for (const [type, version, code] of [
      ['../model', '1', 'ERR_INVALID_NAME'],
      ['model', '1/2', 'ERR_INVALID_VERSION'],
      ['model', '..', 'ERR_INVALID_VERSION'],
      ['my model', '1', 'ERR_INVALID_NAME'],
      ['model', '1 .0', 'ERR_INVALID_VERSION'],
    ] as const)
      expectUserError(
        await runCli(['pack', 'models', '--type', type, '--version', version], { cwd: dir }),
        code,
      );
  });

  it('a FIFO, naming the file', async () => {
    const dir = await makeProject();
    execFileSync('mkfifo', [join(dir, 'models/pipe')]);
    const before = await state(dir);
    const msg = expectUserError(
      await runCli(['pack', 'models', '--type', 'model', '--version', '1'], { cwd: dir }),
      'ERR_SOURCE_SPECIAL_FILE',
    );
    expect(msg).toBe(`Cannot pack ${join(dir, 'models/pipe')}: it is a FIFO`);
    await expectNothingWritten(dir, before);
    // ... and --exclude is the way around it
    expect(
      (
        await runCli(['pack', 'models', '--type', 'model', '--version', '1', '--exclude', 'pipe'], {
          cwd: dir,
        })
      ).code,
    ).toBe(0);
  });

  it('a socket, naming the file', async () => {
    const dir = await makeProject();
    const sock = join(dir, 'models/daemon.sock');
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const before = await state(dir);
      const msg = expectUserError(
        await runCli(['pack', 'models', '--type', 'model', '--version', '1'], { cwd: dir }),
        'ERR_SOURCE_SPECIAL_FILE',
      );
      expect(msg).toBe(`Cannot pack ${sock}: it is a socket`);
      await expectNothingWritten(dir, before);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a device file, naming it (needs mknod: runs as root)', async () => {
    const dir = await makeProject();
    try {
      execFileSync('mknod', [join(dir, 'models/null'), 'c', '1', '3'], { stdio: 'ignore' });
    } catch {
      return expect(process.getuid?.()).not.toBe(0); // only root can create device nodes
    }
    const msg = expectUserError(
      await runCli(['pack', 'models', '--type', 'model', '--version', '1'], { cwd: dir }),
      'ERR_SOURCE_SPECIAL_FILE',
    );
    expect(msg).toContain('it is a device');
  });

  it('symlinks that point outside PATH (relative, absolute, through another link), naming the link', async () => {
    for (const [name, target] of [
      ['up', '../configs/settings.yaml'],
      ['abs', '/etc/passwd'],
      ['abs-inside', 'ABS'],
    ] as const) {
      const dir = await makeProject({ 'outside/secret.txt': 'secret' });
      const link = join(dir, 'models', name);
      await symlink(target === 'ABS' ? join(dir, 'models/vocab.json') : target, link);
      const before = await state(dir);
      const msg = expectUserError(
        await runCli(['pack', 'models', '--type', 'model', '--version', '1'], { cwd: dir }),
        'ERR_SOURCE_SYMLINK_OUTSIDE',
      );
      expect(msg).toContain(link);
      await expectNothingWritten(dir, before);
    }
    // A link inside PATH to a link that leaves it.
    const dir = await makeProject({ 'outside/secret.txt': 'secret' });
    await symlink(join(dir, 'outside'), join(dir, 'models/escape'));
    await rm(join(dir, 'models/escape'));
    await mkdir(join(dir, 'models/d'));
    await symlink('../../outside', join(dir, 'models/d/hop'));
    await symlink('d/hop/secret.txt', join(dir, 'models/inner'));
    expectUserError(
      await runCli(['pack', 'models', '--type', 'model', '--version', '1'], { cwd: dir }),
      'ERR_SOURCE_SYMLINK_OUTSIDE',
    );
  });

  it('keeps symlinks inside PATH as symlinks', async () => {
    const dir = await makeProject();
    await mkdir(join(dir, 'models/v1'));
    await writeFile(join(dir, 'models/v1/model.bin'), 'm');
    await symlink('v1/model.bin', join(dir, 'models/current.bin'));
    await symlink('v1', join(dir, 'models/latest'));
    const r = await runCli(['pack', 'models', '--type', 'model', '--version', '1', '--compression', 'none'], {
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    const m = await readManifest(dir, 'model-1');
    expect(m.files.filter((f) => f.type === 'symlink')).toEqual([
      expect.objectContaining({ path: 'current.bin', target: 'v1/model.bin' }),
      expect.objectContaining({ path: 'latest', target: 'v1' }),
    ]);
    expect(m.summary.symlinks).toBe(2);
    const out = execFileSync('tar', ['-tvf', join(dir, 'dist/model-1.tar')]).toString();
    expect(out).toMatch(/^lrwxrwxrwx .* current\.bin -> v1\/model\.bin$/m);
    expect(out).toMatch(/^lrwxrwxrwx .* latest -> v1$/m);
    expect(listing(dir, 'model-1.tar', '-v').length).toBe(m.files.length);
  });

  it('an unreadable file, naming it (run as an unprivileged user, since root reads everything)', async () => {
    const dir = await makeProject();
    const secret = join(dir, 'models/secret.bin');
    await writeFile(secret, 'x');
    await chmod(secret, 0o000);
    const asRoot = process.getuid?.() === 0;
    const hasSetpriv = existsSync('/usr/bin/setpriv');
    if (asRoot && !hasSetpriv) return; // cannot drop privileges here; nothing to check as root
    if (asRoot) {
      // Hand the project to "nobody" (65534) and run the CLI as that user; the file stays root's and unreadable.
      execFileSync('chown', ['-R', '65534:65534', dir]);
      await chown(secret, 0, 0);
      for (let d = dirname(dir); d !== '/'; d = dirname(d)) await chmod(d, (await stat(d)).mode | 0o005);
    }
    const before = await state(dir);
    const cmd = asRoot
      ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI]
      : [process.execPath, CLI];
    const res = spawnSync(cmd[0]!, [...cmd.slice(1), 'pack', 'models', '--type', 'model', '--version', '1'], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1', HOME: '/tmp' },
    });
    const r = { code: res.status ?? -1, stdout: res.stdout.toString(), stderr: res.stderr.toString() };
    expect(expectUserError(r, 'ERR_SOURCE_UNREADABLE')).toBe(`Cannot read file ${secret}: permission denied`);
    await expectNothingWritten(dir, before);
  });

  it('an unreadable folder, naming it (run as an unprivileged user, since root reads everything)', async () => {
    if (process.getuid?.() === 0 && !existsSync('/usr/bin/setpriv')) return;
    const dir = await makeProject();
    const locked = join(dir, 'models/locked');
    await mkdir(locked);
    await writeFile(join(locked, 'x.bin'), 'x');
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      execFileSync('chown', ['-R', '65534:65534', dir]);
      await chown(locked, 0, 0);
      for (let d = dirname(dir); d !== '/'; d = dirname(d)) await chmod(d, (await stat(d)).mode | 0o005);
    }
    await chmod(locked, 0o700);
    const cmd = asRoot
      ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI]
      : [process.execPath, CLI];
    const res = spawnSync(cmd[0]!, [...cmd.slice(1), 'pack', 'models', '--type', 'model', '--version', '1'], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1', HOME: '/tmp' },
    });
    const r = { code: res.status ?? -1, stdout: res.stdout.toString(), stderr: res.stderr.toString() };
    expect(expectUserError(r, 'ERR_SOURCE_UNREADABLE')).toContain(locked);
  });
});
