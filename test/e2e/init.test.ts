import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, runCli, runJson, tempDir } from '../helpers/cli.js';
import { expectUserError } from '../helpers/expect-cli.js';

afterAll(cleanupTempDirs);

const isDir = async (p: string): Promise<boolean> => existsSync(p) && (await readdir(p)) !== undefined;

describe('deploy-tool init', () => {
  it('creates the project layout of the seed README, a .gitignore and a git repository', async () => {
    const dir = await tempDir('init-');
    const r = await runCli(['init', '--name', 'my-ml-project', '--type', 'algorithm'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`Initialised deploy-tool project "my-ml-project" in ${dir}`);
    for (const d of [
      'deployment',
      'deployment/manifests',
      'deployment/releases',
      'deployment/package-configs',
      'src',
      'dist',
    ])
      expect(await isDir(join(dir, d)), d).toBe(true);
    const cfg = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    expect(cfg).toMatch(/^schema_version: 1$/m);
    expect(cfg).toContain('name: "my-ml-project"');
    expect(cfg).toContain('type: "algorithm"');
    const ignore = (await readFile(join(dir, '.gitignore'), 'utf8')).split('\n');
    expect(ignore).toContain('dist/');
    expect(ignore).toContain('deployment/releases/*/');
    // git: the repository exists and ignores exactly what the README says not to commit.
    expect(existsSync(join(dir, '.git'))).toBe(true);
    await mkdir(join(dir, 'deployment/releases/2024.01.20'), { recursive: true });
    await writeFile(join(dir, 'deployment/releases/2024.01.20/release.json'), '{}');
    await writeFile(join(dir, 'deployment/releases/2024.01.20.release.json'), '{}');
    await writeFile(join(dir, 'dist/model-1.0.0.tar.zst'), 'x');
    await writeFile(join(dir, 'deployment/manifests/model-1.0.0.manifest.json'), '{}');
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=all'], {
      cwd: dir,
    }).toString();
    expect(status).toContain('deployment/releases/2024.01.20.release.json');
    expect(status).toContain('deployment/manifests/model-1.0.0.manifest.json');
    expect(status).toContain('.deploy-tool.yaml');
    expect(status).not.toContain('dist/');
    expect(status).not.toContain('2024.01.20/release.json');
  });

  it('--no-git creates no repository', async () => {
    const dir = await tempDir('init-');
    const r = await runCli(['init', '--name', 'p', '--type', 'algorithm', '--no-git'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(dir, '.git'))).toBe(false);
    expect(r.stdout).not.toContain('git repository');
    expect(existsSync(join(dir, '.deploy-tool.yaml'))).toBe(true);
  });

  it('refuses to re-initialise an existing project without --force', async () => {
    const dir = await makeProject();
    const before = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    const r = await runCli(['init', '--name', 'other', '--type', 'algorithm', '--no-git'], { cwd: dir });
    const msg = expectUserError(r, 'ERR_PROJECT_EXISTS');
    expect(msg).toContain(dir);
    expect(r.stderr).toMatch(/hint: .*--force/);
    expect(await readFile(join(dir, '.deploy-tool.yaml'), 'utf8')).toBe(before);
  });

  it('--force never overwrites user files and restores missing folders', async () => {
    const dir = await makeProject();
    const myConfig = `${await readFile(join(dir, '.deploy-tool.yaml'), 'utf8')}# my edit\n`;
    await writeFile(join(dir, '.deploy-tool.yaml'), myConfig);
    await writeFile(join(dir, '.gitignore'), 'my-own-rules/\n');
    await writeFile(join(dir, 'deployment/package-configs/model.yaml'), 'mine\n');
    await writeFile(join(dir, 'deployment/manifests/.gitkeep'), 'user content in gitkeep\n');
    await writeFile(join(dir, 'src/train.py'), 'print(1)\n');
    await rm(join(dir, 'dist'), { recursive: true });
    const r = await runCli(['init', '--name', 'renamed', '--type', 'service', '--force', '--no-git'], {
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(dir, '.deploy-tool.yaml'), 'utf8')).toBe(myConfig);
    expect(await readFile(join(dir, '.gitignore'), 'utf8')).toBe('my-own-rules/\n');
    expect(await readFile(join(dir, 'deployment/package-configs/model.yaml'), 'utf8')).toBe('mine\n');
    expect(await readFile(join(dir, 'deployment/manifests/.gitkeep'), 'utf8')).toBe(
      'user content in gitkeep\n',
    );
    expect(await readFile(join(dir, 'src/train.py'), 'utf8')).toBe('print(1)\n');
    expect(await isDir(join(dir, 'dist'))).toBe(true);
    expect(r.stdout).toMatch(/kept +\.deploy-tool\.yaml \(already there\)/);
    expect(r.stdout).toMatch(/kept +\.gitignore/);
    expect(r.stdout).toMatch(/created dist/);
  });

  it('--project-root initialises another folder', async () => {
    const dir = await tempDir('init-');
    const r = await runJson<{ ok: boolean; root: string }>(
      ['init', '--name', 'p', '--type', 'algorithm', '--no-git', '--project-root', 'sub/proj'],
      { cwd: dir },
    );
    expect(r.code).toBe(0);
    expect(r.json.root).toBe(join(dir, 'sub/proj'));
    expect(existsSync(join(dir, 'sub/proj/.deploy-tool.yaml'))).toBe(true);
    expect(existsSync(join(dir, '.deploy-tool.yaml'))).toBe(false);
  });

  it('validates the name and type', async () => {
    const dir = await tempDir('init-');
    expectUserError(
      await runCli(['init', '--name', 'bad name', '--type', 'algorithm'], { cwd: dir }),
      'ERR_INVALID_NAME',
    );
    expectUserError(
      await runCli(['init', '--name', 'p', '--type', '../x'], { cwd: dir }),
      'ERR_INVALID_NAME',
    );
    expect(existsSync(join(dir, '.deploy-tool.yaml'))).toBe(false);
  });

  it('needs --name and --type (usage error)', async () => {
    const dir = await tempDir('init-');
    expect(
      expectUserError(await runCli(['init', '--type', 'algorithm'], { cwd: dir }), 'ERR_USAGE'),
    ).toContain('--name');
    expect(expectUserError(await runCli(['init', '--name', 'p'], { cwd: dir }), 'ERR_USAGE')).toContain(
      '--type',
    );
  });
});

describe('project root discovery', () => {
  it('works from a subfolder: paths are relative to where the command runs', async () => {
    const dir = await makeProject();
    const sub = join(dir, 'src', 'deep');
    await mkdir(sub, { recursive: true });
    const r = await runJson<{ manifestPath: string; archivePath: string }>(
      ['pack', '../../models', '--type', 'model', '--version', '1.0.0'],
      { cwd: sub },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.manifestPath).toBe(join(dir, 'deployment/manifests/model-1.0.0.manifest.json'));
    expect(r.json.archivePath).toBe(join(dir, 'dist/model-1.0.0.tar.zst'));
    const list = await runJson<{ components: { type: string }[] }>(['component', 'list'], { cwd: sub });
    expect(list.json.components.map((c) => c.type)).toEqual(['model']);
  });

  it('--project-root works from outside the project', async () => {
    const dir = await makeProject();
    const elsewhere = await tempDir('outside-');
    const r = await runJson<{ archivePath: string }>(
      ['pack', join(dir, 'configs'), '--type', 'config', '--version', '1', '--project-root', dir],
      { cwd: elsewhere },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.archivePath).toBe(join(dir, 'dist/config-1.tar.zst'));
    // Before the command word too (the CLI loads only the command named after it).
    const listed = await runJson<{ components: { type: string }[] }>(
      ['--project-root', dir, 'component', 'list'],
      { cwd: elsewhere },
    );
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.json.components.map((c) => c.type)).toEqual(['config']);
  });

  it('fails outside a project with "Project root not found" and the hint to init or pass --project-root', async () => {
    const outside = await tempDir('outside-');
    for (const args of [
      ['pack', '.', '--type', 'model', '--version', '1'],
      ['publish', '--component', 'model:1', '--release-version', '1'],
      ['component', 'list'],
      ['release', 'list'],
    ]) {
      const r = await runCli(args, { cwd: outside });
      expect(expectUserError(r, 'ERR_PROJECT_NOT_FOUND')).toMatch(/^Project root not found/);
      expect(r.stderr).toMatch(/^hint: .*deploy-tool init.*--project-root/m);
    }
  });

  it('fails when --project-root is not a project', async () => {
    const outside = await tempDir('outside-');
    const r = await runCli(['component', 'list', '--project-root', outside], { cwd: outside });
    expect(expectUserError(r, 'ERR_PROJECT_NOT_FOUND')).toContain(outside);
  });

  it('reports a broken .deploy-tool.yaml as a config error naming the file', async () => {
    const dir = await makeProject();
    await writeFile(join(dir, '.deploy-tool.yaml'), 'schema_version: 1\nproject: [\n');
    const msg = expectUserError(await runCli(['component', 'list'], { cwd: dir }), 'ERR_CONFIG_INVALID');
    expect(msg).toContain(join(dir, '.deploy-tool.yaml'));
  });

  it('refuses a credential in .deploy-tool.yaml', async () => {
    const dir = await makeProject();
    const cfg = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    await writeFile(join(dir, '.deploy-tool.yaml'), `${cfg}secret_access_key: AKIAABCDEFGH\n`);
    const r = await runCli(['component', 'list'], { cwd: dir });
    expect(expectUserError(r, 'ERR_CONFIG_SECRET')).toContain('secret_access_key');
    expect(r.stderr).not.toContain('AKIAABCDEFGH');
  });

  it('warns about unknown keys in .deploy-tool.yaml and carries on', async () => {
    const dir = await makeProject();
    const cfg = await readFile(join(dir, '.deploy-tool.yaml'), 'utf8');
    await writeFile(join(dir, '.deploy-tool.yaml'), `${cfg}colour: blue\n`);
    const r = await runCli(['pack', 'configs', '--type', 'config', '--version', '1'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^warning: .*unknown key "colour" ignored/m);
  });
});
