/**
 * The local download cache for bucket stores: verified chunks by sha256 (`chunks/HEX`), recipes
 * (`recipes/HEX.json`), and partial downloads with the ranges already fetched (`partial/HEX.part`
 * + `HEX.part.json`, for resume). Everything counts toward the size cap; past it, the least
 * recently used files are evicted (use = mtime, touched on every hit), except partial downloads
 * written to in the last PARTIAL_GRACE_MS (another deploy may be filling them).
 * Folder: see openConfiguredCache.
 */
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { userCacheDir } from '../core/cache-dir.js';
import type { ProjectConfig } from '../core/config.js';
import { DeployToolError, errnoCode } from '../core/errors.js';
import { writeFileAtomic } from '../core/fs-atomic.js';

/** Partial downloads younger than this are never evicted (they may be in progress). */
export const PARTIAL_GRACE_MS = 10 * 60 * 1000;

export const DEFAULT_CACHE_MAX = 10 * 1000 * 1000 * 1000;

export const defaultCacheDir = userCacheDir;

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

export interface ConfiguredCacheOptions {
  /** --cache-dir: relative to the current folder, like every path flag. */
  cacheDir?: string | undefined;
  cwd: string;
  config?: ProjectConfig | undefined;
  /** The project root: cache.dir of the config is relative to it (default: cwd). */
  projectRoot?: string | undefined;
}

/**
 * The cache a command uses: --cache-dir (relative to cwd), else $DEPLOY_TOOL_CACHE_DIR, else
 * cache.dir of .deploy-tool.yaml (relative to the project root), else $XDG_CACHE_HOME/deploy-tool
 * (~/.cache/deploy-tool); cap from cache.max_size. `deploy` and the `cache` commands both open it
 * here, so they always agree on the folder.
 */
export function openConfiguredCache(
  o: ConfiguredCacheOptions,
  env: NodeJS.ProcessEnv = process.env,
): DownloadCache {
  const cfg = o.config?.cache;
  return openCache({
    dir: o.cacheDir
      ? resolve(o.cwd, o.cacheDir)
      : env.DEPLOY_TOOL_CACHE_DIR
        ? resolve(o.cwd, env.DEPLOY_TOOL_CACHE_DIR)
        : cfg?.dir
          ? resolve(o.projectRoot ?? o.cwd, cfg.dir)
          : defaultCacheDir(env),
    maxBytes: cfg?.max_size !== undefined ? parseSize(cfg.max_size, 'cache.max_size') : undefined,
  });
}

export interface DownloadCache {
  readonly dir: string;
  readonly maxBytes: number;
  chunkPath(sha256: string): string;
  /** True (and marks it used) when the verified chunk is in the cache with this size. */
  has(sha256: string, size: number): Promise<boolean>;
  /** Like has(), without marking it used (dry runs change nothing). */
  peek(sha256: string, size: number): Promise<boolean>;
  partialPath(sha256: string): string;
  readPartial(sha256: string): Promise<number[]>;
  writePartial(sha256: string, done: number[]): Promise<void>;
  dropPartial(sha256: string): Promise<void>;
  /** Moves a verified partial file into the cache. */
  commit(sha256: string): Promise<void>;
  /** The cached recipe text (marked used unless touch is false). */
  getRecipe(archiveSha256: string, options?: { touch?: boolean }): Promise<string | undefined>;
  putRecipe(archiveSha256: string, text: string): Promise<void>;
  list(): Promise<CacheListing>;
  /**
   * Evicts least recently used files (chunks, recipes, stale partial downloads) until the total is
   * at most maxBytes (default: the cap). `keep`: sha256s (of chunks, or archives for recipes) in use.
   */
  prune(options?: {
    maxBytes?: number;
    keep?: Set<string>;
  }): Promise<{ removed: number; freedBytes: number }>;
  clear(): Promise<{ removed: number; freedBytes: number }>;
}

export interface CacheListing {
  /** Verified chunks, most recently used first. */
  entries: CacheEntry[];
  /** Everything the cap counts: chunks + recipes + partial downloads. */
  totalBytes: number;
  chunkBytes: number;
  recipes: number;
  recipeBytes: number;
  /** Partial downloads (interrupted, or in progress): count and bytes (.part and .part.json). */
  partials: number;
  partialBytes: number;
}

interface CacheFile {
  /** The chunk's sha256, the archive's for a recipe, the chunk's for a partial download. */
  sha256: string;
  kind: 'chunk' | 'recipe' | 'partial';
  paths: string[];
  size: number;
  mtimeMs: number;
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

  const names = async (d: string): Promise<string[]> => {
    try {
      return await readdir(d);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
  };

  /** Every file the cap counts, grouped (a partial download is its .part and .part.json). */
  const files = async (): Promise<CacheFile[]> => {
    const out: CacheFile[] = [];
    const add = async (kind: CacheFile['kind'], d: string, re: RegExp): Promise<void> => {
      const byKey = new Map<string, CacheFile>();
      for (const n of await names(d)) {
        const m = re.exec(n);
        if (!m?.[1]) continue;
        const p = join(d, n);
        const st = await stat(p).catch(() => undefined);
        if (!st?.isFile()) continue;
        const f = byKey.get(m[1]);
        if (f) {
          f.paths.push(p);
          f.size += st.size;
          f.mtimeMs = Math.max(f.mtimeMs, st.mtimeMs);
        } else {
          const nf: CacheFile = { sha256: m[1], kind, paths: [p], size: st.size, mtimeMs: st.mtimeMs };
          byKey.set(m[1], nf);
          out.push(nf);
        }
      }
    };
    await add('chunk', chunks, /^([0-9a-f]{64})$/);
    await add('recipe', recipes, /^([0-9a-f]{64})\.json$/);
    // Leftovers of crashed atomic writes and torn downloads count too.
    await add('partial', partial, /^([0-9a-f]{64})\.part(?:\.json)?$/);
    return out;
  };

  const prune: DownloadCache['prune'] = async (o = {}) => {
    const cap = o.maxBytes ?? maxBytes;
    const all = (await files()).sort((a, b) => a.mtimeMs - b.mtimeMs);
    let total = all.reduce((s, e) => s + e.size, 0);
    let removed = 0;
    let freedBytes = 0;
    const now = Date.now();
    for (const e of all) {
      if (total <= cap) break;
      if (o.keep?.has(e.sha256)) continue;
      if (e.kind === 'partial' && now - e.mtimeMs < PARTIAL_GRACE_MS) continue;
      for (const p of e.paths) await rm(p, { force: true });
      total -= e.size;
      removed++;
      freedBytes += e.size;
    }
    return { removed, freedBytes };
  };

  const peek = async (sha: string, size: number): Promise<boolean> => {
    const st = await stat(chunkPath(sha)).catch(() => undefined);
    return !!st?.isFile() && st.size === size;
  };

  return {
    dir,
    maxBytes,
    chunkPath,
    partialPath,
    async has(sha, size) {
      if (!(await peek(sha, size))) return false;
      const now = new Date();
      await utimes(chunkPath(sha), now, now).catch(() => undefined);
      return true;
    },
    peek,
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
    async getRecipe(sha, o = {}) {
      const p = join(recipes, `${sha}.json`);
      const text = await readFile(p, 'utf8').catch(() => undefined);
      if (text !== undefined && o.touch !== false) {
        const now = new Date();
        await utimes(p, now, now).catch(() => undefined);
      }
      return text;
    },
    async putRecipe(sha, text) {
      await ensure(recipes);
      await writeFileAtomic(join(recipes, `${sha}.json`), text);
    },
    async list() {
      const all = await files();
      const sum = (k: CacheFile['kind']): number =>
        all.filter((f) => f.kind === k).reduce((t, f) => t + f.size, 0);
      const chunkFiles = all.filter((f) => f.kind === 'chunk').sort((a, b) => b.mtimeMs - a.mtimeMs);
      return {
        entries: chunkFiles.map((e) => ({
          sha256: e.sha256,
          size: e.size,
          lastUsed: new Date(e.mtimeMs).toISOString(),
        })),
        totalBytes: all.reduce((t, f) => t + f.size, 0),
        chunkBytes: sum('chunk'),
        recipes: all.filter((f) => f.kind === 'recipe').length,
        recipeBytes: sum('recipe'),
        partials: all.filter((f) => f.kind === 'partial').length,
        partialBytes: sum('partial'),
      };
    },
    prune,
    async clear() {
      const all = await files();
      // parsed/: the parsed-config cache (src/core/config.ts) when this is the user cache folder.
      for (const d of [chunks, partial, recipes, join(dir, 'parsed')])
        await rm(d, { recursive: true, force: true });
      return { removed: all.length, freedBytes: all.reduce((t, f) => t + f.size, 0) };
    },
  };
}
