/**
 * A small pool of codec workers so that compression and decompression use every core while the
 * main thread reads, hashes and writes. Falls back to in-process work when workers are unavailable
 * (for example when running from TypeScript sources).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { runCodecTask, type CodecResult, type CodecTask } from './codec-task.js';

interface Pending {
  resolve: (r: CodecResult) => void;
  reject: (e: Error) => void;
}

export interface CodecPool {
  run(task: CodecTask): Promise<CodecResult>;
  readonly size: number;
  close(): Promise<void>;
}

export function createCodecPool(size = Math.max(1, availableParallelism())): CodecPool {
  const workerFile = fileURLToPath(new URL('./codec-worker.js', import.meta.url));
  if (!existsSync(workerFile)) {
    return { run: runCodecTask, size, close: () => Promise.resolve() };
  }
  const workers: { worker: Worker; busy: number }[] = [];
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let closed = false;

  const spawnWorker = (): { worker: Worker; busy: number } => {
    const worker = new Worker(workerFile);
    const slot = { worker, busy: 0 };
    worker.on('message', (msg: { id: number; result: CodecResult }) => {
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

  return {
    size,
    run(task) {
      if (closed) return runCodecTask(task);
      if (workers.length < size) workers.push(spawnWorker());
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
    async close() {
      closed = true;
      await Promise.all(workers.map((w) => w.worker.terminate()));
      workers.length = 0;
    },
  };
}
