/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents from the CLI */
/**
 * kill -9 of the CLI 64 times during deploy, switch and rollback, always after it took the target
 * lock (so inside the critical section, not during node's start-up): two thirds at a random time
 * after the lock, one third exactly at a named phase through the test-only DEPLOY_TOOL_TEST_PAUSE_AT
 * hook (src/deploy/session.ts). Afterwards the target resolves to the complete old or the complete
 * new release, `verify` passes, the next run takes over the dead process's lock, and the next
 * deploy cleans every leftover (staging, trash, temporary links).
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
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

/** What one killed (or not) run of the CLI saw. */
interface Run {
  pid: number;
  /** SIGKILL was sent while the process was running. */
  killed: boolean;
  code: number | null;
  stderr: string;
  /** ms from the "lock taken" line (--verbose) to the exit, when it was seen. */
  afterLockMs: number | undefined;
}

/**
 * Runs the CLI with --verbose and kills it -9 only once it has taken the target lock (never during
 * node's start-up): `afterLockMs` after the "lock taken" line, or as soon as it reports that it
 * paused at `pauseAt` (the test-only DEPLOY_TOOL_TEST_PAUSE_AT hook of src/deploy/session.ts).
 */
function runAndKill(
  args: string[],
  cwd: string,
  when: { afterLockMs: number } | { pauseAt: string } | { never: true },
): Promise<Run> {
  return new Promise((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1' };
    delete env.DEPLOY_TOOL_TEST_PAUSE_AT;
    if ('pauseAt' in when) env.DEPLOY_TOOL_TEST_PAUSE_AT = when.pauseAt;
    const child = spawn(process.execPath, [CLI, ...args, '--verbose'], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
      env,
    });
    let killed = false;
    let stderr = '';
    let lockedAt: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) killed = child.kill('SIGKILL');
    };
    // A run that never reaches its kill point (a bug) must not hang the test.
    const guard = setTimeout(kill, 60_000);
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (lockedAt === undefined && stderr.includes('lock taken: ')) {
        lockedAt = Date.now();
        if ('afterLockMs' in when) timer = setTimeout(kill, when.afterLockMs);
      }
      if ('pauseAt' in when && stderr.includes(`test pause at ${when.pauseAt}`)) kill();
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      clearTimeout(guard);
      resolve({
        pid: child.pid ?? -1,
        killed,
        code,
        stderr,
        afterLockMs: lockedAt === undefined ? undefined : Date.now() - lockedAt,
      });
    });
  });
}

/** The pid in the target's lock file, if there is one (left there by a process killed holding it). */
async function lockPid(target: string): Promise<number | undefined> {
  const text = await readFile(join(target, '.deploy-tool', 'lock'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return (JSON.parse(text) as { pid?: number }).pid;
  } catch {
    return -1; // a lock file being written when the process died
  }
}

/** Phases of the test-only pause hook; `staged` needs a deploy that extracts, `switched-back` a failing health check. */
const PHASES = ['locked', 'staged', 'before-switch', 'switched', 'activated', 'switched-back'] as const;
const TAKEOVER = 'taking over the lock of a process that is gone';

describe('kill -9 at random points', () => {
  it('64 kill -9s inside deploy, switch and rollback (after the lock) leave a complete release each time', async () => {
    const target = join(await tempDir('crash-'), 'target');
    const common = ['--target', target, '--releases-dir', f.releases];
    const first = await runCli(['deploy', '--release', '2024.01.19', ...common], { cwd: f.project });
    expect(first.code, first.stderr).toBe(0);
    // How long a deploy that extracts, and a switch, take here once the lock is taken: the random
    // kills are spread over that span (start-up time does not count, kills wait for the lock).
    const never = { never: true } as const;
    const probe = await runAndKill(
      ['deploy', '--release', '2024.02.01', ...common, '--keep', '1'],
      f.project,
      never,
    );
    expect(probe.code, probe.stderr).toBe(0);
    const sw = await runAndKill(['version', 'switch', '2024.01.19', '--target', target], f.project, never);
    expect(sw.code, sw.stderr).toBe(0);
    const span = { extract: probe.afterLockMs!, switch: sw.afterLockMs! };
    expect(span.extract).toBeGreaterThan(0);
    const rand = rng(20240120);
    const names = Object.keys(RELEASES);
    let killed = 0;
    let heldLock = 0;
    let previousHeld = false;
    let tookOver = 0;
    const paused: Record<string, number> = {};
    let nextPhase = 0;
    for (let i = 0; i < 64; i++) {
      let current = (await readlink(join(target, 'current'))).replace('releases/', '');
      let kept = await readdir(join(target, 'releases'));
      if (
        i % 3 === 2 &&
        PHASES[nextPhase % PHASES.length] === 'staged' &&
        names.every((n) => kept.includes(n))
      ) {
        // `staged` needs a release the target does not hold: one successful deploy with --keep 1
        // removes the release that is neither current nor the rollback target (no kill here).
        const target2 = names.find((n) => n !== current)!;
        const room = await runCli(['deploy', '--release', target2, ...common, '--keep', '1'], {
          cwd: f.project,
        });
        expect(room.code, room.stderr).toBe(0);
        if (previousHeld) {
          expect(room.stderr, `iteration ${i}: the previous run's lock was not taken over`).toContain(
            TAKEOVER,
          );
          tookOver++;
          previousHeld = false;
        }
        current = (await readlink(join(target, 'current'))).replace('releases/', '');
        kept = await readdir(join(target, 'releases'));
      }
      let other = names.filter((n) => n !== current)[Math.floor(rand() * 2)] ?? names[0]!;
      const op = rand();
      // Every third run pauses at a named phase and is killed there; the others are killed at a
      // random time after the lock was taken. `staged` needs a release that is not on the target
      // yet; when every one is (interrupted ones stay until a successful deploy's retention), it
      // waits for the next pause. A phase that was not reached (say, a rollback with no rollback
      // target) is tried again at the next pause.
      const fresh = names.filter((n) => n !== current && !kept.includes(n));
      let phase: (typeof PHASES)[number] | undefined;
      let scheduled = false;
      if (i % 3 === 2) {
        phase = PHASES[nextPhase % PHASES.length]!;
        if (phase === 'staged' && !fresh.length) phase = 'locked';
        else scheduled = true;
      }
      if (phase === 'staged' && fresh.length) other = fresh[0]!;
      let args =
        phase === 'staged' || phase === 'switched-back' || op < 0.6 || !kept.includes(other)
          ? ['deploy', '--release', other, ...common, '--keep', '1']
          : op < 0.8
            ? ['version', 'switch', other, '--target', target]
            : ['version', 'rollback', '--target', target];
      if (phase === 'switched-back') args = [...args, '--health-check', 'false'];
      const kind = args[0] === 'deploy' && !kept.includes(other) ? 'extract' : 'switch';
      const r = await runAndKill(
        args,
        f.project,
        phase ? { pauseAt: phase } : { afterLockMs: Math.floor(span[kind] * rand() * 0.9) },
      );
      if (!r.killed && r.afterLockMs !== undefined && !phase)
        span[kind] = Math.min(span[kind], r.afterLockMs);
      if (r.killed) killed++;
      if (phase && r.killed) paused[phase] = (paused[phase] ?? 0) + 1;
      if (scheduled && r.killed) nextPhase++;
      // The run after one killed holding the lock must report taking it over.
      if (previousHeld) {
        expect(r.stderr, `iteration ${i}: the previous run's lock was not taken over`).toContain(TAKEOVER);
        tookOver++;
      }
      // Killed inside the critical section: its lock is still there, naming it.
      previousHeld = r.killed && (await lockPid(target)) === r.pid;
      if (previousHeld) heldLock++;
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
    // At least 50 kills landed while the lock was held (not during start-up or after the end), and
    // every phase of the pause hook was reached and killed in at least once.
    expect(heldLock, JSON.stringify({ killed, heldLock, paused })).toBeGreaterThanOrEqual(50);
    for (const p of PHASES) expect(paused[p] ?? 0, `phase ${p}`).toBeGreaterThanOrEqual(1);
    // The next deploy cleans every leftover.
    const next = await runCli(['deploy', '--release', '2024.01.20', ...common, '--keep', '1'], {
      cwd: f.project,
    });
    expect(next.code, next.stderr).toBe(0);
    if (previousHeld) {
      expect(next.stderr).toContain(TAKEOVER);
      tookOver++;
    }
    expect(tookOver).toBe(heldLock);
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
