/**
 * Builders for unit tests of the archive format: tar streams laid out by planLayout from in-memory
 * files (no disk), and a manifest that describes them.
 */
import { createHash } from 'node:crypto';
import type { ScannedEntry } from '../../src/archive/scan.js';
import { planLayout, type Layout } from '../../src/archive/writer.js';
import type { Entry } from '../../src/manifest/component.js';

export type MemFile = string | Buffer | { symlink: string } | { dir: true };

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Entries in the order pack produces them (depth first, byte-sorted names), folders implied by paths. */
export function memEntries(files: Record<string, MemFile>): {
  entries: ScannedEntry[];
  data: Map<string, Buffer>;
} {
  const data = new Map<string, Buffer>();
  const all = new Map<string, MemFile>();
  for (const [path, content] of Object.entries(files)) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) all.set(parts.slice(0, i).join('/'), { dir: true });
    all.set(path, content);
  }
  // Depth-first order with byte-sorted siblings equals sorting by path segments.
  const key = (p: string): Buffer[] => p.split('/').map((s) => Buffer.from(s));
  const paths = [...all.keys()].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
      const c = Buffer.compare(ka[i]!, kb[i]!);
      if (c) return c;
    }
    return ka.length - kb.length;
  });
  const entries: ScannedEntry[] = paths.map((path) => {
    const c = all.get(path)!;
    if (typeof c === 'string' || Buffer.isBuffer(c)) {
      const buf = Buffer.from(c);
      data.set(path, buf);
      return { path, type: 'file', mode: 0o644, size: buf.length, abs: path };
    }
    if ('symlink' in c) return { path, type: 'symlink', mode: 0o777, size: 0, abs: path, target: c.symlink };
    return { path, type: 'directory', mode: 0o755, size: 0, abs: path };
  });
  return { entries, data };
}

/** The uncompressed tar stream of a layout, with file data taken from `data` (keyed by path). */
export function renderTar(layout: Layout, data: Map<string, Buffer>): Buffer {
  const out = Buffer.alloc(layout.tarSize);
  for (const p of layout.pieces) {
    if (p.kind === 'bytes') p.buf.copy(out, p.start);
    else if (p.kind === 'file') {
      const src = data.get(p.entry.path);
      if (!src) throw new Error(`no data for ${p.entry.path}`);
      src.copy(out, p.start, p.fileOffset, p.fileOffset + p.length);
    }
  }
  return out;
}

/** Layout, tar bytes and index (with file digests) of in-memory files. */
export function buildTar(files: Record<string, MemFile>): { layout: Layout; tar: Buffer; index: Entry[] } {
  const { entries, data } = memEntries(files);
  const layout = planLayout(entries);
  const tar = renderTar(layout, data);
  const index = layout.entries.map((e) =>
    e.type === 'file' ? { ...e, sha256: sha256(data.get(e.path) ?? Buffer.alloc(0)) } : e,
  );
  return { layout, tar, index };
}
