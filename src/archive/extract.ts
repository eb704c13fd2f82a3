/**
 * An EntrySink that writes entries under one root folder, refusing anything that could escape it:
 * files are created exclusively (never through an existing name or symlink), folders only below
 * folders this sink created, symlinks only to targets that stay inside the root, and modes are
 * reduced to rwx bits (setuid, setgid and sticky are stripped).
 */
import { mkdir, open, symlink, type FileHandle } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DeployToolError, fsError } from '../core/errors.js';
import { checkEntryPath, type Entry, type FileEntry } from '../manifest/component.js';
import type { EntrySink } from './tar.js';

export interface ExtractSink extends EntrySink {
  /** fsyncs every written file (so a power loss after the switch cannot show empty files). */
  flush(): Promise<void>;
  /** Closes anything left open after a failure. */
  abort(): Promise<void>;
}

function unsafe(path: string, why: string): DeployToolError {
  return new DeployToolError('ERR_ARCHIVE_UNSAFE', `Refusing archive entry "${path}": ${why}`, {
    hint: 'The archive tries to write outside its folder or create a special file. Do not deploy it.',
  });
}

/** True if a symlink at `linkPath` (relative to the root) pointing at `target` stays inside the root. */
export function symlinkStaysInside(linkPath: string, target: string): boolean {
  if (target.startsWith('/') || target.includes('\0')) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(linkPath), target));
  return resolved !== '..' && !resolved.startsWith('../') && !resolved.startsWith('/');
}

export function createExtractSink(root: string, options: { durable?: boolean } = {}): ExtractSink {
  const dirs = new Set<string>(['']);
  const links = new Set<string>();
  const written: string[] = [];
  let current: { entry: FileEntry; fh: FileHandle; pos: number } | undefined;

  const check = (e: Entry): string => {
    const bad = checkEntryPath(e.path);
    if (bad) throw unsafe(e.path, bad);
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    for (const l of links) {
      if (e.path.startsWith(`${l}/`)) throw unsafe(e.path, `it lies below the symlink "${l}"`);
    }
    if (!dirs.has(parent)) throw unsafe(e.path, `its folder "${parent}" was not created by this archive`);
    return join(root, ...e.path.split('/'));
  };

  return {
    async start(e) {
      const abs = check(e);
      try {
        if (e.type === 'directory') {
          await mkdir(abs, { mode: 0o755 });
          dirs.add(e.path);
        } else if (e.type === 'symlink') {
          if (!symlinkStaysInside(e.path, e.target))
            throw unsafe(e.path, `symlink target "${e.target}" leaves the folder`);
          await symlink(e.target, abs);
          links.add(e.path);
        } else {
          const fh = await open(abs, 'wx', 0o600);
          current = { entry: e, fh, pos: 0 };
        }
      } catch (err) {
        if (err instanceof DeployToolError) throw err;
        const code = (err as { code?: string }).code;
        if (code === 'EEXIST') throw unsafe(e.path, 'it is listed twice');
        if (code === 'ENAMETOOLONG') throw unsafe(e.path, 'its name is too long for this filesystem');
        if (code === 'ELOOP' || code === 'ENOTDIR') throw unsafe(e.path, 'its folder is not a folder');
        throw fsError(err, abs, 'create');
      }
    },
    async data(e, chunk) {
      if (!current || current.entry !== e) throw new Error('internal: data for an entry that is not open');
      try {
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await current.fh.write(chunk, off, chunk.length - off, current.pos);
          off += bytesWritten;
          current.pos += bytesWritten;
        }
      } catch (err) {
        throw fsError(err, join(root, e.path), 'write');
      }
    },
    async end(e) {
      if (e.type !== 'file') return;
      if (!current || current.entry !== e) throw new Error('internal: end of an entry that is not open');
      const { fh } = current;
      current = undefined;
      try {
        await fh.chmod(parseInt(e.mode, 8) & 0o777);
      } finally {
        await fh.close();
      }
      written.push(join(root, e.path));
    },
    async flush() {
      if (options.durable === false) return;
      const queue = [...written];
      const worker = async (): Promise<void> => {
        for (let p = queue.pop(); p; p = queue.pop()) {
          const fh = await open(p, 'r');
          try {
            await fh.datasync();
          } finally {
            await fh.close();
          }
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      for (const d of dirs) {
        const fh = await open(join(root, d), 'r').catch(() => undefined);
        await fh?.sync().catch(() => undefined);
        await fh?.close();
      }
    },
    async abort() {
      if (current) await current.fh.close().catch(() => undefined);
      current = undefined;
    },
  };
}
