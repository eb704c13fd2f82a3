import { createHash } from 'node:crypto';
import type { Compression } from '../core/config.js';
import { CodecError, compressFrame, decompressFrame } from './codecs.js';

export type CodecTask =
  | { op: 'compress'; alg: Compression; level: number; data: Uint8Array; roundTrip: boolean }
  | { op: 'decompress'; alg: Compression; data: Uint8Array; expectedSize: number; expectedSha256: string };

export type CodecResult =
  | { ok: true; data: Uint8Array; sha256: string }
  | { ok: false; kind: CodecError['kind'] | 'digest'; message: string };

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** Runs one codec task; used inside workers and, when no worker is available, in-process. */
export async function runCodecTask(task: CodecTask): Promise<CodecResult> {
  try {
    const input = asBuffer(task.data);
    if (task.op === 'compress') {
      const out = await compressFrame(task.alg, task.level, input);
      if (task.roundTrip) {
        const back = await decompressFrame(task.alg, out, input.length);
        if (!back.equals(input))
          return { ok: false, kind: 'failed', message: 'compressed frame does not round-trip' };
      }
      return { ok: true, data: out, sha256: createHash('sha256').update(out).digest('hex') };
    }
    const digest = createHash('sha256').update(input).digest('hex');
    if (digest !== task.expectedSha256) {
      return {
        ok: false,
        kind: 'digest',
        message: `frame sha256 is ${digest}, expected ${task.expectedSha256}`,
      };
    }
    const out = await decompressFrame(task.alg, input, task.expectedSize);
    return { ok: true, data: out, sha256: digest };
  } catch (err) {
    if (err instanceof CodecError) return { ok: false, kind: err.kind, message: err.message };
    return { ok: false, kind: 'failed', message: (err as Error).message };
  }
}
