/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- JSON documents from the CLI */
/**
 * Crafts component archives and manifests byte by byte, so that tests can publish hostile ones
 * (the packer would never write them). Each entry says what the manifest lists and, separately,
 * what the tar header really contains.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Header } from 'tar';
import { compressFrame } from '../../src/archive/codecs.js';

export interface CraftEntry {
  /** What the manifest lists (omit to leave it out of the manifest). */
  path?: string;
  type?: 'file' | 'directory' | 'symlink';
  mode?: string;
  target?: string;
  data?: Buffer | string;
  /** What the tar header says, when it differs from the manifest. */
  tarPath?: string;
  tarType?: string;
  tarMode?: number;
  tarLinkpath?: string;
  /** Extra data bytes in the tar beyond what the manifest declares. */
  tarData?: Buffer | string;
  /** Leave this entry out of the tar. */
  notInTar?: boolean;
}

export interface Crafted {
  manifest: Record<string, unknown>;
  manifestText: string;
  archive: Buffer;
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const pad = (n: number): number => Math.ceil(n / 512) * 512;

export async function craft(
  type: string,
  version: string,
  entries: CraftEntry[],
  opts: {
    gzip?: boolean;
    /** Zero bytes appended after the trailer (with declaredTarSize: more bytes than declared). */
    extraTrailer?: number;
    declaredTarSize?: (real: number) => number;
    tamper?: (m: any) => void;
  } = {},
): Promise<Crafted> {
  const blocks: Buffer[] = [];
  let pos = 0;
  const files: Record<string, unknown>[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const tarData = e.tarData === undefined ? data : Buffer.from(e.tarData);
    const type0 = e.type ?? 'file';
    const header = pos;
    if (!e.notInTar) {
      const tarType =
        e.tarType ?? (type0 === 'file' ? 'File' : type0 === 'directory' ? 'Directory' : 'SymbolicLink');
      const h = new Header({
        path: e.tarPath ?? (type0 === 'directory' ? `${e.path}/` : e.path),
        mode: e.tarMode ?? parseInt(e.mode ?? (type0 === 'directory' ? '0755' : '0644'), 8),
        uid: 0,
        gid: 0,
        size: tarType === 'File' ? tarData.length : 0,
        mtime: new Date(0),
        type: tarType as 'File',
        linkpath: e.tarLinkpath ?? e.target ?? '',
        uname: '',
        gname: '',
      });
      h.encode();
      blocks.push(Buffer.from(h.block!));
      pos += 512;
      if (tarType === 'File' && tarData.length) {
        const p = Buffer.alloc(pad(tarData.length));
        tarData.copy(p);
        blocks.push(p);
        pos += p.length;
      }
    }
    if (e.path !== undefined) {
      const base = { path: e.path, mode: e.mode ?? (type0 === 'directory' ? '0755' : '0644'), header };
      if (type0 === 'file')
        files.push({ ...base, type: 'file', size: data.length, sha256: sha(data), offset: header + 512 });
      else if (type0 === 'directory') files.push({ ...base, type: 'directory' });
      else files.push({ ...base, type: 'symlink', target: e.target });
    }
  }
  blocks.push(Buffer.alloc(1024 + (opts.extraTrailer ?? 0)));
  const tar = Buffer.concat(blocks);
  const archive = opts.gzip ? await compressFrame('gzip', 6, tar) : tar;
  const tarSize = opts.declaredTarSize ? opts.declaredTarSize(tar.length) : tar.length;
  const manifest: any = {
    schemaVersion: 1,
    kind: 'deploy-tool/component',
    type,
    version,
    createdAt: new Date().toISOString(),
    tool: 'hostile-test',
    source: { path: 'hostile', git: null },
    archive: {
      name: `${type}-${version}.tar${opts.gzip ? '.gz' : ''}`,
      format: 'deploy-tool-framed-tar/1',
      compression: opts.gzip ? 'gzip' : 'none',
      level: opts.gzip ? 6 : 0,
      size: archive.length,
      sha256: sha(archive),
      tarSize,
      tarSha256: sha(tar),
    },
    frames: [{ offset: 0, size: archive.length, tarOffset: 0, tarSize, sha256: sha(archive) }],
    files,
    summary: {
      files: files.filter((f) => f.type === 'file').length,
      directories: files.filter((f) => f.type === 'directory').length,
      symlinks: files.filter((f) => f.type === 'symlink').length,
      totalSize: files.reduce((s: number, f: any) => s + (f.type === 'file' ? f.size : 0), 0),
    },
  };
  opts.tamper?.(manifest);
  return { manifest, manifestText: `${JSON.stringify(manifest, null, 2)}\n`, archive };
}

/** Writes a release folder RELEASES/R/ holding crafted components, as publish would. */
export async function writeRelease(releasesDir: string, release: string, comps: Crafted[]): Promise<void> {
  const components = [];
  for (const c of comps) {
    const m = c.manifest as any;
    const dir = `${m.type}/${m.version}`;
    await mkdir(join(releasesDir, release, dir), { recursive: true });
    const manifestRel = `${dir}/${m.type}-${m.version}.manifest.json`;
    const archiveRel = `${dir}/${m.archive.name}`;
    await writeFile(join(releasesDir, release, manifestRel), c.manifestText);
    await writeFile(join(releasesDir, release, archiveRel), c.archive);
    components.push({
      type: m.type,
      version: m.version,
      manifest: manifestRel,
      manifestSha256: sha(c.manifestText),
      archive: archiveRel,
      archiveSha256: m.archive.sha256,
      archiveSize: m.archive.size,
      compression: m.archive.compression,
    });
  }
  const rel = {
    schemaVersion: 1,
    kind: 'deploy-tool/release',
    release,
    createdAt: new Date().toISOString(),
    tool: 'hostile-test',
    notes: null,
    project: null,
    git: null,
    components,
  };
  await writeFile(join(releasesDir, release, 'release.json'), `${JSON.stringify(rel, null, 2)}\n`);
}
