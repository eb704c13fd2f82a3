/**
 * The content-addressed bucket layout used by the s3 and bos methods (and by filesystem stores
 * that mirror a bucket). See docs/formats.md, "S3 bucket layout".
 *
 *   PREFIX/blobs/sha256/HEX                      chunk: consecutive compressed frames of an archive
 *   PREFIX/archives/sha256/HEX.json              recipe: the chunks that concatenate to archive HEX
 *   PREFIX/components/TYPE/VERSION/manifest.json component manifest (exact bytes) [+ .minisig]
 *   PREFIX/releases/R/release.json               release manifest, written last [+ .minisig]
 *   PREFIX/pointers/NAME.json                    mutable pointer ({"release": R}), compare-and-swap
 *
 * Chunks: each large file's frames form one chunk (a file that did not change between versions is
 * the same chunk, stored once); the frames between large files are grouped into chunks of at most
 * 64 MiB. Everything but pointers is written with If-None-Match: *, in the order blobs, recipe,
 * component manifest, release manifest, so that a crash leaves nothing a reader would use.
 */
import { stat } from 'node:fs/promises';
import * as z from 'zod';
import { DeployToolError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { sha256Hex } from '../core/hash.js';
import type { ComponentManifest } from '../manifest/component.js';
import { parseReleaseManifestText, type ReleaseComponent } from '../manifest/release.js';
import { storedArchive } from '../trust/encrypt.js';
import type { Store } from './types.js';
import { hashFilePieces, hashFileRanges, putFileRange, sha256OfFileRange } from './util.js';

export const RECIPE_SCHEMA_VERSION = 1;
const MiB = 1024 * 1024;
/** Largest group chunk (frames of small files between large ones). */
export const GROUP_CHUNK_MAX = 64 * MiB;

export const keys = {
  blob: (sha256: string): string => `blobs/sha256/${sha256}`,
  recipe: (archiveSha256: string): string => `archives/sha256/${archiveSha256}.json`,
  component: (type: string, version: string): string => `components/${type}/${version}/manifest.json`,
  release: (release: string): string => `releases/${release}/release.json`,
  pointer: (name: string): string => `pointers/${name}.json`,
};

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const uint = z.number().int().min(0);
export const recipeSchema = z.object({
  schemaVersion: z.literal(RECIPE_SCHEMA_VERSION),
  kind: z.literal('deploy-tool/archive-recipe'),
  archive: z.object({ name: z.string().min(1), size: uint, sha256 }),
  chunks: z
    .array(
      z.object({
        sha256,
        offset: uint,
        size: z.number().int().min(1),
        /** First frame and number of frames, or null when the chunk is not frame-aligned (encrypted archives). */
        frames: z.tuple([uint, z.number().int().min(1)]).nullable(),
      }),
    )
    .max(1_000_000),
});
export type ArchiveRecipe = z.infer<typeof recipeSchema>;
export type RecipeChunk = ArchiveRecipe['chunks'][number];

/** Parses a recipe and checks it against the manifest (chunks tile the archive; frames match). */
export function parseRecipe(text: string, m: ComponentManifest, where: string): ArchiveRecipe {
  const bad = (why: string): never => {
    throw new DeployToolError('ERR_MANIFEST_INVALID', `${where}: ${why}`, {
      hint: 'The archive recipe in the bucket is damaged. Publish the component again.',
    });
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return bad('not valid JSON');
  }
  const parsed = recipeSchema.safeParse(raw);
  if (!parsed.success) return bad(parsed.error.issues[0]?.message ?? 'invalid');
  const r = parsed.data;
  const stored = storedArchive(m);
  if (r.archive.sha256 !== stored.sha256 || r.archive.size !== stored.size)
    bad('describes another archive than the component manifest');
  let off = 0;
  for (const c of r.chunks) {
    if (c.offset !== off) bad('chunks do not tile the archive');
    if (c.frames) {
      const [first, count] = c.frames;
      const f0 = m.frames[first];
      const fl = m.frames[first + count - 1];
      if (!f0 || !fl || f0.offset !== c.offset || fl.offset + fl.size !== c.offset + c.size)
        bad('a chunk does not cover whole frames');
    }
    off += c.size;
  }
  if (off !== stored.size) bad('chunks do not cover the archive');
  return r;
}

/** Splits an archive into chunks (offsets only; sha256 computed from the bytes). */
export function planChunks(m: ComponentManifest): Omit<RecipeChunk, 'sha256'>[] {
  const stored = storedArchive(m);
  const out: Omit<RecipeChunk, 'sha256'>[] = [];
  if (stored.sha256 !== m.archive.sha256 || stored.size !== m.archive.size) {
    // Encrypted: frames describe the plaintext; split the ciphertext at fixed sizes.
    for (let off = 0; off < stored.size; off += GROUP_CHUNK_MAX)
      out.push({ offset: off, size: Math.min(GROUP_CHUNK_MAX, stored.size - off), frames: null });
    return out;
  }
  const files = m.files.filter((f) => f.type === 'file');
  let fi = 0;
  const ownerOf = (tarOffset: number, tarSize: number): number => {
    while (fi < files.length) {
      const f = files[fi];
      if (!f || f.type !== 'file' || f.offset + f.size > tarOffset) break;
      fi++;
    }
    const f = files[fi];
    if (f && f.type === 'file' && f.offset <= tarOffset && tarOffset + tarSize <= f.offset + f.size)
      return fi;
    return -1;
  };
  let cur: { owner: number; offset: number; size: number; first: number; count: number } | undefined;
  m.frames.forEach((f, i) => {
    const owner = ownerOf(f.tarOffset, f.tarSize);
    if (cur && cur.owner === owner && (owner >= 0 || cur.size + f.size <= GROUP_CHUNK_MAX)) {
      cur.size += f.size;
      cur.count++;
      return;
    }
    if (cur) out.push({ offset: cur.offset, size: cur.size, frames: [cur.first, cur.count] });
    cur = { owner, offset: f.offset, size: f.size, first: i, count: 1 };
  });
  if (cur) out.push({ offset: cur.offset, size: cur.size, frames: [cur.first, cur.count] });
  return out;
}

export async function buildRecipe(m: ComponentManifest, archivePath: string): Promise<ArchiveRecipe> {
  const chunks: RecipeChunk[] = [];
  for (const c of planChunks(m))
    chunks.push({ ...c, sha256: await sha256OfFileRange(archivePath, c.offset, c.size) });
  return recipeOf(m, chunks);
}

function recipeOf(m: ComponentManifest, chunks: RecipeChunk[]): ArchiveRecipe {
  const stored = storedArchive(m);
  return {
    schemaVersion: RECIPE_SCHEMA_VERSION,
    kind: 'deploy-tool/archive-recipe',
    archive: { name: stored.name, size: stored.size, sha256: stored.sha256 },
    chunks,
  };
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** Runs fn over items with at most `n` at a time. */
export async function mapLimit<T, R>(
  items: T[],
  n: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export interface UploadArchiveResult {
  chunks: number;
  chunksUploaded: number;
  bytesUploaded: number;
  bytesReused: number;
  /**
   * Archive bytes read (and hashed) from the local file: all of them, or, when earlier recipes name
   * the shared chunks, only the chunks the store lacks.
   */
  bytesRead: number;
}

/** The archive file does not match its manifest (nothing that names it is written). */
function archiveMismatch(m: ComponentManifest, path: string, why: string): DeployToolError {
  return new DeployToolError('ERR_ARCHIVE_CORRUPT', `${m.type}:${m.version}: ${path}: ${why}`, {
    hint: `The archive in dist/ no longer matches its manifest; no recipe, manifest or release was written. Pack it again ("deploy-tool pack PATH --type ${m.type} --version ${m.version} --force").`,
  });
}

export interface UploadArchiveOptions extends Reporter {
  item?: string;
  parallel?: number;
  /** Requests wait for it (the archive is hashed meanwhile); its failure fails the upload. */
  before?: Promise<unknown> | undefined;
  /**
   * Manifests of earlier versions of the component (the project's, most recent first): their
   * recipes in the store name the chunks this archive shares with them, which are then not read.
   */
  earlier?: (() => Promise<ComponentManifest[]>) | undefined;
}

/** Earlier versions whose recipes are read, at most (those sharing the most frames). */
const EARLIER_RECIPES = 2;

/**
 * Sends one chunk (signed with its sha256) unless the store has it: HEAD, with its size; a blob of
 * another size is a leftover of a broken upload and is replaced. True when it was sent.
 */
async function sendChunk(
  store: Store,
  archivePath: string,
  c: Omit<RecipeChunk, 'sha256'>,
  sha256: string,
  o: Reporter,
): Promise<boolean> {
  const key = keys.blob(sha256);
  const have = await store.head(key);
  if (have && have.size === c.size) return false;
  o.onLog?.(`uploading ${key} (${c.size} bytes)`);
  await putFileRange(
    store,
    key,
    archivePath,
    { offset: c.offset, length: c.size },
    { ifNoneMatch: !have, sha256 },
  );
  return true;
}

interface SharedChunks {
  /** Earlier manifests that share frames with this one, most shared first. */
  earlier: ComponentManifest[];
  /** Plan indexes of the chunks that are chunks of those versions too (by their frames). */
  shared: Set<number>;
}

const frameRun = (m: ComponentManifest, frames: readonly [number, number]): string =>
  m.frames
    .slice(frames[0], frames[0] + frames[1])
    .map((f) => f.sha256)
    .join(',');

/**
 * The chunks of `m` that are also chunks of an earlier version, found locally from the manifests
 * (no request): a chunk is the concatenation of consecutive frames, each identified by its sha256,
 * so a planned chunk whose frames have the same sha256s, in the same order, as a chunk planned for
 * an earlier version has the same bytes. Undefined when there are none (or the archive is
 * encrypted: its chunks have no frames).
 */
async function sharedChunks(
  m: ComponentManifest,
  plan: Omit<RecipeChunk, 'sha256'>[],
  o: UploadArchiveOptions,
): Promise<SharedChunks | undefined> {
  if (!o.earlier || plan.length === 0 || plan.some((c) => !c.frames)) return undefined;
  let all: ComponentManifest[];
  try {
    all = await o.earlier();
  } catch {
    return undefined;
  }
  const mine = new Set(m.frames.map((f) => f.sha256));
  const earlier = all
    .filter(
      (e) =>
        e.type === m.type &&
        e.version !== m.version &&
        storedArchive(e).sha256 === e.archive.sha256 &&
        e.archive.sha256 !== m.archive.sha256,
    )
    .map((e) => ({ e, n: e.frames.filter((f) => mine.has(f.sha256)).length }))
    .filter((c) => c.n > 0)
    .sort((a, b) => b.n - a.n)
    .slice(0, EARLIER_RECIPES)
    .map((c) => c.e);
  const runs = new Set<string>();
  for (const e of earlier) for (const c of planChunks(e)) if (c.frames) runs.add(frameRun(e, c.frames));
  const shared = new Set<number>();
  plan.forEach((c, i) => {
    if (c.frames && runs.has(frameRun(m, c.frames))) shared.add(i);
  });
  return shared.size > 0 ? { earlier, shared } : undefined;
}

/**
 * The sha256s of shared chunks that the earlier versions' recipes in the store give and that the
 * store still has (HEAD, with their size): plan index -> sha256. Each recipe is checked against its
 * own manifest (parseRecipe); a missing or damaged one just means its chunks are read.
 */
async function namedInStore(
  store: Store,
  m: ComponentManifest,
  plan: Omit<RecipeChunk, 'sha256'>[],
  s: SharedChunks,
): Promise<{ names: Map<number, string>; from: string[] }> {
  const runs = new Map<string, { sha256: string; size: number }>();
  const from: string[] = [];
  await Promise.all(
    s.earlier.map(async (e) => {
      const key = keys.recipe(e.archive.sha256);
      try {
        const text = (await store.get(key))?.toString('utf8');
        if (text === undefined) return;
        const r = parseRecipe(text, e, `${store.location} ${key}`);
        for (const c of r.chunks)
          if (c.frames) runs.set(frameRun(e, c.frames), { sha256: c.sha256, size: c.size });
        from.push(`${e.type}:${e.version}`);
      } catch {
        // An earlier recipe that cannot be used: those chunks are read and hashed.
      }
    }),
  );
  const names = new Map<number, string>();
  await mapLimit([...s.shared], 8, async (i) => {
    const c = plan[i];
    const hit = c?.frames ? runs.get(frameRun(m, c.frames)) : undefined;
    if (!c || !hit || hit.size !== c.size) return;
    const info = await store.head(keys.blob(hit.sha256));
    if (info && info.size === c.size) names.set(i, hit.sha256);
  });
  return { names, from };
}

/**
 * uploadArchive for a new version that shares chunks with earlier ones (sharedChunks). The chunks
 * no earlier version has are read at once (one pass computes each one's sha256, its key, and its
 * frames' sha256s, which must be the manifest's) while the store is asked for the earlier recipes
 * (namedInStore); each is uploaded as soon as its digest is known and the store has answered. The
 * shared chunks the store has are neither read nor sent; those it lacks are read in a second pass.
 * The recipe is written last, once every frame read matched. The archive's whole sha256 is not
 * computed: its bytes in the store are the frames the manifest names (those read were checked now,
 * those reused when they were published). Returns undefined, having sent nothing, when the store
 * already has this archive's recipe (the caller then checks the local file as a whole).
 */
async function uploadChanged(
  store: Store,
  m: ComponentManifest,
  archivePath: string,
  plan: Omit<RecipeChunk, 'sha256'>[],
  shared: SharedChunks,
  present: Promise<boolean>,
  o: UploadArchiveOptions,
): Promise<UploadArchiveResult | undefined> {
  const stored = storedArchive(m);
  const sums: string[] = new Array<string>(plan.length);
  const named = present.then((there) => (there ? undefined : namedInStore(store, m, plan, shared)));
  named.catch(() => undefined); // awaited below
  const limit = semaphore(o.parallel ?? 4);
  let done = 0;
  let uploaded = 0;
  let bytesUploaded = 0;
  let bytesRead = 0;
  let mismatch: string | undefined;
  const tasks: Promise<void>[] = [];
  const progress = (): void =>
    o.onProgress?.({ phase: 'upload', item: o.item, done, total: stored.size, unit: 'bytes' });
  const upload = (c: Omit<RecipeChunk, 'sha256'>, sha256: string): Promise<void> =>
    (async () => {
      if (await present) return;
      await limit(async () => {
        if (await sendChunk(store, archivePath, c, sha256, o)) {
          uploaded++;
          bytesUploaded += c.size;
        }
        done += c.size;
        progress();
      });
    })();
  /** Reads and hashes the chunks `idx` (and their frames), uploading each once hashed. */
  const pass = async (idx: number[]): Promise<void> => {
    if (idx.length === 0) return;
    const frameIndex: number[] = [];
    for (const i of idx) {
      const [first, count] = plan[i]?.frames ?? [0, 0];
      for (let f = first; f < first + count; f++) frameIndex.push(f);
    }
    await hashFileRanges(
      archivePath,
      idx.map((i) => ({ offset: plan[i]?.offset ?? 0, length: plan[i]?.size ?? 0 })),
      frameIndex.map((f) => (m.frames[f]?.offset ?? 0) + (m.frames[f]?.size ?? 0)),
      (p, sha256) => {
        const f = frameIndex[p] ?? -1;
        if (sha256 !== m.frames[f]?.sha256)
          mismatch ??= `frame ${f} has sha256 ${sha256}, the manifest says ${m.frames[f]?.sha256}`;
      },
      (k, sha256, size) => {
        const i = idx[k] ?? -1;
        const c = plan[i];
        if (!c) return;
        bytesRead += size;
        if (size !== c.size) {
          mismatch ??= `chunk at offset ${c.offset} has ${size} bytes, expected ${c.size}`;
          return;
        }
        sums[i] = sha256;
        const t = upload(c, sha256);
        t.catch(() => undefined); // awaited below
        tasks.push(t);
      },
    );
  };
  try {
    await pass(plan.map((_, i) => i).filter((i) => !shared.shared.has(i)));
    const found = await named;
    if (found === undefined) {
      await Promise.allSettled(tasks);
      return undefined;
    }
    const from = found.from;
    for (const [i, sha256] of found.names) {
      sums[i] = sha256;
      done += plan[i]?.size ?? 0;
    }
    const rest = [...shared.shared].filter((i) => !found.names.has(i)).sort((a, b) => a - b);
    o.onLog?.(
      `${stored.name}: ${plan.length} chunks, ${found.names.size} already in ${store.location} ` +
        `(named by ${from.join(', ') || 'no earlier recipe'}), ${plan.length - found.names.size} read`,
    );
    progress();
    // A frame that did not match already fails the upload: nothing more is read for it.
    if (!mismatch) await pass(rest);
  } catch (err) {
    await Promise.allSettled(tasks);
    throw err;
  }
  if (mismatch) {
    await Promise.allSettled(tasks);
    throw archiveMismatch(m, archivePath, mismatch);
  }
  await Promise.all(tasks);
  const chunks: RecipeChunk[] = plan.map((c, i) => ({ ...c, sha256: sums[i] ?? '' }));
  await putImmutable(store, keys.recipe(stored.sha256), json(recipeOf(m, chunks)), 'archive recipe');
  return {
    chunks: chunks.length,
    chunksUploaded: uploaded,
    bytesUploaded,
    bytesReused: stored.size - bytesUploaded,
    bytesRead,
  };
}

/**
 * Uploads an archive's chunks that the bucket does not have, then its recipe. The archive is read
 * once, in order: one pass computes every chunk's sha256 (its key; a chunk the bucket lacks is
 * uploaded as soon as its digest is known, signed with it) and the whole archive's sha256, which
 * must be the manifest's before the recipe is written (callers write the component manifest only
 * after this returns). Chunks uploaded before a mismatch is found are content-addressed blobs that
 * nothing names, like those of an interrupted publish. A new version that shares chunks with
 * earlier ones (`o.earlier`) reads only the chunks the store lacks instead (uploadChanged).
 */
export async function uploadArchive(
  store: Store,
  m: ComponentManifest,
  archivePath: string,
  o: UploadArchiveOptions = {},
): Promise<UploadArchiveResult> {
  const stored = storedArchive(m);
  const recipeKey = keys.recipe(stored.sha256);
  const size = await stat(archivePath).then(
    (st) => st.size,
    () => -1,
  );
  if (size !== stored.size) {
    throw archiveMismatch(
      m,
      archivePath,
      size < 0 ? 'cannot read the archive' : `archive has ${size} bytes, the manifest says ${stored.size}`,
    );
  }
  // The recipe is written after its chunks: when it is there, so is the archive (only the local
  // file's digest is still checked, below). Asked while the hashing starts (after `o.before`: no
  // request is made before it resolves, and its failure fails the upload).
  const present = (o.before ?? Promise.resolve())
    .then(() => store.head(recipeKey))
    .then((info) => info !== undefined);
  present.catch(() => undefined);
  const plan = planChunks(m);
  const shared = await sharedChunks(m, plan, o);
  if (shared) {
    const r = await uploadChanged(store, m, archivePath, plan, shared, present, o);
    if (r) return r;
  }
  const limit = semaphore(o.parallel ?? 4);
  let done = 0;
  let uploaded = 0;
  let bytesUploaded = 0;
  let logged = false;
  const tasks: Promise<void>[] = [];
  const upload = async (c: Omit<RecipeChunk, 'sha256'>, sha256: string): Promise<void> => {
    if (await present) return;
    if (!logged) {
      logged = true;
      o.onLog?.(`${stored.name}: ${plan.length} chunks`);
    }
    await limit(async () => {
      if (await sendChunk(store, archivePath, c, sha256, o)) {
        uploaded++;
        bytesUploaded += c.size;
      }
      done += c.size;
      o.onProgress?.({ phase: 'upload', item: o.item, done, total: stored.size, unit: 'bytes' });
    });
  };
  let hashed: Awaited<ReturnType<typeof hashFilePieces>>;
  try {
    hashed = await hashFilePieces(
      archivePath,
      plan.map((c) => c.offset + c.size),
      (i, sha256) => {
        const c = plan[i];
        if (!c) return;
        const t = upload(c, sha256);
        t.catch(() => undefined); // awaited below
        tasks.push(t);
      },
    );
  } catch (err) {
    await Promise.allSettled(tasks);
    throw err;
  }
  if (hashed.sha256 !== stored.sha256 || hashed.size !== stored.size) {
    await Promise.allSettled(tasks);
    throw archiveMismatch(
      m,
      archivePath,
      hashed.size !== stored.size
        ? `archive has ${hashed.size} bytes, the manifest says ${stored.size}`
        : `archive sha256 is ${hashed.sha256}, the manifest says ${stored.sha256}`,
    );
  }
  await Promise.all(tasks);
  if (await present) {
    o.onLog?.(`${stored.name}: already in ${store.location}`);
    return {
      chunks: 0,
      chunksUploaded: 0,
      bytesUploaded: 0,
      bytesReused: stored.size,
      bytesRead: stored.size,
    };
  }
  const chunks: RecipeChunk[] = plan.map((c, i) => ({ ...c, sha256: hashed.pieces[i] ?? '' }));
  const recipe = recipeOf(m, chunks);
  await putImmutable(store, recipeKey, json(recipe), 'archive recipe');
  return {
    chunks: recipe.chunks.length,
    chunksUploaded: uploaded,
    bytesUploaded,
    bytesReused: stored.size - bytesUploaded,
    bytesRead: stored.size,
  };
}

/** Limits concurrent tasks to n. */
function semaphore(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    while (active >= n) await new Promise<void>((res) => waiting.push(res));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/**
 * Writes an immutable object (If-None-Match). Already there with the same bytes: 'existing';
 * with other bytes: null (the caller reports the conflict).
 */
export async function putImmutable(
  store: Store,
  key: string,
  text: string,
  _what: string,
): Promise<'created' | 'existing' | null> {
  const r = await store.put(key, text, { ifNoneMatch: true });
  if (r.status === 'created' || r.status === 'replaced') return 'created';
  const cur = await store.get(key);
  return cur?.toString('utf8') === text ? 'existing' : null;
}

export interface BucketComponentInput {
  entry: ReleaseComponent;
  manifest: ComponentManifest;
  text: string;
  archivePath: string;
  /** Earlier versions of the component (see UploadArchiveOptions.earlier). */
  earlier?: (() => Promise<ComponentManifest[]>) | undefined;
}

export interface BucketComponentResult extends UploadArchiveResult {
  type: string;
  version: string;
  archiveSha256: string;
  archiveSize: number;
  manifest: 'created' | 'existing';
}

/** Publishes one component: archive chunks, recipe, then the component manifest (immutable). */
export async function publishComponent(
  store: Store,
  c: BucketComponentInput,
  /** `before`: requests wait for it (the archive is hashed meanwhile); its failure fails this. */
  o: Reporter & { before?: Promise<unknown> | undefined } = {},
): Promise<BucketComponentResult> {
  const { entry } = c;
  const id = `${entry.type}:${entry.version}`;
  const up = await uploadArchive(store, c.manifest, c.archivePath, { ...o, item: id, earlier: c.earlier });
  const key = keys.component(entry.type, entry.version);
  const status = await putImmutable(store, key, c.text, 'component manifest');
  if (status === null) {
    throw new DeployToolError(
      'ERR_COMPONENT_EXISTS',
      `Component ${id} is already published in ${store.location} with different content`,
      {
        hint: 'Published versions are immutable: pack the change under a new --version.',
        details: { key },
      },
    );
  }
  return {
    type: entry.type,
    version: entry.version,
    archiveSha256: entry.archiveSha256,
    archiveSize: entry.archiveSize,
    manifest: status,
    ...up,
  };
}

const releaseKeyOf = (cs: ReleaseComponent[]): string =>
  cs
    .map((c) => `${c.type}:${c.version}:${c.archiveSha256}:${c.manifestSha256}`)
    .sort()
    .join('|');

/** The release manifest already in the bucket: same components -> its text; none -> undefined. */
export async function existingRelease(
  store: Store,
  release: string,
  entries: ReleaseComponent[],
): Promise<string | undefined> {
  const key = keys.release(release);
  const buf = await store.get(key);
  if (!buf) return undefined;
  const text = buf.toString('utf8');
  const m = parseReleaseManifestText(text, `${store.location} ${key}`);
  if (releaseKeyOf(m.components) !== releaseKeyOf(entries)) {
    throw new DeployToolError(
      'ERR_RELEASE_EXISTS',
      `Release ${release} is already published in ${store.location} with different components`,
      {
        hint: 'Published releases are immutable: choose a new --release-version.',
        details: { existing: m.components.map((c) => `${c.type}:${c.version}`) },
      },
    );
  }
  return text;
}

/** Writes the release manifest last and exclusively: exactly one of racing publishers wins. */
export async function putRelease(store: Store, release: string, text: string): Promise<void> {
  const r = await store.put(keys.release(release), text, { ifNoneMatch: true });
  if (r.status === 'exists') {
    const cur = (await store.get(keys.release(release)))?.toString('utf8');
    if (cur === text) return;
    throw new DeployToolError(
      'ERR_RELEASE_EXISTS',
      `Release ${release} was published in ${store.location} by someone else meanwhile`,
      {
        hint: 'Published releases are immutable: run publish again to compare, or choose a new --release-version.',
      },
    );
  }
}

export const pointerSchema = z.object({
  schemaVersion: z.literal(1),
  kind: z.literal('deploy-tool/pointer'),
  release: z.string().min(1),
  releaseSha256: sha256,
  updatedAt: z.string(),
});
export type Pointer = z.infer<typeof pointerSchema>;

/** Moves a pointer to a release with compare-and-swap (retries when another writer won). */
export async function movePointer(
  store: Store,
  name: string,
  release: string,
  releaseText: string,
): Promise<{ name: string; release: string; previous: string | null }> {
  const key = keys.pointer(name);
  for (let attempt = 0; attempt < 8; attempt++) {
    const info = await store.head(key);
    let previous: string | null = null;
    if (info) {
      const cur = await store.get(key);
      const parsed = pointerSchema.safeParse(JSON.parse(cur?.toString('utf8') ?? 'null') as unknown);
      previous = parsed.success ? parsed.data.release : null;
    }
    const body = json({
      schemaVersion: 1,
      kind: 'deploy-tool/pointer',
      release,
      releaseSha256: sha256Hex(releaseText),
      updatedAt: new Date().toISOString(),
    } satisfies Pointer);
    const r = info?.etag
      ? await store.put(key, body, { ifMatch: info.etag })
      : await store.put(key, body, { ifNoneMatch: true });
    if (r.status === 'created' || r.status === 'replaced') return { name, release, previous };
    await new Promise((res) => setTimeout(res, 20 + Math.random() * 80));
  }
  throw new DeployToolError(
    'ERR_STORE',
    `Could not move pointer ${name} in ${store.location}: too much contention`,
    {
      hint: 'Another publisher keeps moving it; try again.',
    },
  );
}
