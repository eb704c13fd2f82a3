import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm, link, copyFile, mkdir, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errnoCode, fsError } from './errors.js';

/** A temporary name next to `path`, so that the final rename stays on one filesystem. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await fh.sync();
  } catch {
    // Some filesystems do not support fsync on directories; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

/** Writes `data` to a temporary file, fsyncs it, renames it over `path` and fsyncs the folder. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    await rm(tmp, { force: true });
    throw fsError(err, path, 'write');
  }
}

/**
 * Writes `path` only if it does not exist yet (link(2) of a complete temporary file fails with
 * EEXIST): a published, immutable file is never replaced. Returns false if it already existed.
 */
export async function writeFileExclusive(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, path);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return false;
      throw err;
    }
    await fsyncDir(dirname(path));
    return true;
  } catch (err) {
    throw fsError(err, path, 'write');
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Places a copy of `src` at `dest` without ever showing a partial file: a hard link when the
 * filesystem allows it (instant, no extra space), else a copy to a temporary name and a rename.
 * Returns how the file was placed.
 */
export async function linkOrCopy(src: string, dest: string): Promise<'link' | 'copy'> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = tempPathFor(dest);
  try {
    let how: 'link' | 'copy' = 'link';
    try {
      await link(src, tmp);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw err;
      how = 'copy';
      await copyFile(src, tmp, constants.COPYFILE_FICLONE);
      const fh = await open(tmp, 'r+');
      await fh.sync();
      await fh.close();
    }
    await rename(tmp, dest);
    await fsyncDir(dirname(dest));
    return how;
  } catch (err) {
    await rm(tmp, { force: true });
    throw fsError(err, dest, 'write');
  }
}
