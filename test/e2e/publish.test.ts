import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, runCli, runJson, tempDir } from '../helpers/cli.js';
import { expectUserError, leftovers } from '../helpers/expect-cli.js';
import { parseComponentManifestText } from '../../src/manifest/component.js';
import { parseReleaseManifestText } from '../../src/manifest/release.js';

afterAll(cleanupTempDirs);

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const R = '2024.01.20';
const COMPONENTS = [
  '--component',
  'model:1.0.0',
  '--component',
  'config:1.0.0',
  '--component',
  'runtime:3.10.0',
];

/** A project with the seed README's three components packed. */
async function packedProject(): Promise<string> {
  const dir = await makeProject();
  for (const [path, type, version] of [
    ['./models', 'model', '1.0.0'],
    ['./configs', 'config', '1.0.0'],
    ['./runtime', 'runtime', '3.10.0'],
  ] as const) {
    const r = await runCli(['pack', path, '--auto', '--type', type, '--version', version], { cwd: dir });
    if (r.code !== 0) throw new Error(r.stderr);
  }
  return dir;
}

const releaseState = async (dir: string): Promise<string[]> =>
  (await readdir(join(dir, 'deployment/releases'))).sort();

describe('publish --method filesystem', () => {
  it('writes the release folder (archives hard-linked, manifests, release.json) and R.release.json, and prints the next steps', async () => {
    const dir = await packedProject();
    const r = await runCli(
      [
        'publish',
        ...COMPONENTS,
        '--release-version',
        R,
        '--method',
        'filesystem',
        '--notes',
        'first release',
      ],
      {
        cwd: dir,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const rel = join(dir, 'deployment/releases', R);
    for (const [type, version] of [
      ['model', '1.0.0'],
      ['config', '1.0.0'],
      ['runtime', '3.10.0'],
    ]) {
      const archive = join(rel, type!, version!, `${type}-${version}.tar.zst`);
      const packed = join(dir, 'dist', `${type}-${version}.tar.zst`);
      const [a, p] = await Promise.all([stat(archive), stat(packed)]);
      expect(a.ino, `${archive} is a hard link of ${packed}`).toBe(p.ino);
      expect(a.nlink).toBeGreaterThanOrEqual(2);
      expect(await readFile(join(rel, type!, version!, `${type}-${version}.manifest.json`), 'utf8')).toBe(
        await readFile(join(dir, 'deployment/manifests', `${type}-${version}.manifest.json`), 'utf8'),
      );
    }
    const releaseJson = await readFile(join(rel, 'release.json'), 'utf8');
    expect(await readFile(join(dir, 'deployment/releases', `${R}.release.json`), 'utf8')).toBe(releaseJson);
    const m = parseReleaseManifestText(releaseJson, 'release.json');
    expect(m).toMatchObject({
      release: R,
      notes: 'first release',
      project: { name: 'test-project', type: 'algorithm' },
    });
    expect(m.components.map((c) => `${c.type}:${c.version}`)).toEqual([
      'model:1.0.0',
      'config:1.0.0',
      'runtime:3.10.0',
    ]);

    const lines = r.stdout.split('\n');
    expect(lines).toContain(`✓ Release created: ${R}`);
    expect(r.stdout).toMatch(
      new RegExp(`^✓ Published to: deployment/releases/${R}/ \\(.*; 3 hard-linked\\)$`, 'm'),
    );
    expect(lines).toContain(`   git add deployment/releases/${R}.release.json`);
    expect(lines).toContain(`   git commit -m "Release version ${R}"`);
    expect(lines).toContain('   git push');
    expect(lines).toContain(
      `   rsync -avz deployment/releases/${R}/ user@server:/opt/deployments/releases/${R}/`,
    );
    expect(lines).toContain(`   scp -r deployment/releases/${R}/ user@server:/opt/deployments/releases/`);
    expect(lines).toContain(`   cp -r deployment/releases/${R}/ /mnt/shared/deployments/releases/`);
    expect(lines).toContain(`   /opt/deployments/releases/${R}/`);
    expect(lines).toContain('  model/1.0.0/model-1.0.0.tar.zst');
  });

  it('the release folder alone is enough: copied elsewhere, every reference in it checks out', async () => {
    const dir = await packedProject();
    expect((await runCli(['publish', ...COMPONENTS, '--release-version', R], { cwd: dir })).code).toBe(0);
    const server = await tempDir('server-');
    execFileSync('cp', ['-r', join(dir, 'deployment/releases', R), server]);
    await rm(dir, { recursive: true, force: true }); // the project is gone; only the copy remains
    const root = join(server, R);
    const release = parseReleaseManifestText(
      await readFile(join(root, 'release.json'), 'utf8'),
      'release.json',
    );
    for (const c of release.components) {
      const manifestText = await readFile(join(root, c.manifest));
      expect(sha(manifestText)).toBe(c.manifestSha256);
      const manifest = parseComponentManifestText(manifestText.toString('utf8'), c.manifest);
      const archive = await readFile(join(root, c.archive));
      expect(archive.length).toBe(c.archiveSize);
      expect(sha(archive)).toBe(c.archiveSha256);
      expect(manifest.archive.sha256).toBe(c.archiveSha256);
      const out = await tempDir('extract-');
      execFileSync('tar', ['--zstd', '-xf', join(root, c.archive), '-C', out]);
      for (const f of manifest.files)
        if (f.type === 'file') expect(sha(await readFile(join(out, f.path))), f.path).toBe(f.sha256);
    }
  });

  it('records the project git commit in the release manifest', async () => {
    const dir = await tempDir('git-');
    expect((await runCli(['init', '--name', 'p', '--type', 'algorithm'], { cwd: dir })).code).toBe(0);
    await writeFile(join(dir, 'src/a.txt'), 'a');
    const git = (...a: string[]): string =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...a], { cwd: dir })
        .toString()
        .trim();
    git('add', '-A');
    git('commit', '-qm', 'init');
    expect((await runCli(['pack', 'src', '--type', 'code', '--version', '1'], { cwd: dir })).code).toBe(0);
    git('add', '-A');
    git('commit', '-qm', 'manifest');
    const r = await runJson<{ releaseManifestPath: string }>(
      ['publish', '--component', 'code:1', '--release-version', '1'],
      { cwd: dir },
    );
    expect(r.code, r.stderr).toBe(0);
    const m = parseReleaseManifestText(await readFile(r.json.releaseManifestPath, 'utf8'), 'r');
    expect(m.git).toEqual({ commit: git('rev-parse', 'HEAD'), dirty: false });
  });

  it('checks every manifest and archive first: a corrupt archive is a clear error and nothing is published', async () => {
    const dir = await packedProject();
    const archive = join(dir, 'dist/runtime-3.10.0.tar.zst');
    const bytes = await readFile(archive);
    const mid = Math.floor(bytes.length / 2);
    bytes[mid] = (bytes[mid] ?? 0) ^ 0x01;
    await writeFile(archive, bytes);
    const before = await releaseState(dir);
    const r = await runCli(['publish', ...COMPONENTS, '--release-version', R], { cwd: dir });
    const msg = expectUserError(r, 'ERR_ARCHIVE_CORRUPT');
    expect(msg).toContain('runtime:3.10.0');
    expect(msg).toContain(archive);
    expect(msg).toMatch(/sha256/);
    expect(r.stderr).toMatch(/^hint: .*pack it again/im);
    expect(await releaseState(dir)).toEqual(before);
    expect(existsSync(join(dir, 'deployment/releases', R))).toBe(false);
  });

  it('a truncated or missing archive, an unknown component and a broken manifest are clear errors', async () => {
    const dir = await packedProject();
    await truncate(join(dir, 'dist/config-1.0.0.tar.zst'), 10);
    expect(
      expectUserError(
        await runCli(['publish', '--component', 'config:1.0.0', '--release-version', R], { cwd: dir }),
        'ERR_ARCHIVE_CORRUPT',
      ),
    ).toMatch(/archive has 10 bytes, the manifest says/);
    await rm(join(dir, 'dist/model-1.0.0.tar.zst'));
    expect(
      expectUserError(
        await runCli(['publish', '--component', 'model:1.0.0', '--release-version', R], { cwd: dir }),
        'ERR_ARCHIVE_MISSING',
      ),
    ).toContain('model:1.0.0');
    expect(
      expectUserError(
        await runCli(['publish', '--component', 'model:9.9.9', '--release-version', R], { cwd: dir }),
        'ERR_COMPONENT_NOT_FOUND',
      ),
    ).toContain('model:9.9.9');
    await writeFile(join(dir, 'deployment/manifests/runtime-3.10.0.manifest.json'), '{"schemaVersion": 1,');
    expect(
      expectUserError(
        await runCli(['publish', '--component', 'runtime:3.10.0', '--release-version', R], { cwd: dir }),
        'ERR_MANIFEST_INVALID',
      ),
    ).toContain('runtime-3.10.0.manifest.json');
    expect(existsSync(join(dir, 'deployment/releases', R))).toBe(false);
    expect(await leftovers(dir)).toEqual([]);
  });

  it('published releases are immutable', async () => {
    const dir = await packedProject();
    const args = [
      'publish',
      '--component',
      'model:1.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      R,
    ];
    expect((await runCli(args, { cwd: dir })).code).toBe(0);
    const releaseJson = await readFile(join(dir, 'deployment/releases', R, 'release.json'), 'utf8');

    const same = await runCli(args, { cwd: dir });
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout).toContain(`Release ${R} is already published (identical); nothing changed`);

    const other = await runCli(['publish', '--component', 'model:1.0.0', '--release-version', R], {
      cwd: dir,
    });
    expect(expectUserError(other, 'ERR_RELEASE_EXISTS')).toContain(
      `Release ${R} is already published with different components`,
    );
    expect(other.stderr).toMatch(/hint: .*new --release-version/);

    // The same TYPE:VERSION re-packed with other content (--force) cannot slip into the published release.
    await writeFile(join(dir, 'models/vocab.json'), '{"changed": true}\n');
    expect(
      (await runCli(['pack', 'models', '--type', 'model', '--version', '1.0.0', '--force'], { cwd: dir }))
        .code,
    ).toBe(0);
    expectUserError(await runCli(args, { cwd: dir }), 'ERR_RELEASE_EXISTS');

    expect(await readFile(join(dir, 'deployment/releases', R, 'release.json'), 'utf8')).toBe(releaseJson);
    expect(await readFile(join(dir, 'deployment/releases', `${R}.release.json`), 'utf8')).toBe(releaseJson);
  });

  it('finishes a release whose earlier publish was interrupted, replacing a stale archive of the same size', async () => {
    const dir = await packedProject();
    const args = ['publish', '--component', 'config:1.0.0', '--release-version', R];
    expect((await runCli(args, { cwd: dir })).code).toBe(0);
    const rel = join(dir, 'deployment/releases', R);
    // Simulate an interrupted publish: no release.json yet, and a same-size archive with other bytes.
    await rm(join(rel, 'release.json'));
    await rm(join(dir, 'deployment/releases', `${R}.release.json`));
    const placed = join(rel, 'config/1.0.0/config-1.0.0.tar.zst');
    const good = await readFile(placed);
    await rm(placed);
    await writeFile(placed, Buffer.alloc(good.length, 0x55));
    const r = await runCli(args, { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(placed)).equals(good)).toBe(true);
    expect(existsSync(join(rel, 'release.json'))).toBe(true);
  });

  it('publishes components alone (no release) into deployment/components, immutably', async () => {
    const dir = await packedProject();
    const r = await runJson<{ release: unknown; publishedDir: string; components: { placedBy: string }[] }>(
      ['publish', '--component', 'model:1.0.0'],
      { cwd: dir },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.release ?? null).toBeNull();
    expect(r.json.publishedDir).toBe(join(dir, 'deployment/components'));
    expect(r.json.components[0]?.placedBy).toBe('link');
    expect(existsSync(join(dir, 'deployment/components/model/1.0.0/model-1.0.0.tar.zst'))).toBe(true);
    expect(existsSync(join(dir, 'deployment/components/model/1.0.0/model-1.0.0.manifest.json'))).toBe(true);
    expect(
      (await readdir(join(dir, 'deployment/releases'))).filter((n) => n.endsWith('.release.json')),
    ).toEqual([]);
    const text = await runCli(['publish', '--component', 'model:1.0.0'], { cwd: dir });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('✓ Published model:1.0.0 (no release)');
    expect(text.stdout).not.toContain('git add');
    await writeFile(join(dir, 'models/vocab.json'), '{"changed": true}\n');
    expect(
      (await runCli(['pack', 'models', '--type', 'model', '--version', '1.0.0', '--force'], { cwd: dir }))
        .code,
    ).toBe(0);
    const before = await readFile(
      join(dir, 'deployment/components/model/1.0.0/model-1.0.0.manifest.json'),
      'utf8',
    );
    expectUserError(
      await runCli(['publish', '--component', 'model:1.0.0'], { cwd: dir }),
      'ERR_COMPONENT_EXISTS',
    );
    expect(
      await readFile(join(dir, 'deployment/components/model/1.0.0/model-1.0.0.manifest.json'), 'utf8'),
    ).toBe(before);
  });

  it('usage errors: no component, a bad reference, a type twice, another method, a bad release version', async () => {
    const dir = await packedProject();
    expect(
      expectUserError(await runCli(['publish', '--release-version', R], { cwd: dir }), 'ERR_USAGE'),
    ).toContain('--component');
    expect(
      expectUserError(
        await runCli(['publish', '--component', 'model', '--release-version', R], { cwd: dir }),
        'ERR_USAGE',
      ),
    ).toContain('TYPE:VERSION');
    expect(
      expectUserError(
        await runCli(
          ['publish', '--component', 'model:1.0.0', '--component', 'model:1.0.0', '--release-version', R],
          { cwd: dir },
        ),
        'ERR_USAGE',
      ),
    ).toContain('given twice');
    expect(
      expectUserError(
        await runCli(['publish', '--component', 'model:1.0.0', '--release-version', R, '--method', 'ftp'], {
          cwd: dir,
        }),
        'ERR_USAGE',
      ),
    ).toContain('"ftp"');
    expectUserError(
      await runCli(['publish', '--component', 'model:1.0.0', '--release-version', '../x'], { cwd: dir }),
      'ERR_INVALID_VERSION',
    );
    expectUserError(
      await runCli(['publish', '--component', 'model:1.0.0', '--release-version'], { cwd: dir }),
      'ERR_USAGE',
    );
    expect(await releaseState(dir)).toEqual([]);
  });
});
