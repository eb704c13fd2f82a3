/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- hostile, deliberately untyped JSON */
/**
 * Helpers of the hostile-input corpus: craft component archives byte by byte (what the manifest
 * lists and what the tar really holds are set separately), publish them as release folders, and
 * check after each refused deploy that nothing was written outside the target's staging area, the
 * current release is still current, and it still verifies.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Header, Pax } from 'tar';
import { expect } from 'vitest';
import { compressFrame } from '../../src/archive/codecs.js';
import { isDeployToolError } from '../../src/core/errors.js';
import { deploy, type DeployOptions } from '../../src/ops/deploy.js';
import { verify } from '../../src/ops/verify.js';

export const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const pad512 = (n: number): number => Math.ceil(n / 512) * 512;

export interface Ent {
  /** Path in the manifest (undefined: not listed). */
  path?: string;
  type?: 'file' | 'directory' | 'symlink';
  mode?: string;
  target?: string;
  data?: Buffer | string;
  /** What the tar header says instead. */
  tarPath?: string;
  tarType?: string;
  tarMode?: number;
  tarLinkpath?: string;
  tarData?: Buffer | string;
  /** Raw 512-byte header instead of an encoded one. */
  rawHeader?: (h: Buffer) => Buffer;
  /** Encode the tar path with a PAX record (long or non-ASCII names). */
  pax?: boolean;
  notInTar?: boolean;
}

export interface Crafted {
  manifest: any;
  manifestText: string;
  archive: Buffer;
  tar: Buffer;
}

export interface CraftOptions {
  compression?: 'none' | 'gzip';
  /** Bytes appended to the tar after the trailer. */
  tarTrailer?: Buffer;
  /** Bytes appended to the archive file itself (after the last frame). */
  archiveTrailer?: Buffer;
  /** Declared tar size (default: the real one). */
  declaredTarSize?: (real: number) => number;
  /** Change the manifest before it is serialized. */
  tamper?: (m: any) => void;
  /** Change the archive bytes after the manifest was computed. */
  mutateArchive?: (a: Buffer) => Buffer;
}

/** A component whose manifest and archive are computed from `entries` (then optionally tampered with). */
export async function craft(
  type: string,
  version: string,
  entries: Ent[],
  o: CraftOptions = {},
): Promise<Crafted> {
  const blocks: Buffer[] = [];
  let pos = 0;
  const files: any[] = [];
  for (const e of entries) {
    const t = e.type ?? 'file';
    const data = Buffer.from(e.data ?? '');
    const tarData = e.tarData === undefined ? data : Buffer.from(e.tarData);
    const header = pos;
    let dataAt = header + 512;
    if (!e.notInTar) {
      const tarType = e.tarType ?? (t === 'file' ? 'File' : t === 'directory' ? 'Directory' : 'SymbolicLink');
      const tarPath = e.tarPath ?? (t === 'directory' ? `${e.path}/` : (e.path ?? 'x'));
      if (e.pax) {
        const p = new Pax({ path: tarPath }).encode();
        blocks.push(p);
        pos += p.length;
      }
      const h = new Header({
        path: e.pax ? 'paxname' : tarPath,
        mode: e.tarMode ?? parseInt(e.mode ?? (t === 'directory' ? '0755' : '0644'), 8),
        uid: 0,
        gid: 0,
        size:
          tarType === 'File' || tarType === 'OldFile' || tarType === 'ContiguousFile' ? tarData.length : 0,
        mtime: new Date(0),
        type: tarType as 'File',
        linkpath: e.tarLinkpath ?? e.target ?? '',
        uname: '',
        gname: '',
      });
      h.encode();
      let block: Buffer = Buffer.from(h.block!);
      if (e.rawHeader) block = e.rawHeader(block);
      blocks.push(block);
      pos += 512;
      dataAt = pos;
      if ((tarType === 'File' || tarType === 'ContiguousFile') && tarData.length) {
        const p = Buffer.alloc(pad512(tarData.length));
        tarData.copy(p);
        blocks.push(p);
        pos += p.length;
      }
    }
    if (e.path !== undefined) {
      const base = { path: e.path, mode: e.mode ?? (t === 'directory' ? '0755' : '0644'), header };
      if (t === 'file')
        files.push({ ...base, type: 'file', size: data.length, sha256: sha(data), offset: dataAt });
      else if (t === 'directory') files.push({ ...base, type: 'directory' });
      else files.push({ ...base, type: 'symlink', target: e.target });
    }
  }
  blocks.push(Buffer.alloc(1024));
  if (o.tarTrailer) blocks.push(o.tarTrailer);
  const tar = Buffer.concat(blocks);
  const compression = o.compression ?? 'none';
  let archive = compression === 'gzip' ? await compressFrame('gzip', 6, tar) : tar;
  if (o.archiveTrailer) archive = Buffer.concat([archive, o.archiveTrailer]);
  const frameSize = archive.length - (o.archiveTrailer?.length ?? 0);
  const tarSize = o.declaredTarSize ? o.declaredTarSize(tar.length) : tar.length;
  const manifest: any = {
    schemaVersion: 1,
    kind: 'deploy-tool/component',
    type,
    version,
    createdAt: '2024-01-01T00:00:00.000Z',
    tool: 'hostile-corpus',
    source: { path: 'hostile', git: null },
    archive: {
      name: `${type}-${version}.tar${compression === 'gzip' ? '.gz' : ''}`,
      format: 'deploy-tool-framed-tar/1',
      compression,
      level: compression === 'gzip' ? 6 : 0,
      size: o.archiveTrailer ? frameSize : archive.length,
      sha256: sha(o.archiveTrailer ? archive.subarray(0, frameSize) : archive),
      tarSize,
      tarSha256: sha(tar),
    },
    frames: [
      { offset: 0, size: frameSize, tarOffset: 0, tarSize, sha256: sha(archive.subarray(0, frameSize)) },
    ],
    files,
    summary: {
      files: files.filter((f) => f.type === 'file').length,
      directories: files.filter((f) => f.type === 'directory').length,
      symlinks: files.filter((f) => f.type === 'symlink').length,
      totalSize: files.reduce((s: number, f: any) => s + (f.type === 'file' ? f.size : 0), 0),
    },
  };
  o.tamper?.(manifest);
  if (o.mutateArchive) archive = o.mutateArchive(Buffer.from(archive));
  return { manifest, manifestText: `${JSON.stringify(manifest, null, 2)}\n`, archive, tar };
}

export interface ReleaseTamper {
  /** Change the release manifest object before it is written. */
  release?: (r: any) => void;
  /** Replace the release.json text after serialization. */
  releaseText?: (t: string) => string;
}

/** Writes RELEASES/R/ as publish would (release.json names each manifest and archive by sha256). */
export async function writeRelease(
  releasesDir: string,
  release: string,
  comps: Crafted[],
  t: ReleaseTamper = {},
): Promise<string> {
  const components = [];
  for (const c of comps) {
    const m = c.manifest;
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
  const rel: any = {
    schemaVersion: 1,
    kind: 'deploy-tool/release',
    release,
    createdAt: '2024-01-01T00:00:00.000Z',
    tool: 'hostile-corpus',
    notes: null,
    project: null,
    git: null,
    components,
  };
  t.release?.(rel);
  let text = `${JSON.stringify(rel, null, 2)}\n`;
  if (t.releaseText) text = t.releaseText(text);
  await writeFile(join(releasesDir, release, 'release.json'), text);
  return text;
}

/** Every path under `dir` (symlinks not followed), with file sizes, sorted. */
export async function tree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const names = await readdir(join(dir, rel)).catch(() => [] as string[]);
  for (const n of names) {
    const r = rel ? `${rel}/${n}` : n;
    const st = await lstat(join(dir, r));
    out.push(
      st.isFile()
        ? `${r} ${st.size}`
        : st.isSymbolicLink()
          ? `${r} -> ${await readlink(join(dir, r))}`
          : `${r}/`,
    );
    if (st.isDirectory()) out.push(...(await tree(dir, r)));
  }
  return out.sort();
}

export interface Arena {
  base: string;
  releases: string;
  target: string;
  /** Tree of the target and of everything beside it, after the good deploy. */
  before: { target: string[]; outside: string[] };
}

/** Every path under the arena's folder except the target, the published releases and the keys. */
export const outsideOf = async (a: { base: string }): Promise<string[]> =>
  (await tree(a.base)).filter(
    (p) => !p.startsWith('target/') && !p.startsWith('releases/') && !p.startsWith('keys/'),
  );

/** Deploys a good release `good` (model:1.0.0) into BASE/target, in process. */
export async function makeArena(base: string, extra: Partial<DeployOptions> = {}): Promise<Arena> {
  const releases = join(base, 'releases');
  const target = join(base, 'target');
  const good = await craft('model', '1.0.0', [
    { path: 'weights.bin', data: 'good weights\n' },
    { path: 'sub', type: 'directory' },
    { path: 'sub/inner.txt', data: 'inner\n' },
    { path: 'sub/ok-link', type: 'symlink', target: '../weights.bin' },
  ]);
  await writeRelease(releases, 'good', [good]);
  await deploy({ cwd: base, release: 'good', target, releasesDir: releases, ...extra });
  const arena = { base, releases, target, before: { target: [] as string[], outside: [] as string[] } };
  arena.before = { target: await tree(target), outside: await outsideOf(arena) };
  return arena;
}

/**
 * Runs `fn` (a deploy), expects a DeployToolError with exactly `code` and a message matching
 * `message` (which should name the offending path, field or key), then checks the arena is untouched.
 */
export async function expectRefused(
  a: Arena,
  code: string,
  fn: () => Promise<unknown>,
  message: RegExp,
): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'the deploy should have been refused').toBeDefined();
  if (!isDeployToolError(caught)) throw caught;
  expect(caught.code, caught.message).toBe(code);
  expect(caught.message).toMatch(message);
  await expectIntact(a);
}

/** Nothing outside the target changed; the target is as it was (staging emptied); `good` is current and verifies. */
export async function expectIntact(a: Arena): Promise<void> {
  expect(await outsideOf(a)).toEqual(a.before.outside);
  // The state file records the failed attempt in its history; everything else must be byte-identical in size.
  const noState = (t: string[]): string[] =>
    t.map((p) => p.replace(/^(\.deploy-tool\/state\.json) \d+$/, '$1'));
  expect(noState(await tree(a.target))).toEqual(noState(a.before.target));
  expect(await readlink(join(a.target, 'current'))).toBe('releases/good');
  expect(await readFile(join(a.target, 'model', 'weights.bin'), 'utf8')).toBe('good weights\n');
  const v = await verify({ cwd: a.base, target: a.target });
  expect(v.ok, JSON.stringify(v.problems)).toBe(true);
  expect(v.release).toBe('good');
}
