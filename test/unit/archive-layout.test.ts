import { Header, Parser } from 'tar';
import { describe, expect, it } from 'vitest';
import type { ScannedEntry } from '../../src/archive/scan.js';
import { BLOCK, encodeHeader } from '../../src/archive/tar.js';
import { FRAME_SIZE, LARGE_FILE, planLayout, type Layout } from '../../src/archive/writer.js';
import { buildTar } from './fixtures.js';

const MiB = 1024 * 1024;
const KiB = 1024;
const SMALL_GROUP_MIN = 256 * KiB;

/** Synthetic entries (planLayout never reads data, so sizes can be large without any disk). */
function files(spec: [string, number][]): ScannedEntry[] {
  return spec.map(([path, size]) => ({ path, type: 'file', mode: 0o644, size, abs: `/nonexistent/${path}` }));
}

/** Checks the framing rules of deploy-tool-framed-tar/1 on a layout; returns a description of any violation. */
function checkFrameRules(layout: Layout): string[] {
  const problems: string[] = [];
  const frames = layout.frames;
  let at = 0;
  for (const [s, e] of frames) {
    if (s !== at) problems.push(`frame [${s},${e}) does not start where the previous ended (${at})`);
    if (e <= s) problems.push(`empty frame at ${s}`);
    at = e;
  }
  if (at !== layout.tarSize) problems.push(`frames end at ${at}, tar is ${layout.tarSize}`);
  const starts = new Set(frames.map(([s]) => s));
  const ends = new Set(frames.map(([, e]) => e));
  const largeRanges: [number, number][] = [];
  for (const f of layout.entries) {
    if (f.type !== 'file' || f.size < LARGE_FILE) continue;
    largeRanges.push([f.offset, f.offset + f.size]);
    if (!starts.has(f.offset)) problems.push(`no frame starts at the data of large file ${f.path}`);
    if (!ends.has(f.offset + f.size)) problems.push(`no frame ends at the end of large file ${f.path}`);
  }
  frames.forEach(([s, e], i) => {
    const within = largeRanges.find(([ls, le]) => s >= ls && e <= le);
    if (within) {
      const [ls, le] = within;
      if (e - s > FRAME_SIZE) problems.push(`frame ${i} inside a large file has ${e - s} bytes`);
      // Frames of 4-8 MiB inside large files: only a file under 4 MiB has a smaller (single) frame.
      if (le - ls >= 4 * MiB && e - s < 4 * MiB)
        problems.push(`frame ${i} inside a large file of ${le - ls} bytes has only ${e - s} bytes`);
      if ((s - ls) % BLOCK !== 0) problems.push(`frame ${i} starts inside a tar block of its file`);
      return;
    }
    const overlapsLarge = largeRanges.some(([ls, le]) => s < le && e > ls);
    if (overlapsLarge) problems.push(`frame ${i} mixes large-file data with other bytes`);
    const last = i === frames.length - 1;
    const endsAtLargeData = largeRanges.some(([ls]) => ls === e);
    if (!last && !endsAtLargeData && e - s < SMALL_GROUP_MIN)
      problems.push(`small-file frame ${i} has only ${e - s} bytes`);
  });
  return problems;
}

describe('planLayout: tar layout', () => {
  it('puts headers and data on 512-byte blocks and ends with two zero blocks', () => {
    const { layout, tar } = buildTar({ 'a.txt': 'hello\n', 'b/c.bin': Buffer.alloc(513, 7), 'b/d': '' });
    expect(layout.tarSize % BLOCK).toBe(0);
    expect(tar.length).toBe(layout.tarSize);
    expect(tar.subarray(tar.length - 2 * BLOCK).every((b) => b === 0)).toBe(true);
    for (const e of layout.entries) {
      expect(e.header % BLOCK).toBe(0);
      if (e.type === 'file') {
        expect(e.offset % BLOCK).toBe(0);
        expect(tar.subarray(e.offset, e.offset + e.size).length).toBe(e.size);
      }
    }
    const c = layout.entries.find((e) => e.path === 'b/c.bin');
    expect(c?.type === 'file' && tar.subarray(c.offset, c.offset + c.size).equals(Buffer.alloc(513, 7))).toBe(
      true,
    );
  });

  it('lists folders before their contents in byte order of names', () => {
    const { layout } = buildTar({ 'z.txt': 'z', 'a/b.txt': 'b', 'a.txt': 'a', 'B.txt': 'B' });
    expect(layout.entries.map((e) => e.path)).toEqual(['B.txt', 'a', 'a/b.txt', 'a.txt', 'z.txt']);
  });

  it('is a valid tar stream for node-tar with the same entries', async () => {
    const long = `${'d'.repeat(150)}/${'f'.repeat(120)}.txt`;
    const { tar } = buildTar({ 'x.txt': 'x', [long]: 'long', l: { symlink: 'x.txt' } });
    const seen: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const p = new Parser({ onReadEntry: (e) => (seen.push(`${e.type}:${e.path}`), e.resume()) });
      p.on('end', resolve);
      p.on('error', reject);
      p.end(tar);
    });
    expect(seen).toEqual([`Directory:${'d'.repeat(150)}/`, `File:${long}`, 'SymbolicLink:l', 'File:x.txt']);
  });
});

describe('planLayout: framing rules', () => {
  it('starts a new frame where each large file data starts and ends one where it ends', () => {
    const layout = planLayout(
      files([
        ['a.small', 10 * KiB],
        ['b.large', 3 * MiB + 5],
        ['c.small', 100],
        ['d.large', LARGE_FILE],
      ]),
    );
    expect(checkFrameRules(layout)).toEqual([]);
    const b = layout.entries.find((e) => e.path === 'b.large');
    expect(b?.type).toBe('file');
    if (b?.type === 'file')
      expect(layout.frames.some(([s, e]) => s === b.offset && e === b.offset + b.size)).toBe(true);
  });

  const framesInside = (size: number): number[] => {
    const layout = planLayout(files([['weights.bin', size]]));
    expect(checkFrameRules(layout), `size ${size}`).toEqual([]);
    const w = layout.entries[0];
    if (w?.type !== 'file') throw new Error('expected a file');
    return layout.frames.filter(([s, e]) => s >= w.offset && e <= w.offset + size).map(([s, e]) => e - s);
  };

  it('cuts large files into even frames of 4-8 MiB (no tiny last frame)', () => {
    expect(FRAME_SIZE).toBe(8 * MiB);
    // 8 MiB + 1 byte: two frames of about 4 MiB (fixed 8 MiB cuts would leave a 1-byte frame).
    expect(framesInside(8 * MiB + 1)).toEqual([4 * MiB, 4 * MiB + 1]);
    expect(framesInside(8 * MiB)).toEqual([8 * MiB]);
    expect(framesInside(5 * MiB + 3)).toEqual([5 * MiB + 3]);
    const sizes = framesInside(2 * FRAME_SIZE + 3 * MiB + 1);
    expect(sizes).toHaveLength(3);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(BLOCK);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2 * FRAME_SIZE + 3 * MiB + 1);
  });

  it('keeps every frame inside a large file within 4-8 MiB, cut on tar blocks, for any size', () => {
    const sizes: number[] = [4 * MiB, 4 * MiB + 1, 10 * 1024 * MiB + 777]; // 10 GiB: 1280 frames
    for (let k = 1; k <= 12; k++)
      for (const d of [-BLOCK - 1, -BLOCK, -1, 0, 1, BLOCK - 1, BLOCK, BLOCK + 1])
        sizes.push(k * FRAME_SIZE + d);
    let seed = 99;
    for (let i = 0; i < 200; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      sizes.push(4 * MiB + (seed % (120 * MiB)));
    }
    for (const size of sizes) {
      const inside = framesInside(size); // checkFrameRules asserts the 4-8 MiB bound and the alignment
      expect(
        inside.reduce((a, b) => a + b, 0),
        `size ${size}`,
      ).toBe(size);
      expect(inside.length, `size ${size}`).toBe(Math.ceil(size / FRAME_SIZE));
      for (const n of inside) {
        expect(n, `size ${size}`).toBeLessThanOrEqual(8 * MiB);
        expect(n, `size ${size}`).toBeGreaterThanOrEqual(4 * MiB);
      }
    }
  });

  it('groups small files into frames of at least 256 KiB, except the last', () => {
    const spec: [string, number][] = [];
    for (let i = 0; i < 200; i++) spec.push([`f${String(i).padStart(3, '0')}`, 37 * KiB + i]);
    const layout = planLayout(files(spec));
    expect(checkFrameRules(layout)).toEqual([]);
    expect(layout.frames.length).toBeGreaterThan(3);
    expect(layout.frames.length).toBeLessThan(spec.length / 4);
    for (const [s, e] of layout.frames.slice(0, -1)) expect(e - s).toBeGreaterThanOrEqual(SMALL_GROUP_MIN);
  });

  it('keeps small-file frames bounded (a group never grows past a few MiB)', () => {
    const spec: [string, number][] = [];
    for (let i = 0; i < 100; i++) spec.push([`g${String(i).padStart(3, '0')}`, LARGE_FILE - 1]);
    const layout = planLayout(files(spec));
    expect(checkFrameRules(layout)).toEqual([]);
    for (const [s, e] of layout.frames) expect(e - s).toBeLessThanOrEqual(FRAME_SIZE);
  });

  it('holds the rules on random trees', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 50; round++) {
      const spec: [string, number][] = [];
      const count = 1 + rand(40);
      for (let i = 0; i < count; i++) {
        const kind = rand(10);
        const size = kind < 6 ? rand(200 * KiB) : kind < 9 ? LARGE_FILE + rand(3 * MiB) : rand(20 * MiB);
        spec.push([`f${String(i).padStart(3, '0')}`, size]);
      }
      const layout = planLayout(files(spec));
      expect(checkFrameRules(layout), `round ${round}`).toEqual([]);
    }
  });

  it('is deterministic', () => {
    const spec = files([
      ['a', 5],
      ['b', 2 * MiB],
    ]);
    const a = planLayout(spec);
    const b = planLayout(spec);
    expect(a.frames).toEqual(b.frames);
    expect(a.entries).toEqual(b.entries);
    const bytes = (l: Layout): Buffer =>
      Buffer.concat(l.pieces.flatMap((p) => (p.kind === 'bytes' ? [p.buf] : [])));
    expect(bytes(a).equals(bytes(b))).toBe(true);
  });
});

describe('encodeHeader', () => {
  it('clears owner, group and times, and normalises the type fields', () => {
    const buf = encodeHeader({ path: 'dir/file.bin', type: 'file', mode: 0o755, size: 1234 });
    expect(buf.length).toBe(BLOCK);
    const h = new Header(buf, 0);
    expect(h.cksumValid).toBe(true);
    expect(h.path).toBe('dir/file.bin');
    expect(h.type).toBe('File');
    expect(h.mode).toBe(0o755);
    expect(h.size).toBe(1234);
    expect(h.uid).toBe(0);
    expect(h.gid).toBe(0);
    expect(h.uname ?? '').toBe('');
    expect(h.gname ?? '').toBe('');
    expect(h.mtime?.getTime()).toBe(0);
  });

  it('writes folders with a trailing slash and symlinks with their target', () => {
    const d = new Header(encodeHeader({ path: 'models', type: 'directory', mode: 0o755, size: 0 }), 0);
    expect(d.path).toBe('models/');
    expect(d.type).toBe('Directory');
    const l = new Header(
      encodeHeader({ path: 'latest', type: 'symlink', mode: 0o777, size: 0, target: 'v1/model.bin' }),
      0,
    );
    expect(l.type).toBe('SymbolicLink');
    expect(l.linkpath).toBe('v1/model.bin');
    expect(l.size).toBe(0);
  });

  it('uses the ustar prefix for paths up to 255 bytes that split on a slash', () => {
    const path = `${'p'.repeat(120)}/${'n'.repeat(90)}`;
    const buf = encodeHeader({ path, type: 'file', mode: 0o644, size: 1 });
    expect(buf.length).toBe(BLOCK);
    expect(new Header(buf, 0).path).toBe(path);
  });

  it('adds a PAX header (path only) for long, unsplittable and non-ASCII paths and long link targets', () => {
    const cases = [
      { path: 'x'.repeat(300), type: 'file' as const, mode: 0o644, size: 3 },
      { path: `${'a'.repeat(160)}/b`, type: 'file' as const, mode: 0o644, size: 3 },
      { path: 'Ünïcödé 文件.txt', type: 'file' as const, mode: 0o644, size: 3 },
      { path: 'link', type: 'symlink' as const, mode: 0o777, size: 0, target: `${'t'.repeat(120)}/x` },
    ];
    for (const c of cases) {
      const buf = encodeHeader(c);
      expect(buf.length, c.path).toBeGreaterThan(BLOCK);
      const pax = new Header(buf, 0);
      expect(pax.type).toBe('ExtendedHeader');
      const body = buf.subarray(BLOCK, BLOCK + (pax.size ?? 0)).toString('utf8');
      const keys = body
        .split('\n')
        .filter(Boolean)
        .map((r) => r.slice(r.indexOf(' ') + 1, r.indexOf('=')));
      expect(keys.every((k) => k === 'path' || k === 'linkpath')).toBe(true);
      expect(body).toContain(`path=${c.path}\n`);
      if (c.target) expect(body).toContain(`linkpath=${c.target}\n`);
      const main = new Header(buf, buf.length - BLOCK);
      expect(main.cksumValid).toBe(true);
      expect(main.type).toBe(c.type === 'file' ? 'File' : 'SymbolicLink');
    }
  });

  it('encodes sizes past 8 GiB (base-256) and reads them back', () => {
    const size = 9 * 1024 * 1024 * 1024 + 17;
    const buf = encodeHeader({ path: 'huge.safetensors', type: 'file', mode: 0o644, size });
    const h = new Header(buf, buf.length - BLOCK);
    expect(h.size).toBe(size);
  });
});
