/**
 * A small pool of codec workers so that compression and decompression use every core while the
 * main thread reads, hashes and writes. Falls back to in-process work when workers are unavailable
 * (for example when running from TypeScript sources).
 */
import { createHash, type Hash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { runCodecTask, type CodecResult, type CodecTask } from './codec-task.js';

interface Pending<T = CodecResult> {
  resolve: (r: T) => void;
  reject: (e: Error) => void;
}

export interface CodecPool {
  run(task: CodecTask): Promise<CodecResult>;
  readonly size: number;
  close(): Promise<void>;
}

const workerFile = (): string => fileURLToPath(new URL('./codec-worker.js', import.meta.url));

export interface CodecPoolOptions {
  /** Start the workers now (they boot while the caller does other work) rather than on first use. */
  prestart?: boolean;
}

export function createCodecPool(
  size = Math.max(1, availableParallelism()),
  options: CodecPoolOptions = {},
): CodecPool {
  const file = workerFile();
  if (!existsSync(file)) {
    return { run: runCodecTask, size, close: () => Promise.resolve() };
  }
  const workers: { worker: Worker; busy: number; booted: boolean }[] = [];
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let closed = false;
  /** A task runs on this thread (while no worker has booted yet). */
  let local = false;

  const spawnWorker = (): { worker: Worker; busy: number; booted: boolean } => {
    // It says `{ ready: true }` once booted (tens of ms, the zstd addon loaded); until then the
    // pool runs one task on this thread (see run below).
    const worker = new Worker(file);
    const slot = { worker, busy: 0, booted: false };
    worker.on('message', (msg: { id?: number; ready?: boolean; result: CodecResult }) => {
      if (msg.id === undefined) {
        slot.booted = true; // { ready: true }
        return;
      }
      slot.busy--;
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      p?.resolve(msg.result);
      if (slot.busy === 0) worker.unref();
    });
    worker.on('error', (err) => {
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(err);
      }
    });
    worker.unref();
    return slot;
  };

  if (options.prestart) while (workers.length < size) workers.push(spawnWorker());

  return {
    size,
    run(task) {
      if (closed) return runCodecTask(task);
      if (workers.length < size) workers.push(spawnWorker());
      // Until a worker has booted (tens of ms, the zstd addon loaded), this thread would only wait
      // for it: it runs one task itself meanwhile (the first frame of a deploy or a pack).
      if (!local && !workers.some((w) => w.booted)) {
        local = true;
        return runCodecTask(task).finally(() => (local = false));
      }
      const slot = workers.reduce((a, b) => (b.busy < a.busy ? b : a));
      slot.busy++;
      slot.worker.ref();
      const id = nextId++;
      return new Promise<CodecResult>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const buf = task.data.buffer;
        const transferable =
          buf instanceof ArrayBuffer && task.data.byteOffset === 0 && task.data.byteLength === buf.byteLength;
        slot.worker.postMessage({ id, task }, transferable ? [buf] : []);
      });
    },
    close() {
      // Not awaited: an idle worker's stop takes a few ms that nobody needs to wait for (the
      // workers are unref'd, and nothing is pending once the pool's last task has answered).
      closed = true;
      for (const w of workers) w.worker.terminate().catch(() => undefined);
      workers.length = 0;
      return Promise.resolve();
    },
  };
}

/**
 * sha256 of several byte streams, computed on a thread of its own so that sequential hashes (the
 * whole tar, the whole archive) overlap with the caller's work. Bytes in a SharedArrayBuffer are
 * hashed in place; `update` resolves once they are hashed (then the caller may reuse them).
 * Falls back to hashing in-process when workers are unavailable.
 */
export interface StreamHasher {
  update(stream: number, data: Uint8Array): Promise<void>;
  /** The hex digest of each stream (streams never updated hash nothing), then the hasher stops. */
  digest(): Promise<string[]>;
  /** Stops the hasher (after a failure). */
  close(): Promise<void>;
}

export function createStreamHasher(): StreamHasher {
  const file = workerFile();
  if (!existsSync(file)) {
    const hashes: Hash[] = [];
    return {
      update(stream, data) {
        (hashes[stream] ??= createHash('sha256')).update(data);
        return Promise.resolve();
      },
      digest: () => Promise.resolve(Array.from(hashes, (h) => (h ?? createHash('sha256')).digest('hex'))),
      close: () => Promise.resolve(),
    };
  }
  const worker = new Worker(file);
  const pending = new Map<number, Pending<{ digests?: string[] }>>();
  let nextId = 1;
  let failed: Error | undefined;
  worker.on('message', (msg: { id?: number; digests?: string[] }) => {
    if (msg.id === undefined) return; // { ready: true }
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    p?.resolve(msg);
    if (pending.size === 0) worker.unref();
  });
  worker.on('error', (err) => {
    failed = err;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(err);
    }
  });
  worker.unref();
  const send = (msg: object): Promise<{ digests?: string[] }> => {
    if (failed) return Promise.reject(failed);
    const id = nextId++;
    worker.ref();
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, ...msg });
    });
  };
  return {
    async update(stream, data) {
      await send({ hash: { stream, data } });
    },
    async digest() {
      const r = await send({ digest: true });
      await worker.terminate();
      return r.digests ?? [];
    },
    async close() {
      await worker.terminate();
    },
  };
}
