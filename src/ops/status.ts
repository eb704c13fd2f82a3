/** `status`: what is live on a target, from where, since when, what is kept, disk use and the lock. */
import { lstat, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { tryOpenProject } from '../core/project.js';
import { readCurrent, readTargetRelease, targetPaths } from '../deploy/layout.js';
import { isDeadHolder, readLock, type LockInfo } from '../deploy/lock.js';
import { readState, rollbackTarget, type HistoryEntry } from '../deploy/state.js';
import { resolveTarget } from '../deploy/target.js';
import type { TargetCommandOptions } from './deploy.js';
import { listVersions, type VersionListItem } from './version.js';

export interface StatusResult {
  target: string;
  deployed: boolean;
  current: string | null;
  components: {
    type: string;
    version: string;
    archiveSha256: string;
    link: string;
    resolvedPath: string | null;
  }[];
  deployedAt: string | null;
  deployedBy: string | null;
  lastAction: HistoryEntry | null;
  rollbackTarget: string | null;
  releases: VersionListItem[];
  diskUsage: { bytes: number; files: number };
  lock: (LockInfo & { stale: boolean }) | null;
}

async function diskUsage(dir: string): Promise<{ bytes: number; files: number }> {
  const seen = new Set<string>();
  let bytes = 0;
  let files = 0;
  const walk = async (d: string): Promise<void> => {
    for (const n of await readdir(d).catch(() => [] as string[])) {
      const st = await lstat(join(d, n)).catch(() => undefined);
      if (!st) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      bytes += st.blocks * 512;
      if (st.isFile()) files++;
      if (st.isDirectory()) await walk(join(d, n));
    }
  };
  await walk(dir);
  return { bytes, files };
}

export async function status(o: TargetCommandOptions): Promise<StatusResult> {
  const project = await tryOpenProject(o);
  const root = resolveTarget(o.target, o.cwd, project);
  const t = targetPaths(root);
  const state = await readState(t.state);
  const current = (await readCurrent(t)) ?? null;
  const rec = current ? await readTargetRelease(t, current) : undefined;
  const components = [];
  for (const c of rec?.components ?? []) {
    const link = join(root, c.type);
    components.push({
      type: c.type,
      version: c.version,
      archiveSha256: c.archiveSha256,
      link,
      resolvedPath: await realpath(link).catch(() => null),
    });
  }
  const made =
    [...state.history].reverse().find((h) => h.release === current && h.status === 'success') ??
    [...state.history].reverse().find((h) => h.release === current);
  const lock = await readLock(t.lock);
  const list = await listVersions(o);
  return {
    target: root,
    deployed: current !== null,
    current,
    components,
    deployedAt: made?.finishedAt ?? made?.startedAt ?? null,
    deployedBy: made ? `${made.user}@${made.host}` : null,
    lastAction: state.history[state.history.length - 1] ?? null,
    rollbackTarget: rollbackTarget(state, current) ?? null,
    releases: list.releases,
    diskUsage: await diskUsage(t.releases),
    lock: lock ? { ...lock, stale: isDeadHolder(lock) } : null,
  };
}
