/**
 * One conformance suite for every Store driver (unstorage's testDriver): the same assertions run
 * against the filesystem driver, the S3 driver on a real Ceph radosgw, and the BOS factory pointed
 * at the same gateway.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { putFileRange } from '../../src/store/util.js';
import type { Store } from '../../src/store/types.js';
import { noise, tempDir } from '../helpers/cli.js';

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface ConformanceOptions {
  /** Size of the "large" file (a multipart upload on S3). */
  largeSize?: number;
  /**
   * Whether compare-and-swap is atomic against concurrent writers (default true). The filesystem
   * driver checks the etag and then renames: two racing swaps can both succeed.
   */
  atomicCas?: boolean;
}

export function testStore(name: string, makeStore: () => Promise<Store>, o: ConformanceOptions = {}): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let dir: string;
    let n = 0;
    const k = (rest: string): string => `t${++n}-${randomBytes(3).toString('hex')}/${rest}`;

    beforeAll(async () => {
      store = await makeStore();
      dir = await tempDir('store-');
    });

    it('names its driver and location', () => {
      expect(store.driver).toMatch(/^[a-z0-9-]+$/);
      expect(store.location.length).toBeGreaterThan(0);
    });

    it('head/get of a missing key: undefined', async () => {
      expect(await store.head(k('missing.bin'))).toBeUndefined();
      expect(await store.get(k('missing.bin'))).toBeUndefined();
    });

    it('put then head/get; a second put replaces', async () => {
      const key = k('a/b/c.json');
      expect((await store.put(key, '{"x":1}\n')).status).toBe('created');
      const info = await store.head(key);
      expect(info).toMatchObject({ key, size: 8 });
      expect((await store.get(key))?.toString()).toBe('{"x":1}\n');
      expect((await store.put(key, Buffer.from('second'))).status).toBe('replaced');
      expect((await store.get(key))?.toString()).toBe('second');
    });

    it('getRange reads exact ranges, short at the end', async () => {
      const key = k('range.bin');
      const data = noise(100_000, 3);
      await store.put(key, data);
      expect((await store.getRange(key, 0, 10)).equals(data.subarray(0, 10))).toBe(true);
      expect((await store.getRange(key, 12_345, 50_000)).equals(data.subarray(12_345, 62_345))).toBe(true);
      expect((await store.getRange(key, 99_990, 100)).equals(data.subarray(99_990))).toBe(true);
      expect((await store.getRange(key, 5, 0)).length).toBe(0);
    });

    it('getStream streams the whole object or a range; a missing key rejects', async () => {
      const key = k('stream.bin');
      const data = noise(300_000, 4);
      await store.put(key, data);
      expect((await drain(await store.getStream(key))).equals(data)).toBe(true);
      const part = await drain(await store.getStream(key, { offset: 1000, length: 2000 }));
      expect(part.equals(data.subarray(1000, 3000))).toBe(true);
      await expect(store.getStream(k('nope.bin'))).rejects.toThrow();
    });

    it('putFile uploads small and large files (multipart on S3), putFileRange a slice', async () => {
      const small = join(dir, 'small.bin');
      const large = join(dir, 'large.bin');
      const smallData = noise(1234, 5);
      const largeData = noise(o.largeSize ?? 12 * 1024 * 1024 + 17, 6);
      await writeFile(small, smallData);
      await writeFile(large, largeData);
      const ks = k('small.bin');
      const kl = k('large.bin');
      expect((await store.putFile(ks, small)).status).toBe('created');
      expect((await store.putFile(kl, large)).status).toBe('created');
      expect((await store.get(ks))?.equals(smallData)).toBe(true);
      expect((await store.head(kl))?.size).toBe(largeData.length);
      const mid = Math.floor(largeData.length / 2);
      expect((await store.getRange(kl, mid, 4096)).equals(largeData.subarray(mid, mid + 4096))).toBe(true);
      const kr = k('slice.bin');
      await putFileRange(store, kr, large, { offset: 777, length: 6 * 1024 * 1024 + 1 });
      const back = await drain(await store.getStream(kr));
      expect(back.equals(largeData.subarray(777, 777 + 6 * 1024 * 1024 + 1))).toBe(true);
      // An immutable large object is not overwritten.
      expect((await store.putFile(kl, small, { ifNoneMatch: true })).status).toBe('exists');
      expect((await store.head(kl))?.size).toBe(largeData.length);
    });

    it('list returns keys under a prefix with sizes, in order', async () => {
      const base = k('list');
      await store.put(`${base}/b.txt`, 'bb');
      await store.put(`${base}/a.txt`, 'a');
      await store.put(`${base}/sub/c.txt`, 'ccc');
      await store.put(`${base}x/other.txt`, 'o');
      const all = await store.list(`${base}/`);
      expect(all.map((i) => [i.key, i.size])).toEqual([
        [`${base}/a.txt`, 1],
        [`${base}/b.txt`, 2],
        [`${base}/sub/c.txt`, 3],
      ]);
      expect(await store.list(`${base}/nothing-here/`)).toEqual([]);
    });

    it('delete removes; deleting a missing key is not an error', async () => {
      const key = k('del.txt');
      await store.put(key, 'x');
      await store.delete(key);
      expect(await store.head(key)).toBeUndefined();
      await store.delete(key);
    });

    it('conditional create: refuses to overwrite; of concurrent creates exactly one wins', async () => {
      const key = k('release.json');
      expect((await store.put(key, 'first', { ifNoneMatch: true })).status).toBe('created');
      expect((await store.put(key, 'second', { ifNoneMatch: true })).status).toBe('exists');
      expect((await store.get(key))?.toString()).toBe('first');
      for (let round = 0; round < 3; round++) {
        const race = k(`race-${round}.json`);
        const results = await Promise.all(
          [0, 1, 2, 3].map((i) => store.put(race, `writer ${i}`, { ifNoneMatch: true })),
        );
        const winners = results.flatMap((r, i) => (r.status === 'created' ? [i] : []));
        expect(winners).toHaveLength(1);
        expect(results.filter((r) => r.status === 'exists')).toHaveLength(3);
        expect((await store.get(race))?.toString()).toBe(`writer ${winners[0]}`);
      }
    });

    it('compare-and-swap: the current etag wins, a stale etag is refused', async () => {
      const key = k('pointers/latest.json');
      await store.put(key, '{"release":"1"}');
      const v1 = await store.head(key);
      expect(v1?.etag).toBeTruthy();
      const r2 = await store.put(key, '{"release":"2"}', { ifMatch: v1!.etag! });
      expect(r2.status).toBe('replaced');
      const v2 = await store.head(key);
      expect(v2?.etag).toBeTruthy();
      expect(v2?.etag).not.toBe(v1?.etag);
      expect((await store.put(key, '{"release":"3"}', { ifMatch: v1!.etag! })).status).toBe('conflict');
      expect((await store.get(key))?.toString()).toBe('{"release":"2"}');
      expect((await store.put(k('absent.json'), 'x', { ifMatch: v1!.etag! })).status).toBe('conflict');
      if (o.atomicCas === false) return;
      // Two racing swaps from the same etag: exactly one wins.
      const results = await Promise.all(
        ['a', 'b', 'c'].map((x) => store.put(key, `{"release":"${x}"}`, { ifMatch: v2!.etag! })),
      );
      expect(results.filter((r) => r.status === 'replaced')).toHaveLength(1);
      expect(results.filter((r) => r.status === 'conflict')).toHaveLength(2);
    });

    it('refuses bad keys', async () => {
      for (const bad of ['', '/abs', '../up', 'a/../b', 'a//b', 'a/./b', 'nul\0x', 'trailing/']) {
        await expect(Promise.resolve().then(() => store.get(bad))).rejects.toThrow(/invalid key/);
        await expect(Promise.resolve().then(() => store.put(bad, 'x'))).rejects.toThrow(/invalid key/);
        await expect(Promise.resolve().then(() => store.head(bad))).rejects.toThrow(/invalid key/);
      }
    });
  });
}
