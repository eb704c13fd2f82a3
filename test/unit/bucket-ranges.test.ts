/** planRanges: how a chunk's frames become HTTP range requests (src/deploy/sources/s3.ts). */
import { describe, expect, it } from 'vitest';
import { RANGE_MAX, RANGE_MIN, planRanges } from '../../src/deploy/sources/s3.js';

const MiB = 1024 * 1024;

/** Frames of the given sizes laid end to end from `start`; the chunk covering all of them. */
function chunkOf(sizes: number[], start = 0) {
  let off = start;
  const frames = sizes.map((size) => {
    const f = { offset: off, size };
    off += size;
    return f;
  });
  return {
    frames,
    chunk: { offset: start, size: off - start, frames: [0, sizes.length] as [number, number] },
  };
}

function expectTiling(
  ranges: { offset: number; size: number; frames: number[] }[],
  size: number,
  frames: number,
): void {
  let at = 0;
  const seen: number[] = [];
  for (const r of ranges) {
    expect(r.offset).toBe(at);
    at += r.size;
    seen.push(...r.frames);
  }
  expect(at).toBe(size);
  if (frames) expect(seen).toEqual(Array.from({ length: frames }, (_, i) => i));
}

describe('planRanges', () => {
  it.each([
    ['a 2 MiB file', [2 * MiB]],
    ['a 9 MiB file in 8 MiB frames', [8 * MiB, 1 * MiB]],
    ['a 100 MiB file in 8 MiB frames', [...Array<number>(12).fill(8 * MiB), 4 * MiB]],
    ['a 1 GiB file in 8 MiB frames', Array<number>(128).fill(8 * MiB)],
    ['many 1 MiB group frames (64 MiB)', Array<number>(64).fill(MiB)],
    ['compressed frames of odd sizes', Array.from({ length: 40 }, (_, i) => 3 * MiB + i * 7919)],
  ])(
    '%s: whole frames, tiling the chunk, ranges of 8-64 MiB (smaller only for a small chunk)',
    (_what, sizes) => {
      const { frames, chunk } = chunkOf(sizes, 12345);
      const ranges = planRanges(frames, chunk);
      expectTiling(ranges, chunk.size, sizes.length);
      for (const r of ranges) {
        expect(r.size).toBeLessThanOrEqual(RANGE_MAX);
        if (chunk.size >= RANGE_MIN) expect(r.size).toBeGreaterThanOrEqual(RANGE_MIN);
      }
      if (chunk.size < RANGE_MIN) expect(ranges).toHaveLength(1);
      // Merged: far fewer requests than frames for a large chunk (about 16 MiB each).
      if (chunk.size >= 64 * MiB)
        expect(ranges.length).toBeLessThanOrEqual(Math.ceil(chunk.size / (12 * MiB)));
    },
  );

  it('a chunk without frames (encrypted) is cut into near-equal slices of about 16 MiB', () => {
    const chunk = { offset: 0, size: 64 * MiB, frames: null };
    const ranges = planRanges([], chunk);
    expect(ranges.map((r) => r.size)).toEqual([16 * MiB, 16 * MiB, 16 * MiB, 16 * MiB]);
    expectTiling(ranges, chunk.size, 0);
    const small = planRanges([], { offset: 0, size: 5000, frames: null });
    expect(small).toEqual([{ offset: 0, size: 5000, frames: [] }]);
    const odd = planRanges([], { offset: 0, size: 40 * MiB + 3, frames: null });
    expectTiling(odd, 40 * MiB + 3, 0);
    for (const r of odd) expect(r.size).toBeGreaterThanOrEqual(RANGE_MIN);
  });
});
