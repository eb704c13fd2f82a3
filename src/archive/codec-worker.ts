import { parentPort } from 'node:worker_threads';
import { runCodecTask, type CodecTask } from './codec-task.js';

parentPort?.on('message', (msg: { id: number; task: CodecTask }) => {
  void runCodecTask(msg.task).then((result) => {
    const transfer = result.ok && result.data.buffer instanceof ArrayBuffer ? [result.data.buffer] : [];
    try {
      parentPort?.postMessage({ id: msg.id, result }, transfer);
    } catch {
      parentPort?.postMessage({ id: msg.id, result });
    }
  });
});
