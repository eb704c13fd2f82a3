/** `deploy-tool mirrors check`: health and latency of a store and its mirrors (or of every store). */
import type { CommonOptions } from '../core/events.js';
import { DeployToolError } from '../core/errors.js';
import { tryOpenProject } from '../core/project.js';
import { keys } from '../store/bucket.js';
import { resolveStore, wantsStore, type NamedStore, type StoreFlags } from '../store/resolve.js';

export interface MirrorCheck {
  name: string;
  type: string;
  location: string;
  /** Priority: 0 is the store itself, then its mirrors in order. */
  priority: number;
  ok: boolean;
  ms: number;
  /** The `latest` pointer's release, when the store has one. */
  latest: string | null;
  error: { code: string; message: string } | null;
}

export interface MirrorsCheckResult {
  stores: MirrorCheck[];
  healthy: number;
  total: number;
}

async function probe(s: NamedStore, priority: number): Promise<MirrorCheck> {
  const t0 = performance.now();
  const base = { name: s.name, type: s.type, location: s.store.location, priority };
  try {
    const st = s.store as NamedStore['store'] & { checkBucket?: () => Promise<void> };
    if (st.checkBucket) await st.checkBucket();
    const latest = await s.store.get(keys.pointer('latest'));
    let release: string | null = null;
    if (latest) {
      try {
        release = (JSON.parse(latest.toString('utf8')) as { release?: string }).release ?? null;
      } catch {
        release = null;
      }
    }
    return { ...base, ok: true, ms: Math.round(performance.now() - t0), latest: release, error: null };
  } catch (err) {
    return {
      ...base,
      ok: false,
      ms: Math.round(performance.now() - t0),
      latest: null,
      error: {
        code: err instanceof DeployToolError ? err.code : 'ERR_STORE',
        message: err instanceof Error ? err.message : String(err),
      },
    };
  }
}

export async function mirrorsCheck(o: CommonOptions & StoreFlags): Promise<MirrorsCheckResult> {
  const project = await tryOpenProject(o).catch(() => undefined);
  const ctx = { config: project?.config, baseDir: project?.root ?? o.cwd };
  const list: NamedStore[][] = [];
  if (wantsStore(o)) {
    const r = resolveStore(o, ctx);
    list.push([r, ...r.mirrors]);
  } else {
    const names = Object.keys(project?.config.stores ?? {});
    if (names.length === 0) {
      throw new DeployToolError('ERR_USAGE', 'No stores to check', {
        hint: 'Add "stores:" to .deploy-tool.yaml, or pass --store NAME or --method s3|bos --bucket B.',
      });
    }
    for (const name of names) {
      const r = resolveStore({ store: name }, ctx);
      list.push([r]);
    }
  }
  const stores: MirrorCheck[] = [];
  for (const group of list) stores.push(...(await Promise.all(group.map((s, i) => probe(s, i)))));
  return { stores, healthy: stores.filter((s) => s.ok).length, total: stores.length };
}
