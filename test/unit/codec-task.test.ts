/**
 * The codec task pack runs on each frame: compress, decompress again and compare with the input (the
 * round trip), and the sha256 of the compressed bytes. The decoder is wrapped so that a test can make
 * it return wrong bytes, as a compressor bug would: the frame must then be refused.
 */
import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';

vi.mock('../../src/archive/codecs.js', async (importOriginal) => {
  const mod = await importOriginal<typeof import('../../src/archive/codecs.js')>();
  return { ...mod, decompressFrame: vi.fn(mod.decompressFrame) };
});

const codecs = await import('../../src/archive/codecs.js');
const { runCodecTask } = await import('../../src/archive/codec-task.js');
const decoder = vi.mocked(codecs.decompressFrame);

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const input = Buffer.alloc(3 * 1024 * 1024);
for (let i = 0; i < input.length; i++) input[i] = i % 5 === 0 ? (i * 2654435761) >>> 24 : i & 7;

beforeEach(() => decoder.mockClear());

describe('runCodecTask compress', () => {
  for (const alg of ['zstd', 'gzip', 'lz4'] as const) {
    it(`${alg}: decodes the frame again, compares it, and hashes the compressed bytes`, async () => {
      const level = codecs.DEFAULT_LEVELS[alg];
      const r = await runCodecTask({ op: 'compress', alg, level, data: input, roundTrip: true });
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(decoder).toHaveBeenCalledTimes(1);
      expect(r.sha256).toBe(sha256(r.data));
      expect((await codecs.decompressFrame(alg, Buffer.from(r.data), input.length)).equals(input)).toBe(true);
    });

    it(`${alg}: refuses a frame that does not decode to its input`, async () => {
      decoder.mockImplementationOnce((...args) => {
        const wrong = Buffer.from(input.subarray(0, args[2]));
        const mid = wrong.length >> 1;
        wrong[mid] = (wrong[mid] ?? 0) ^ 1; // one flipped bit in the middle
        return Promise.resolve(wrong);
      });
      const level = codecs.DEFAULT_LEVELS[alg];
      const r = await runCodecTask({ op: 'compress', alg, level, data: input, roundTrip: true });
      expect(r).toEqual({ ok: false, kind: 'failed', message: 'compressed frame does not round-trip' });
    });
  }

  it('zstd: the frame is the same bytes whether or not it is written into a caller buffer', async () => {
    const own = await runCodecTask({ op: 'compress', alg: 'zstd', level: 3, data: input, roundTrip: true });
    const slot = Buffer.from(new SharedArrayBuffer(input.length + 65536));
    const shared = await runCodecTask({
      op: 'compress',
      alg: 'zstd',
      level: 3,
      data: input,
      roundTrip: true,
      out: slot,
    });
    expect(own.ok && shared.ok).toBe(true);
    if (!own.ok || !shared.ok) return;
    expect(shared.data.buffer).toBe(slot.buffer);
    expect(Buffer.from(shared.data).equals(Buffer.from(own.data))).toBe(true);
    expect(shared.sha256).toBe(own.sha256);
  });
});
