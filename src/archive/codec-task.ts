import { createHash } from 'node:crypto';
import type { Compression } from '../core/config.js';
import { CodecError, compressFrame, decompressFrame } from './codecs.js';

/**
 * `out`, when given, is where the result goes (typically a view of a SharedArrayBuffer that the
 * caller reuses, so frames cross threads without copies or allocations); the result's `data` is then
 * a view of it. Codecs that cannot write there return a new buffer instead.
 */
export type CodecTask =
  | {
      op: 'compress';
      alg: Compression;
      level: number;
      data: Uint8Array;
      roundTrip: boolean;
      out?: Uint8Array | undefined;
    }
  | {
      op: 'decompress';
      alg: Compression;
      data: Uint8Array;
      expectedSize: number;
      expectedSha256: string;
      out?: Uint8Array | undefined;
    };

export type CodecResult =
  | { ok: true; data: Uint8Array; sha256: string }
  | { ok: false; kind: CodecError['kind'] | 'digest'; message: string };

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

// Scratch space for the round-trip check, reused from frame to frame (a fresh 8 MiB buffer per frame
// costs page faults and GC). Taken by one task at a time: in-process, tasks can interleave.
let scratch: Buffer | undefined;
let scratchBusy = false;

async function roundTrips(alg: Compression, compressed: Buffer, input: Buffer): Promise<boolean> {
  const own = !scratchBusy;
  let dst: Buffer | undefined;
  if (own) {
    scratchBusy = true;
    if (!scratch || scratch.length < input.length) scratch = Buffer.allocUnsafe(input.length);
    dst = scratch;
  }
  try {
    const back = await decompressFrame(alg, compressed, input.length, dst);
    return back.equals(input);
  } finally {
    if (own) scratchBusy = false;
  }
}

/** Runs one codec task; used inside workers and, when no worker is available, in-process. */
export async function runCodecTask(task: CodecTask): Promise<CodecResult> {
  try {
    const input = asBuffer(task.data);
    if (task.op === 'compress') {
      const out = await compressFrame(task.alg, task.level, input, task.out && asBuffer(task.out));
      if (task.roundTrip && !(await roundTrips(task.alg, out, input)))
        return { ok: false, kind: 'failed', message: 'compressed frame does not round-trip' };
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
    const out = await decompressFrame(task.alg, input, task.expectedSize, task.out && asBuffer(task.out));
    return { ok: true, data: out, sha256: digest };
  } catch (err) {
    if (err instanceof CodecError) return { ok: false, kind: err.kind, message: err.message };
    return { ok: false, kind: 'failed', message: (err as Error).message };
  }
}
