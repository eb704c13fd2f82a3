/**
 * writeArchive -> manifest -> readArchive, the way pack and deploy use them, plus the documented way
 * of fetching one file by range with the index (docs/formats.md).
 */
import { mkdtemp, mkdir, readFile, rm, writeFile, symlink, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExtractSink } from '../../src/archive/extract.js';
import { createCodecPool, type CodecPool } from '../../src/archive/pool.js';
import { openLocalArchive, readArchive, verifyArchiveDigest } from '../../src/archive/reader.js';
import { scanSource } from '../../src/archive/scan.js';
import { decompressFrame } from '../../src/archive/codecs.js';
import { writeArchive } from '../../src/archive/writer.js';
import { COMPRESSIONS, type Compression } from '../../src/core/config.js';
import { DeployToolError } from '../../src/core/errors.js';
import {
  ARCHIVE_FORMAT,
  COMPONENT_SCHEMA_VERSION,
  archiveExtension,
  parseComponentManifest,
  type ComponentManifest,
} from '../../src/manifest/component.js';
import { DEFAULT_LEVELS } from '../../src/archive/codecs.js';
import { sha256 } from './fixtures.js';

let root: string;
let src: string;
let pool: CodecPool;
const big = Buffer.alloc(1536 * 1024);
for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dt-unit-'));
  src = join(root, 'src');
  await mkdir(join(src, 'weights'), { recursive: true });
  await writeFile(join(src, 'weights', 'big.bin'), big);
  await writeFile(join(src, 'config.json'), '{"layers": 12}\n');
  await writeFile(join(src, 'weights', 'small.txt'), 'small\n');
  await writeFile(join(src, 'empty'), '');
  await symlink('weights/big.bin', join(src, 'current'));
  pool = createCodecPool(2);
});

afterAll(async () => {
  await pool.close();
  await rm(root, { recursive: true, force: true });
});

async function packTo(
  compression: Compression,
  name: string,
): Promise<{ manifest: ComponentManifest; path: string }> {
  const scan = await scanSource(src);
  const path = join(root, `${name}.${archiveExtension(compression)}`);
  const level = DEFAULT_LEVELS[compression];
  const w = await writeArchive({ entries: scan.entries, outPath: path, compression, level, pool });
  const files = w.entries.filter((e) => e.type === 'file');
  const manifest = parseComponentManifest(
    {
      schemaVersion: COMPONENT_SCHEMA_VERSION,
      kind: 'deploy-tool/component',
      type: 'model',
      version: '1.0.0',
      createdAt: new Date(0).toISOString(),
      tool: 'test',
      source: { path: 'src', git: null },
      archive: {
        name: `${name}.${archiveExtension(compression)}`,
        format: ARCHIVE_FORMAT,
        compression,
        level,
        size: w.size,
        sha256: w.sha256,
        tarSize: w.tarSize,
        tarSha256: w.tarSha256,
      },
      frames: w.frames,
      files: w.entries,
      summary: {
        files: files.length,
        directories: w.entries.filter((e) => e.type === 'directory').length,
        symlinks: w.entries.filter((e) => e.type === 'symlink').length,
        totalSize: files.reduce((s, e) => s + (e.type === 'file' ? e.size : 0), 0),
      },
    },
    'test manifest',
  );
  return { manifest, path };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DeployToolError);
    expect((err as DeployToolError).code).toBe(code);
    expect((err as DeployToolError).hint).toBeTruthy();
    return (err as Error).message;
  }
  throw new Error(`expected ${code}`);
}

describe('writeArchive and readArchive', () => {
  it.each([...COMPRESSIONS])('%s: extracts exactly the source tree', async (compression) => {
    const { manifest, path } = await packTo(compression, `rt-${compression}`);
    expect(manifest.frames.length).toBeGreaterThanOrEqual(3);
    expect(manifest.files.find((f) => f.path === 'weights/big.bin')).toMatchObject({ sha256: sha256(big) });
    const out = join(root, `out-${compression}`);
    await mkdir(out);
    const source = await openLocalArchive(path);
    const sink = createExtractSink(out, { durable: false });
    try {
      await readArchive({ manifest, source, pool, sink });
    } finally {
      await source.close();
    }
    expect((await readFile(join(out, 'weights', 'big.bin'))).equals(big)).toBe(true);
    expect(await readFile(join(out, 'config.json'), 'utf8')).toBe('{"layers": 12}\n');
    expect(await readFile(join(out, 'empty'), 'utf8')).toBe('');
    expect(await readlink(join(out, 'current'))).toBe('weights/big.bin');
    // The recorded tar digest is the digest of the concatenated decompressed frames.
    const archive = await readFile(path);
    const frames = await Promise.all(
      manifest.frames.map((f) =>
        decompressFrame(compression, archive.subarray(f.offset, f.offset + f.size), f.tarSize),
      ),
    );
    expect(sha256(Buffer.concat(frames))).toBe(manifest.archive.tarSha256);
    expect(sha256(archive)).toBe(manifest.archive.sha256);
  });

  it('writes the same bytes for the same tree', async () => {
    const a = await packTo('zstd', 'det-a');
    const b = await packTo('zstd', 'det-b');
    expect((await readFile(a.path)).equals(await readFile(b.path))).toBe(true);
    expect(a.manifest.frames).toEqual(b.manifest.frames);
  });

  it('fetches one file by range using only the index', async () => {
    const { manifest, path } = await packTo('gzip', 'range');
    const file = manifest.files.find((f) => f.path === 'weights/big.bin');
    if (file?.type !== 'file') throw new Error('fixture');
    // 1. frames that overlap [offset, offset + size) of the uncompressed tar stream
    const needed = manifest.frames.filter(
      (f) => f.tarOffset < file.offset + file.size && f.tarOffset + f.tarSize > file.offset,
    );
    expect(needed.length).toBeLessThan(manifest.frames.length);
    // 2. one byte range of the archive covers them (frames are contiguous)
    const first = needed[0]!;
    const last = needed[needed.length - 1]!;
    const fh = await openLocalArchive(path);
    const bytes = await fh.read(first.offset, last.offset + last.size - first.offset);
    await fh.close();
    // 3. check each frame's sha256, decompress it to exactly tarSize, and cut the file out
    const parts: Buffer[] = [];
    for (const f of needed) {
      const comp = bytes.subarray(f.offset - first.offset, f.offset - first.offset + f.size);
      expect(sha256(comp)).toBe(f.sha256);
      parts.push(await decompressFrame('gzip', comp, f.tarSize));
    }
    const plain = Buffer.concat(parts);
    const data = plain.subarray(file.offset - first.tarOffset, file.offset - first.tarOffset + file.size);
    expect(sha256(data)).toBe(file.sha256);
    expect(data.equals(big)).toBe(true);
  });

  it('refuses an archive whose size (before reading) or bytes (by the frames that tile it) differ from the manifest', async () => {
    const { manifest, path } = await packTo('zstd', 'whole');
    const source = await openLocalArchive(path);
    try {
      // The whole-archive digest is checked where the archive is taken whole (publish, sign).
      await expectCode(
        verifyArchiveDigest(source, { ...manifest, archive: { ...manifest.archive, sha256: sha256('x') } }),
        'ERR_ARCHIVE_CORRUPT',
      );
      // readArchive checks every byte through the frames' digests: one flipped byte in any frame,
      // the last one (the skippable index) included, is refused as a damaged archive.
      const original = await readFile(path);
      for (const i of [0, manifest.frames.length - 1]) {
        const f = manifest.frames[i]!;
        const damaged = Buffer.from(original);
        const at = f.offset + Math.floor(f.size / 2);
        damaged[at] = (damaged[at] ?? 0) ^ 0x01;
        const copy = join(dirname(path), `damaged-${i}.tar.zst`);
        await writeFile(copy, damaged);
        const src = await openLocalArchive(copy);
        try {
          const message = await expectCode(
            readArchive({ manifest, source: src, pool }),
            'ERR_ARCHIVE_CORRUPT',
          );
          expect(message).toMatch(/archive sha256 is [0-9a-f]{64}, the manifest says/);
        } finally {
          await src.close();
        }
      }
      await expectCode(
        readArchive({
          manifest: { ...manifest, archive: { ...manifest.archive, size: manifest.archive.size + 1 } },
          source,
          pool,
        }),
        'ERR_ARCHIVE_CORRUPT',
      );
    } finally {
      await source.close();
    }
  });

  it('checks each frame sha256 before decompressing it', async () => {
    const { manifest, path } = await packTo('zstd', 'frame-sha');
    const data = await readFile(path);
    const f = manifest.frames[1]!;
    const at = f.offset + Math.floor(f.size / 2);
    data[at] = (data[at] ?? 0) ^ 0xff;
    await writeFile(path, data);
    const source = await openLocalArchive(path);
    try {
      const message = await expectCode(
        readArchive({ manifest, source, pool, verifyDigest: false }),
        'ERR_ARCHIVE_CORRUPT',
      );
      expect(message).toMatch(/frame 1: frame sha256 is/);
    } finally {
      await source.close();
    }
  });

  it.each(['zstd', 'gzip', 'xz', 'lz4', 'bzip2'] as const)(
    '%s: stops decompressing at the declared frame size (decompression bomb)',
    async (compression) => {
      const { manifest, path } = await packTo(compression, `bomb-${compression}`);
      // Declare the big frame smaller than it is: the reader must refuse, not inflate it.
      const i = manifest.frames.findIndex((f) => f.tarSize > 1024 * 1024);
      const frames = manifest.frames.map((f, j) => (j === i ? { ...f, tarSize: 4096 } : f));
      const source = await openLocalArchive(path);
      try {
        await expectCode(
          readArchive({ manifest: { ...manifest, frames }, source, pool, verifyDigest: false }),
          'ERR_ARCHIVE_UNSAFE',
        );
      } finally {
        await source.close();
      }
    },
  );

  it('refuses an index that does not describe the tar', async () => {
    const { manifest, path } = await packTo('lz4', 'index');
    const files = manifest.files.map((e) =>
      e.type === 'file' && e.path === 'config.json' ? { ...e, sha256: sha256('other') } : e,
    );
    const source = await openLocalArchive(path);
    try {
      const message = await expectCode(
        readArchive({ manifest: { ...manifest, files }, source, pool }),
        'ERR_INDEX_MISMATCH',
      );
      expect(message).toContain('config.json');
    } finally {
      await source.close();
    }
  });
});
