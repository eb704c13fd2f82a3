/** Helpers over any Store. */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { PutOptions, PutResult, Store } from './types.js';

/** The sha256 (hex) of bytes [offset, offset+length) of a file, streamed in 4 MiB reads. */
export async function sha256OfFileRange(path: string, offset: number, length: number): Promise<string> {
  const h = createHash('sha256');
  if (length > 0)
    for await (const c of createReadStream(path, {
      start: offset,
      end: offset + length - 1,
      highWaterMark: 4 * 1024 * 1024,
    }))
      h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * Uploads bytes [offset, offset+length) of a local file: the driver's own streaming putFileRange
 * when it has one, else through a temporary file and putFile (never the whole range in memory).
 */
export async function putFileRange(
  store: Store,
  key: string,
  path: string,
  range: { offset: number; length: number },
  options?: PutOptions,
): Promise<PutResult> {
  if (store.putFileRange) return store.putFileRange(key, path, range, options);
  const dir = await mkdtemp(join(tmpdir(), 'deploy-tool-range-'));
  try {
    const tmp = join(dir, 'part');
    if (range.length === 0) await writeFile(tmp, '');
    else
      await pipeline(
        createReadStream(path, { start: range.offset, end: range.offset + range.length - 1 }),
        createWriteStream(tmp),
      );
    return await store.putFile(key, tmp, options);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * sha256s computed on a worker thread over bytes of shared buffers (no copies). Several hashes may
 * run at once, named by `id`; requests are served in order.
 */
export interface HashThread {
  /** Hashes bytes [start, end) of a buffer over a SharedArrayBuffer; resolves once they are hashed. */
  update(buf: Uint8Array, start: number, end: number, id?: string): Promise<void>;
  /** The digest (hex) of the bytes given to `id` since its previous cut; the next bytes start anew. */
  cut(id?: string): Promise<string>;
  /** Forgets hash `id` (an abandoned download). */
  drop(id: string): void;
  close(): Promise<void>;
}

const HASH_WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
const get = (id) => {
  let h = hashes.get(id);
  if (!h) hashes.set(id, (h = createHash('sha256')));
  return h;
};
parentPort.on('message', (m) => {
  if (m.sab) {
    get(m.id).update(new Uint8Array(m.sab, m.offset, m.length));
    parentPort.postMessage(0);
  } else if (m.drop) {
    hashes.delete(m.id);
  } else {
    const hex = get(m.id).digest('hex');
    hashes.delete(m.id);
    parentPort.postMessage(hex);
  }
});
`;

/** Starts a hash thread (a worker thread, ended by close()). */
export async function hashThread(): Promise<HashThread> {
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(HASH_WORKER, { eval: true });
  // Replies come in the order of the requests.
  const waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  let failed: Error | undefined;
  worker.on('message', (v: unknown) => waiting.shift()?.resolve(v));
  const fail = (err: Error): void => {
    failed ??= err;
    for (const w of waiting.splice(0)) w.reject(err);
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`hash thread exited (${code})`)));
  const ask = <T>(msg: unknown): Promise<T> =>
    failed
      ? Promise.reject(failed)
      : new Promise<T>((resolve, reject) => {
          waiting.push({ resolve: resolve as (v: unknown) => void, reject });
          worker.postMessage(msg);
        });
  return {
    update: (buf, start, end, id = '') => {
      if (end <= start) return Promise.resolve();
      if (!(buf.buffer instanceof SharedArrayBuffer))
        return Promise.reject(new Error('internal: hash thread needs a shared buffer'));
      return ask<void>({ sab: buf.buffer, offset: buf.byteOffset + start, length: end - start, id });
    },
    cut: (id = '') => ask<string>({ id }),
    drop: (id) => {
      if (!failed) worker.postMessage({ drop: true, id });
    },
    async close() {
      failed ??= new Error('hash thread closed');
      await worker.terminate();
    },
  };
}

/**
 * Reads a file once, in order, and computes on two worker threads both the sha256 of the whole
 * file and the sha256 of each consecutive piece (`ends`: ascending end offsets of the pieces, the
 * last one the file size): what publishing to a bucket needs (the archive's digest, checked against
 * its manifest, and the digest of each chunk, its key), with no byte read or hashed twice by one
 * thread. `onPiece` is called as soon as each piece's digest is known (uploads start meanwhile).
 */
export async function hashFilePieces(
  path: string,
  ends: readonly number[],
  onPiece?: (i: number, sha256: string) => void,
): Promise<{ sha256: string; size: number; pieces: string[] }> {
  const BLOCK = 4 * 1024 * 1024;
  const SLOTS = 4;
  const fh = await open(path, 'r');
  const whole = await hashThread();
  const parts = await hashThread();
  try {
    const size = (await fh.stat()).size;
    const total = ends.length ? (ends[ends.length - 1] ?? 0) : size;
    const slots: { buf: Buffer; busy: Promise<unknown> }[] = Array.from({ length: SLOTS }, () => ({
      buf: Buffer.from(new SharedArrayBuffer(BLOCK)),
      busy: Promise.resolve(),
    }));
    const pieces: Promise<string>[] = [];
    let piece = 0;
    let pieceStart = 0;
    for (let pos = 0, k = 0; pos < size; k++) {
      const slot = slots[k % SLOTS]!;
      await slot.busy;
      const want = Math.min(BLOCK, size - pos);
      let n = 0;
      while (n < want) {
        const { bytesRead } = await fh.read(slot.buf, n, want - n, pos + n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      if (n === 0) break;
      const jobs: Promise<unknown>[] = [whole.update(slot.buf, 0, n)];
      // The block's bytes, cut at the ends of the pieces they hold.
      let at = 0;
      while (at < n && piece < ends.length) {
        const end = Math.min(n, (ends[piece] ?? total) - pos);
        jobs.push(parts.update(slot.buf, at, end));
        at = end;
        if (pos + at === ends[piece]) {
          const i = piece;
          const d = parts.cut();
          d.then((sha) => onPiece?.(i, sha)).catch(() => undefined);
          pieces.push(d);
          piece++;
          pieceStart = pos + at;
        }
      }
      slot.busy = Promise.all(jobs);
      // A failure surfaces at the next use of this slot, or below.
      slot.busy.catch(() => undefined);
      pos += n;
    }
    await Promise.all(slots.map((s) => s.busy));
    if (piece < ends.length && pieceStart < total) {
      // The file is shorter than the pieces: the last one is cut short (its digest is wrong).
      pieces.push(parts.cut());
    }
    const [sha256, digests] = await Promise.all([whole.cut(), Promise.all(pieces)]);
    return { sha256, size, pieces: digests };
  } finally {
    await Promise.all([whole.close(), parts.close(), fh.close()]);
  }
}
