/**
 * `npm run demo` is `npm run build && node scripts/demo.mjs`; the tests run after the build, so this
 * runs the second half as written and checks that it ends with a deployed, verified target.
 */
import { spawn } from 'node:child_process';
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, REPO, runJson, tempDir } from '../helpers/cli.js';

afterAll(cleanupTempDirs);

function runDemo(tmp: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // TMPDIR puts the demo's folder under the test's temporary folder; DEMO_KEEP=1 keeps it to inspect.
    const child = spawn(process.execPath, ['scripts/demo.mjs'], {
      cwd: REPO,
      env: { ...process.env, NO_COLOR: '1', TMPDIR: tmp, DEMO_KEEP: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 280_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npm run demo', () => {
  it('runs init, pack, publish, deploy, switch, rollback, verify and status, and leaves a verified target', async () => {
    const tmp = await tempDir('demo-');
    const r = await runDemo(tmp);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).not.toContain('demo failed');
    const work = /Demo finished\. Everything is in (\S+)/.exec(r.stdout)?.[1];
    expect(work, r.stdout).toBeDefined();
    expect(work?.startsWith(tmp)).toBe(true);
    // Every step of the demo ran (the deploy part only runs when the CLI has `deploy`).
    for (const cmd of [
      'init',
      'pack ./models',
      'publish',
      'deploy --release 2024.01.20',
      'version switch 2024.01.20',
      'version rollback',
      'verify --target',
      'status --target',
    ])
      expect(r.stdout).toContain(`$ deploy-tool ${cmd}`);
    // What the demo's verify printed: the current release, every file re-hashed, no differences.
    const verifyOut = r.stdout.slice(r.stdout.indexOf('$ deploy-tool verify --target'));
    expect(verifyOut).toMatch(
      /Release 2024\.01\.21 \(current\) on \S+: \d+ files, .* verified, no differences/,
    );
    // And the target it left is intact when checked again here.
    const target = join(work!, 'server', 'ml-apps', 'my-project');
    const v = await runJson<{
      ok: boolean;
      release: string;
      current: boolean;
      files: number;
      problems: unknown[];
    }>(['verify', '--target', target], { cwd: tmp });
    expect(v.code).toBe(0);
    expect(v.json).toMatchObject({ ok: true, current: true, problems: [] });
    expect(v.json.files).toBeGreaterThanOrEqual(5);
    // The rollback after "switch 2024.01.20" returned to 2024.01.21, whose config is 1.1.0.
    expect(v.json.release).toBe('2024.01.21');
    expect(await readlink(join(target, 'current'))).toBe('releases/2024.01.21');
    expect((await readdir(join(target, 'releases'))).sort()).toEqual(['2024.01.20', '2024.01.21']);
  }, 300_000);
});
