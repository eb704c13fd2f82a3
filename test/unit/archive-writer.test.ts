/**
 * writeArchive's pipeline (a reader and a writer loop around the codec pool): the archive does not
 * depend on the order in which frames come back, and every failure (a frame that fails to compress,
 * a worker that dies, a source file that changes) ends the pack with its error instead of a hang.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodecPool, type CodecPool } from '../../src/archive/pool.js';
import { scanSource } from '../../src/archive/scan.js';
import { writeArchive, type WrittenArchive } from '../../src/archive/writer.js';
import type { CodecTask } from '../../src/archive/codec-task.js';
import { DeployToolError } from '../../src/core/errors.js';
import { decompressFrame } from '../../src/archive/codecs.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let root: string;
let src: string;
let pool: CodecPool;
let n = 0;
const out = (): string => join(root, `out-${n++}.tar.zst`);

/** Pseudo-random bytes (xorshift), some compressible, so frames differ in size. */
function noise(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = i % 3 === 0 ? 0 : x & 0xff;
  }
  return b;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dt-writer-'));
  src = join(root, 'src');
  await mkdir(join(src, 'w'), { recursive: true });
  // Ten files of 1.5 MiB (a frame each) and a few small ones: more frames than slots in flight.
  for (let i = 0; i < 10; i++)
    await writeFile(join(src, 'w', `part-${i}.bin`), noise(1536 * 1024 + i * 4099, i + 1));
  await writeFile(join(src, 'config.json'), '{"layers": 12}\n');
  await writeFile(join(src, 'w', 'small.txt'), 'small\n');
  pool = createCodecPool(2);
});

afterAll(async () => {
  await pool.close();
  await rm(root, { recursive: true, force: true });
});

const pack = async (p: CodecPool, entriesFrom = src): Promise<{ w: WrittenArchive; bytes: Buffer }> => {
  const scan = await scanSource(entriesFrom);
  const path = out();
  const w = await writeArchive({
    entries: scan.entries,
    outPath: path,
    compression: 'zstd',
    level: 3,
    pool: p,
  });
  return { w, bytes: await readFile(path) };
};

/** A pool that hands tasks to `pool` but answers after a delay chosen by `delay` (frame index). */
function delayed(
  delay: (i: number) => number,
  change?: (i: number, task: CodecTask) => Promise<never> | undefined,
): CodecPool {
  let i = 0;
  return {
    size: pool.size,
    close: () => Promise.resolve(),
    async run(task) {
      const k = i++;
      const failure = change?.(k, task);
      if (failure) return failure;
      const r = await pool.run(task);
      await new Promise((resolve) => setTimeout(resolve, delay(k)));
      return r;
    },
  };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DeployToolError);
    expect((err as DeployToolError).code).toBe(code);
    return (err as Error).message;
  }
  throw new Error(`expected ${code}`);
}

describe('writeArchive pipeline', () => {
  it('writes the same archive whatever order the frames are compressed in', async () => {
    const inOrder = await pack(pool);
    expect(inOrder.w.frames.length).toBeGreaterThan(20);
    // The first frames come back last, and the rest in a scrambled order.
    const scrambled = await pack(delayed((i) => (i < 3 ? 60 - i * 10 : (i * 7) % 5)));
    expect(scrambled.bytes.equals(inOrder.bytes)).toBe(true);
    expect(scrambled.w).toEqual(inOrder.w);

    // The index describes the bytes: frames tile the archive in order, each with its own sha256,
    // and decompress to the tar they claim.
    const { w, bytes } = inOrder;
    expect(w.size).toBe(bytes.length);
    expect(w.sha256).toBe(sha256(bytes));
    let at = 0;
    let tarAt = 0;
    const tar: Buffer[] = [];
    for (const f of w.frames) {
      expect(f.offset).toBe(at);
      expect(f.tarOffset).toBe(tarAt);
      const frame = bytes.subarray(f.offset, f.offset + f.size);
      expect(f.sha256).toBe(sha256(frame));
      tar.push(await decompressFrame('zstd', frame, f.tarSize));
      at += f.size;
      tarAt += f.tarSize;
    }
    expect(at).toBe(bytes.length);
    expect(tarAt).toBe(w.tarSize);
    expect(w.tarSha256).toBe(sha256(Buffer.concat(tar)));
    for (let i = 0; i < 10; i++) {
      const e = w.entries.find((x) => x.path === `w/part-${i}.bin`);
      expect(e?.type === 'file' && e.sha256).toBe(sha256(noise(1536 * 1024 + i * 4099, i + 1)));
    }
  });

  it('a frame that fails to compress ends the pack with ERR_COMPRESSION', async () => {
    let calls = 0;
    const failing = delayed(
      () => 1,
      (i) => {
        calls++;
        return i === 4 ? Promise.resolve({ ok: false, kind: 'failed', message: 'boom' } as never) : undefined;
      },
    );
    const msg = await expectCode(pack(failing), 'ERR_COMPRESSION');
    expect(msg).toContain('boom');
    // It stops reading soon after: not every frame of the tree was handed to the pool.
    expect(calls).toBeLessThan(13);
  });

  it('a worker that dies ends the pack with its error', async () => {
    const dying = delayed(
      () => 2,
      (i) => (i === 2 ? Promise.reject(new Error('worker exited')) : undefined),
    );
    await expect(pack(dying)).rejects.toThrow('worker exited');
  });

  it('a file that becomes shorter or longer after the scan is ERR_SOURCE_CHANGED', async () => {
    const dir = join(root, 'changing');
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < 6; i++) await writeFile(join(dir, `f${i}.bin`), noise(1200 * 1024, 50 + i));
    let scan = await scanSource(dir);
    await truncate(join(dir, 'f3.bin'), 1000 * 1024);
    let msg = await expectCode(
      writeArchive({ entries: scan.entries, outPath: out(), compression: 'zstd', level: 3, pool }),
      'ERR_SOURCE_CHANGED',
    );
    expect(msg).toContain('f3.bin');

    await writeFile(join(dir, 'f3.bin'), noise(1200 * 1024, 53));
    scan = await scanSource(dir);
    await appendFile(join(dir, 'f4.bin'), 'more');
    msg = await expectCode(
      writeArchive({ entries: scan.entries, outPath: out(), compression: 'zstd', level: 3, pool }),
      'ERR_SOURCE_CHANGED',
    );
    expect(msg).toContain('f4.bin');
  });
});
