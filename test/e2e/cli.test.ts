/**
 * Global behaviour of the CLI: --version, --help on every command, exit codes, --json, --quiet,
 * --verbose, NO_COLOR, and the error format.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO, cleanupTempDirs, makeProject, runCli, tempDir } from '../helpers/cli.js';
import { expectUserError } from '../helpers/expect-cli.js';

afterAll(cleanupTempDirs);

/** Subcommand names listed under "Commands:" in a help text. */
function commandsIn(help: string): string[] {
  const at = help.indexOf('\nCommands:\n');
  if (at < 0) return [];
  return help
    .slice(at + '\nCommands:\n'.length)
    .split('\n')
    .filter((l) => /^ {2}\S/.test(l))
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n && n !== 'help');
}

/** Runs the CLI in a pseudo-terminal (so that colors would be used), with the given environment. */
function runInTty(args: string[], cwd: string, env: Record<string, string | undefined>): string {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const base = { ...process.env };
  delete base.NO_COLOR;
  delete base.FORCE_COLOR;
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd, env: { ...base, ...env } });
  return r.stdout.toString();
}

describe('--version and --help', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version'], { cwd: REPO });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('--help works on every command and lists the global flags on each', async () => {
    const dir = await tempDir('help-');
    const top = await runCli(['--help'], { cwd: dir });
    expect(top.code).toBe(0);
    const seen: string[] = [];
    let level = commandsIn(top.stdout).map((c) => [c]);
    expect(level.map((q) => q[0])).toEqual(
      expect.arrayContaining(['init', 'pack', 'publish', 'component', 'release']),
    );
    while (level.length) {
      const next: string[][] = [];
      const results = await Promise.all(level.map((path) => runCli([...path, '--help'], { cwd: dir })));
      results.forEach((r, i) => {
        const path = level[i]!;
        expect(r.code, `${path.join(' ')} --help: ${r.stderr}`).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^Usage: deploy-tool ${path.join(' ')} `));
        const subs = commandsIn(r.stdout);
        if (subs.length) for (const s of subs) next.push([...path, s]);
        else {
          seen.push(path.join(' '));
          for (const flag of ['--project-root', '--verbose', '--quiet', '--json', '--no-color'])
            expect(r.stdout, `${path.join(' ')} --help`).toContain(flag);
        }
      });
      level = next;
    }
    expect(seen).toEqual(
      expect.arrayContaining(['init', 'pack', 'publish', 'component list', 'release list']),
    );
  });

  it('pack --help documents every flag of the issue', async () => {
    const r = await runCli(['pack', '--help'], { cwd: REPO });
    for (const flag of [
      '--type',
      '--version',
      '--auto',
      '--compression',
      '--level',
      '--exclude',
      '--include',
      '--force',
    ])
      expect(r.stdout).toContain(flag);
  });
});

describe('exit codes and the error format', () => {
  it('0 on success, 1 on failure, 2 on usage errors, each usage error coded with a hint', async () => {
    const dir = await makeProject();
    expect((await runCli(['component', 'list'], { cwd: dir })).code).toBe(0);
    expectUserError(
      await runCli(['pack', 'missing', '--type', 'm', '--version', '1'], { cwd: dir }),
      'ERR_SOURCE_NOT_FOUND',
      1,
    );
    for (const args of [
      ['pack', 'models', '--type', 'model'], // missing required flag
      ['pack', '--type', 'model', '--version', '1'], // missing argument
      ['pack', 'models', '--type', 'model', '--version', '1', '--bogus'], // unknown option
      ['frobnicate'], // unknown command
      ['pack', 'models', '--type', 'model', '--version', '1', '--level', 'x'], // bad value
      ['publish', '--component'], // option without its value
    ]) {
      const r = await runCli(args, { cwd: dir });
      expectUserError(r, 'ERR_USAGE', 2);
    }
  });

  it('prints a stack trace only with --verbose', async () => {
    const dir = await makeProject();
    const quiet = await runCli(['pack', 'missing', '--type', 'm', '--version', '1'], { cwd: dir });
    expect(quiet.stderr).not.toMatch(/^\s+at /m);
    const verbose = await runCli(['pack', 'missing', '--type', 'm', '--version', '1', '--verbose'], {
      cwd: dir,
    });
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(/^error \[ERR_SOURCE_NOT_FOUND\]: /m);
    expect(verbose.stderr).toMatch(/^hint: /m);
    expect(verbose.stderr).toMatch(/^\s+at .*scan/m);
  });
});

describe('--json', () => {
  it('prints exactly one JSON document on stdout for every command, on success and on failure', async () => {
    const dir = await tempDir('json-');
    const cases: [string[], number][] = [
      [['init', '--name', 'p', '--type', 'algorithm', '--no-git'], 0],
      [['pack', 'missing-folder', '--type', 'model', '--version', '1'], 1],
      [['component', 'list'], 0],
      [['release', 'list'], 0],
      [['publish', '--component', 'model:1', '--release-version', 'r1'], 1],
      [['pack', '--type', 'model'], 2],
    ];
    for (const [args, code] of cases) {
      const r = await runCli([...args, '--json'], { cwd: dir });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      const doc = JSON.parse(r.stdout) as {
        ok: boolean;
        error?: { code: string; message: string; hint: string | null };
      };
      expect(doc.ok).toBe(code === 0);
      if (code !== 0) {
        expect(doc.error?.code).toMatch(/^ERR_[A-Z_]+$/);
        expect(doc.error?.message).toBeTruthy();
        expect(doc.error?.hint).toBeTruthy();
      }
    }
  });

  it('pack and publish results are complete JSON with no human text mixed in', async () => {
    const dir = await makeProject();
    const pack = await runCli(['pack', 'models', '--type', 'model', '--version', '1', '--json'], {
      cwd: dir,
    });
    expect(pack.stderr).toBe('');
    expect(JSON.parse(pack.stdout)).toMatchObject({ ok: true, status: 'packed', files: 2 });
    const pub = await runCli(['publish', '--component', 'model:1', '--release-version', 'r1', '--json'], {
      cwd: dir,
    });
    expect(pub.stderr).toBe('');
    expect(JSON.parse(pub.stdout)).toMatchObject({ ok: true, status: 'published', release: 'r1' });
  });
});

describe('--quiet and --verbose', () => {
  it('--quiet prints nothing on success and still prints errors', async () => {
    const dir = await tempDir('quiet-');
    const init = await runCli(['init', '--name', 'p', '--type', 'a', '--no-git', '--quiet'], { cwd: dir });
    expect(init).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const fail = await runCli(['pack', 'nope', '--type', 'm', '--version', '1', '-q'], { cwd: dir });
    expectUserError(fail, 'ERR_SOURCE_NOT_FOUND');
    const project = await makeProject();
    const pack = await runCli(['pack', 'models', '--type', 'model', '--version', '1', '-q'], {
      cwd: project,
    });
    expect(pack).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const pub = await runCli(['publish', '--component', 'model:1', '--release-version', 'r', '-q'], {
      cwd: project,
    });
    expect(pub).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('--verbose shows the steps on stderr and leaves stdout as without it', async () => {
    const dir = await makeProject();
    const r = await runCli(['pack', 'models', '--type', 'model', '--version', '1', '--verbose'], {
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^· +\d+ ms {2}scanning .*models$/m);
    expect(r.stderr).toMatch(/^· +\d+ ms {2}found 2 files/m);
    expect(r.stdout).toContain('✓ Generating manifest: deployment/manifests/model-1.manifest.json');
    const pub = await runCli(['publish', '--component', 'model:1', '--release-version', 'r', '-v'], {
      cwd: dir,
    });
    expect(pub.stderr).toMatch(/^· +\d+ ms {2}verifying .*model-1\.tar\.zst$/m);
  });
});

describe('colors', () => {
  it('are used on a terminal, and turned off by NO_COLOR or --no-color', async () => {
    const dir = await makeProject();
    const esc = '\u001b[';
    // SGR foreground colors (progress bars may still move the cursor; that is not color).
    // eslint-disable-next-line no-control-regex
    const color = /\u001b\[(?:3[0-7]|9[0-7]|38;[0-9;]+)m/;
    const colored = runInTty(['component', 'list'], dir, {});
    const failColored = runInTty(['pack', 'nope', '--type', 'm', '--version', '1'], dir, {});
    expect(failColored).toContain(`${esc}31merror${esc}0m [ERR_SOURCE_NOT_FOUND]`);
    expect(colored).not.toMatch(color); // a plain table has nothing to color
    const ok = runInTty(['pack', 'configs', '--type', 'config', '--version', '1'], dir, {});
    expect(ok).toContain(`${esc}32m✓${esc}0m`);
    const noColorEnv = runInTty(['pack', 'configs', '--type', 'config', '--version', '1'], dir, {
      NO_COLOR: '1',
    });
    expect(noColorEnv).toContain('✓');
    expect(noColorEnv).not.toMatch(color);
    const noColorFlag = runInTty(['pack', 'nope', '--type', 'm', '--version', '1', '--no-color'], dir, {});
    expect(noColorFlag).toContain('error [ERR_SOURCE_NOT_FOUND]');
    expect(noColorFlag).not.toMatch(color);
    const noColorFirst = runInTty(['--no-color', 'pack', 'nope', '--type', 'm', '--version', '1'], dir, {});
    expect(noColorFirst).toContain('error [ERR_SOURCE_NOT_FOUND]');
    expect(noColorFirst).not.toMatch(color);
  });
});
