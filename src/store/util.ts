/** Helpers over any Store. */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
 * Reads ranges of a file ([start, end), end null: to the end of the file) into a ring of shared
 * slots, hashes each range as a whole, and hands every block to the piece hasher.
 */
const READ_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { path, slots, port, ranges } = workerData;
const bufs = slots.map((sab) => new Uint8Array(sab));
const free = bufs.map((_, i) => i);
const waiting = [];
port.on('message', (m) => {
  free.push(m.free);
  const w = waiting.shift();
  if (w) w();
});
const slot = () => (free.length ? Promise.resolve() : new Promise((res) => waiting.push(res))).then(() => free.shift());
(async () => {
  const fd = openSync(path, 'r');
  try {
    for (let k = 0; k < ranges.length; k++) {
      const [start, end] = ranges[k];
      const h = createHash('sha256');
      let pos = start;
      while (end === null || pos < end) {
        const i = await slot();
        const want = end === null ? bufs[i].length : Math.min(bufs[i].length, end - pos);
        const n = readSync(fd, bufs[i], 0, want, pos);
        if (n === 0) {
          free.push(i);
          break;
        }
        h.update(bufs[i].subarray(0, n));
        port.postMessage({ slot: i, length: n, pos });
        pos += n;
      }
      parentPort.postMessage({ range: k, sha256: h.digest('hex'), size: pos - start });
    }
  } finally {
    closeSync(fd);
  }
  port.postMessage({ end: true });
  parentPort.postMessage({ done: true });
})().catch((err) => parentPort.postMessage({ error: String(err && err.message || err) }));
`;

/** Hashes the pieces of the blocks the reader hands over (cut at ends), and gives each slot back. */
const PIECE_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { slots, port, ends } = workerData;
const bufs = slots.map((sab) => new Uint8Array(sab));
let piece = 0;
let h = createHash('sha256');
let started = false;
port.on('message', (m) => {
  if (m.end) {
    // A file shorter than its pieces: the piece cut short gets the digest of what there was.
    if (started && piece < ends.length) parentPort.postMessage({ piece: piece++, sha256: h.digest('hex') });
    parentPort.postMessage({ done: true });
    return;
  }
  const buf = bufs[m.slot];
  let at = 0;
  while (at < m.length && piece < ends.length) {
    const end = Math.min(m.length, ends[piece] - m.pos);
    h.update(buf.subarray(at, end));
    started = true;
    at = end;
    if (m.pos + at === ends[piece]) {
      parentPort.postMessage({ piece: piece++, sha256: h.digest('hex') });
      h = createHash('sha256');
      started = false;
    }
  }
  port.postMessage({ free: m.slot });
});
`;

/**
 * Reads a file once, in order, and computes on two worker threads both the sha256 of the whole
 * file and the sha256 of each consecutive piece (`ends`: ascending end offsets of the pieces, the
 * last one the file size): what publishing to a bucket needs (the archive's digest, checked against
 * its manifest, and the digest of each chunk, its key). `onPiece` is called as soon as each
 * piece's digest is known (uploads start meanwhile). See hashFileRanges.
 */
export async function hashFilePieces(
  path: string,
  ends: readonly number[],
  onPiece?: (i: number, sha256: string) => void,
): Promise<{ sha256: string; size: number; pieces: string[] }> {
  const r = await hashFileRanges(path, [{ offset: 0 }], ends, onPiece);
  const whole = r.ranges[0];
  return { sha256: whole?.sha256 ?? '', size: whole?.size ?? 0, pieces: r.pieces };
}

/**
 * Reads ranges of a file once, in order (`ranges`: ascending, not overlapping; no `length`: to the
 * end of the file), and computes on two worker threads the sha256 of each range and of each piece
 * of them (`ends`: ascending absolute end offsets of the pieces; every range ends where a piece
 * does, and pieces never span a gap between ranges). One thread reads the ranges into shared slots
 * and hashes each range, the other hashes the pieces of the same slots: no byte is read twice, and
 * neither waits for the main thread (which loads the S3 SDK and uploads meanwhile). `onPiece` and
 * `onRange` are called as soon as each digest is known. Publish uses it for the whole archive and
 * its chunks, or for the chunks a bucket lacks and their frames (src/store/bucket.ts). A third
 * thread that only reads was measured no faster (sha256 sets the pace; each worker costs about
 * 15 ms to start).
 */
export async function hashFileRanges(
  path: string,
  ranges: readonly { offset: number; length?: number | undefined }[],
  ends: readonly number[],
  onPiece?: (i: number, sha256: string) => void,
  onRange?: (i: number, sha256: string, size: number) => void,
): Promise<{ ranges: { sha256: string; size: number }[]; pieces: string[] }> {
  const BLOCK = 4 * 1024 * 1024;
  const SLOTS = 4;
  const { Worker, MessageChannel } = await import('node:worker_threads');
  const slots = Array.from({ length: SLOTS }, () => new SharedArrayBuffer(BLOCK));
  const { port1, port2 } = new MessageChannel();
  const reader = new Worker(READ_WORKER, {
    eval: true,
    workerData: {
      path,
      slots,
      port: port1,
      ranges: ranges.map((r) => [r.offset, r.length === undefined ? null : r.offset + r.length]),
    },
    transferList: [port1],
  });
  const hasher = new Worker(PIECE_WORKER, {
    eval: true,
    workerData: { slots, port: port2, ends: [...ends] },
    transferList: [port2],
  });
  const pieces: string[] = [];
  const out: { sha256: string; size: number }[] = [];
  try {
    await Promise.all([
      new Promise<void>((resolve, reject) => {
        reader.on(
          'message',
          (m: { range?: number; sha256?: string; size?: number; done?: boolean; error?: string }) => {
            if (m.error !== undefined) return reject(new Error(`${path}: ${m.error}`));
            if (m.done) return resolve();
            if (m.range === undefined) return;
            out[m.range] = { sha256: m.sha256 ?? '', size: m.size ?? 0 };
            onRange?.(m.range, m.sha256 ?? '', m.size ?? 0);
          },
        );
        reader.on('error', reject);
        reader.on('exit', (code) => reject(new Error(`hash thread exited (${code})`)));
      }),
      new Promise<void>((resolve, reject) => {
        hasher.on('message', (m: { piece?: number; sha256?: string; done?: boolean }) => {
          if (m.done) return resolve();
          if (m.piece === undefined || m.sha256 === undefined) return;
          pieces[m.piece] = m.sha256;
          onPiece?.(m.piece, m.sha256);
        });
        hasher.on('error', reject);
        hasher.on('exit', (code) => reject(new Error(`hash thread exited (${code})`)));
      }),
    ]);
    return { ranges: out, pieces };
  } finally {
    await Promise.all([reader.terminate(), hasher.terminate()]);
  }
}
