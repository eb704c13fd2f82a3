/**
 * The local download cache for bucket stores: verified chunks by sha256 (`chunks/HEX`), recipes
 * (`recipes/HEX.json`), and partial downloads with the ranges already fetched (`partial/HEX.part`
 * + `HEX.part.json`, for resume). Least recently used chunks are evicted past the size cap
 * (use = mtime, touched on every hit). Default folder: $XDG_CACHE_HOME/deploy-tool (~/.cache/...).
 */
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DeployToolError, errnoCode } from '../core/errors.js';
import { writeFileAtomic } from '../core/fs-atomic.js';

export const DEFAULT_CACHE_MAX = 10 * 1000 * 1000 * 1000;

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DEPLOY_TOOL_CACHE_DIR) return env.DEPLOY_TOOL_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'deploy-tool');
}

/** "10GB", "512 MiB", "2g", 1000 -> bytes. */
export function parseSize(v: string | number, what = 'size'): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?$/i.exec(v.trim());
  if (!m) {
    throw new DeployToolError('ERR_USAGE', `Invalid ${what} "${v}"`, {
      hint: 'Examples: 500MB, 10GB, 2GiB.',
    });
  }
  const pow = ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
  const base = m[3] ? 1024 : 1000;
  return Math.floor(Number(m[1]) * base ** pow);
}

export interface CacheEntry {
  sha256: string;
  size: number;
  lastUsed: string;
}

export interface DownloadCache {
  readonly dir: string;
  readonly maxBytes: number;
  chunkPath(sha256: string): string;
  /** True (and marks it used) when the verified chunk is in the cache with this size. */
  has(sha256: string, size: number): Promise<boolean>;
  partialPath(sha256: string): string;
  readPartial(sha256: string): Promise<number[]>;
  writePartial(sha256: string, done: number[]): Promise<void>;
  dropPartial(sha256: string): Promise<void>;
  /** Moves a verified partial file into the cache. */
  commit(sha256: string): Promise<void>;
  getRecipe(archiveSha256: string): Promise<string | undefined>;
  putRecipe(archiveSha256: string, text: string): Promise<void>;
  list(): Promise<{ entries: CacheEntry[]; totalBytes: number; partialBytes: number }>;
  /** Evicts least recently used chunks until the total is at most maxBytes (default: the cap). */
  prune(options?: {
    maxBytes?: number;
    keep?: Set<string>;
  }): Promise<{ removed: number; freedBytes: number }>;
  clear(): Promise<{ removed: number; freedBytes: number }>;
}

export function openCache(
  options: { dir?: string | undefined; maxBytes?: number | undefined } = {},
): DownloadCache {
  const dir = options.dir ?? defaultCacheDir();
  const maxBytes = options.maxBytes ?? DEFAULT_CACHE_MAX;
  const chunks = join(dir, 'chunks');
  const partial = join(dir, 'partial');
  const recipes = join(dir, 'recipes');
  const chunkPath = (sha: string): string => join(chunks, sha);
  const partialPath = (sha: string): string => join(partial, `${sha}.part`);
  const ensure = async (d: string): Promise<void> => {
    await mkdir(d, { recursive: true });
  };

  const entries = async (): Promise<{ sha256: string; size: number; mtimeMs: number }[]> => {
    let names: string[];
    try {
      names = await readdir(chunks);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
    const out: { sha256: string; size: number; mtimeMs: number }[] = [];
    for (const n of names) {
      if (!/^[0-9a-f]{64}$/.test(n)) continue;
      const st = await stat(join(chunks, n)).catch(() => undefined);
      if (st?.isFile()) out.push({ sha256: n, size: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  };

  const dirBytes = async (d: string): Promise<number> => {
    let total = 0;
    for (const n of await readdir(d).catch(() => [] as string[]))
      total += (await stat(join(d, n)).catch(() => undefined))?.size ?? 0;
    return total;
  };

  const prune: DownloadCache['prune'] = async (o = {}) => {
    const cap = o.maxBytes ?? maxBytes;
    const all = (await entries()).sort((a, b) => a.mtimeMs - b.mtimeMs);
    let total = all.reduce((s, e) => s + e.size, 0);
    let removed = 0;
    let freedBytes = 0;
    for (const e of all) {
      if (total <= cap) break;
      if (o.keep?.has(e.sha256)) continue;
      await rm(chunkPath(e.sha256), { force: true });
      total -= e.size;
      removed++;
      freedBytes += e.size;
    }
    return { removed, freedBytes };
  };

  return {
    dir,
    maxBytes,
    chunkPath,
    partialPath,
    async has(sha, size) {
      const p = chunkPath(sha);
      const st = await stat(p).catch(() => undefined);
      if (!st?.isFile() || st.size !== size) return false;
      const now = new Date();
      await utimes(p, now, now).catch(() => undefined);
      return true;
    },
    async readPartial(sha) {
      try {
        const raw = JSON.parse(await readFile(`${partialPath(sha)}.json`, 'utf8')) as unknown;
        return Array.isArray(raw) ? raw.filter((x): x is number => Number.isInteger(x)) : [];
      } catch {
        return [];
      }
    },
    async writePartial(sha, done) {
      await ensure(partial);
      // Not fsynced: a torn list reads as empty (refetch), and each chunk's sha256 is checked at the end.
      await writeFile(`${partialPath(sha)}.json`, JSON.stringify(done));
    },
    async dropPartial(sha) {
      await rm(partialPath(sha), { force: true });
      await rm(`${partialPath(sha)}.json`, { force: true });
    },
    async commit(sha) {
      await ensure(chunks);
      await rename(partialPath(sha), chunkPath(sha));
      await rm(`${partialPath(sha)}.json`, { force: true });
    },
    async getRecipe(sha) {
      return readFile(join(recipes, `${sha}.json`), 'utf8').catch(() => undefined);
    },
    async putRecipe(sha, text) {
      await ensure(recipes);
      await writeFileAtomic(join(recipes, `${sha}.json`), text);
    },
    async list() {
      const all = (await entries()).sort((a, b) => b.mtimeMs - a.mtimeMs);
      return {
        entries: all.map((e) => ({
          sha256: e.sha256,
          size: e.size,
          lastUsed: new Date(e.mtimeMs).toISOString(),
        })),
        totalBytes: all.reduce((s, e) => s + e.size, 0),
        partialBytes: await dirBytes(partial),
      };
    },
    prune,
    async clear() {
      const all = await entries();
      const partialBytes = await dirBytes(partial);
      for (const d of [chunks, partial, recipes]) await rm(d, { recursive: true, force: true });
      return { removed: all.length, freedBytes: all.reduce((s, e) => s + e.size, 0) + partialBytes };
    },
  };
}
