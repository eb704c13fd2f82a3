/** `deploy-tool cache list|prune|clear`: the download cache of bucket stores (src/store/cache.ts). */
import type { CommonOptions } from '../core/events.js';
import { tryOpenProject } from '../core/project.js';
import { openConfiguredCache, parseSize, type CacheListing, type DownloadCache } from '../store/cache.js';

export interface CacheOptions extends CommonOptions {
  cacheDir?: string | undefined;
}

/** The same folder and cap deploy uses (store/cache.ts, openConfiguredCache). */
async function open(o: CacheOptions): Promise<DownloadCache> {
  const project = await tryOpenProject(o);
  return openConfiguredCache({
    cacheDir: o.cacheDir,
    cwd: o.cwd,
    config: project?.config,
    projectRoot: project?.root,
  });
}

export interface CacheListResult extends CacheListing {
  dir: string;
  maxBytes: number;
}

export async function cacheList(o: CacheOptions): Promise<CacheListResult> {
  const cache = await open(o);
  const l = await cache.list();
  return { dir: cache.dir, maxBytes: cache.maxBytes, ...l };
}

export interface CachePruneResult {
  dir: string;
  maxBytes: number;
  removed: number;
  freedBytes: number;
  totalBytes: number;
}

/**
 * Evicts least recently used files (chunks, recipes, stale partial downloads) down to `maxSize`
 * (default: the configured cap). `removed` counts chunks, recipes and partial downloads.
 */
export async function cachePrune(
  o: CacheOptions & { maxSize?: string | undefined },
): Promise<CachePruneResult> {
  const cache = await open(o);
  const maxBytes = o.maxSize !== undefined ? parseSize(o.maxSize, '--max-size') : cache.maxBytes;
  const r = await cache.prune({ maxBytes });
  return { dir: cache.dir, maxBytes, ...r, totalBytes: (await cache.list()).totalBytes };
}

export async function cacheClear(
  o: CacheOptions,
): Promise<{ dir: string; removed: number; freedBytes: number }> {
  const cache = await open(o);
  return { dir: cache.dir, ...(await cache.clear()) };
}
