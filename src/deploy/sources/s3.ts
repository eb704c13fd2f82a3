/**
 * The ReleaseSource of bucket stores (s3, bos, and filesystem folders with the bucket layout):
 * reads release and component manifests, and archives as content-addressed chunks, from the store
 * and then its mirrors in priority order. Archives are fetched chunk by chunk into the local
 * download cache with parallel HTTP range requests (frames merged into ranges of up to 16 MiB),
 * each frame's sha256 checked as it lands, each chunk's sha256 checked before it enters the cache;
 * an interrupted download resumes from the ranges already fetched. On an error, a timeout or a
 * checksum mismatch a range is fetched from the next mirror. Chunks already in the cache (a
 * previous deploy on this host, or an unchanged file of the previous model version) are not
 * downloaded again. The ArchiveSource then reads from the cached chunks.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
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
import { openCache, parseSize, type DownloadCache } from '../../store/cache.js';
import { resolveStore, type NamedStore, type StoreFlags } from '../../store/resolve.js';
import { storedArchive } from '../../trust/encrypt.js';
import type { LoadedComponent, LoadedRelease, ReleaseSource } from '../source.js';

const MiB = 1024 * 1024;

export interface BucketSourceOptions extends Reporter {
  /** The store first, then its mirrors. */
  stores: NamedStore[];
  cache: DownloadCache;
  /** Range requests in flight (default 4). */
  parallel?: number | undefined;
  /** Largest merged range (default 16 MiB; at least 8 MiB unless a chunk is smaller). */
  rangeSize?: number | undefined;
}

export interface DownloadStats {
  /** Bytes fetched from stores, and served by the cache. */
  bytesDownloaded: number;
  bytesFromCache: number;
  /** Which store served each archive (component id -> store names). */
  servedBy: Record<string, string[]>;
}

export interface BucketReleaseSource extends ReleaseSource {
  readonly stats: DownloadStats;
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
  const rangeSize = Math.max(MiB, o.rangeSize ?? 16 * MiB);
  const description = `[${primary.store.driver}] ${primary.store.location}${
    stores.length > 1
      ? ` (mirrors: ${stores
          .slice(1)
          .map((s) => s.name)
          .join(', ')})`
      : ''
  }`;
  const stats: DownloadStats = { bytesDownloaded: 0, bytesFromCache: 0, servedBy: {} };
  const cache = o.cache;

  /** Tries each store in order; `accept` may reject a store's answer (then the next is tried). */
  const firstOf = async <T>(
    what: string,
    fn: (s: NamedStore) => Promise<T | undefined>,
  ): Promise<{ value: T; from: NamedStore } | undefined> => {
    let lastErr: Error | undefined;
    for (const [i, s] of stores.entries()) {
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

  const served = (id: string, name: string): void => {
    const list = (stats.servedBy[id] ??= []);
    if (!list.includes(name)) list.push(name);
  };

  const loadRecipe = async (m: ComponentManifest, id: string): Promise<ArchiveRecipe> => {
    const sha = storedArchive(m).sha256;
    const cached = await cache.getRecipe(sha);
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
    await cache.putRecipe(sha, hit.value.text);
    return hit.value.recipe;
  };

  /** Ranges of a chunk: whole frames merged up to rangeSize, or fixed slices without frames. */
  const rangesOf = (
    m: ComponentManifest,
    c: RecipeChunk,
  ): { offset: number; size: number; frames: number[] }[] => {
    const out: { offset: number; size: number; frames: number[] }[] = [];
    if (!c.frames) {
      for (let off = 0; off < c.size; off += rangeSize)
        out.push({ offset: off, size: Math.min(rangeSize, c.size - off), frames: [] });
      return out;
    }
    const [first, count] = c.frames;
    let cur: { offset: number; size: number; frames: number[] } | undefined;
    for (let i = first; i < first + count; i++) {
      const f = m.frames[i];
      if (!f) break;
      const rel = f.offset - c.offset;
      if (cur && cur.size + f.size <= rangeSize) {
        cur.size += f.size;
        cur.frames.push(i);
      } else {
        if (cur) out.push(cur);
        cur = { offset: rel, size: f.size, frames: [i] };
      }
    }
    if (cur) out.push(cur);
    return out;
  };

  const hashFile = async (path: string): Promise<string> => {
    const h = createHash('sha256');
    for await (const b of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(b as Buffer);
    return h.digest('hex');
  };

  /** Makes sure a verified chunk is in the cache. Returns the bytes fetched from stores. */
  const ensureChunk = async (m: ComponentManifest, c: RecipeChunk, id: string): Promise<number> => {
    if (await cache.has(c.sha256, c.size)) {
      stats.bytesFromCache += c.size;
      return 0;
    }
    const key = keys.blob(c.sha256);
    const part = cache.partialPath(c.sha256);
    await mkdir(dirname(part), { recursive: true });
    const ranges = rangesOf(m, c);
    let done = new Set(await cache.readPartial(c.sha256));
    const st = await stat(part).catch(() => undefined);
    if (!st || st.size !== c.size) done = new Set();
    const fh = await open(part, st && st.size === c.size ? 'r+' : 'w+');
    let fetched = 0;
    try {
      if (!st || st.size !== c.size) await fh.truncate(c.size);
      if (done.size) o.onLog?.(`${id}: resuming ${key} (${done.size}/${ranges.length} ranges already here)`);
      let pending = Promise.resolve();
      await mapLimit(
        ranges.map((r, i) => ({ r, i })).filter(({ i }) => !done.has(i)),
        parallel,
        async ({ r, i }) => {
          const hit = await firstOf(`${id} ${key}`, async (s) => {
            const buf = await s.store.getRange(key, r.offset, r.size);
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
          });
          if (!hit) throw new Error('internal: no answer');
          served(id, hit.from.name);
          await fh.write(hit.value, 0, hit.value.length, r.offset);
          fetched += r.size;
          stats.bytesDownloaded += r.size;
          done.add(i);
          // Progress of the partial file, written one at a time.
          pending = pending.then(() => cache.writePartial(c.sha256, [...done]));
          await pending;
          o.onProgress?.({ phase: 'download', item: id, done: fetched, total: c.size, unit: 'bytes' });
        },
      );
      await fh.sync();
    } finally {
      await fh.close();
    }
    const digest = await hashFile(part);
    if (digest !== c.sha256) {
      await cache.dropPartial(c.sha256);
      throw corrupt(`${description} ${key}`, `chunk sha256 is ${digest}, expected ${c.sha256}`);
    }
    await cache.commit(c.sha256);
    return fetched;
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

    async openArchive(component): Promise<ArchiveSource> {
      const m = component.manifest;
      const id = `${m.type}:${m.version}`;
      const recipe = await loadRecipe(m, id);
      const total = recipe.archive.size;
      o.onLog?.(`${id}: ${recipe.chunks.length} chunks, ${total} bytes`);
      const t0 = performance.now();
      let fetched = 0;
      for (const c of recipe.chunks) fetched += await ensureChunk(m, c, id);
      if (fetched === 0) served(id, 'cache');
      o.onLog?.(
        `${id}: ${fetched} bytes downloaded, ${total - fetched} from the cache (${(performance.now() - t0).toFixed(0)} ms)`,
      );
      await cache.prune({ keep: new Set(recipe.chunks.map((c) => c.sha256)) });
      return openChunkedArchive(recipe, cache, `${description} ${id} (${recipe.archive.name})`);
    },
  };
  return source;
}

/** An ArchiveSource over the cached chunks of an archive (read-only, handles opened lazily). */
export function openChunkedArchive(
  recipe: ArchiveRecipe,
  cache: DownloadCache,
  location: string,
): ArchiveSource {
  const handles = new Map<string, Promise<FileHandle>>();
  const handle = (sha: string): Promise<FileHandle> => {
    let h = handles.get(sha);
    if (!h) {
      h = open(cache.chunkPath(sha), 'r');
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
  /** --cache-dir (else cache.dir of the config, else the XDG default). */
  cacheDir?: string | undefined;
}

/** The deploy side of `--method s3|bos --bucket B ...` and `--store NAME`. */
export function bucketSourceFromFlags(o: BucketSourceFromFlagsOptions): BucketReleaseSource {
  const r = resolveStore(o.flags, { config: o.config, baseDir: o.baseDir });
  const cfgDir = o.config?.cache?.dir;
  const cache = openCache({
    dir: o.cacheDir ? resolve(o.baseDir, o.cacheDir) : cfgDir ? resolve(o.baseDir, cfgDir) : undefined,
    maxBytes:
      o.config?.cache?.max_size !== undefined
        ? parseSize(o.config.cache.max_size, 'cache.max_size')
        : undefined,
  });
  return createBucketReleaseSource({
    stores: [r, ...r.mirrors],
    cache,
    onLog: o.onLog,
    onWarning: o.onWarning,
    onProgress: o.onProgress,
  });
}
