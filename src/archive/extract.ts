/**
 * An EntrySink that writes entries under one root folder, refusing anything that could escape it:
 * files are created exclusively (never through an existing name or symlink), folders only below
 * folders this sink created, symlinks only to targets that stay inside the root, and modes are
 * reduced to rwx bits (setuid, setgid and sticky are stripped).
 */
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, open, symlink, type FileHandle } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DeployToolError, errnoCode, fsError } from '../core/errors.js';
import { checkEntryPath, type Entry, type FileEntry } from '../manifest/component.js';
import { pageAlignedMemory } from './reader.js';
import type { EntrySink } from './tar.js';

export interface ExtractSink extends EntrySink {
  /**
   * Creates file entry `e` as a hard link to `from` (a copy when the filesystem cannot link), under
   * the same path rules as an extracted file. `from` must be a regular file of the entry's size and
   * mode (else ERR_TARGET_INVALID: the caller checked it, so it changed meanwhile).
   */
  link(e: FileEntry, from: string): Promise<void>;
  /**
   * fsyncs every written file and folder (so a power loss after the switch cannot show empty
   * files); large files have been synced in the background since they were complete.
   */
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

/** A file's bytes written between two background fdatasyncs while it is extracted. */
const SYNC_EVERY = 16 * 1024 * 1024;
/** Files at least this large are synced in the background as soon as they are complete. */
const SYNC_EARLY = 1024 * 1024;
/** Files being synced in the background at once (each holds its descriptor until then). */
const MAX_CLOSING = 4;
/** Files at least this large are written with direct I/O when the filesystem allows it. */
const DIRECT_MIN = 1024 * 1024;
/** Direct writes must start and end on (logical) blocks of the device, and so must their buffers. */
const DIRECT_ALIGN = 512;
/**
 * Direct writes go out straight from the caller's memory when it starts on a page (readArchive's
 * slots do: data() then resolves once the disk has the piece, which the caller hashes meanwhile),
 * else from buffers of the sink's own (DIRECT_BUFFERS of DIRECT_PART bytes, page-aligned): data()
 * copies a piece in, starts its write and returns; it waits only when every buffer is in flight.
 */
const DIRECT_PART = 4 * 1024 * 1024;
/** Memory written from directly (no copy) must start on a page. */
const DIRECT_MEMORY_ALIGN = 4096;
const DIRECT_BUFFERS = 3;

/**
 * Page-aligned buffers for direct writes, made on first use. Without WebAssembly (--jitless), plain
 * memory: a misaligned buffer is refused by the kernel, and the file then goes through the page cache.
 */
function alignedBuffers(count: number, size: number): Buffer[] {
  const mem = pageAlignedMemory(count * size);
  const all = mem ? Buffer.from(mem, 0, count * size) : Buffer.allocUnsafeSlow(count * size);
  return Array.from({ length: count }, (_, i) => all.subarray(i * size, (i + 1) * size));
}

interface OpenFile {
  entry: FileEntry;
  fh: FileHandle;
  /**
   * The same file opened with O_DIRECT (large files): block-aligned pieces are written from
   * page-aligned memory straight to the disk (no page cache); the rest goes through `fh`. Dropped
   * at the first write the kernel refuses.
   */
  direct?: FileHandle | undefined;
  /** The O_DIRECT handle to close once its writes are done (it stays open after a refusal). */
  directHandle?: FileHandle | undefined;
  /** Direct writes of this file still in flight (each gives its buffer back when done). */
  writing: Set<Promise<void>>;
  pos: number;
  /** Bytes written through `fh` since its last background fdatasync. */
  unsynced: number;
  syncing?: Promise<void> | undefined;
}

/** Opens `abs`, just created as `fh`, again with O_DIRECT; undefined when that is not possible. */
async function openDirect(abs: string, fh: FileHandle): Promise<FileHandle | undefined> {
  const O_DIRECT = fsConstants.O_DIRECT;
  if (!O_DIRECT) return undefined;
  let d: FileHandle | undefined;
  try {
    d = await open(abs, fsConstants.O_WRONLY | O_DIRECT | fsConstants.O_NOFOLLOW);
    const [a, b] = await Promise.all([fh.stat(), d.stat()]);
    if (a.ino === b.ino && a.dev === b.dev) return d;
  } catch {
    // not supported here (tmpfs, some network filesystems): buffered writes
  }
  await d?.close().catch(() => undefined);
  return undefined;
}

async function writeAll(fh: FileHandle, chunk: Buffer, pos: number): Promise<void> {
  for (let off = 0; off < chunk.length;) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, pos + off);
    off += bytesWritten;
  }
}

/**
 * Whether deploys write large extracted files with direct I/O: yes unless `DEPLOY_TOOL_DIRECT_IO`
 * is `0`, `off`, `false` or `no`. Measured on these VMs, 512 MiB interleaved with the page-cache
 * path: direct writes cost about 1 s less CPU (no copy into the page cache, no writeback work, no
 * first touch of memory the host had reclaimed), ran in 0.82-0.93 s against 0.87-1.88 s through the
 * page cache on a fast disk, and 1.05 s against 1.53 s on another. On a slow disk (about 200-350
 * MB/s) the page cache was faster once (2.45 s against 3.3 s). The likely cause: the 4 direct writes
 * then in flight held every thread of libuv's pool, so the reads of the archive waited behind them.
 * The CLI now starts with a larger pool (src/cli/bin.ts), and 3 writes at most are in flight.
 */
export function directIoEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env['DEPLOY_TOOL_DIRECT_IO']?.trim().toLowerCase();
  return !(v === '0' || v === 'off' || v === 'false' || v === 'no');
}

export interface ExtractSinkOptions {
  /** fsync every file and folder (default true; tests turn it off). */
  durable?: boolean;
  /**
   * Write large files with direct I/O where the filesystem allows it (default false; deploys pass
   * `directIoEnabled()`, true unless turned off): about 1 s less CPU per 512 MiB (no copy into the
   * page cache, no writeback work, no first touch of freshly reclaimed memory). Durability is the
   * same: the files are fdatasync'ed before flush() resolves.
   */
  direct?: boolean;
}

export function createExtractSink(root: string, options: ExtractSinkOptions = {}): ExtractSink {
  const durable = options.durable !== false;
  const useDirect = options.direct === true;
  const dirs = new Set<string>(['']);
  const links = new Set<string>();
  const written: string[] = [];
  let current: OpenFile | undefined;
  // Durability without a long stall in flush(): large files are fdatasync'ed in the background while
  // later entries are extracted (every SYNC_EVERY bytes, then once complete), so the disk writes
  // while the workers decompress; flush() waits for those and syncs the small files and the folders.
  // The first error is kept and thrown by flush().
  const closing = new Set<Promise<void>>();
  let free: Buffer[] | undefined;
  const waiting: ((b: Buffer) => void)[] = [];
  const takeBuffer = (): Promise<Buffer> | Buffer => {
    free ??= alignedBuffers(DIRECT_BUFFERS, DIRECT_PART);
    return free.pop() ?? new Promise<Buffer>((resolve) => waiting.push(resolve));
  };
  const giveBuffer = (b: Buffer): void => {
    const w = waiting.shift();
    if (w) w(b);
    else free?.push(b);
  };
  let syncError: Error | undefined;
  const keepError = (err: unknown, path: string): void => {
    syncError ??= fsError(err, path, 'write') as Error;
  };
  /**
   * Writes `data` at `pos` of `c` with direct I/O. If the kernel refuses (EINVAL: this filesystem,
   * range or memory does not allow it; or any other error), that piece and the rest of the file go
   * through the page cache, where a lasting error (ENOSPC, EIO) fails again and is thrown.
   * settleDirect() closes the direct handle.
   */
  const writeDirect = (c: OpenFile, d: FileHandle, data: Buffer, pos: number): Promise<void> =>
    writeAll(d, data, pos).catch(async () => {
      if (c.direct === d) c.direct = undefined;
      await writeAll(c.fh, data, pos);
      c.unsynced += data.length;
    });
  /** writeDirect of buf[0, len) in the background; an error is kept for end() and flush(). */
  const queueDirect = (c: OpenFile, buf: Buffer, len: number, pos: number): void => {
    const d = c.direct;
    if (!d) return;
    const abs = join(root, c.entry.path);
    const w = writeDirect(c, d, buf.subarray(0, len), pos)
      .catch((err: unknown) => keepError(err, abs))
      .finally(() => {
        c.writing.delete(w);
        giveBuffer(buf);
      });
    c.writing.add(w);
  };
  /** Waits for the file's direct writes, then closes its direct handle. */
  const settleDirect = async (c: OpenFile): Promise<void> => {
    while (c.writing.size) await Promise.all(c.writing);
    c.direct = undefined;
    await c.directHandle?.close().catch(() => undefined);
    c.directHandle = undefined;
  };

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
          current = { entry: e, fh, writing: new Set(), pos: 0, unsynced: 0 };
          if (useDirect && e.size >= DIRECT_MIN) {
            current.direct = await openDirect(abs, fh);
            current.directHandle = current.direct;
          }
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
    async link(e, from) {
      const abs = check(e);
      const st = await lstat(from).catch(() => undefined);
      if (!st?.isFile() || st.size !== e.size || (st.mode & 0o777) !== (parseInt(e.mode, 8) & 0o777)) {
        throw new DeployToolError('ERR_TARGET_INVALID', `${from} changed while it was being reused`, {
          hint: 'Deploy again: the kept release on the target was modified.',
        });
      }
      try {
        await link(from, abs);
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EEXIST') throw unsafe(e.path, 'it is listed twice');
        if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM' && code !== 'ENOTSUP')
          throw fsError(err, abs, 'create');
        await copyFile(from, abs, fsConstants.COPYFILE_EXCL).catch((e2: unknown) => {
          throw fsError(e2, abs, 'create');
        });
        await chmod(abs, parseInt(e.mode, 8) & 0o777);
        written.push(abs);
      }
    },
    async data(e, chunk) {
      if (!current || current.entry !== e) throw new Error('internal: data for an entry that is not open');
      const c = current;
      try {
        let rest = chunk;
        if (c.direct && c.pos % DIRECT_ALIGN === 0 && chunk.length >= DIRECT_ALIGN) {
          const n = chunk.length - (chunk.length % DIRECT_ALIGN);
          if (chunk.byteOffset % DIRECT_MEMORY_ALIGN === 0) {
            // Written straight from the caller's memory (the slots of readArchive are page-aligned),
            // which stays as it is until this promise resolves: no copy, and the caller hashes the
            // piece while the disk writes it.
            const at = c.pos;
            c.pos += n;
            await writeDirect(c, c.direct, chunk.subarray(0, n), at);
          } else {
            for (let off = 0; off < n;) {
              const len = Math.min(DIRECT_PART, n - off);
              const buf = await takeBuffer();
              chunk.copy(buf, 0, off, off + len);
              queueDirect(c, buf, len, c.pos);
              c.pos += len;
              off += len;
            }
          }
          rest = chunk.subarray(n);
        }
        if (rest.length) {
          await writeAll(c.fh, rest, c.pos);
          c.pos += rest.length;
          c.unsynced += rest.length;
        }
      } catch (err) {
        throw fsError(err, join(root, e.path), 'write');
      }
      if (durable && !c.syncing && c.unsynced >= SYNC_EVERY) {
        c.unsynced = 0;
        c.syncing = c.fh.datasync().then(
          () => {
            c.syncing = undefined;
          },
          (err: unknown) => {
            keepError(err, join(root, e.path));
            c.syncing = undefined;
          },
        );
      }
    },
    async end(e) {
      if (e.type !== 'file') return;
      if (!current || current.entry !== e) throw new Error('internal: end of an entry that is not open');
      const c = current;
      const { fh } = c;
      current = undefined;
      const abs = join(root, e.path);
      await settleDirect(c);
      if (syncError) {
        await fh.close().catch(() => undefined);
        throw syncError;
      }
      try {
        await fh.chmod(parseInt(e.mode, 8) & 0o777);
      } catch (err) {
        await c.syncing;
        await fh.close();
        throw err;
      }
      if (durable && e.size >= SYNC_EARLY) {
        const done = (async (): Promise<void> => {
          try {
            await c.syncing;
            await fh.datasync();
          } catch (err) {
            keepError(err, abs);
          } finally {
            await fh.close().catch((err: unknown) => keepError(err, abs));
          }
        })();
        closing.add(done);
        void done.then(() => closing.delete(done));
        while (closing.size >= MAX_CLOSING) await Promise.race(closing);
        return;
      }
      await c.syncing;
      await fh.close();
      written.push(abs);
    },
    async flush() {
      await Promise.all(closing);
      if (syncError) throw syncError;
      if (!durable) return;
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
      await Promise.all(
        [...dirs].map(async (d) => {
          const fh = await open(join(root, d), 'r').catch(() => undefined);
          await fh?.sync().catch(() => undefined);
          await fh?.close();
        }),
      );
    },
    async abort() {
      if (current) {
        await current.syncing;
        await settleDirect(current);
        await current.fh.close().catch(() => undefined);
      }
      current = undefined;
      await Promise.all(closing);
    },
  };
}
