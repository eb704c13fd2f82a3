/**
 * The target folder layout and the link operations on it.
 *
 *   DIR/TYPE            -> current/.links/TYPE        (one per component type; never changes)
 *   DIR/current         -> releases/R                 (THE switch: symlink to a temp name + rename(2))
 *   DIR/releases/R/TYPE/VERSION/...                   (extracted files; shared by hard links)
 *   DIR/releases/R/.links/TYPE -> ../TYPE/VERSION     (written before R becomes visible)
 *   DIR/releases/R/.deploy-tool/release.json          (what R contains; component manifests beside it)
 *   DIR/.deploy-tool/{state.json,lock,staging/,trash/}
 *
 * Component types and release names start with a letter or digit, so the dot-names never collide.
 */
import { randomBytes } from 'node:crypto';
import { lstat, readFile, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { DeployToolError, errnoCode, fsError } from '../core/errors.js';
import { fsyncDir } from '../core/fs-atomic.js';
import { stateComponentSchema } from './state.js';

export const RESERVED_TYPES = new Set(['current', 'releases']);
export const RELEASE_RECORD_SCHEMA_VERSION = 1;

export interface TargetPaths {
  root: string;
  current: string;
  releases: string;
  meta: string;
  state: string;
  lock: string;
  staging: string;
  trash: string;
}

export function targetPaths(root: string): TargetPaths {
  const meta = join(root, '.deploy-tool');
  return {
    root,
    current: join(root, 'current'),
    releases: join(root, 'releases'),
    meta,
    state: join(meta, 'state.json'),
    lock: join(meta, 'lock'),
    staging: join(meta, 'staging'),
    trash: join(meta, 'trash'),
  };
}

export const releaseDir = (t: TargetPaths, release: string): string => join(t.releases, release);
export const componentDirRel = (type: string, version: string): string => `${type}/${version}`;
export const recordPath = (relDir: string): string => join(relDir, '.deploy-tool', 'release.json');
export const manifestRel = (type: string, version: string): string =>
  `.deploy-tool/manifests/${type}-${version}.manifest.json`;

/** What a release folder on the target holds (`releases/R/.deploy-tool/release.json`). */
export const targetReleaseSchema = z.object({
  schemaVersion: z.literal(RELEASE_RECORD_SCHEMA_VERSION),
  kind: z.literal('deploy-tool/target-release'),
  release: z.string().min(1),
  createdAt: z.string(),
  /** Where it came from: the source's description, and the published release (null if selective). */
  source: z.string(),
  sourceRelease: z.string().nullable(),
  base: z.string().nullable(),
  components: z.array(
    stateComponentSchema.extend({
      /** Folder of the files, relative to the release folder. */
      path: z.string(),
      /** Component manifest, relative to the release folder. */
      manifest: z.string(),
      files: z.number().int().min(0),
      totalSize: z.number().int().min(0),
    }),
  ),
});
export type TargetRelease = z.infer<typeof targetReleaseSchema>;

export async function readTargetRelease(t: TargetPaths, release: string): Promise<TargetRelease | undefined> {
  const path = recordPath(releaseDir(t, release));
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
  const parsed = targetReleaseSchema.safeParse(JSON.parse(text));
  if (!parsed.success || parsed.data.release !== release) {
    throw new DeployToolError('ERR_TARGET_INVALID', `${path} is damaged`, {
      hint: 'Deploy the release again (it will be rebuilt), or remove that release folder.',
    });
  }
  return parsed.data;
}

/** The release `current` points at, or undefined (no link yet). Refuses a `current` that is not ours. */
export async function readCurrent(t: TargetPaths): Promise<string | undefined> {
  let target: string;
  try {
    target = await readlink(t.current);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return undefined;
    if (code === 'EINVAL') {
      throw new DeployToolError('ERR_TARGET_INVALID', `${t.current} exists and is not a symlink`, {
        hint: 'The target folder holds files that deploy-tool did not create. Choose an empty folder, or move them away.',
      });
    }
    throw err;
  }
  const m = /^releases\/([^/]+)$/.exec(target);
  if (!m?.[1]) {
    throw new DeployToolError(
      'ERR_TARGET_INVALID',
      `${t.current} points at "${target}", not at releases/NAME`,
      {
        hint: 'The link was changed by hand. Run "deploy-tool version switch RELEASE --target DIR" to repair it.',
      },
    );
  }
  return m[1];
}

/**
 * Points `path` at `target` atomically: a symlink under a temporary name, then rename(2) over the
 * old one (never rm + ln, never ln -sfn), then fsync of the folder.
 */
export async function replaceSymlink(path: string, target: string, dir: string): Promise<void> {
  const tmp = join(
    dir,
    `.${path.slice(dir.length + 1)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  try {
    await symlink(target, tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fsError(err, path, 'switch the link');
  }
  await fsyncDir(dir);
}

/** Ensures `DIR/TYPE -> current/.links/TYPE`; refuses to replace anything that is not such a link. */
export async function ensureTypeLink(t: TargetPaths, type: string): Promise<boolean> {
  const path = join(t.root, type);
  const want = `current/.links/${type}`;
  try {
    const st = await lstat(path);
    if (!st.isSymbolicLink()) {
      throw new DeployToolError('ERR_TARGET_INVALID', `${path} exists and is not a deploy-tool link`, {
        hint: `Move it away: deploy-tool links ${type} to the current release there.`,
      });
    }
    if ((await readlink(path)) === want) return false;
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  await replaceSymlink(path, want, t.root);
  return true;
}

/** Removes `DIR/TYPE` if it is one of our links (types the current release does not have). */
export async function removeTypeLink(t: TargetPaths, type: string): Promise<void> {
  const path = join(t.root, type);
  try {
    if ((await readlink(path)) === `current/.links/${type}`) await rm(path, { force: true });
  } catch {
    // absent or not ours
  }
}

/** Types that have a `DIR/TYPE -> current/.links/TYPE` link. */
export async function listTypeLinks(t: TargetPaths, names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) {
    if (n.startsWith('.') || RESERVED_TYPES.has(n)) continue;
    try {
      if ((await readlink(join(t.root, n))) === `current/.links/${n}`) out.push(n);
    } catch {
      // not a link
    }
  }
  return out;
}
