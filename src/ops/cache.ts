/** `deploy-tool cache list|prune|clear`: the download cache of bucket stores (src/store/cache.ts). */
import { resolve } from 'node:path';
import type { CommonOptions } from '../core/events.js';
import { tryOpenProject } from '../core/project.js';
import { openCache, parseSize, type CacheEntry, type DownloadCache } from '../store/cache.js';

export interface CacheOptions extends CommonOptions {
  cacheDir?: string | undefined;
}

async function open(o: CacheOptions): Promise<DownloadCache> {
  const project = await tryOpenProject(o).catch(() => undefined);
  const base = project?.root ?? o.cwd;
  const cfg = project?.config.cache;
  return openCache({
    dir: o.cacheDir ? resolve(o.cwd, o.cacheDir) : cfg?.dir ? resolve(base, cfg.dir) : undefined,
    maxBytes: cfg?.max_size !== undefined ? parseSize(cfg.max_size, 'cache.max_size') : undefined,
  });
}

export interface CacheListResult {
  dir: string;
  maxBytes: number;
  totalBytes: number;
  partialBytes: number;
  entries: CacheEntry[];
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

/** Evicts least recently used chunks down to `maxSize` (default: the configured cap). */
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
