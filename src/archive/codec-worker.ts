import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { runCodecTask, type CodecTask } from './codec-task.js';
import { preloadZstd } from './codecs.js';

/**
 * Sends `{ ready: true }` once booted. Messages: `{ id, task }` runs a codec task;
 * `{ id, hash: { stream, data } }` adds bytes to one of this worker's sha256 streams (a stream
 * hasher worker, see createStreamHasher), and `{ id, digest: true }` answers every stream's digest.
 */
type Message =
  | { id: number; task: CodecTask }
  | { id: number; hash: { stream: number; data: Uint8Array } }
  | { id: number; digest: true };

const streams: Hash[] = [];

parentPort?.on('message', (msg: Message) => {
  if ('hash' in msg) {
    (streams[msg.hash.stream] ??= createHash('sha256')).update(msg.hash.data);
    parentPort?.postMessage({ id: msg.id });
    return;
  }
  if ('digest' in msg) {
    const digests: string[] = [];
    for (let i = 0; i < streams.length; i++) digests.push((streams[i] ?? createHash('sha256')).digest('hex'));
    parentPort?.postMessage({ id: msg.id, digests });
    return;
  }
  void runCodecTask(msg.task).then((result) => {
    const transfer = result.ok && result.data.buffer instanceof ArrayBuffer ? [result.data.buffer] : [];
    try {
      parentPort?.postMessage({ id: msg.id, result }, transfer);
    } catch {
      parentPort?.postMessage({ id: msg.id, result });
    }
  });
});

// Most archives are zstd: load its addon before the first task, then say so (until then the pool
// runs a task on its own thread rather than wait for this one).
preloadZstd();
parentPort?.postMessage({ ready: true });
