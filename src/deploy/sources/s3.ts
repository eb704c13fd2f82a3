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
import type { S3Store } from '../../store/drivers/s3.js';
import { hashThread } from '../../store/util.js';
import { storedArchive } from '../../trust/encrypt.js';
import type {
  ArchiveOpenOptions,
  ArchiveTransfer,
  LoadedComponent,
  LoadedRelease,
  ReleaseSource,
} from '../source.js';

const MiB = 1024 * 1024;
/** The index of the chunk (sorted by offset, tiling the archive) that holds byte `offset`. */
function chunkAt(chunks: readonly { offset: number }[], offset: number): number {
  let lo = 0;
  let hi = chunks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((chunks[mid]?.offset ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

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

/** Pieces a range is checked in: its frames (by sha256), else slices of PIECE bytes (unchecked). */
const PIECE = 4 * MiB;
/**
 * A range streams through two buffers of this size in turn: one is written to disk and hashed while
 * the next bytes from the socket fill the other.
 */
const STAGE = MiB;
interface Piece {
  /** Offset in the chunk. */
  offset: number;
  size: number;
  sha256?: string | undefined;
  frame?: number;
}

function piecesOfRange(frames: readonly { size: number; sha256: string }[], r: Range): Piece[] {
  const out: Piece[] = [];
  if (r.frames.length) {
    let at = r.offset;
    for (const fi of r.frames) {
      const f = frames[fi];
      if (!f) continue;
      out.push({ offset: at, size: f.size, sha256: f.sha256, frame: fi });
      at += f.size;
    }
    return out;
  }
  for (let at = 0; at < r.size; at += PIECE)
    out.push({ offset: r.offset + at, size: Math.min(PIECE, r.size - at) });
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

  /**
   * Streams bytes [offset, offset+length) of an object to `onData` (`at`: offset in the range; a
   * retried attempt starts again at 0): the driver's streaming read when it has one, else one
   * range read. Returns the number of bytes received.
   */
  const streamRange = async (
    store: NamedStore['store'],
    key: string,
    offset: number,
    length: number,
    onData: (data: Uint8Array, at: number) => Promise<void>,
  ): Promise<number> => {
    const streaming = (store as Partial<Pick<S3Store, 'getRangeStream'>>).getRangeStream;
    if (streaming) return streaming.call(store, key, offset, length, onData);
    const data = await store.getRange(key, offset, length);
    if (data.length <= length) await onData(data, 0);
    return data.length;
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
        // Its detached signature is asked for at the same time (one round trip instead of two).
        const sig = s.store.get(`${key}.minisig`);
        sig.catch(() => undefined);
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
        const signature = (await sig)?.toString('utf8');
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
        const sig = s.store.get(`${key}.minisig`);
        sig.catch(() => undefined);
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
        const signature = (await sig)?.toString('utf8');
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
      // Chunks the cache has are marked used (LRU); the others are fetched while the archive is read.
      const fetched = new Set(missing.map((x) => x.chunk.sha256));
      for (const c of recipe.chunks) if (!fetched.has(c.sha256)) await cache.has(c.sha256, c.size);
      const location = `${description} ${id} (${recipe.archive.name})`;
      const finish = async (): Promise<void> => {
        if (t.bytesFromCache > 0) servedBy(t, 'cache');
        stats.bytesFromCache += t.bytesFromCache;
        stats.servedBy[id] = [...t.servedBy];
        o.onLog?.(
          `${id}: ${t.bytesDownloaded} bytes downloaded in ${t.requests}/${planned} ranges, ${t.bytesFromCache} from the cache (${(performance.now() - t0).toFixed(0)} ms)`,
        );
        await cache.prune({ keep: new Set([recipe.archive.sha256, ...recipe.chunks.map((c) => c.sha256)]) });
      };
      if (missing.length === 0) {
        await finish();
        return openChunkedArchive(recipe, cache, location);
      }
      return streamArchive(m, id, recipe, t, missing, location, finish);
    },
  };

  /** One chunk the cache lacks, fetched while the archive is read (see streamArchive). */
  interface Job {
    chunk: RecipeChunk;
    key: string;
    ranges: Range[];
    /** Indexes of the only ranges wanted (incremental deploys); undefined: all of the chunk. */
    only: Set<number> | undefined;
    /** Ranges on disk, every frame verified (a resumed download's and those fetched now). */
    done: Set<number>;
    /** Ranges the reader may read now. */
    available: Set<number>;
    /** Every wanted range is available (a whole chunk: verified whole and in the cache). */
    finished: boolean;
    fh: FileHandle | undefined;
    /** Reads in progress on fh (it is closed once the chunk is finished and they are done). */
    readers: number;
    /** Handles of abandoned copies (a wrong chunk refetched from a mirror), closed at the end. */
    retired: FileHandle[];
    /** The first store asked for its ranges (the next one after a wrong chunk). */
    from: number;
    servers: Set<string>;
    /** The chunk's sha256 is computed in order from the ranges on disk: the next range to hash. */
    hashNext: number;
    hashId: string;
    /** Writes of the list of ranges on disk (resume), one at a time. */
    pending: Promise<void>;
  }

  /**
   * The ArchiveSource of an archive whose chunks are fetched as it is read: range GETs run ahead
   * of the reader in archive order (`parallel` in flight), each streamed through two reused 1 MiB
   * buffer to the chunk's partial file in the cache and to a hash thread that checks every frame's
   * sha256 (one buffer is written and hashed while the socket fills the other; memory: parallel x 2 MiB,
   * whatever the frame and range sizes); a range is readable once
   * all its frames are verified, and a read waits for the ranges it covers. Each chunk's sha256 is
   * computed in order from its ranges on disk while the archive is read; the chunk enters the cache
   * only once that digest is right (a wrong chunk is fetched again from the next mirror). Chunks
   * without frames (encrypted archives) are readable only once verified whole. An error fails the
   * reads that need the bytes (and close()).
   */
  const streamArchive = async (
    m: ComponentManifest,
    id: string,
    recipe: ArchiveRecipe,
    t: ArchiveTransfer,
    missing: { chunk: RecipeChunk; only?: Set<number> | undefined }[],
    location: string,
    finish: () => Promise<void>,
  ): Promise<ArchiveSource> => {
    // One thread hashes the frames as they land and the chunks in order.
    const hasher = await hashThread();
    const jobs = new Map<string, Job>();
    const queue: { job: Job; i: number }[] = [];
    let seq = 0;
    const piecesOf = (r: Range): Piece[] => piecesOfRange(m.frames, r);
    try {
      for (const x of missing) {
        const c = x.chunk;
        const part = cache.partialPath(c.sha256);
        await mkdir(dirname(part), { recursive: true });
        const ranges = rangesOf(m, c);
        const done = await partialDone(m, c);
        let only = x.only;
        // Wanted ranges plus those already here make the whole chunk: it is verified and cached.
        if (only && ranges.every((_, i) => only?.has(i) || done.has(i))) only = undefined;
        const fh = await open(part, done.size > 0 ? 'r+' : 'w+');
        if (done.size === 0) await fh.truncate(c.size);
        else
          o.onLog?.(
            `${id}: resuming ${keys.blob(c.sha256)} (${done.size}/${ranges.length} ranges already here)`,
          );
        const job: Job = {
          chunk: c,
          key: keys.blob(c.sha256),
          ranges,
          only,
          done,
          available: new Set(),
          finished: false,
          fh,
          readers: 0,
          retired: [],
          from: 0,
          servers: new Set(),
          hashNext: 0,
          hashId: `c${seq++}`,
          pending: Promise.resolve(),
        };
        jobs.set(c.sha256, job);
        let queued = false;
        ranges.forEach((r, i) => {
          if (done.has(i)) {
            if (only && c.frames) job.available.add(i);
            return;
          }
          if (only && !only.has(i)) return;
          queue.push({ job, i });
          queued = true;
        });
        if (only && !queued) job.finished = true;
        // Nothing to fetch but the chunk is not verified yet: hash what is on disk.
        else if (!queued) queue.push({ job, i: -1 });
      }
    } catch (err) {
      for (const j of jobs.values()) await j.fh?.close();
      await hasher.close();
      throw err;
    }

    let failure: Error | undefined;
    let stopped = false;
    let wake!: () => void;
    let changed = new Promise<void>((res) => (wake = res));
    const notify = (): void => {
      const w = wake;
      changed = new Promise<void>((res) => (wake = res));
      w();
    };
    /** close() before every chunk was fetched: what is in flight ends, nothing new starts. */
    let closing = false;
    const fail = (err: unknown): void => {
      if (!closing) failure ??= err instanceof Error ? err : new Error(String(err));
      stopped = true;
      notify();
    };
    const unfinished = (): number => [...jobs.values()].filter((j) => !j.finished).length;
    const progress = (): void =>
      o.onProgress?.({
        phase: 'download',
        item: id,
        done: t.bytesDownloaded,
        total: Math.max(t.bytesToDownload, t.bytesDownloaded),
        unit: 'bytes',
      });
    const closeIfIdle = async (j: Job): Promise<void> => {
      if (!j.finished || j.readers > 0 || !j.fh) return;
      const fh = j.fh;
      j.fh = undefined;
      await fh.close();
    };
    const readAt = async (fh: FileHandle, buf: Buffer, n: number, position: number): Promise<void> => {
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, position + got);
        if (bytesRead === 0) throw new Error(`internal: a partial download is short at ${position + got}`);
        got += bytesRead;
      }
    };

    /** The chunk is verified whole: into the cache, every range readable; or refetched from a mirror. */
    const complete = async (j: Job): Promise<void> => {
      const digest = await hasher.cut(j.hashId);
      const sha = j.chunk.sha256;
      if (digest === sha) {
        await j.fh?.sync();
        await j.pending;
        await cache.commit(sha);
        for (const name of j.servers) servedBy(t, name);
        j.ranges.forEach((_, i) => j.available.add(i));
        j.finished = true;
        notify();
        await closeIfIdle(j);
        return;
      }
      const error = corrupt(`${description} ${j.key}`, `chunk sha256 is ${digest}, expected ${sha}`);
      await j.pending;
      await cache.dropPartial(sha);
      const next = stores[j.from + 1];
      if (!next) throw error;
      o.onWarning?.(`${id}: ${error.message}; trying mirror ${next.name}`);
      // Readers of this copy keep their handle (the file is gone, its bytes stay readable).
      if (j.fh) j.retired.push(j.fh);
      j.fh = await open(cache.partialPath(sha), 'w+');
      await j.fh.truncate(j.chunk.size);
      j.from++;
      j.done.clear();
      j.available.clear();
      j.servers.clear();
      j.hashNext = 0;
      j.hashId = `c${seq++}`;
      j.ranges.forEach((_, i) => queue.push({ job: j, i }));
      notify();
    };

    /** Hashes the ranges of chunk j on disk, in order, as far as they are there (one at a time). */
    let hashBuf: Buffer | undefined;
    let hashing = Promise.resolve();
    const hashInOrder = async (j: Job): Promise<void> => {
      while (j.done.has(j.hashNext) && j.fh && !stopped) {
        const r = j.ranges[j.hashNext];
        if (!r) break;
        hashBuf ??= Buffer.from(new SharedArrayBuffer(STAGE));
        for (let at = 0; at < r.size; at += hashBuf.length) {
          const n = Math.min(hashBuf.length, r.size - at);
          await readAt(j.fh, hashBuf, n, r.offset + at);
          await hasher.update(hashBuf, 0, n, j.hashId);
        }
        j.hashNext++;
      }
      if (j.hashNext === j.ranges.length && !j.finished && !stopped) await complete(j);
    };
    /** Range i of chunk j is on disk, every frame verified: readable (not the last), hashed in order. */
    const landed = (j: Job, i: number): Promise<void> => {
      if (j.only) {
        if (i >= 0 && j.chunk.frames) j.available.add(i);
        if ([...j.only].every((k) => j.done.has(k))) {
          for (const name of j.servers) servedBy(t, name);
          j.finished = true;
          notify();
          return closeIfIdle(j);
        }
        notify();
        return Promise.resolve();
      }
      // Every frame of the range is verified: readable now, the last range too. The chunk's own
      // sha256 (and fsync) decide only whether it enters the cache, and run meanwhile.
      if (i >= 0 && j.chunk.frames) {
        j.available.add(i);
        notify();
      }
      // One hashing pass at a time, over all the chunks (a single reused buffer); the fetches go on.
      hashing = hashing.then(() => hashInOrder(j)).catch(fail);
      return Promise.resolve();
    };

    /** Streams range i of job j frame by frame through bufs, each frame checked, then written to disk. */
    const fetchRange = async (j: Job, i: number, bufs: [Buffer, Buffer]): Promise<void> => {
      const r = j.ranges[i];
      if (!r) return;
      const pieces = piecesOf(r);
      const rid = `r${seq++}`;
      const hit = await firstOf(
        `${id} ${j.key}`,
        async (s) => {
          const where = `${s.store.location} ${j.key}`;
          let piece = 0;
          /** Bytes of the current piece received, and of them those still in buf. */
          let got = 0;
          let fill = 0;
          let buf = bufs[0];
          /** The write and hash of the other buffer, if still running (hash updates stay in order). */
          let writing: Promise<void> = Promise.resolve();
          if (stopped) return true;
          const flush = async (p: Piece): Promise<void> => {
            if (stopped || !j.fh) throw new Error(`${location}: the archive was closed`);
            // The other buffer is free (and its bytes hashed) once its flush is done.
            await writing;
            const fh = j.fh;
            const b = buf;
            const n = fill;
            const at = p.offset + got - fill;
            // On disk before it is verified, but a range counts (is read, or resumed) only once
            // all its frames are.
            writing = Promise.all([
              fh.write(b, 0, n, at),
              p.sha256 ? hasher.update(b, 0, n, rid) : undefined,
            ]).then(progress);
            writing.catch(() => undefined); // awaited before the buffer is reused and at the end
            buf = b === bufs[0] ? bufs[1] : bufs[0];
            fill = 0;
          };
          const received = streamRange(s.store, j.key, r.offset, r.size, async (data, at) => {
            if (at === 0) {
              await writing.catch(() => undefined);
              piece = 0; // a retried attempt starts again
              got = 0;
              fill = 0;
              hasher.drop(rid);
            }
            // Received bytes count even when a check rejects them (then a mirror is asked).
            t.bytesDownloaded += data.length;
            stats.bytesDownloaded += data.length;
            let used = 0;
            while (used < data.length) {
              const p = pieces[piece];
              if (!p) throw corrupt(where, `range at ${r.offset} has more than ${r.size} bytes`);
              const take = Math.min(p.size - got, buf.length - fill, data.length - used);
              buf.set(data.subarray(used, used + take), fill);
              fill += take;
              got += take;
              used += take;
              if (fill === buf.length || got === p.size) await flush(p);
              if (got < p.size) continue;
              await writing;
              if (p.sha256 && (await hasher.cut(rid)) !== p.sha256)
                throw corrupt(where, `frame ${p.frame} does not match its sha256`);
              piece++;
              got = 0;
            }
          });
          let n: number;
          try {
            n = await received;
            await writing;
          } catch (err) {
            await writing.catch(() => undefined);
            if (stopped) return true; // closed meanwhile: no mirror to ask
            throw err;
          }
          if (n !== r.size || piece !== pieces.length)
            throw corrupt(where, `range at ${r.offset} has ${n} bytes, expected ${r.size}`);
          return true;
        },
        j.from,
      );
      if (!hit) throw new Error('internal: no answer');
      if (stopped || !j.fh) return;
      j.servers.add(hit.from.name);
      t.requests++;
      // The list of ranges on disk, written one at a time (resume), before the range counts as done.
      const list = [...j.done, i];
      j.pending = j.pending.then(() => cache.writePartial(j.chunk.sha256, list));
      await j.pending;
      j.done.add(i);
      await landed(j, i);
    };

    const worker = async (): Promise<void> => {
      let bufs: [Buffer, Buffer] | undefined;
      while (!stopped) {
        const task = queue.shift();
        if (!task) {
          if (unfinished() === 0) return;
          await changed;
          continue;
        }
        if (task.i < 0) await landed(task.job, -1);
        else {
          bufs ??= [Buffer.from(new SharedArrayBuffer(STAGE)), Buffer.from(new SharedArrayBuffer(STAGE))];
          await fetchRange(task.job, task.i, bufs);
        }
      }
    };
    const workers = Array.from({ length: Math.min(parallel, Math.max(1, queue.length)) }, () =>
      worker().catch(fail),
    );
    const background = (async () => {
      await Promise.all(workers);
      await hashing;
      // Every chunk is here: the hash thread and the buffers go before the extraction needs memory.
      hashBuf = undefined;
      await hasher.close();
      if (!failure && !stopped) await finish();
    })().catch(fail);
    notify();

    const handles = new Map<string, Promise<FileHandle>>();
    const handle = (sha: string, partial: boolean): Promise<FileHandle> => {
      let h = handles.get(sha);
      if (!h) {
        h = open(partial ? cache.partialPath(sha) : cache.chunkPath(sha), 'r');
        h.catch(() => undefined);
        handles.set(sha, h);
      }
      return h;
    };
    const chunks = recipe.chunks;
    const find = (offset: number): number => chunkAt(chunks, offset);
    /** Waits until bytes [from, from+n) of job j are readable (or will never be fetched). */
    const ready = async (j: Job, from: number, n: number): Promise<void> => {
      for (;;) {
        if (j.finished) return;
        if (failure) throw failure;
        if (stopped) throw new Error(`${location}: the archive was closed`);
        let ok = true;
        for (const [k, r] of j.ranges.entries()) {
          if (r.offset >= from + n || r.offset + r.size <= from) continue;
          // A range that is not fetched reads as what the partial file holds (readers check frames).
          if (j.only && !j.only.has(k) && !j.done.has(k)) continue;
          if (!j.available.has(k)) {
            ok = false;
            break;
          }
        }
        if (ok) return;
        await changed;
      }
    };
    const readInto = async (out: Uint8Array, offset: number, length: number): Promise<number> => {
      const end = Math.min(offset + length, recipe.archive.size);
      let pos = offset;
      for (let i = find(offset); pos < end && i < chunks.length; i++) {
        const c = chunks[i];
        if (!c) break;
        const from = pos - c.offset;
        const n = Math.min(c.size - from, end - pos);
        const j = jobs.get(c.sha256);
        if (j) await ready(j, from, n);
        let fh: FileHandle;
        const live = j?.fh;
        if (j && live) {
          fh = live;
          j.readers++;
        } else fh = await handle(c.sha256, !!j?.only);
        let got = 0;
        try {
          while (got < n) {
            const { bytesRead } = await fh.read(out, pos - offset + got, n - got, from + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
        } finally {
          if (j && live) {
            j.readers--;
            await closeIfIdle(j);
          }
        }
        pos += got;
        if (got < n) break;
      }
      return pos - offset;
    };
    return {
      location,
      size: () => Promise.resolve(recipe.archive.size),
      readInto,
      async read(offset, length) {
        const out = Buffer.allocUnsafe(Math.max(0, Math.min(offset + length, recipe.archive.size) - offset));
        const n = await readInto(out, offset, out.length);
        return n === out.length ? out : out.subarray(0, n);
      },
      async close() {
        // Closed before every range was fetched: what is in flight ends, nothing new starts. Once
        // all are here, the chunks still being verified are awaited (and enter the cache).
        const fetched = (j: Job): boolean =>
          j.ranges.every((_, i) => j.done.has(i) || (j.only !== undefined && !j.only.has(i)));
        if (!stopped && (queue.length > 0 || [...jobs.values()].some((j) => !j.finished && !fetched(j)))) {
          closing = true;
          stopped = true;
        }
        notify();
        await background;
        await hashing;
        for (const j of jobs.values()) {
          for (const fh of j.retired) await fh.close().catch(() => undefined);
          const fh = j.fh;
          j.fh = undefined;
          await fh?.close().catch(() => undefined);
        }
        for (const h of handles.values()) await (await h.catch(() => undefined))?.close();
        handles.clear();
        await hasher.close();
        if (failure) throw failure;
      },
    };
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
  const find = (offset: number): number => chunkAt(chunks, offset);
  // Into the caller's buffer, so that readers reuse their frame slots (src/archive/reader.ts).
  const readInto = async (out: Uint8Array, offset: number, length: number): Promise<number> => {
    const end = Math.min(offset + length, recipe.archive.size);
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
      pos += got;
      if (got < n) break;
    }
    return pos - offset;
  };
  return {
    location,
    size: () => Promise.resolve(recipe.archive.size),
    readInto,
    async read(offset, length) {
      const out = Buffer.allocUnsafe(Math.max(0, Math.min(offset + length, recipe.archive.size) - offset));
      const n = await readInto(out, offset, out.length);
      return n === out.length ? out : out.subarray(0, n);
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
