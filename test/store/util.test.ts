/** hashFilePieces, hashFileRanges and hashThread (src/store/util.ts): one read of a file, two digests per byte. */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashFilePieces, hashFileRanges, hashThread } from '../../src/store/util.js';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

afterAll(cleanupTempDirs);

describe('hashFilePieces', () => {
  it('gives the sha256 of the whole file and of each piece, each piece as soon as it is hashed', async () => {
    const data = randomBytes(9 * MiB + 12345);
    const path = join(await tempDir('hash-'), 'f');
    await writeFile(path, data);
    // Pieces smaller and larger than the 4 MiB blocks, one of a single byte, ends inside blocks.
    const ends = [1, 3 * MiB, 3 * MiB + 1, 8 * MiB + 7, data.length];
    const seen: [number, string][] = [];
    const r = await hashFilePieces(path, ends, (i, d) => seen.push([i, d]));
    expect(r.size).toBe(data.length);
    expect(r.sha256).toBe(sha(data));
    const want = ends.map((e, i) => sha(data.subarray(i === 0 ? 0 : ends[i - 1], e)));
    expect(r.pieces).toEqual(want);
    expect(seen).toEqual(want.map((d, i) => [i, d]));
  });

  it('a file shorter than its pieces: the size says so and the last digests are not the expected ones', async () => {
    const data = randomBytes(2 * MiB);
    const path = join(await tempDir('hash-'), 'f');
    await writeFile(path, data.subarray(0, MiB + 5));
    const r = await hashFilePieces(path, [MiB, 2 * MiB]);
    expect(r.size).toBe(MiB + 5);
    expect(r.sha256).toBe(sha(data.subarray(0, MiB + 5)));
    expect(r.pieces[0]).toBe(sha(data.subarray(0, MiB)));
    expect(r.pieces[1]).not.toBe(sha(data.subarray(MiB)));
  });
});

describe('hashFileRanges', () => {
  it('reads only the ranges: the sha256 of each range and of each piece in them, skipping the gaps', async () => {
    const data = randomBytes(14 * MiB + 999);
    const path = join(await tempDir('hash-'), 'f');
    await writeFile(path, data);
    // Two ranges with a gap (one spans a 4 MiB block boundary), the second cut into three pieces.
    const ranges = [
      { offset: 1000, length: 5 * MiB },
      { offset: 7 * MiB, length: 6 * MiB + 3 },
    ];
    const ends = [1000 + 5 * MiB, 7 * MiB + 1, 11 * MiB, 13 * MiB + 3];
    const starts = [1000, 7 * MiB, 7 * MiB + 1, 11 * MiB];
    const got: [number, string, number][] = [];
    const r = await hashFileRanges(path, ranges, ends, undefined, (k, d, n) => got.push([k, d, n]));
    const want = ranges.map((x) => ({
      sha256: sha(data.subarray(x.offset, x.offset + x.length)),
      size: x.length,
    }));
    expect(r.ranges).toEqual(want);
    expect(got).toEqual(want.map((w, k) => [k, w.sha256, w.size]));
    expect(r.pieces).toEqual(ends.map((e, i) => sha(data.subarray(starts[i], e))));
  });

  it('a range past the end of the file: its size says how much there was', async () => {
    const data = randomBytes(3 * MiB);
    const path = join(await tempDir('hash-'), 'f');
    await writeFile(path, data);
    const r = await hashFileRanges(path, [{ offset: 2 * MiB, length: 2 * MiB }], [4 * MiB]);
    expect(r.ranges[0]).toEqual({ sha256: sha(data.subarray(2 * MiB)), size: MiB });
  });
});

describe('hashThread', () => {
  it('keeps several named hashes apart, over shared buffers only', async () => {
    const t = await hashThread();
    try {
      const buf = Buffer.from(new SharedArrayBuffer(1000));
      buf.set(randomBytes(1000));
      await Promise.all([t.update(buf, 0, 400, 'a'), t.update(buf, 100, 200, 'b')]);
      await t.update(buf, 400, 1000, 'a');
      expect(await t.cut('a')).toBe(sha(buf));
      expect(await t.cut('b')).toBe(sha(buf.subarray(100, 200)));
      // A cut starts a new hash; a dropped one is forgotten.
      await t.update(buf, 0, 10, 'a');
      t.drop('a');
      expect(await t.cut('a')).toBe(sha(Buffer.alloc(0)));
      await expect(t.update(Buffer.alloc(10), 0, 10)).rejects.toThrow(/shared buffer/);
    } finally {
      await t.close();
    }
  });
});
