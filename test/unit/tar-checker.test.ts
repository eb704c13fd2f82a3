import { Header, Pax } from 'tar';
import { describe, expect, it } from 'vitest';
import { BLOCK, encodeHeader, TarChecker, TarFormatError, type EntrySink } from '../../src/archive/tar.js';
import type { Entry } from '../../src/manifest/component.js';
import { buildTar, sha256 } from './fixtures.js';

const TREE = {
  'a.txt': 'alpha\n',
  'models/weights.bin': Buffer.alloc(5000, 3),
  'models/latest': { symlink: 'weights.bin' },
  [`${'long-folder-name-'.repeat(10)}/file.json`]: '{"k": 1}',
  'Ünïcödé.txt': 'u',
  'empty.txt': '',
};

async function check(
  tar: Buffer,
  index: Entry[],
  opts: { chunk?: number; tarSize?: number; checkDigests?: boolean; sink?: EntrySink } = {},
): Promise<TarChecker> {
  const checker = new TarChecker(index, opts.tarSize ?? tar.length, {
    checkDigests: opts.checkDigests ?? true,
    hashTar: true,
    sink: opts.sink,
  });
  const step = opts.chunk ?? tar.length;
  for (let off = 0; off < tar.length; off += step) await checker.push(tar.subarray(off, off + step));
  checker.finish();
  return checker;
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(TarFormatError);
    return (err as Error).message;
  }
  throw new Error('expected the checker to reject the stream');
}

/** Rewrites one ustar header block in place (recomputing its checksum). */
function patchHeader(
  tar: Buffer,
  at: number,
  change: Partial<ConstructorParameters<typeof Header>[0] & object>,
): void {
  const h = new Header(tar, at);
  const fields = {
    path: h.path,
    mode: h.mode,
    uid: 0,
    gid: 0,
    size: h.size,
    mtime: new Date(0),
    type: h.type,
    linkpath: h.linkpath ?? '',
    uname: '',
    gname: '',
    ...change,
  };
  const block = Buffer.alloc(BLOCK);
  new Header(fields).encode(block, 0);
  block.copy(tar, at);
}

describe('TarChecker accepts what we write', () => {
  it.each([1, 7, 511, 512, 513, 4096, 1 << 20])('in chunks of %i bytes', async (chunk) => {
    const { tar, index } = buildTar(TREE);
    const seen: string[] = [];
    const checker = await check(tar, index, {
      chunk,
      sink: {
        start: (e) => void seen.push(`${e.type}:${e.path}`),
        end: (e, digest) => {
          if (e.type === 'file') expect(digest).toBe(e.sha256);
        },
      },
    });
    expect(seen).toEqual(index.map((e) => `${e.type}:${e.path}`));
    expect(checker.digests.get('a.txt')).toBe(sha256('alpha\n'));
    expect(checker.position).toBe(tar.length);
  });

  it('returns the sha256 of the whole stream', async () => {
    const { tar, index } = buildTar(TREE);
    const checker = new TarChecker(index, tar.length, { checkDigests: true, hashTar: true });
    await checker.push(tar);
    expect(checker.finish()).toBe(sha256(tar));
  });
});

describe('TarChecker rejects streams that disagree with the index', () => {
  it('a renamed entry in the index', async () => {
    const { tar, index } = buildTar(TREE);
    const bad = index.map((e) => (e.path === 'a.txt' ? { ...e, path: 'b.txt' } : e));
    expect(await rejection(check(tar, bad))).toMatch(/does not match index entry "b.txt"/);
  });

  it('a wrong type, mode, size, symlink target or file digest in the index', async () => {
    const { tar, index } = buildTar(TREE);
    const mutate = (path: string, f: (e: Entry) => Entry): Entry[] =>
      index.map((e) => (e.path === path ? f(e) : e));
    expect(
      await rejection(
        check(
          tar,
          mutate('a.txt', (e) => ({ ...e, mode: '0755' })),
        ),
      ),
    ).toMatch(/mode/);
    expect(
      await rejection(
        check(
          tar,
          mutate('a.txt', (e) => ({ ...e, type: 'directory', header: e.header })),
        ),
      ),
    ).toMatch(/is a file, the index says directory/);
    expect(
      await rejection(
        check(
          tar,
          mutate('a.txt', (e) => (e.type === 'file' ? { ...e, size: e.size + 1 } : e)),
        ),
      ),
    ).toMatch(/has 6 bytes, the index says 7/);
    expect(
      await rejection(
        check(
          tar,
          mutate('models/latest', (e) => (e.type === 'symlink' ? { ...e, target: 'other.bin' } : e)),
        ),
      ),
    ).toMatch(/target does not match/);
    expect(
      await rejection(
        check(
          tar,
          mutate('a.txt', (e) => (e.type === 'file' ? { ...e, sha256: sha256('something else') } : e)),
        ),
      ),
    ).toMatch(/sha256/);
  });

  it('a header or data offset that is not where the index says', async () => {
    const { tar, index } = buildTar(TREE);
    const shifted = index.map((e, i) => (i === 2 ? { ...e, header: e.header + BLOCK } : e));
    expect(await rejection(check(tar, shifted))).toMatch(/should start at tar offset/);
    const dataMoved = index.map((e) =>
      e.type === 'file' && e.path === 'a.txt' ? { ...e, offset: e.offset + BLOCK } : e,
    );
    expect(await rejection(check(tar, dataMoved))).toMatch(/data of "a.txt" starts at/);
  });

  it('an extra entry in the tar that the index does not list', async () => {
    const full = buildTar({ 'a.txt': 'a', 'b.txt': 'b' });
    const short = buildTar({ 'a.txt': 'a' });
    expect(await rejection(check(full.tar, short.index))).toMatch(
      /unexpected data after the last indexed entry/,
    );
  });

  it('an entry missing from the tar', async () => {
    const short = buildTar({ 'a.txt': 'a' });
    const full = buildTar({ 'a.txt': 'a', 'b.txt': 'b' });
    const message = await rejection(check(short.tar, full.index, { tarSize: short.tar.length }));
    expect(message).toMatch(/missing entry|ends before entry "b.txt"/);
  });

  it('a duplicated entry in the tar', async () => {
    const { tar, index } = buildTar({ 'a.txt': 'a', 'b.txt': 'b' });
    // Entry a.txt (header + one data block) written twice, then the rest: the second copy sits where b.txt belongs.
    const a = tar.subarray(0, 2 * BLOCK);
    const dup = Buffer.concat([a, a, tar.subarray(2 * BLOCK)]);
    const idx = index.map((e) => (e.path === 'b.txt' && e.type === 'file' ? e : e));
    expect(await rejection(check(dup, idx, { tarSize: dup.length }))).toMatch(
      /tar entry "a.txt" does not match index entry "b.txt"/,
    );
  });

  it('a file listed once in the index but shorter in the tar (truncated stream)', async () => {
    const { tar, index } = buildTar(TREE);
    const checker = new TarChecker(index, tar.length, { checkDigests: true });
    await checker.push(tar.subarray(0, tar.length - 3 * BLOCK));
    expect(() => checker.finish()).toThrow(TarFormatError);
  });

  it('a stream longer than the declared tar size', async () => {
    const { tar, index } = buildTar(TREE);
    const longer = Buffer.concat([tar, Buffer.alloc(BLOCK)]);
    expect(await rejection(check(longer, index, { tarSize: tar.length }))).toMatch(
      /longer than the declared/,
    );
  });
});

describe('TarChecker rejects tricks that make full and partial readers disagree', () => {
  it('a PAX path override that renames an indexed entry', async () => {
    const { tar, index } = buildTar({ 'a.txt': 'a', 'b.txt': 'b' });
    const pax = new Pax({ path: 'evil.txt' }).encode();
    const forged = Buffer.concat([pax, tar]);
    const idx = index.map((e) => ({
      ...e,
      header: e.header + pax.length,
      ...(e.type === 'file' ? { offset: e.offset + pax.length } : {}),
    })) as Entry[];
    idx[0] = { ...idx[0]!, header: 0 };
    expect(await rejection(check(forged, idx))).toMatch(
      /tar entry "evil.txt" does not match index entry "a.txt"/,
    );
  });

  it('an unindexed PAX record (mtime, size, uid, ...)', async () => {
    const { tar, index } = buildTar({ 'a.txt': 'a' });
    for (const fields of [
      { path: 'a.txt', mtime: new Date(1e12) },
      { path: 'a.txt', size: 1 },
      { path: 'a.txt', uid: 5 },
    ]) {
      const pax = new Pax(fields).encode();
      const forged = Buffer.concat([pax, tar]);
      const idx = index.map((e) => (e.type === 'file' ? { ...e, offset: e.offset + pax.length } : e));
      expect(await rejection(check(forged, idx))).toMatch(/unexpected PAX record/);
    }
  });

  it('a global PAX header or a GNU long-name header', async () => {
    const { tar, index } = buildTar({ 'a.txt': 'a' });
    const global = new Pax({ path: 'x' }, true).encode();
    const idx = index.map((e) =>
      e.type === 'file' ? { ...e, header: 0, offset: e.offset + global.length } : e,
    );
    expect(await rejection(check(Buffer.concat([global, tar]), idx))).toMatch(
      /unsupported type|does not match/,
    );
    // GNU 'L' record: a header of type NextFileHasLongPath followed by the name.
    const name = Buffer.alloc(BLOCK);
    name.write('evil-long-name.txt');
    const l = Buffer.alloc(BLOCK);
    new Header({ path: '././@LongLink', type: 'NextFileHasLongPath', size: 19, mode: 0o644 } as never).encode(
      l,
      0,
    );
    const gnu = Buffer.concat([l, name, tar]);
    const idx2 = index.map((e) => (e.type === 'file' ? { ...e, offset: e.offset + 2 * BLOCK } : e));
    expect(await rejection(check(gnu, idx2))).toMatch(/unsupported type|does not match/);
  });

  it('hard links, devices and FIFOs', async () => {
    for (const type of ['Link', 'CharacterDevice', 'BlockDevice', 'FIFO']) {
      const { tar, index } = buildTar({ 'a.txt': 'a' });
      patchHeader(tar, 0, { type: type as never, size: 0 });
      expect(await rejection(check(tar, index))).toMatch(/unsupported type/);
    }
  });

  it('non-zero padding after file data', async () => {
    const { tar, index } = buildTar({ 'a.txt': 'abc', 'b.txt': 'b' });
    const a = index.find((e) => e.path === 'a.txt');
    if (a?.type !== 'file') throw new Error('fixture');
    tar[a.offset + a.size + 10] = 0x41;
    expect(await rejection(check(tar, index))).toMatch(/non-zero padding/);
  });

  it('trailing data after the last entry (inside the declared size)', async () => {
    const { tar, index } = buildTar({ 'a.txt': 'abc' });
    tar[tar.length - 5] = 1;
    expect(await rejection(check(tar, index))).toMatch(/unexpected data after the last indexed entry/);
  });

  it('a header with a bad checksum', async () => {
    const { tar, index } = buildTar({ 'a.txt': 'abc' });
    tar[10] = (tar[10] ?? 0) ^ 0xff;
    expect(await rejection(check(tar, index))).toMatch(/checksum|does not match/);
  });

  it('a folder or symlink that carries data', async () => {
    const { tar, index } = buildTar({ d: { dir: true }, 'z.txt': 'z' });
    patchHeader(tar, 0, { size: 1 });
    expect(await rejection(check(tar, index))).toMatch(/with data/);
  });

  it('an old-style folder (a file header whose name ends in a slash)', async () => {
    const { tar, index } = buildTar({ d: { dir: true }, 'z.txt': 'z' });
    patchHeader(tar, 0, { type: 'File', path: 'd/', size: 0 });
    expect(tar[156]).toBe('0'.charCodeAt(0));
    expect(await rejection(check(tar, index))).toMatch(/does not match index entry "d"|is a file/);
  });

  it('an entry encoded through the ustar prefix that differs from the index', async () => {
    const path = `${'p'.repeat(120)}/${'n'.repeat(90)}`;
    const { tar, index } = buildTar({ [path]: 'x' });
    // Same name field, different prefix: a reader that ignored the prefix would see another path.
    const header = encodeHeader({
      path: `${'q'.repeat(120)}/${'n'.repeat(90)}`,
      type: 'file',
      mode: 0o644,
      size: 1,
    });
    const fileEntry = index.find((e) => e.type === 'file')!;
    header.copy(tar, fileEntry.header);
    expect(await rejection(check(tar, index))).toMatch(/does not match index entry/);
  });
});
