/**
 * The ReleaseSource of bucket stores (s3, bos, and filesystem folders with the bucket layout):
 * reads release and component manifests, and archives as content-addressed chunks, from the store
 * and then its mirrors in priority order. The chunks of an archive the local download cache lacks
 * are fetched into it with HTTP range requests: whole frames merged into ranges of about 16 MiB
 * (8-64 MiB; a smaller chunk is one range), at most `parallel` requests in flight across all the
 * chunks of the archive, each frame's sha256 checked as it lands, each chunk's sha256 checked
 * before it enters the cache; an interrupted download resumes from the ranges already fetched. On
 * an error, a timeout or a checksum mismatch a range is fetched from the next mirror; a chunk whose
 * sha256 is wrong as a whole (encrypted archives have no frames to check) is fetched again from the
 * next mirror. Chunks already in the cache (a previous deploy on this host, or an unchanged file of
 * the previous model version) are not downloaded again. The ArchiveSource then reads from the
 * cached chunks. planArchive() tells what a download would fetch, reading only the recipe and the
 * cache index (dry runs). `stats` records, per archive, bytes downloaded, bytes from the cache, and
 * which sources served it.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ProjectConfig } from '../../core/config.js';
import type { ArchiveSource } from '../../archive/reader.js';
import { DeployToolError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { sha256Hex } from '../../core/hash.js';
import type { ComponentRef } from '../../core/validate.js';
import { validateVersion } from '../../core/validate.js';
import { parseComponentManifestText, type ComponentManifest } from '../../manifest/component.js';
import { parseReleaseManifestText, type ReleaseComponent } from '../../manifest/release.js';
import { keys, mapLimit, parseRecipe, type ArchiveRecipe, type RecipeChunk } from '../../store/bucket.js';
import { openConfiguredCache, type DownloadCache } from '../../store/cache.js';
import { resolveStore, type NamedStore, type StoreFlags } from '../../store/resolve.js';
import { storedArchive } from '../../trust/encrypt.js';
import type {
  ArchiveOpenOptions,
  ArchiveTransfer,
  LoadedComponent,
  LoadedRelease,
  ReleaseSource,
} from '../source.js';

const MiB = 1024 * 1024;
/** Bounds of one merged range request. */
export const RANGE_MIN = 8 * MiB;
export const RANGE_MAX = 64 * MiB;
export const RANGE_TARGET = 16 * MiB;

export interface BucketSourceOptions extends Reporter {
  /** The store first, then its mirrors. */
  stores: NamedStore[];
  cache: DownloadCache;
  /** Range requests in flight, across the chunks of an archive (default 4). */
  parallel?: number | undefined;
  /** Target size of a merged range (default 16 MiB, clamped to 8-64 MiB; a smaller chunk is one range). */
  rangeSize?: number | undefined;
}

export type { ArchiveTransfer } from '../source.js';

export interface DownloadStats {
  /** Totals over the archives opened so far. */
  bytesDownloaded: number;
  bytesFromCache: number;
  /** Which sources served each archive (component id -> store names and/or "cache"). */
  servedBy: Record<string, string[]>;
  /** Per archive (component id), the last time it was opened. */
  archives: Record<string, ArchiveTransfer>;
}

export interface BucketReleaseSource extends ReleaseSource {
  readonly stats: DownloadStats;
  /**
   * What openArchive() would download, without downloading content or writing anything: reads the
   * recipe (the cached copy, else the store's), the cache index, and HEADs the chunks the cache
   * lacks (so that a missing chunk is reported now). Throws ERR_ARCHIVE_MISSING like a deploy would.
   */
  planArchive(component: LoadedComponent, options?: ArchiveOpenOptions): Promise<ArchiveTransfer>;
  transferOf(component: LoadedComponent): ArchiveTransfer | undefined;
}

/** Limits concurrent tasks to n (shared by all the chunks of an archive). */
function semaphore(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((res) => waiting.push(res));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

interface Range {
  offset: number;
  size: number;
  frames: number[];
}

/**
 * The range requests of a chunk: whole frames merged into ranges of about `target` bytes. The
 * chunk is split into n = round(size / target) near-equal parts (at least 1), each cut at the
 * frame boundary nearest to its share, and a short last range joins the one before: ranges stay
 * within 8-64 MiB (RANGE_MIN-RANGE_MAX) unless the chunk itself is smaller or one frame larger.
 * A chunk without frames (encrypted) is cut into n equal slices.
 */
export function planRanges(
  frames: readonly { offset: number; size: number }[],
  c: Pick<RecipeChunk, 'offset' | 'size' | 'frames'>,
  target = RANGE_TARGET,
): Range[] {
  const n = Math.max(1, Math.round(c.size / target));
  const goal = Math.ceil(c.size / n);
  const out: Range[] = [];
  if (!c.frames) {
    for (let off = 0; off < c.size; off += goal)
      out.push({ offset: off, size: Math.min(goal, c.size - off), frames: [] });
    return out;
  }
  const [first, count] = c.frames;
  let cur: Range | undefined;
  for (let i = first; i < first + count; i++) {
    const f = frames[i];
    if (!f) break;
    // Cut at the frame boundary nearest to the goal.
    if (cur && cur.size + f.size / 2 <= goal && cur.size + f.size <= RANGE_MAX) {
      cur.size += f.size;
      cur.frames.push(i);
    } else {
      if (cur) out.push(cur);
      cur = { offset: f.offset - c.offset, size: f.size, frames: [i] };
    }
  }
  if (cur) {
    // A short tail joins the range before it (when that stays within RANGE_MAX).
    const prev = out[out.length - 1];
    if (prev && cur.size < RANGE_MIN && prev.size + cur.size <= RANGE_MAX) {
      prev.size += cur.size;
      prev.frames.push(...cur.frames);
    } else out.push(cur);
  }
  return out;
}

function isReleaseRef(ref: ReleaseComponent | ComponentRef): ref is ReleaseComponent {
  return 'manifestSha256' in ref;
}

const corrupt = (where: string, message: string): DeployToolError =>
  new DeployToolError('ERR_ARCHIVE_CORRUPT', `${where}: ${message}`, {
    hint: 'The bytes in the bucket do not match the published checksums (damaged or altered). Publish the component again, or add a mirror.',
  });

export function createBucketReleaseSource(o: BucketSourceOptions): BucketReleaseSource {
  const stores = o.stores;
  const primary = stores[0];
  if (!primary) throw new Error('internal: no store');
  const parallel = Math.max(1, o.parallel ?? 4);
  const rangeSize = Math.min(RANGE_MAX, Math.max(RANGE_MIN, o.rangeSize ?? RANGE_TARGET));
  const description = `[${primary.store.driver}] ${primary.store.location}${
    stores.length > 1
      ? ` (mirrors: ${stores
          .slice(1)
          .map((s) => s.name)
          .join(', ')})`
      : ''
  }`;
  const stats: DownloadStats = { bytesDownloaded: 0, bytesFromCache: 0, servedBy: {}, archives: {} };
  const cache = o.cache;

  /** Adds a source to an archive's servedBy, kept in priority order (stores, then "cache"). */
  const servedBy = (t: ArchiveTransfer, name: string): void => {
    if (t.servedBy.includes(name)) return;
    const rank = (n: string): number => {
      const i = stores.findIndex((s) => s.name === n);
      return i < 0 ? stores.length : i;
    };
    t.servedBy.push(name);
    t.servedBy.sort((a, b) => rank(a) - rank(b));
  };

  /** Tries each store in order (from index `from`); a store that throws passes to the next. */
  const firstOf = async <T>(
    what: string,
    fn: (s: NamedStore) => Promise<T | undefined>,
    from = 0,
  ): Promise<{ value: T; from: NamedStore } | undefined> => {
    let lastErr: Error | undefined;
    for (const [i, s] of stores.entries()) {
      if (i < from) continue;
      try {
        const value = await fn(s);
        if (value !== undefined) return { value, from: s };
      } catch (err) {
        lastErr = err instanceof Error ? err : new Error(`${what}: failed`);
        const next = stores[i + 1];
        if (next)
          o.onWarning?.(
            `${what}: ${err instanceof Error ? err.message : String(err)}; trying mirror ${next.name}`,
          );
      }
    }
    if (lastErr) throw lastErr;
    return undefined;
  };

  /** The recipe (cached copy first). `dry`: neither touch nor write the cache. */
  const loadRecipe = async (m: ComponentManifest, id: string, dry = false): Promise<ArchiveRecipe> => {
    const sha = storedArchive(m).sha256;
    const cached = await cache.getRecipe(sha, { touch: !dry });
    if (cached) {
      try {
        return parseRecipe(cached, m, `${cache.dir} recipe ${sha}`);
      } catch {
        // fall through: fetch it again
      }
    }
    const key = keys.recipe(sha);
    const hit = await firstOf(`${id} recipe`, async (s) => {
      const buf = await s.store.get(key);
      if (!buf) return undefined;
      return {
        text: buf.toString('utf8'),
        recipe: parseRecipe(buf.toString('utf8'), m, `${s.store.location} ${key}`),
      };
    });
    if (!hit) {
      throw new DeployToolError(
        'ERR_ARCHIVE_MISSING',
        `Archive of ${id} is not in ${description} (no ${key})`,
        {
          hint: 'Publish the component to this store again.',
        },
      );
    }
    if (!dry) await cache.putRecipe(sha, hit.value.text);
    return hit.value.recipe;
  };

  const rangesOf = (m: ComponentManifest, c: RecipeChunk): Range[] => planRanges(m.frames, c, rangeSize);

  /** Ranges of an interrupted download of chunk c already on disk (indexes into rangesOf). */
  const partialDone = async (m: ComponentManifest, c: RecipeChunk): Promise<Set<number>> => {
    const st = await stat(cache.partialPath(c.sha256)).catch(() => undefined);
    if (!st || st.size !== c.size) return new Set();
    const n = rangesOf(m, c).length;
    return new Set((await cache.readPartial(c.sha256)).filter((i) => i >= 0 && i < n));
  };

  /**
   * What fetching the archive of m would cost, from the cache index only (changes nothing). With
   * `frames` (incremental deploys), only the chunks holding those frames count, and of a chunk the
   * cache lacks only the ranges holding them (`only`: range indexes; undefined: the whole chunk).
   */
  const planChunks = async (
    m: ComponentManifest,
    recipe: ArchiveRecipe,
    frames?: ReadonlySet<number>,
  ): Promise<{
    plan: ArchiveTransfer;
    missing: { chunk: RecipeChunk; only?: Set<number> | undefined }[];
  }> => {
    const plan: ArchiveTransfer = {
      archiveBytes: recipe.archive.size,
      chunks: recipe.chunks.length,
      chunksCached: 0,
      bytesFromCache: 0,
      bytesToDownload: 0,
      bytesDownloaded: 0,
      requests: 0,
      servedBy: [],
    };
    /** Frames of chunk c the reader needs (undefined: all of it). */
    const neededIn = (c: RecipeChunk): number[] | undefined => {
      if (!frames || !c.frames) return undefined;
      const out: number[] = [];
      for (let i = c.frames[0]; i < c.frames[0] + c.frames[1]; i++) if (frames.has(i)) out.push(i);
      return out;
    };
    const missing: {
      chunk: RecipeChunk;
      only?: Set<number> | undefined;
      ranges: Range[];
      done: Set<number>;
    }[] = [];
    const fetching = new Map<string, (typeof missing)[number]>();
    for (const c of recipe.chunks) {
      const need = neededIn(c);
      if (need && need.length === 0) continue; // holds only files the target has
      const needBytes = need ? need.reduce((s, i) => s + (m.frames[i]?.size ?? 0), 0) : c.size;
      const dup = fetching.get(c.sha256);
      // A chunk the archive holds twice (identical files) is fetched once, then read from the cache
      // (whole, when the first copy was to be fetched only in part).
      if (dup || (await cache.peek(c.sha256, c.size))) {
        if (dup?.only) {
          for (const [i, r] of dup.ranges.entries()) {
            if (dup.only.has(i)) continue;
            if (dup.done.has(i)) plan.bytesFromCache += r.size;
            else {
              plan.bytesToDownload += r.size;
              plan.requests++;
            }
          }
          dup.only = undefined;
        }
        plan.chunksCached++;
        plan.bytesFromCache += needBytes;
        continue;
      }
      const ranges = rangesOf(m, c);
      let only: Set<number> | undefined;
      if (need) {
        const set = new Set(need);
        only = new Set(ranges.flatMap((r, i) => (r.frames.some((f) => set.has(f)) ? [i] : [])));
        if (only.size === ranges.length) only = undefined;
      }
      const done = await partialDone(m, c);
      const entry = { chunk: c, only, ranges, done };
      fetching.set(c.sha256, entry);
      missing.push(entry);
      ranges.forEach((r, i) => {
        if (only && !only.has(i)) return;
        if (done.has(i)) plan.bytesFromCache += r.size;
        else {
          plan.bytesToDownload += r.size;
          plan.requests++;
        }
      });
    }
    return { plan, missing: missing.map(({ chunk, only }) => ({ chunk, only })) };
  };

  const hashFile = async (path: string): Promise<string> => {
    const h = createHash('sha256');
    for await (const b of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(b as Buffer);
    return h.digest('hex');
  };

  /**
   * Fetches a chunk the cache lacks into it, verified; ranges run through `limit` (shared by all
   * the chunks of the archive). Starts with store `from` (and its successors for each range).
   */
  const fetchChunk = async (
    m: ComponentManifest,
    c: RecipeChunk,
    id: string,
    t: ArchiveTransfer,
    limit: <T>(fn: () => Promise<T>) => Promise<T>,
    progress: () => void,
    from: number,
    only?: ReadonlySet<number>,
  ): Promise<{ ok: true } | { ok: false; error: DeployToolError }> => {
    const key = keys.blob(c.sha256);
    const part = cache.partialPath(c.sha256);
    await mkdir(dirname(part), { recursive: true });
    const ranges = rangesOf(m, c);
    const done = from === 0 ? await partialDone(m, c) : new Set<number>();
    const st = await stat(part).catch(() => undefined);
    const reuse = done.size > 0 && st?.size === c.size;
    const fh = await open(part, reuse ? 'r+' : 'w+');
    // Stores that served ranges of this chunk: they count once the whole chunk is verified.
    const servers = new Set<string>();
    try {
      if (!reuse) await fh.truncate(c.size);
      if (done.size) o.onLog?.(`${id}: resuming ${key} (${done.size}/${ranges.length} ranges already here)`);
      let pending = Promise.resolve();
      await Promise.all(
        ranges.map((r, i) =>
          done.has(i) || (only && !only.has(i))
            ? Promise.resolve()
            : limit(async () => {
                const hit = await firstOf(
                  `${id} ${key}`,
                  async (s) => {
                    const buf = await s.store.getRange(key, r.offset, r.size);
                    // Received bytes count even when a check rejects them (then a mirror is asked).
                    t.bytesDownloaded += buf.length;
                    stats.bytesDownloaded += buf.length;
                    if (buf.length !== r.size)
                      throw corrupt(
                        `${s.store.location} ${key}`,
                        `range at ${r.offset} has ${buf.length} bytes, expected ${r.size}`,
                      );
                    let at = 0;
                    for (const fi of r.frames) {
                      const f = m.frames[fi];
                      if (!f) continue;
                      if (sha256Hex(buf.subarray(at, at + f.size)) !== f.sha256)
                        throw corrupt(`${s.store.location} ${key}`, `frame ${fi} does not match its sha256`);
                      at += f.size;
                    }
                    return buf;
                  },
                  from,
                );
                if (!hit) throw new Error('internal: no answer');
                servers.add(hit.from.name);
                await fh.write(hit.value, 0, hit.value.length, r.offset);
                t.requests++;
                done.add(i);
                // The list of ranges on disk, written one at a time (resume).
                pending = pending.then(() => cache.writePartial(c.sha256, [...done]));
                await pending;
                progress();
              }),
        ),
      );
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (done.size < ranges.length) {
      // Only some ranges were wanted: they stay in the partial file, each frame verified on arrival
      // (a later deploy resumes from them), and the reader checks every frame's sha256 again.
      for (const name of servers) servedBy(t, name);
      return { ok: true };
    }
    const digest = await hashFile(part);
    if (digest !== c.sha256) {
      await cache.dropPartial(c.sha256);
      return {
        ok: false,
        error: corrupt(`${description} ${key}`, `chunk sha256 is ${digest}, expected ${c.sha256}`),
      };
    }
    await cache.commit(c.sha256);
    for (const name of servers) servedBy(t, name);
    return { ok: true };
  };

  /** Fetches a chunk; a wrong chunk sha256 fetches it again from the next store. */
  const ensureChunk = async (
    m: ComponentManifest,
    c: RecipeChunk,
    id: string,
    t: ArchiveTransfer,
    limit: <T>(fn: () => Promise<T>) => Promise<T>,
    progress: () => void,
    only?: ReadonlySet<number>,
  ): Promise<void> => {
    for (let from = 0; ; from++) {
      const r = await fetchChunk(m, c, id, t, limit, progress, from, only);
      if (r.ok) return;
      const next = stores[from + 1];
      if (!next) throw r.error;
      o.onWarning?.(`${id}: ${r.error.message}; trying mirror ${next.name}`);
    }
  };

  /** HEADs the chunks the cache lacks in the stores (first that has each): ERR_ARCHIVE_MISSING if none. */
  const checkChunks = async (id: string, missing: RecipeChunk[]): Promise<void> => {
    await mapLimit(missing, Math.max(parallel, 8), async (c) => {
      const key = keys.blob(c.sha256);
      const hit = await firstOf(`${id} ${key}`, async (s) => {
        const info = await s.store.head(key);
        return info && info.size === c.size ? info : undefined;
      });
      if (!hit) {
        throw new DeployToolError(
          'ERR_ARCHIVE_MISSING',
          `Archive of ${id}: ${key} is not in ${description}`,
          {
            hint: 'The bucket lacks a chunk of this archive (an interrupted publish, or it was deleted). Publish the component again.',
          },
        );
      }
    });
  };

  const source: BucketReleaseSource = {
    description,
    stats,
    async getRelease(release): Promise<LoadedRelease> {
      validateVersion(release, 'Release');
      const key = keys.release(release);
      const hit = await firstOf(`release ${release}`, async (s) => {
        const buf = await s.store.get(key);
        if (!buf) return undefined;
        const text = buf.toString('utf8');
        const manifest = parseReleaseManifestText(text, `${s.store.location} ${key}`);
        if (manifest.release !== release) {
          throw new DeployToolError(
            'ERR_MANIFEST_INVALID',
            `${s.store.location} ${key} describes release ${manifest.release}`,
            { hint: 'The bucket was altered. Publish the release again.' },
          );
        }
        const signature = (await s.store.get(`${key}.minisig`))?.toString('utf8');
        return { manifest, text, signature };
      });
      if (!hit) {
        throw new DeployToolError('ERR_RELEASE_NOT_FOUND', `Release ${release} not found in ${description}`, {
          hint: `Publish it first (deploy-tool publish ... --release-version ${release} --method s3|bos --bucket B), or check --bucket, --prefix and --endpoint.`,
        });
      }
      return hit.value;
    },

    async getComponent(ref, release): Promise<LoadedComponent> {
      const id = `${ref.type}:${ref.version}`;
      const key = keys.component(ref.type, ref.version);
      const hit = await firstOf(`component ${id}`, async (s) => {
        const buf = await s.store.get(key);
        if (!buf) return undefined;
        const text = buf.toString('utf8');
        const where = `${s.store.location} ${key}`;
        if (isReleaseRef(ref) && sha256Hex(text) !== ref.manifestSha256) {
          throw new DeployToolError(
            'ERR_MANIFEST_INVALID',
            `${where} does not match release ${release ?? ''} (its sha256 differs from manifestSha256)`,
            { hint: 'The component manifest in the bucket was altered. Publish it again, or use a mirror.' },
          );
        }
        const manifest = parseComponentManifestText(text, where);
        if (manifest.type !== ref.type || manifest.version !== ref.version) {
          throw new DeployToolError(
            'ERR_MANIFEST_INVALID',
            `${where} describes ${manifest.type}:${manifest.version}, not ${id}`,
          );
        }
        if (isReleaseRef(ref)) {
          const stored = storedArchive(manifest);
          if (stored.sha256 !== ref.archiveSha256 || stored.size !== ref.archiveSize) {
            throw new DeployToolError(
              'ERR_MANIFEST_INVALID',
              `${where}: archive size/sha256 differ from release ${release ?? ''}`,
              { hint: 'The bucket is inconsistent. Publish the release again.' },
            );
          }
        }
        const signature = (await s.store.get(`${key}.minisig`))?.toString('utf8');
        return { manifest, text, signature };
      });
      if (!hit) {
        throw new DeployToolError(
          'ERR_COMPONENT_NOT_FOUND',
          `Component ${id} not found in ${description}${release ? ` (release ${release})` : ''}`,
          { hint: 'Publish the component to this store first.' },
        );
      }
      return hit.value;
    },

    transferOf(component) {
      return stats.archives[`${component.manifest.type}:${component.manifest.version}`];
    },

    async planArchive(component, options): Promise<ArchiveTransfer> {
      const m = component.manifest;
      const id = `${m.type}:${m.version}`;
      const recipe = await loadRecipe(m, id, true);
      const frames = options?.frames ? new Set(options.frames) : undefined;
      const { plan, missing } = await planChunks(m, recipe, frames);
      await checkChunks(
        id,
        missing.map((x) => x.chunk),
      );
      plan.servedBy = plan.bytesFromCache > 0 ? ['cache'] : [];
      return plan;
    },

    async openArchive(component, _ref, _release, options): Promise<ArchiveSource> {
      const m = component.manifest;
      const id = `${m.type}:${m.version}`;
      const recipe = await loadRecipe(m, id);
      const frames = options?.frames ? new Set(options.frames) : undefined;
      const { plan: t, missing } = await planChunks(m, recipe, frames);
      stats.archives[id] = t;
      o.onLog?.(
        `${id}: ${recipe.chunks.length} chunks, ${recipe.archive.size} bytes (${t.bytesToDownload} to download in ${t.requests} ranges, ${t.bytesFromCache} in the cache)`,
      );
      const planned = t.requests;
      t.requests = 0;
      const t0 = performance.now();
      const limit = semaphore(parallel);
      const progress = (): void =>
        o.onProgress?.({
          phase: 'download',
          item: id,
          done: t.bytesDownloaded,
          total: Math.max(t.bytesToDownload, t.bytesDownloaded),
          unit: 'bytes',
        });
      // Chunks the cache has are marked used (LRU), the others fetched in parallel.
      const fetched = new Set(missing.map((x) => x.chunk.sha256));
      for (const c of recipe.chunks) if (!fetched.has(c.sha256)) await cache.has(c.sha256, c.size);
      // Several chunks at a time (their ranges share `limit`), not one file handle per chunk.
      await mapLimit(missing, parallel, (x) => ensureChunk(m, x.chunk, id, t, limit, progress, x.only));
      // Chunks fetched in part are read from their partial file (only the wanted frames are there).
      // (Unless the ranges fetched now completed it: then it was verified whole and is in the cache.)
      const partial = new Set<string>();
      for (const x of missing)
        if (x.only && !(await cache.peek(x.chunk.sha256, x.chunk.size))) partial.add(x.chunk.sha256);
      if (t.bytesFromCache > 0) servedBy(t, 'cache');
      stats.bytesFromCache += t.bytesFromCache;
      stats.servedBy[id] = [...t.servedBy];
      o.onLog?.(
        `${id}: ${t.bytesDownloaded} bytes downloaded in ${t.requests}/${planned} ranges, ${t.bytesFromCache} from the cache (${(performance.now() - t0).toFixed(0)} ms)`,
      );
      await cache.prune({ keep: new Set([recipe.archive.sha256, ...recipe.chunks.map((c) => c.sha256)]) });
      return openChunkedArchive(recipe, cache, `${description} ${id} (${recipe.archive.name})`, partial);
    },
  };
  return source;
}

/** An ArchiveSource over the cached chunks of an archive (read-only, handles opened lazily). */
export function openChunkedArchive(
  recipe: ArchiveRecipe,
  cache: DownloadCache,
  location: string,
  /** Chunks fetched only in part: read from their partial download (only wanted frames are there). */
  partial: ReadonlySet<string> = new Set(),
): ArchiveSource {
  const handles = new Map<string, Promise<FileHandle>>();
  const handle = (sha: string): Promise<FileHandle> => {
    let h = handles.get(sha);
    if (!h) {
      h = open(partial.has(sha) ? cache.partialPath(sha) : cache.chunkPath(sha), 'r');
      handles.set(sha, h);
    }
    return h;
  };
  const chunks = recipe.chunks;
  const find = (offset: number): number => {
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((chunks[mid]?.offset ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  return {
    location,
    size: () => Promise.resolve(recipe.archive.size),
    async read(offset, length) {
      const end = Math.min(offset + length, recipe.archive.size);
      if (end <= offset) return Buffer.alloc(0);
      const out = Buffer.allocUnsafe(end - offset);
      let pos = offset;
      for (let i = find(offset); pos < end && i < chunks.length; i++) {
        const c = chunks[i];
        if (!c) break;
        const from = pos - c.offset;
        const n = Math.min(c.size - from, end - pos);
        const fh = await handle(c.sha256);
        let got = 0;
        while (got < n) {
          const { bytesRead } = await fh.read(out, pos - offset + got, n - got, from + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got < n) return out.subarray(0, pos - offset + got);
        pos += n;
      }
      return out;
    },
    async close() {
      for (const h of handles.values()) await (await h.catch(() => undefined))?.close();
      handles.clear();
    },
  };
}

export interface BucketSourceFromFlagsOptions extends Reporter {
  flags: StoreFlags;
  config?: ProjectConfig | undefined;
  /** Project root (or cwd): relative paths in the config are resolved against it. */
  baseDir: string;
  /** The current folder: --cache-dir is relative to it (default: baseDir). */
  cwd?: string | undefined;
  /** --cache-dir (else cache.dir of the config, else the XDG default). */
  cacheDir?: string | undefined;
}

/** The deploy side of `--method s3|bos --bucket B ...` and `--store NAME`. */
export function bucketSourceFromFlags(o: BucketSourceFromFlagsOptions): BucketReleaseSource {
  const r = resolveStore(o.flags, { config: o.config, baseDir: o.baseDir });
  const cache = openConfiguredCache({
    cacheDir: o.cacheDir,
    cwd: o.cwd ?? o.baseDir,
    config: o.config,
    projectRoot: o.baseDir,
  });
  return createBucketReleaseSource({
    stores: [r, ...r.mirrors],
    cache,
    onLog: o.onLog,
    onWarning: o.onWarning,
    onProgress: o.onProgress,
  });
}
