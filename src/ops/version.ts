/** `version list|switch|rollback`: the releases kept on a target, and atomic switches between them. */
import { DeployToolError } from '../core/errors.js';
import { tryOpenProject } from '../core/project.js';
import { byCodeUnit, validateVersion } from '../core/validate.js';
import { readCurrent, readTargetRelease, targetPaths } from '../deploy/layout.js';
import { activate, openSession, type HookSummary } from '../deploy/session.js';
import {
  readState,
  rollbackTarget,
  startHistory,
  finishHistory,
  type ReleaseStatus,
} from '../deploy/state.js';
import { resolveTarget } from '../deploy/target.js';
import type { TargetCommandOptions } from './deploy.js';
import { stateComponents } from '../deploy/engine.js';

export interface VersionListItem {
  release: string;
  current: boolean;
  rollbackTarget: boolean;
  status: ReleaseStatus;
  createdAt: string;
  activatedAt: string | null;
  base: string | null;
  components: string[];
}

export interface VersionListResult {
  target: string;
  current: string | null;
  rollbackTarget: string | null;
  releases: VersionListItem[];
}

export async function listVersions(o: TargetCommandOptions): Promise<VersionListResult> {
  const project = await tryOpenProject(o);
  const root = resolveTarget(o.target, o.cwd, project);
  const t = targetPaths(root);
  const state = await readState(t.state);
  const current = (await readCurrent(t)) ?? null;
  const rb = rollbackTarget(state, current) ?? null;
  const releases = Object.entries(state.releases)
    .map(([release, r]) => ({
      release,
      current: release === current,
      rollbackTarget: release === rb,
      status: r.status,
      createdAt: r.createdAt,
      activatedAt: r.activatedAt,
      base: r.base,
      components: r.components.map((c) => `${c.type}:${c.version}`),
    }))
    .sort((a, b) => byCodeUnit(a.createdAt, b.createdAt));
  return { target: root, current, rollbackTarget: rb, releases };
}

export interface SwitchOptions extends TargetCommandOptions {
  release: string;
}

export interface SwitchResult {
  action: 'switch' | 'rollback';
  status: 'switched' | 'unchanged';
  target: string;
  release: string;
  previous: string | null;
  /** Time of the switch itself (links + rename), independent of the release size. */
  switchMs: number;
  hooks: HookSummary[];
  healthCheck: HookSummary | null;
}

async function switchCommon(
  o: TargetCommandOptions,
  action: 'switch' | 'rollback',
  pick: (state: Awaited<ReturnType<typeof readState>>, current: string | null) => string,
): Promise<SwitchResult> {
  const project = await tryOpenProject(o);
  for (const w of project?.warnings ?? []) o.onWarning?.(w);
  const root = resolveTarget(o.target, o.cwd, project);
  const t = targetPaths(root);
  if (!(await readState(t.state).then((s) => Object.keys(s.releases).length > 0))) {
    throw new DeployToolError('ERR_NOT_DEPLOYED', `Nothing is deployed on ${root}`, {
      hint: 'Deploy a release first: deploy-tool deploy --release R --target DIR',
    });
  }
  const s = await openSession({
    root,
    command: o.command ?? `version ${action}`,
    wait: o.wait,
    onWarning: o.onWarning,
    onLog: o.onLog,
  });
  try {
    const previous = s.state.current;
    const release = pick(s.state, previous);
    const rec = await readTargetRelease(t, release);
    if (!rec || !s.state.releases[release]) {
      throw new DeployToolError('ERR_RELEASE_NOT_FOUND', `Release ${release} is not kept on ${root}`, {
        hint: `See the kept releases: deploy-tool version list --target ${root}`,
      });
    }
    if (release === previous) {
      return {
        action,
        status: 'unchanged',
        target: root,
        release,
        previous,
        switchMs: 0,
        hooks: [],
        healthCheck: null,
      };
    }
    const entry = startHistory(s.state, action, release, stateComponents(rec.components));
    await s.save();
    const t0 = performance.now();
    let switchMs = 0;
    try {
      const act = await activate(s, release, entry, {
        config: project?.config,
        healthCheck: o.healthCheck,
        onHookOutput: o.onHookOutput,
        onLog: (m) => {
          if (m.startsWith('switched current')) switchMs = performance.now() - t0;
          o.onLog?.(m);
        },
      });
      return { action, status: 'switched', target: root, release, previous, switchMs, ...act };
    } catch (err) {
      if (entry.status === 'in-progress') {
        finishHistory(entry, 'failed', err instanceof Error ? err.message : String(err));
        await s.save().catch(() => undefined);
      }
      throw err;
    }
  } finally {
    await s.close();
  }
}

export function switchVersion(o: SwitchOptions): Promise<SwitchResult> {
  const release = validateVersion(o.release, 'Release');
  return switchCommon(o, 'switch', () => release);
}

export function rollback(o: TargetCommandOptions): Promise<SwitchResult> {
  return switchCommon(o, 'rollback', (state, current) => {
    const rb = rollbackTarget(state, current);
    if (!rb) {
      throw new DeployToolError(
        'ERR_NOT_DEPLOYED',
        `No previous successful release to roll back to on ${o.target ?? 'the target'}`,
        {
          hint: 'See the kept releases with "deploy-tool version list"; switch to one with "deploy-tool version switch R".',
        },
      );
    }
    return rb;
  });
}
