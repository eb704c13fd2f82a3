/**
 * The deploy engine: stages a release in `DIR/.deploy-tool/staging/` (extracting archives through
 * the checked reader, or hard-linking component versions the target already has), renames it into
 * `DIR/releases/R`, and switches `DIR/current` with one rename(2). Also: crash recovery, retention
 * and verification of deployed files. Reads archives only through a ReleaseSource.
 */
import { randomBytes } from 'node:crypto';
import {
  copyFile,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  chmod,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import { framesOfFiles, readArchive, readArchiveFiles } from '../archive/reader.js';
import { createExtractSink, directIoEnabled } from '../archive/extract.js';
import { runCodecTask } from '../archive/codec-task.js';
import { createCodecPool, type CodecPool } from '../archive/pool.js';
import { DeployToolError, errnoCode, fsError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { fsyncDir } from '../core/fs-atomic.js';
import { hashFile, sha256Hex } from '../core/hash.js';
import { byCodeUnit } from '../core/validate.js';
import { parseComponentManifestText, type ComponentManifest, type FileEntry } from '../manifest/component.js';
import type { ReleaseComponent } from '../manifest/release.js';
import {
  RELEASE_RECORD_SCHEMA_VERSION,
  componentDirRel,
  ensureTypeLink,
  listTypeLinks,
  manifestRel,
  readCurrent,
  readTargetRelease,
  recordPath,
  releaseDir,
  removeTypeLink,
  replaceSymlink,
  type TargetPaths,
  type TargetRelease,
} from './layout.js';
import type { LoadedComponent, ReleaseSource } from './source.js';
import { rollbackTarget, type StateComponent, type TargetState } from './state.js';

export interface PlannedComponent {
  type: string;
  version: string;
  archiveSha256: string;
  manifestSha256: string;
  manifest: ComponentManifest;
  manifestText: string;
  /** extract from the source, or reuse (hard links) the copy a kept release already has. */
  action: 'extract' | 'reuse';
  reuseFrom: string | null;
  /** Unchanged from the current release (same version and sha256). */
  unchanged: boolean;
  files: number;
  bytes: number;
  archiveBytes: number;
  loaded?: LoadedComponent | undefined;
  ref?: ReleaseComponent | undefined;
  /**
   * File-level reuse (action 'extract', see planFileReuse): files of this version that kept releases
   * already hold, by path -> the kept file to hard-link. undefined: extract everything.
   */
  linked?: Map<string, string> | undefined;
  /** With `linked`: the only frames to read (those holding bytes of the files not linked). */
  frames?: number[] | undefined;
  /** With `linked`: files and bytes linked, and the releases they come from. */
  filesLinked?: number | undefined;
  bytesLinked?: number | undefined;
  linkedFrom?: string[] | undefined;
  sourceRelease?: string | undefined;
}

export const stateComponents = (cs: PlannedComponent[] | TargetRelease['components']): StateComponent[] =>
  cs.map((c) => ({
    type: c.type,
    version: c.version,
    archiveSha256: c.archiveSha256,
    manifestSha256: c.manifestSha256,
  }));

export const sameComponents = (a: StateComponent[], b: StateComponent[]): boolean => {
  const key = (cs: StateComponent[]): string =>
    cs
      .map((c) => `${c.type}:${c.version}:${c.archiveSha256}`)
      .sort()
      .join('|');
  return key(a) === key(b);
};

/**
 * A kept release on the target that holds TYPE/VERSION with this archive sha256 and the same
 * manifest (whose sha256 pins every file's), files intact.
 */
export async function findReusable(
  t: TargetPaths,
  state: TargetState,
  c: { type: string; version: string; archiveSha256: string; manifestSha256: string },
): Promise<string | null> {
  const names = Object.keys(state.releases).sort((a, b) =>
    a === state.current ? -1 : b === state.current ? 1 : 0,
  );
  for (const r of names) {
    const rec = state.releases[r];
    if (!rec || rec.status === 'staged') continue;
    const hit = rec.components.find(
      (x) =>
        x.type === c.type &&
        x.version === c.version &&
        x.archiveSha256 === c.archiveSha256 &&
        x.manifestSha256 === c.manifestSha256,
    );
    if (!hit) continue;
    const st = await lstat(join(releaseDir(t, r), componentDirRel(c.type, c.version))).catch(() => undefined);
    if (st?.isDirectory()) return r;
  }
  return null;
}

/** Kept releases to reuse from: the current one first; staged (not yet complete) ones never. */
function keptReleases(state: TargetState): string[] {
  return Object.keys(state.releases)
    .sort((a, b) => (a === state.current ? -1 : b === state.current ? 1 : 0))
    .filter((r) => state.releases[r] && state.releases[r].status !== 'staged');
}

const fileKey = (e: FileEntry): string => `${e.sha256}:${e.size}:${parseInt(e.mode, 8) & 0o777}`;

/**
 * File-level reuse for a component version the target does not hold whole (action 'extract'): finds,
 * in the kept releases (any component), regular files with the same sha256, size and mode as files of
 * the new manifest, and records them in `c.linked` with the frames still to read in `c.frames`.
 *
 * What makes a kept file trustworthy without re-hashing it: it is listed with that sha256 in the
 * component manifest its release stores, and that manifest's sha256 equals the one recorded in the
 * target state (readStoredManifest); every file of a release is checked against its manifest's
 * sha256 when it is written (extraction) or inherits that check (linking), and releases are renamed
 * into releases/ only once complete. Here and again when linking, the kept file must still be a
 * regular file of the manifest's size and mode. `deploy-tool verify` re-hashes every file, linked ones
 * included. Encrypted archives are decrypted whole, so they get no file-level reuse.
 */
export async function planFileReuse(
  t: TargetPaths,
  state: TargetState,
  c: PlannedComponent,
  known?: ReadonlyMap<string, ComponentManifest>,
): Promise<void> {
  c.linked = undefined;
  c.frames = undefined;
  if (c.action !== 'extract' || c.manifest.encryption) return;
  const want = new Set<string>();
  for (const e of c.manifest.files) if (e.type === 'file' && e.size > 0) want.add(fileKey(e));
  if (want.size === 0) return;
  const found = new Map<string, { abs: string; release: string }>();
  const seen = new Set<string>();
  for (const r of keptReleases(state)) {
    for (const k of state.releases[r]?.components ?? []) {
      const id = `${k.type}:${k.version}:${k.manifestSha256}`;
      if (seen.has(id)) continue; // the same component in another release: the same (linked) files
      const dir = join(releaseDir(t, r), componentDirRel(k.type, k.version));
      let m: ComponentManifest;
      try {
        m = (await readStoredManifest(t, r, k, known)).manifest;
      } catch {
        continue; // altered on the target: not a source of files
      }
      seen.add(id);
      for (const e of m.files) {
        if (e.type !== 'file' || e.size === 0) continue;
        const key = fileKey(e);
        if (!want.has(key) || found.has(key)) continue;
        const abs = join(dir, ...e.path.split('/'));
        const st = await lstat(abs).catch(() => undefined);
        if (st?.isFile() && st.size === e.size && (st.mode & 0o777) === (parseInt(e.mode, 8) & 0o777))
          found.set(key, { abs, release: r });
      }
      if (found.size === want.size) break;
    }
    if (found.size === want.size) break;
  }
  if (found.size === 0) return;
  const linked = new Map<string, string>();
  const rest: FileEntry[] = [];
  const from = new Set<string>();
  let bytes = 0;
  for (const e of c.manifest.files) {
    if (e.type !== 'file') continue;
    const hit = e.size > 0 ? found.get(fileKey(e)) : undefined;
    if (!hit) {
      rest.push(e);
      continue;
    }
    linked.set(e.path, hit.abs);
    from.add(hit.release);
    bytes += e.size;
  }
  c.linked = linked;
  c.frames = framesOfFiles(c.manifest, rest);
  c.filesLinked = linked.size;
  c.bytesLinked = bytes;
  c.linkedFrom = [...from].sort();
}

/** Files and symlinks of a reused component linked at once. */
const LINK_BATCH = 8;

/** Below this many compressed bytes to decompress, codec workers cost more (their boot) than they save. */
const POOL_MIN_BYTES = 32 * 1024 * 1024;

/**
 * The codec pool for staging these components: worker threads (started now, so that they boot
 * while the release folder is prepared) when there is much to decompress, else the calling thread.
 */
export function deployPool(components: PlannedComponent[]): CodecPool {
  let bytes = 0;
  for (const c of components) if (c.action === 'extract') bytes += framesBytes(c) ?? c.archiveBytes;
  if (bytes < POOL_MIN_BYTES) return { run: runCodecTask, size: 1, close: () => Promise.resolve() };
  return createCodecPool(undefined, { prestart: true });
}

/** Compressed bytes of the frames a partial extraction reads (undefined: the whole archive). */
export const framesBytes = (c: PlannedComponent): number | undefined =>
  c.frames?.reduce((s, i) => s + (c.manifest.frames[i]?.size ?? 0), 0);

/** Reads the component manifest a kept release stores, checked against its recorded sha256. */
export async function readStoredManifest(
  t: TargetPaths,
  release: string,
  c: { type: string; version: string; manifestSha256: string },
  /** Manifests already parsed, by the sha256 of their text: the same bytes need no second parse. */
  known?: ReadonlyMap<string, ComponentManifest>,
): Promise<{ manifest: ComponentManifest; text: string }> {
  const path = join(releaseDir(t, release), manifestRel(c.type, c.version));
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new DeployToolError('ERR_TARGET_INVALID', `Missing component manifest ${path}`, {
      hint: 'The release folder on the target was altered. Deploy the release again from its source.',
      cause: err,
    });
  }
  if (sha256Hex(text) !== c.manifestSha256) {
    throw new DeployToolError('ERR_TARGET_INVALID', `${path} was modified after deployment`, {
      hint: 'Deploy the release again from its source.',
    });
  }
  const parsed = known?.get(c.manifestSha256);
  return { manifest: parsed ?? parseComponentManifestText(text, path), text };
}

export interface StageOptions extends Reporter {
  t: TargetPaths;
  release: string;
  components: PlannedComponent[];
  source: ReleaseSource | undefined;
  pool: CodecPool;
  record: Omit<TargetRelease, 'components' | 'schemaVersion' | 'kind' | 'release'>;
  /**
   * Runs once everything is written, while the last fsyncs complete (for example recording the
   * release as staged in the target state); stageRelease resolves after both.
   */
  whileSyncing?: (() => Promise<void>) | undefined;
}

/** Builds the complete release folder under staging/ and returns its path (not yet visible). */
export async function stageRelease(o: StageOptions): Promise<string> {
  const { t } = o;
  const staging = join(t.staging, `${o.release}.${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    return await buildStaging(o, staging);
  } catch (err) {
    // Never leave a partial release behind (a crash leaves it to the next run's cleanup).
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * fsyncs started in the background while the staging folder is built (they overlap with the rest of
 * the work and with each other), all waited for before the folder counts as complete.
 */
function backgroundSyncs(): { add(p: Promise<void>): void; wait(): Promise<void> } {
  const all: Promise<void>[] = [];
  let first: Error | undefined;
  return {
    add(p) {
      all.push(
        p.catch((err: unknown) => {
          first ??= err instanceof Error ? err : new Error(String(err));
        }),
      );
    },
    async wait() {
      await Promise.all(all);
      if (first) throw first;
    },
  };
}

/**
 * Creates a file of the staging folder (exclusively: never through an existing name) and starts its
 * fsync. No temporary name and rename: nothing in staging is visible until the folder is complete.
 */
async function writeStaged(
  path: string,
  data: string,
  syncs: ReturnType<typeof backgroundSyncs>,
): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'wx', 0o644);
    await fh.writeFile(data);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    throw fsError(err, path, 'write');
  }
  const h = fh;
  syncs.add(
    h.sync().then(
      () => h.close(),
      async (err: unknown) => {
        await h.close().catch(() => undefined);
        throw fsError(err, path, 'write');
      },
    ),
  );
}

async function buildStaging(o: StageOptions, staging: string): Promise<string> {
  const { t } = o;
  const syncs = backgroundSyncs();
  // Folders whose entries must be durable before the release is (fsync'ed together at the end).
  const dirs = new Set<string>([
    staging,
    join(staging, '.deploy-tool'),
    join(staging, '.deploy-tool', 'manifests'),
    join(staging, '.links'),
  ]);
  await mkdir(join(staging, '.deploy-tool', 'manifests'), { recursive: true }).catch((err: unknown) => {
    throw fsError(err, staging, 'create');
  });
  await mkdir(join(staging, '.links'));
  for (const c of o.components) {
    const rel = componentDirRel(c.type, c.version);
    const dir = join(staging, c.type, c.version);
    await mkdir(dir, { recursive: true }).catch((err: unknown) => {
      throw fsError(err, dir, 'create');
    });
    dirs.add(join(staging, c.type));
    let done = false;
    if (c.action === 'reuse' && c.reuseFrom) {
      const from = join(releaseDir(t, c.reuseFrom), rel);
      const t0 = performance.now();
      done = await linkComponent(from, dir, c.manifest);
      if (done) {
        // The links' folders (an extraction's sink syncs its own).
        dirs.add(dir);
        for (const e of c.manifest.files)
          if (e.type === 'directory') dirs.add(join(dir, ...e.path.split('/')));
        o.onLog?.(
          `reused ${c.type}:${c.version} from release ${c.reuseFrom} (hard links, ${(performance.now() - t0).toFixed(1)} ms)`,
        );
      } else {
        o.onWarning?.(
          `the copy of ${c.type}:${c.version} in release ${c.reuseFrom} is not intact; extracting it again`,
        );
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir);
      }
    }
    if (!done) {
      if (!o.source) throw new Error('internal: no source to extract from');
      let loaded = c.loaded;
      loaded ??= await o.source.getComponent({ type: c.type, version: c.version });
      const t0 = performance.now();
      await extractComponent(o, loaded, c, dir, syncs);
      o.onLog?.(
        `extracted ${c.type}:${c.version} (${c.files} files, ${c.bytes} bytes, ${(performance.now() - t0).toFixed(1)} ms)`,
      );
    }
    await writeStaged(join(staging, manifestRel(c.type, c.version)), c.manifestText, syncs);
    await symlink(`../${rel}`, join(staging, '.links', c.type));
  }
  const record: TargetRelease = {
    schemaVersion: RELEASE_RECORD_SCHEMA_VERSION,
    kind: 'deploy-tool/target-release',
    release: o.release,
    ...o.record,
    components: o.components.map((c) => ({
      ...stateComponents([c])[0]!,
      path: componentDirRel(c.type, c.version),
      manifest: manifestRel(c.type, c.version),
      files: c.files,
      totalSize: c.bytes,
    })),
  };
  await writeStaged(recordPath(staging), `${JSON.stringify(record, null, 2)}\n`, syncs);
  for (const d of dirs) syncs.add(fsyncDir(d));
  const [synced, other] = await Promise.allSettled([syncs.wait(), o.whileSyncing?.()]);
  if (synced.status === 'rejected') throw synced.reason;
  if (other.status === 'rejected') throw other.reason;
  return staging;
}

async function extractComponent(
  o: StageOptions,
  loaded: LoadedComponent,
  c: PlannedComponent,
  dir: string,
  syncs: ReturnType<typeof backgroundSyncs>,
): Promise<void> {
  if (!o.source) throw new Error('internal: no source');
  const linked = c.linked;
  const archive = await o.source.openArchive(
    loaded,
    c.ref,
    c.sourceRelease,
    linked ? { frames: c.frames ?? [] } : undefined,
  );
  const sink = createExtractSink(dir, { direct: directIoEnabled() });
  try {
    if (linked) {
      // Incremental: files the target holds are hard-linked, only the frames of the others are read.
      const rest = c.manifest.files.filter((e) => e.type === 'file' && !linked.has(e.path));
      o.onLog?.(
        `${c.type}:${c.version}: linking ${linked.size} files (${c.bytesLinked ?? 0} bytes) from release ${(c.linkedFrom ?? []).join(', ')}; extracting ${rest.length} files from ${c.frames?.length ?? 0} of ${c.manifest.frames.length} frames of ${archive.location}`,
      );
      for (const e of rest.slice(0, 50)) o.onLog?.(`extracting ${c.type}:${c.version} ${e.path}`);
      if (rest.length > 50) o.onLog?.(`extracting ${rest.length - 50} more files of ${c.type}:${c.version}`);
      await readArchiveFiles({
        manifest: loaded.manifest,
        source: archive,
        pool: o.pool,
        sink,
        linked,
        onProgress: (done, total) =>
          o.onProgress?.({ phase: 'extract', item: `${c.type}:${c.version}`, done, total, unit: 'bytes' }),
      });
      syncs.add(sink.flush()); // completes while the rest of the release folder is written
      return;
    }
    o.onLog?.(`verifying and extracting ${archive.location}`);
    await readArchive({
      manifest: loaded.manifest,
      source: archive,
      pool: o.pool,
      sink,
      onProgress: (done, total) =>
        o.onProgress?.({ phase: 'extract', item: `${c.type}:${c.version}`, done, total, unit: 'bytes' }),
    });
    await sink.flush();
  } catch (err) {
    await sink.abort();
    throw err;
  } finally {
    await archive.close();
  }
}

/** Hard-links (or copies) a component folder a kept release already has; false if it is not intact. */
async function linkComponent(from: string, to: string, m: ComponentManifest): Promise<boolean> {
  const one = async (e: ComponentManifest['files'][number]): Promise<boolean> => {
    const src = join(from, ...e.path.split('/'));
    const dst = join(to, ...e.path.split('/'));
    const st = await lstat(src).catch(() => undefined);
    if (!st) return false;
    try {
      if (e.type === 'directory') {
        if (!st.isDirectory()) return false;
        await mkdir(dst, { mode: 0o755 });
      } else if (e.type === 'symlink') {
        if (!st.isSymbolicLink() || (await readlink(src)) !== e.target) return false;
        await symlink(e.target, dst);
      } else {
        if (!st.isFile() || st.size !== e.size || (st.mode & 0o777) !== (parseInt(e.mode, 8) & 0o777))
          return false;
        try {
          await link(src, dst);
        } catch (err) {
          const code = errnoCode(err);
          if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM' && code !== 'ENOTSUP') throw err;
          await copyFile(src, dst);
          await chmod(dst, parseInt(e.mode, 8) & 0o777);
        }
      }
    } catch (err) {
      throw fsError(err, dst, 'create');
    }
    return true;
  };
  // Folders first, in manifest order (parents before children); then files and symlinks, a few
  // at a time (each is a stat and a link: the thread pool runs them side by side).
  for (const e of m.files) if (e.type === 'directory' && !(await one(e))) return false;
  const rest = m.files.filter((e) => e.type !== 'directory');
  for (let i = 0; i < rest.length; i += LINK_BATCH) {
    // Settled, not all: none of them still runs when an error reaches the caller (which removes
    // the folder).
    const results = await Promise.allSettled(rest.slice(i, i + LINK_BATCH).map(one));
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    if (results.some((r) => r.status === 'fulfilled' && !r.value)) return false;
  }
  return true;
}

/** Moves a folder to the trash (one rename, so it disappears whole) and removes it. */
export async function discard(t: TargetPaths, path: string): Promise<void> {
  await mkdir(t.trash, { recursive: true });
  const dest = join(
    t.trash,
    `${path.split('/').pop() ?? 'x'}.${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  try {
    await rename(path, dest);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw fsError(err, path, 'remove');
  }
  await rm(dest, { recursive: true, force: true });
}

/** Makes `release` current: per-type links for its types first, then the one atomic rename. */
export async function switchTo(
  t: TargetPaths,
  release: string,
  types: string[],
  log?: (m: string) => void,
): Promise<void> {
  for (const type of types)
    if (await ensureTypeLink(t, type)) log?.(`linked ${type} -> current/.links/${type}`);
  await replaceSymlink(t.current, `releases/${release}`, t.root);
  log?.(`switched current -> releases/${release}`);
}

/** Removes `current` (a first deploy that failed its health check leaves no release live). */
export async function unsetCurrent(t: TargetPaths): Promise<void> {
  await rm(t.current, { force: true });
  await fsyncDir(t.root);
}

/** Drops per-type links the current release does not have (they would dangle). */
export async function pruneTypeLinks(t: TargetPaths, currentTypes: string[]): Promise<void> {
  const names = await readdir(t.root).catch(() => [] as string[]);
  for (const type of await listTypeLinks(t, names))
    if (!currentTypes.includes(type)) await removeTypeLink(t, type);
}

/**
 * Cleans what an interrupted run left (staging, trash, temporary links, release folders without a
 * record) and reconciles the state with the `current` link. Runs under the lock.
 */
export async function recover(
  t: TargetPaths,
  state: TargetState,
  log?: (m: string) => void,
): Promise<string[]> {
  const cleaned: string[] = [];
  for (const dir of [t.staging, t.trash]) {
    for (const n of await readdir(dir).catch(() => [] as string[])) {
      await rm(join(dir, n), { recursive: true, force: true });
      cleaned.push(join(dir, n));
    }
  }
  for (const n of await readdir(t.root).catch(() => [] as string[])) {
    if (/^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(n)) {
      await rm(join(t.root, n), { force: true });
      cleaned.push(join(t.root, n));
    }
  }
  for (const n of await readdir(t.meta).catch(() => [] as string[])) {
    if (n.startsWith('lock.breaking.') || /\.tmp-\d+-[0-9a-f]{8}$/.test(n)) {
      await rm(join(t.meta, n), { force: true });
      cleaned.push(join(t.meta, n));
    }
  }
  const current = (await readCurrent(t)) ?? null;
  const onDisk = await readdir(t.releases).catch(() => [] as string[]);
  for (const n of onDisk) {
    if (n.startsWith('.') || (!state.releases[n] && n !== current)) {
      await discard(t, join(t.releases, n));
      cleaned.push(join(t.releases, n));
    }
  }
  for (const [name, rec] of Object.entries(state.releases)) {
    if (!onDisk.includes(name)) {
      delete state.releases[name];
      continue;
    }
    if (rec.status === 'staged') rec.status = 'interrupted';
  }
  if (current && !state.releases[current]) {
    const rec = await readTargetRelease(t, current);
    if (rec) {
      state.releases[current] = {
        status: 'interrupted',
        createdAt: rec.createdAt,
        activatedAt: null,
        base: rec.base,
        components: stateComponents(rec.components),
        error: 'recovered after an interrupted run',
      };
    }
  }
  for (const h of state.history) {
    if (h.status === 'in-progress') {
      h.status = 'interrupted';
      h.finishedAt = new Date().toISOString();
      h.error = 'the process was interrupted';
    }
  }
  state.current = current;
  const rec = current ? await readTargetRelease(t, current) : undefined;
  await pruneTypeLinks(t, rec?.components.map((c) => c.type) ?? []);
  if (cleaned.length) log?.(`cleaned ${cleaned.length} leftovers of an interrupted run`);
  return cleaned;
}

/**
 * Keeps the last `keep` successful releases (by last activation), plus the current release and
 * the rollback target; failed and interrupted ones do not count and are removed.
 */
export async function applyRetention(
  t: TargetPaths,
  state: TargetState,
  keep: number,
  writeState: () => Promise<void>,
): Promise<string[]> {
  const protect = new Set<string>();
  if (state.current) protect.add(state.current);
  const rb = rollbackTarget(state, state.current);
  if (rb) protect.add(rb);
  const successful = Object.entries(state.releases)
    .filter(([, r]) => r.status === 'success')
    .sort(([, a], [, b]) => byCodeUnit(b.activatedAt ?? b.createdAt, a.activatedAt ?? a.createdAt))
    .map(([n]) => n);
  const kept = new Set([...successful.slice(0, keep), ...protect]);
  const remove = Object.keys(state.releases).filter((n) => !kept.has(n));
  if (remove.length === 0) return [];
  for (const n of remove) delete state.releases[n];
  await writeState();
  for (const n of remove) await discard(t, releaseDir(t, n));
  return remove;
}

export interface FileProblem {
  release: string;
  component: string;
  path: string;
  problem: 'modified' | 'missing' | 'extra';
  detail: string;
}

/**
 * Entries of `releases/R/` outside the component folders that the release record does not account
 * for: anything but `TYPE/VERSION/` of its components, `.links/TYPE`, `.deploy-tool/release.json` and
 * the stored component manifests (for example a stray `model/9.9.9/` or an unknown `TYPE/` folder).
 * Each is reported once, at its top (the files inside an extra folder are not listed).
 */
async function releaseLevelExtras(rdir: string, release: string, rec: TargetRelease): Promise<FileProblem[]> {
  const known = new Set<string>(); // relative paths the record accounts for
  const folders = new Set<string>(['']); // known folders whose entries are checked here
  const addPath = (rel: string): void => {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      known.add(parts.slice(0, i).join('/'));
      if (i < parts.length) folders.add(parts.slice(0, i).join('/'));
    }
  };
  addPath('.deploy-tool/release.json');
  for (const c of rec.components) {
    addPath(c.path); // the component folder itself is checked against its manifest
    addPath(c.manifest);
    addPath(`.links/${c.type}`);
  }
  const out: FileProblem[] = [];
  for (const folder of [...folders].sort()) {
    const abs = folder ? join(rdir, ...folder.split('/')) : rdir;
    const st = await lstat(abs).catch(() => undefined);
    if (!st?.isDirectory()) continue; // a missing or replaced folder shows up as missing/modified entries
    for (const n of await readdir(abs)) {
      const rel = folder ? `${folder}/${n}` : n;
      if (known.has(rel)) continue;
      const e = await lstat(join(abs, n)).catch(() => undefined);
      const kind = e?.isDirectory() ? 'folder' : e?.isSymbolicLink() ? 'symlink' : 'file';
      out.push({
        release,
        component: `release ${release}`,
        path: rel,
        problem: 'extra',
        detail: `${kind} not in the release record`,
      });
    }
  }
  return out;
}

/**
 * Re-hashes every file of a deployed release against its component manifests, and reports entries of
 * the release folder that belong to none of its components.
 */
export async function verifyRelease(
  t: TargetPaths,
  release: string,
  onProgress?: Reporter['onProgress'],
): Promise<{ files: number; bytes: number; problems: FileProblem[] }> {
  const rec = await readTargetRelease(t, release);
  if (!rec) {
    throw new DeployToolError('ERR_NOT_DEPLOYED', `Release ${release} is not on the target ${t.root}`, {
      hint: 'See the kept releases with "deploy-tool version list --target DIR".',
    });
  }
  const rdir = releaseDir(t, release);
  const problems: FileProblem[] = [];
  let files = 0;
  let bytes = 0;
  const total = rec.components.reduce((s, c) => s + c.totalSize, 0);
  problems.push(...(await releaseLevelExtras(rdir, release, rec)));
  for (const c of rec.components) {
    const id = `${c.type}:${c.version}`;
    const add = (path: string, problem: FileProblem['problem'], detail: string): void => {
      problems.push({ release, component: id, path, problem, detail });
    };
    let manifest: ComponentManifest;
    try {
      manifest = (await readStoredManifest(t, release, c)).manifest;
    } catch (err) {
      add(c.manifest, 'modified', (err as Error).message);
      continue;
    }
    const link = await readlink(join(rdir, '.links', c.type)).catch(() => undefined);
    if (link !== `../${c.path}`)
      add(
        `.links/${c.type}`,
        link === undefined ? 'missing' : 'modified',
        `link should point at ../${c.path}`,
      );
    const base = join(rdir, c.path);
    const actual = new Map<string, import('node:fs').Stats>();
    const walk = async (dir: string, rel: string): Promise<void> => {
      for (const n of await readdir(dir).catch(() => [] as string[])) {
        const r = rel ? `${rel}/${n}` : n;
        const st = await lstat(join(dir, n));
        actual.set(r, st);
        if (st.isDirectory()) await walk(join(dir, n), r);
      }
    };
    await walk(base, '');
    const toHash: { path: string; abs: string; size: number; sha256: string }[] = [];
    for (const e of manifest.files) {
      const st = actual.get(e.path);
      actual.delete(e.path);
      if (!st) {
        add(`${c.path}/${e.path}`, 'missing', `${e.type} is missing`);
        continue;
      }
      const where = `${c.path}/${e.path}`;
      if (e.type === 'directory') {
        if (!st.isDirectory()) add(where, 'modified', 'should be a folder');
      } else if (e.type === 'symlink') {
        const target = st.isSymbolicLink() ? await readlink(join(base, e.path)) : undefined;
        if (target !== e.target) add(where, 'modified', `should be a symlink to ${e.target}`);
      } else if (!st.isFile()) {
        add(where, 'modified', 'should be a regular file');
      } else if (st.size !== e.size) {
        add(where, 'modified', `has ${st.size} bytes, the manifest says ${e.size}`);
      } else {
        if ((st.mode & 0o777) !== (parseInt(e.mode, 8) & 0o777))
          add(where, 'modified', `mode is ${(st.mode & 0o777).toString(8)}, the manifest says ${e.mode}`);
        toHash.push({ path: where, abs: join(base, e.path), size: e.size, sha256: e.sha256 });
      }
    }
    for (const [p] of actual) add(`${c.path}/${p}`, 'extra', 'not in the component manifest');
    const queue = [...toHash];
    const worker = async (): Promise<void> => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        const h = await hashFile(f.abs);
        files++;
        bytes += h.size;
        onProgress?.({ phase: 'verify', item: release, done: bytes, total, unit: 'bytes' });
        if (h.sha256 !== f.sha256)
          add(f.path, 'modified', `sha256 is ${h.sha256}, the manifest says ${f.sha256}`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }
  problems.sort((a, b) => byCodeUnit(a.path, b.path));
  return { files, bytes, problems };
}
