/**
 * A locked session on a target: creates the target's folders, takes the lock, reads the state,
 * cleans what an interrupted run left, and runs the activation (hooks, switch, health check,
 * automatic switch back) shared by deploy, version switch and version rollback.
 */
import { lstat, mkdir } from 'node:fs/promises';
import { sep } from 'node:path';
import type { ProjectConfig } from '../core/config.js';
import { DeployToolError, errnoCode, fsError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { pruneTypeLinks, recover, switchTo, unsetCurrent } from './engine.js';
import { hookError, hookFailed, runHook, type HookName, type HookOutput, type HookResult } from './hooks.js';
import { readTargetRelease, targetPaths, type TargetPaths } from './layout.js';
import { acquireLock, type HeldLock } from './lock.js';
import { finishHistory, readState, writeState, type HistoryEntry, type TargetState } from './state.js';

export interface SessionOptions extends Reporter {
  root: string;
  command: string;
  wait?: boolean | undefined;
}

export interface Session {
  t: TargetPaths;
  state: TargetState;
  lock: HeldLock;
  cleaned: string[];
  save(): Promise<void>;
  close(): Promise<void>;
}

/**
 * mkdir -p that reports the real cause: Node's recursive mkdir says ENOENT when a parent is on a
 * read-only filesystem, so on failure each level is created on its own to surface EROFS/EACCES.
 */
async function mkdirp(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    const parts = dir.split(sep);
    for (let i = 2; i <= parts.length; i++) {
      await mkdir(parts.slice(0, i).join(sep)).catch((e: unknown) => {
        if (errnoCode(e) !== 'EEXIST') throw e;
      });
    }
  }
}

/**
 * TEST-ONLY hook, not a user feature: when the environment variable DEPLOY_TOOL_TEST_PAUSE_AT names
 * `phase`, logs "test pause at PHASE" (seen with --verbose) and then waits for an hour, so that
 * test/e2e/crash.test.ts can kill -9 the CLI exactly inside a critical window instead of at a random
 * time. Phases: `locked` (lock just taken, before recovery), `staged` (release recorded as staged, its
 * folder not yet renamed into releases/), `before-switch` (after pre_deploy), `switched` (current
 * renamed, state.json not yet updated), `activated` (before post_deploy/post_rollback and the health
 * check; the state is saved first when either is configured), `switched-back` (after an automatic switch back, before state.json records
 * it). Unset, it costs one environment lookup.
 */
export async function testPause(phase: string, log?: (m: string) => void): Promise<void> {
  if (process.env.DEPLOY_TOOL_TEST_PAUSE_AT !== phase) return;
  log?.(`test pause at ${phase}`);
  await new Promise((resolve) => setTimeout(resolve, 3_600_000));
}

export async function openSession(o: SessionOptions): Promise<Session> {
  const t = targetPaths(o.root);
  try {
    await mkdirp(t.meta);
    await mkdirp(t.releases);
  } catch (err) {
    const e = fsError(err, t.meta, 'create');
    if (e instanceof DeployToolError) throw e;
    throw new DeployToolError(
      'ERR_TARGET_INVALID',
      `Cannot use ${o.root} as a deploy target: ${(err as Error).message}`,
      {
        hint: 'Pass a folder (it is created if missing) that is not a file.',
        cause: err,
      },
    );
  }
  const lock = await acquireLock({
    path: t.lock,
    command: o.command,
    wait: o.wait,
    onWarning: o.onWarning,
    onLog: o.onLog,
  });
  o.onLog?.(`lock taken: ${t.lock}`);
  try {
    await testPause('locked', o.onLog);
    const existed = await lstat(t.state).then(
      () => true,
      () => false,
    );
    const state = await readState(t.state);
    const save = (): Promise<void> => writeState(t.state, state);
    const before = JSON.stringify(state);
    const cleaned = await recover(t, state, o.onLog);
    // Written when recovery changed something (else the state on disk already says the same).
    if (!existed || JSON.stringify(state) !== before) await save();
    return { t, state, lock, cleaned, save, close: () => lock.release() };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

export interface HookSettings {
  config: ProjectConfig | undefined;
  healthCheck?: string | undefined;
  onHookOutput?: ((o: HookOutput) => void) | undefined;
}

export type HookSummary = Omit<HookResult, 'output'> & { ok: boolean };
const summary = (r: HookResult): HookSummary => ({
  hook: r.hook,
  command: r.command,
  exitCode: r.exitCode,
  signal: r.signal,
  timedOut: r.timedOut,
  ms: r.ms,
  ok: !hookFailed(r),
});

export interface ActivateResult {
  hooks: HookSummary[];
  healthCheck: HookSummary | null;
}

/**
 * Makes `release` current with the hooks around it: pre_deploy, the switch, post_deploy (or
 * post_rollback for a rollback), then the health check. If post_deploy or the health check fails,
 * switches back to the previous release (none: removes `current`), marks the release failed, runs
 * post_rollback and throws.
 */
export async function activate(
  s: Session,
  release: string,
  entry: HistoryEntry,
  h: HookSettings & Reporter,
): Promise<ActivateResult> {
  const { t, state } = s;
  const rec = state.releases[release];
  const stored = await readTargetRelease(t, release);
  if (!rec || !stored) throw new Error(`internal: release ${release} has no record`);
  const types = stored.components.map((c) => c.type);
  const previous = state.current;
  const hooks: HookSummary[] = [];
  // The hook environment describes the target at the time the hook runs (docs/formats.md, Hooks):
  // DEPLOY_TOOL_RELEASE is the release current then (for pre_deploy, the one about to be), and
  // DEPLOY_TOOL_PREVIOUS_RELEASE the one current before the last switch. After an automatic switch
  // back, post_rollback sees the restored release as RELEASE and the failed one as FAILED_RELEASE.
  let env: Record<string, string> = {
    DEPLOY_TOOL_TARGET: t.root,
    DEPLOY_TOOL_RELEASE: release,
    DEPLOY_TOOL_PREVIOUS_RELEASE: previous ?? '',
    DEPLOY_TOOL_FAILED_RELEASE: '',
    DEPLOY_TOOL_ACTION: entry.action,
  };
  const timeout = h.config?.hooks?.timeout ?? 300;
  const run = async (
    hook: HookName,
    command: string | undefined,
    seconds = timeout,
  ): Promise<HookResult | undefined> => {
    if (!command) return undefined;
    h.onLog?.(`running ${hook}: ${command}`);
    const r = await runHook({
      hook,
      command,
      cwd: t.root,
      timeoutSeconds: seconds,
      env,
      onOutput: h.onHookOutput,
    });
    h.onLog?.(`${hook} ${hookFailed(r) ? 'failed' : 'passed'} (${r.ms} ms)`);
    hooks.push(summary(r));
    return r;
  };

  const pre = await run('pre_deploy', h.config?.hooks?.pre_deploy);
  if (pre && hookFailed(pre)) throw hookError(pre, `release ${release} was not switched to`);

  await testPause('before-switch', h.onLog);
  const t0 = performance.now();
  await switchTo(t, release, types, h.onLog);
  h.onLog?.(`switch took ${(performance.now() - t0).toFixed(1)} ms`);
  await testPause('switched', h.onLog);
  state.current = release;
  rec.activatedAt = new Date().toISOString();
  const postHook =
    entry.action === 'rollback' ? h.config?.hooks?.post_rollback : h.config?.hooks?.post_deploy;
  const healthCommand = h.healthCheck ?? h.config?.health_check;
  // Saved now when a hook or a health check runs before the outcome is known; otherwise the final
  // save below records the switch and its success at once (a crash in between is reconciled from
  // the `current` link by the next run's recovery either way).
  if (postHook || healthCommand) await s.save();
  await testPause('activated', h.onLog);

  const post = await run(entry.action === 'rollback' ? 'post_rollback' : 'post_deploy', postHook);
  let failure: HookResult | undefined = post && hookFailed(post) ? post : undefined;
  let healthCheck: HookResult | undefined;
  if (!failure) {
    healthCheck = await run('health_check', healthCommand, h.config?.health_check_timeout ?? 60);
    if (healthCheck && hookFailed(healthCheck)) failure = healthCheck;
  }
  if (failure) {
    let back: string;
    if (previous && state.releases[previous]) {
      const prevRec = await readTargetRelease(t, previous);
      await switchTo(t, previous, prevRec?.components.map((c) => c.type) ?? [], h.onLog);
      await testPause('switched-back', h.onLog);
      state.current = previous;
      back = `switched back to ${previous}`;
    } else {
      await unsetCurrent(t);
      state.current = null;
      back = 'no previous release to switch back to: the target has no current release now';
    }
    rec.status = 'failed';
    rec.error = `${failure.hook} failed`;
    finishHistory(entry, 'failed', `${failure.hook} failed; ${back}`);
    await s.save();
    const cur = state.current ? await readTargetRelease(t, state.current) : undefined;
    await pruneTypeLinks(t, cur?.components.map((c) => c.type) ?? []);
    if (state.current) {
      env = {
        ...env,
        DEPLOY_TOOL_RELEASE: state.current,
        DEPLOY_TOOL_PREVIOUS_RELEASE: release,
        DEPLOY_TOOL_FAILED_RELEASE: release,
      };
      await run('post_rollback', h.config?.hooks?.post_rollback);
    }
    const err = hookError(failure, `release ${release} is marked failed, ${back}`);
    Object.assign(err.details ?? {}, { release, rolledBackTo: state.current, hooks });
    throw err;
  }
  rec.status = 'success';
  rec.error = null;
  finishHistory(entry, 'success');
  await s.save();
  await pruneTypeLinks(t, types);
  return { hooks, healthCheck: healthCheck ? summary(healthCheck) : null };
}
