/**
 * Writes a framed archive: the tar stream is cut into frames (a new frame where each large file's
 * data starts, frames of 4 MiB to FRAME_SIZE inside large files (see fileFrames), small files grouped
 * into frames of at least GROUP_MIN), each frame compressed independently by the codec pool, frames
 * concatenated.
 * Every frame is checked by the same TarChecker that deploy uses, and each compressed frame is
 * decompressed again and compared before it is written.
 *
 * Speed: every byte is hashed once per digest the manifest records (each file's, in the TarChecker
 * on this thread; the whole tar's and the whole archive's, on a hasher thread; each frame's, in the
 * worker that compressed it), and nothing waits for a stage it does not need: a reader loop fills
 * frames and hands them out, a writer loop writes the compressed frames in order as they come back,
 * the codec workers compress, round-trip and hash. Frames cross threads in shared memory, no copies.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Compression } from '../core/config.js';
import { DeployToolError } from '../core/errors.js';
import type { Entry, Frame } from '../manifest/component.js';
import { createStreamHasher, type CodecPool } from './pool.js';
import type { ScannedEntry } from './scan.js';
import { BLOCK, encodeHeader, roundUp512, TarChecker, TarFormatError } from './tar.js';

export const LARGE_FILE = 1024 * 1024;
export const FRAME_SIZE = 8 * 1024 * 1024;
export const GROUP_MIN = 1024 * 1024;

type Piece =
  | { kind: 'bytes'; start: number; buf: Buffer }
  | { kind: 'file'; start: number; length: number; entry: ScannedEntry; fileOffset: number }
  | { kind: 'zero'; start: number; length: number };

export interface Layout {
  pieces: Piece[];
  /** Frame boundaries in the tar stream: [start, end) pairs. */
  frames: [number, number][];
  entries: Entry[];
  tarSize: number;
}

/**
 * How a file's data is cut: n = ceil(size / FRAME_SIZE) pieces of nearly equal size, so that no
 * piece exceeds FRAME_SIZE (8 MiB) and, in a file of at least FRAME_SIZE / 2, none is below 4 MiB
 * (fixed 8 MiB cuts would leave a 1-byte frame at the end of an 8 MiB + 1 file). Cuts stay on
 * 512-byte tar blocks (the data starts on a block): the ceil(size / 512) blocks are shared out as
 * evenly as possible, the larger shares last, since the last block of the file may be partial.
 * Returns [fileOffset, length] pairs.
 */
export function fileFrames(size: number): [number, number][] {
  if (size <= FRAME_SIZE) return [[0, size]];
  const n = Math.ceil(size / FRAME_SIZE);
  const blocks = Math.ceil(size / BLOCK);
  const q = Math.floor(blocks / n);
  const larger = blocks - q * n; // this many of the last pieces get q + 1 blocks
  const out: [number, number][] = [];
  let off = 0;
  for (let i = 0; i < n; i++) {
    const length = i === n - 1 ? size - off : (q + (i >= n - larger ? 1 : 0)) * BLOCK;
    out.push([off, length]);
    off += length;
  }
  return out;
}

/** Lays out the tar stream and its frames before reading any file data. */
export function planLayout(scanned: ScannedEntry[]): Layout {
  const pieces: Piece[] = [];
  const frames: [number, number][] = [];
  const entries: Entry[] = [];
  let pos = 0;
  let groupStart = 0;
  const cut = (at: number): void => {
    if (at > groupStart) frames.push([groupStart, at]);
    groupStart = at;
  };
  for (const e of scanned) {
    const header = encodeHeader(e);
    const headerAt = pos;
    pieces.push({ kind: 'bytes', start: pos, buf: header });
    pos += header.length;
    const mode = e.mode.toString(8).padStart(4, '0');
    if (e.type === 'file') {
      const dataAt = pos;
      entries.push({
        path: e.path,
        type: 'file',
        mode,
        header: headerAt,
        offset: dataAt,
        size: e.size,
        sha256: '',
      });
      const large = e.size >= LARGE_FILE;
      if (large) cut(dataAt);
      for (const [off, length] of fileFrames(e.size)) {
        pieces.push({ kind: 'file', start: pos, length, entry: e, fileOffset: off });
        pos += length;
        if (large) cut(pos);
      }
      const pad = roundUp512(e.size) - e.size;
      if (pad) {
        pieces.push({ kind: 'zero', start: pos, length: pad });
        pos += pad;
      }
    } else if (e.type === 'directory') {
      entries.push({ path: e.path, type: 'directory', mode, header: headerAt });
    } else {
      entries.push({ path: e.path, type: 'symlink', mode, header: headerAt, target: e.target ?? '' });
    }
    if (pos - groupStart >= GROUP_MIN) cut(pos);
  }
  pieces.push({ kind: 'zero', start: pos, length: 2 * BLOCK });
  pos += 2 * BLOCK;
  cut(pos);
  return { pieces, frames, entries, tarSize: pos };
}

export interface WriteArchiveOptions {
  entries: ScannedEntry[];
  outPath: string;
  compression: Compression;
  level: number;
  pool: CodecPool;
  onProgress?: (done: number, total: number) => void;
}

export interface WrittenArchive {
  frames: Frame[];
  entries: Entry[];
  size: number;
  sha256: string;
  tarSize: number;
  tarSha256: string;
}

async function readExactly(
  fh: FileHandle,
  buf: Buffer,
  at: number,
  length: number,
  position: number,
  path: string,
): Promise<void> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, at + got, length - got, position + got);
    if (bytesRead === 0) {
      throw new DeployToolError(
        'ERR_SOURCE_CHANGED',
        `File ${path} became shorter while it was being packed`,
        {
          hint: 'Do not modify the source folder during pack; run pack again.',
        },
      );
    }
    got += bytesRead;
  }
}

/** Writes all of `data` at `position` (a regular file takes it in one call, but a short write is not an error). */
async function writeAt(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Archive bytes written between two background fdatasyncs (so the final fsync has little left to do). */
const SYNC_EVERY = 64 * 1024 * 1024;

/** Where one frame lives while it is in flight: its tar bytes and its compressed bytes. */
interface Slot {
  input: Buffer;
  output: Buffer;
}

/** A frame handed from the reader to the writer. */
interface Queued {
  tarStart: number;
  tarSize: number;
  slot: Slot;
  compressed: Promise<{ data: Uint8Array; sha256: string }>;
  /** Resolves when the hasher is done with the slot's tar bytes. */
  tarHashed: Promise<void>;
  /** Resolves when the TarChecker is done with them. */
  checked: Promise<void>;
}

const TAR_STREAM = 0;
const ARCHIVE_STREAM = 1;

/** A FIFO whose `take` waits for the next item. */
class Channel<T> {
  private items: T[] = [];
  private waiting: ((item: T) => void)[] = [];
  put(item: T): void {
    const w = this.waiting.shift();
    if (w) w(item);
    else this.items.push(item);
  }
  take(): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift() as T);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

export async function writeArchive(options: WriteArchiveOptions): Promise<WrittenArchive> {
  const layout = planLayout(options.entries);
  const total = layout.tarSize;
  // This thread checks the stream and hashes each file (TarChecker); the sha256 of the whole tar and
  // of the whole archive are computed by a hasher thread, over the same shared bytes.
  const checker = new TarChecker(layout.entries, layout.tarSize, { checkDigests: false });
  const out = await open(options.outPath, 'wx', 0o644);
  const hasher = createStreamHasher();
  const frames: Frame[] = [];
  let written = 0;
  const openFiles = new Map<string, FileHandle>();
  // Frames in flight: enough for every worker to have one queued while the reader fills the next
  // one and the writer writes the oldest.
  const depth = Math.max(4, options.pool.size * 2 + 2);
  let pieceIdx = 0;

  // Frames live in slots of shared memory reused from frame to frame: the workers read the tar bytes
  // and write the compressed frame in place (no copies between threads, no per-frame allocation or
  // garbage), and memory stays at depth x 2 x the largest frame whatever the size of the model.
  const maxFrame = layout.frames.reduce((m, [s, e]) => Math.max(m, e - s), 0);
  const outCapacity = maxFrame + (maxFrame >> 7) + 65536; // >= zstd's compressBound
  const free = new Channel<Slot>();
  for (let i = 0; i < Math.min(depth, layout.frames.length); i++) {
    free.put({
      input: Buffer.from(new SharedArrayBuffer(maxFrame)),
      output: Buffer.from(new SharedArrayBuffer(outCapacity)),
    });
  }

  // Durability without a long stall at the end: the archive is fdatasync'ed in the background every
  // SYNC_EVERY bytes, so the disk writes while the workers compress, and the final fsync (before the
  // caller renames the archive into place) only has the tail to write. An error is kept for the end.
  let syncing: Promise<void> | undefined;
  let syncedUpTo = 0;
  let syncError: Error | undefined;
  const maybeSync = (): void => {
    if (syncing || written - syncedUpTo < SYNC_EVERY) return;
    const upTo = written;
    syncing = out
      .datasync()
      .then(
        () => {
          syncedUpTo = upTo;
        },
        (err: Error) => {
          syncError ??= err;
        },
      )
      .finally(() => {
        syncing = undefined;
      });
  };

  /** Fills `buf` with the tar bytes [start, end) from the pieces that overlap them. */
  const fill = async (buf: Buffer, start: number, end: number): Promise<void> => {
    while (pieceIdx < layout.pieces.length) {
      const p = layout.pieces[pieceIdx];
      if (!p) break;
      const pLen = p.kind === 'bytes' ? p.buf.length : p.length;
      const pEnd = p.start + pLen;
      const from = Math.max(p.start, start);
      const to = Math.min(pEnd, end);
      if (to > from) {
        const at = from - start;
        if (p.kind === 'bytes') p.buf.copy(buf, at, from - p.start, to - p.start);
        else if (p.kind === 'zero') buf.fill(0, at, at + (to - from));
        else {
          let fh = openFiles.get(p.entry.abs);
          if (!fh) {
            fh = await open(p.entry.abs, 'r');
            openFiles.set(p.entry.abs, fh);
          }
          await readExactly(fh, buf, at, to - from, p.fileOffset + (from - p.start), p.entry.abs);
          if (p.fileOffset + (to - p.start) === p.entry.size) {
            const st = await fh.stat();
            if (st.size !== p.entry.size) {
              throw new DeployToolError(
                'ERR_SOURCE_CHANGED',
                `File ${p.entry.abs} changed size while it was being packed`,
                {
                  hint: 'Do not modify the source folder during pack; run pack again.',
                },
              );
            }
            await fh.close();
            openFiles.delete(p.entry.abs);
          }
        }
      }
      if (pEnd <= end) pieceIdx++;
      else break;
    }
  };

  // The reader fills a slot, hands it to a worker and to the hasher, and goes on with the next frame
  // while this thread's TarChecker hashes the files in it; the writer writes the compressed frames in
  // order as they come back and frees their slots. Neither waits for the other except for a free slot
  // (the reader) or the next frame (the writer), so reading, hashing, compressing and writing overlap.
  const queue = new Channel<Queued | undefined>();
  let failure: Error | undefined;
  const fail = (err: unknown): void => {
    failure ??= err instanceof Error ? err : new Error(String(err));
  };

  const read = async (): Promise<void> => {
    let checking: Promise<void> = Promise.resolve();
    try {
      for (const [start, end] of layout.frames) {
        const slot = await free.take();
        if (failure !== undefined) break;
        const buf = slot.input.subarray(0, end - start);
        await fill(buf, start, end);
        // Every reader of the slot only reads it: the worker (which compresses the frame, decompresses
        // it again and compares it with these bytes), the hasher (the whole tar) and the TarChecker.
        const tarHashed = hasher.update(TAR_STREAM, buf);
        tarHashed.catch(() => undefined);
        const compressed = options.pool
          .run({
            op: 'compress',
            alg: options.compression,
            level: options.level,
            data: buf,
            roundTrip: true,
            out: slot.output,
          })
          .then((r) => {
            if (!r.ok) {
              throw new DeployToolError(
                'ERR_COMPRESSION',
                `${options.compression} compression failed: ${r.message}`,
                {
                  hint: 'Try another --compression, or report this as a bug.',
                },
              );
            }
            return { data: r.data, sha256: r.sha256 };
          });
        compressed.catch(() => undefined);
        // The checker hashes this frame after this loop has asked for the next frame's bytes (reads
        // run on libuv's threads), so reading and hashing overlap.
        checking = checking
          .then(() => new Promise<void>((r) => setImmediate(r)))
          .then(() => checker.push(buf));
        checking.catch(fail);
        queue.put({ tarStart: start, tarSize: end - start, slot, compressed, tarHashed, checked: checking });
      }
      await checking;
    } catch (err) {
      fail(err);
      await checking.catch(() => undefined);
    } finally {
      queue.put(undefined);
    }
  };

  // The writer writes one frame at a time, in order, while the hasher hashes it: one write in flight
  // leaves libuv's other threads to the reads and the background fdatasync (writes to one file are
  // serialized by the kernel anyway, and concurrent ones would only take threads the reads need).
  const write = async (): Promise<void> => {
    for (;;) {
      const q = await queue.take();
      if (!q) return;
      try {
        if (failure !== undefined) continue;
        const r = await q.compressed;
        const hashing = hasher.update(ARCHIVE_STREAM, r.data);
        hashing.catch(() => undefined);
        await writeAt(out, r.data, written);
        await hashing;
        frames.push({
          offset: written,
          size: r.data.length,
          tarOffset: q.tarStart,
          tarSize: q.tarSize,
          sha256: r.sha256,
        });
        written += r.data.length;
        maybeSync();
        options.onProgress?.(q.tarStart + q.tarSize, total);
      } catch (err) {
        fail(err);
      } finally {
        // The slot is free once nothing reads it any more.
        await Promise.allSettled([q.compressed, q.tarHashed, q.checked]);
        free.put(q.slot);
      }
    }
  };

  try {
    await Promise.all([read(), write()]);
    if (failure !== undefined) throw failure;
    checker.finish();
    const [tarSha256 = '', archiveSha256 = ''] = await hasher.digest();
    await syncing;
    if (syncError) throw syncError;
    await out.sync();
    const entries = layout.entries.map((e) =>
      e.type === 'file' ? { ...e, sha256: checker.digests.get(e.path) ?? '' } : e,
    );
    return {
      frames,
      entries,
      size: written,
      sha256: archiveSha256,
      tarSize: layout.tarSize,
      tarSha256,
    };
  } catch (err) {
    if (err instanceof TarFormatError)
      throw new Error(`internal: packed stream failed its own check: ${err.message}`, { cause: err });
    throw err;
  } finally {
    await hasher.close();
    await syncing;
    await out.close();
    for (const fh of openFiles.values()) await fh.close();
  }
}
