import { describe, expect, it } from 'vitest';
import { DeployToolError } from '../../src/core/errors.js';
import {
  ARCHIVE_FORMAT,
  COMPONENT_SCHEMA_VERSION,
  canonicalJson,
  checkEntryPath,
  parseComponentManifest,
  parseComponentManifestText,
  serializeManifest,
  type ComponentManifest,
  type Entry,
} from '../../src/manifest/component.js';
import {
  RELEASE_SCHEMA_VERSION,
  parseReleaseManifest,
  parseReleaseManifestText,
  type ReleaseManifest,
} from '../../src/manifest/release.js';
import { buildTar, sha256, type MemFile } from './fixtures.js';

/** A consistent manifest for in-memory files, as pack would write it for `--compression none`. */
function manifestFor(files: Record<string, MemFile>): ComponentManifest {
  const { layout, tar, index } = buildTar(files);
  const frames = layout.frames.map(([s, e]) => ({
    offset: s,
    size: e - s,
    tarOffset: s,
    tarSize: e - s,
    sha256: sha256(tar.subarray(s, e)),
  }));
  const fileEntries = index.filter((e) => e.type === 'file');
  return {
    schemaVersion: COMPONENT_SCHEMA_VERSION,
    kind: 'deploy-tool/component',
    type: 'model',
    version: '1.0.0',
    createdAt: '2024-01-20T00:00:00.000Z',
    tool: 'deploy-tool 0.1.0',
    source: { path: 'models', git: { commit: 'a'.repeat(40), dirty: false } },
    archive: {
      name: 'model-1.0.0.tar',
      format: ARCHIVE_FORMAT,
      compression: 'none',
      level: 0,
      size: tar.length,
      sha256: sha256(tar),
      tarSize: tar.length,
      tarSha256: sha256(tar),
    },
    frames,
    files: index,
    summary: {
      files: fileEntries.length,
      directories: index.filter((e) => e.type === 'directory').length,
      symlinks: index.filter((e) => e.type === 'symlink').length,
      totalSize: fileEntries.reduce((s, e) => s + (e.type === 'file' ? e.size : 0), 0),
    },
  };
}

const FILES: Record<string, MemFile> = {
  'a.txt': 'a',
  'weights/model.bin': Buffer.alloc(2 * 1024 * 1024, 1),
  'weights/latest': { symlink: 'model.bin' },
  'z.json': '{}',
};

function invalid(raw: unknown): string {
  try {
    parseComponentManifest(raw, 'm.json');
  } catch (err) {
    expect(err).toBeInstanceOf(DeployToolError);
    expect((err as DeployToolError).code).toBe('ERR_MANIFEST_INVALID');
    expect((err as DeployToolError).hint).toBeTruthy();
    expect((err as Error).message.startsWith('m.json: ')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected the manifest to be refused');
}

const clone = (m: ComponentManifest): ComponentManifest => JSON.parse(JSON.stringify(m)) as ComponentManifest;

describe('parseComponentManifest', () => {
  it('accepts a consistent manifest and survives a JSON round trip', () => {
    const m = manifestFor(FILES);
    expect(m.frames.length).toBeGreaterThan(1);
    expect(parseComponentManifest(m, 'm.json')).toEqual(m);
    expect(parseComponentManifestText(serializeManifest(m), 'm.json')).toEqual(m);
    expect(serializeManifest(m).endsWith('}\n')).toBe(true);
  });

  it('refuses a gap between frames', () => {
    const m = clone(manifestFor(FILES));
    m.frames[1]!.offset += 1;
    expect(invalid(m)).toMatch(/frame 1 starts at .* \(gap or overlap\)/);
  });

  it('refuses overlapping frames', () => {
    const m = clone(manifestFor(FILES));
    m.frames[1]!.offset -= 1;
    expect(invalid(m)).toMatch(/gap or overlap/);
  });

  it('refuses frames that do not tile the tar stream', () => {
    const m = clone(manifestFor(FILES));
    m.frames[1]!.tarOffset += 512;
    expect(invalid(m)).toMatch(/frame 1 covers tar offset/);
  });

  it('refuses frames that stop short of, or run past, the archive', () => {
    const short = clone(manifestFor(FILES));
    short.archive.size += 10;
    expect(invalid(short)).toMatch(/frames cover \d+ bytes but the archive has/);
    const long = clone(manifestFor(FILES));
    long.archive.tarSize -= 512;
    expect(invalid(long)).toMatch(/tar bytes but the tar has/);
  });

  it('refuses a file whose bytes lie past the end of the tar stream', () => {
    const m = clone(manifestFor(FILES));
    const last = m.files[m.files.length - 1]!;
    if (last.type !== 'file') throw new Error('fixture');
    last.size += 4096;
    m.summary.totalSize += 4096;
    expect(invalid(m)).toMatch(/lies past the end of the tar stream/);
  });

  it('refuses an offset past the end even with a huge size', () => {
    const m = clone(manifestFor(FILES));
    const f = m.files.find((e) => e.type === 'file')!;
    if (f.type !== 'file') throw new Error('fixture');
    f.offset = m.archive.tarSize + 512;
    expect(invalid(m)).toMatch(/past the end/);
  });

  it('refuses entries out of stream order', () => {
    const m = clone(manifestFor(FILES));
    const [first, second] = [m.files[0]!, m.files[m.files.length - 1]!];
    m.files[0] = second;
    m.files[m.files.length - 1] = first;
    expect(invalid(m)).toMatch(/overlaps the previous entry|comes before its folder|past the end/);
  });

  it('refuses an entry listed before its folder', () => {
    const m = clone(manifestFor({ 'd/x.txt': 'x' }));
    m.files = m.files.filter((e) => e.type !== 'directory');
    m.summary.directories = 0;
    expect(invalid(m)).toMatch(/"d\/x.txt" comes before its folder "d"/);
  });

  it('refuses a file inside a symlink', () => {
    const m = clone(manifestFor({ l: { symlink: 'elsewhere' }, 'm.txt': 'x' }));
    const f = m.files.find((e) => e.path === 'm.txt')!;
    f.path = 'l/m.txt';
    expect(invalid(m)).toMatch(/entry "l\/m.txt" lies below the symlink "l"/);
  });

  it.each([
    ['the same path twice', 'a.txt', 'a.txt'],
    ['paths that differ only in case', 'Model.bin', 'model.bin'],
    ['paths that differ only in Unicode normalization', 'caf\u00e9.txt', 'cafe\u0301.txt'],
  ])('refuses %s', (_what, p1, p2) => {
    const m = clone(manifestFor({ [p1]: 'one', 'zz.txt': 'two' }));
    const second = m.files.find((e) => e.path === 'zz.txt')!;
    second.path = p2;
    expect(invalid(m)).toMatch(/name the same file/);
  });

  it.each([
    ['/etc/passwd', /absolute/],
    ['../escape', /".."/],
    ['a/../../b', /".."/],
    ['a//b', /empty or "\." segment/],
    ['./a', /empty or "\." segment/],
    ['a\\b', /backslash/],
    ['a\u0001b', /control character/],
    ['a\u0000b', /NUL/],
  ])('refuses the unsafe path %j', (path, why) => {
    const m = clone(manifestFor({ 'a.txt': 'a' }));
    m.files[0]!.path = path;
    expect(invalid(m)).toMatch(why);
  });

  it('refuses a summary that does not match the files', () => {
    const m = clone(manifestFor(FILES));
    m.summary.files += 1;
    expect(invalid(m)).toMatch(/summary does not match/);
  });

  it('refuses misaligned headers and data offsets inside headers', () => {
    const m = clone(manifestFor(FILES));
    m.files[0]!.header += 1;
    expect(invalid(m)).toMatch(/not block aligned|overlaps/);
    const n = clone(manifestFor(FILES));
    const f = n.files[0] as Entry & { offset: number };
    f.offset = f.header;
    expect(invalid(n)).toMatch(/data offset is invalid/);
  });

  it('refuses an unknown schemaVersion with a message naming it', () => {
    const m = { ...clone(manifestFor(FILES)), schemaVersion: 99 };
    expect(invalid(m)).toMatch(/unknown schemaVersion 99/);
  });

  it('refuses an unknown archive format, compression or kind', () => {
    const a = clone(manifestFor(FILES));
    (a.archive as { format: string }).format = 'deploy-tool-framed-tar/2';
    expect(invalid(a)).toMatch(/archive\.format/);
    const b = clone(manifestFor(FILES));
    (b.archive as { compression: string }).compression = 'rar';
    expect(invalid(b)).toMatch(/archive\.compression/);
    const c = { ...clone(manifestFor(FILES)), kind: 'deploy-tool/release' };
    expect(invalid(c)).toMatch(/kind/);
  });

  it('refuses malformed digests and modes', () => {
    const a = clone(manifestFor(FILES));
    a.archive.sha256 = 'ABC';
    expect(invalid(a)).toMatch(/archive\.sha256: must be 64 lowercase hex digits/);
    const b = clone(manifestFor(FILES));
    b.files[0]!.mode = '644';
    expect(invalid(b)).toMatch(/mode/);
  });

  it('refuses frames larger than a reader will allocate', () => {
    const m = clone(manifestFor(FILES));
    m.frames[0]!.tarSize = 64 * 1024 * 1024;
    expect(invalid(m)).toMatch(/frames\.0\.tarSize/);
  });

  it('refuses malformed JSON with a clear error', () => {
    expect(() => parseComponentManifestText('{"schemaVersion": 1,', 'm.json')).toThrow(
      /m.json: not valid JSON/,
    );
    expect(() => parseComponentManifestText('', 'm.json')).toThrow(DeployToolError);
    expect(() => parseComponentManifestText('[]', 'm.json')).toThrow(/m.json/);
  });
});

describe('checkEntryPath', () => {
  it('accepts ordinary relative paths, including Unicode and dots inside names', () => {
    for (const p of ['a', 'a/b/c.txt', '.hidden', 'v1.2/..name', 'Ünïcödé/文件'])
      expect(checkEntryPath(p)).toBeUndefined();
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every level and drops whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}',
    );
  });
});

function release(): ReleaseManifest {
  return {
    schemaVersion: RELEASE_SCHEMA_VERSION,
    kind: 'deploy-tool/release',
    release: '2024.01.20',
    createdAt: '2024-01-20T00:00:00.000Z',
    tool: 'deploy-tool 0.1.0',
    notes: null,
    project: { name: 'my-ml-project', type: 'algorithm' },
    git: null,
    components: [
      {
        type: 'model',
        version: '1.0.0',
        manifest: 'model/1.0.0/model-1.0.0.manifest.json',
        manifestSha256: 'a'.repeat(64),
        archive: 'model/1.0.0/model-1.0.0.tar.zst',
        archiveSha256: 'b'.repeat(64),
        archiveSize: 123,
        compression: 'zstd',
      },
      {
        type: 'config',
        version: '1.0.0',
        manifest: 'config/1.0.0/config-1.0.0.manifest.json',
        manifestSha256: 'c'.repeat(64),
        archive: 'config/1.0.0/config-1.0.0.tar.zst',
        archiveSha256: 'd'.repeat(64),
        archiveSize: 45,
        compression: 'zstd',
      },
    ],
  };
}

function invalidRelease(raw: unknown): string {
  try {
    parseReleaseManifest(raw, 'r.json');
  } catch (err) {
    expect(err).toBeInstanceOf(DeployToolError);
    expect((err as DeployToolError).code).toBe('ERR_MANIFEST_INVALID');
    expect((err as DeployToolError).hint).toBeTruthy();
    return (err as Error).message;
  }
  throw new Error('expected the release manifest to be refused');
}

describe('parseReleaseManifest', () => {
  it('accepts a valid release manifest', () => {
    const r = release();
    expect(parseReleaseManifest(r, 'r.json')).toEqual(r);
    expect(parseReleaseManifestText(serializeManifest(r), 'r.json')).toEqual(r);
  });

  it('refuses an unknown schemaVersion', () => {
    expect(invalidRelease({ ...release(), schemaVersion: 7 })).toMatch(/unknown schemaVersion 7/);
  });

  it('refuses a component type listed twice', () => {
    const r = release();
    r.components[1]!.type = 'model';
    expect(invalidRelease(r)).toMatch(/component type "model" appears twice/);
  });

  it.each(['/abs/model.tar.zst', '../model.tar.zst', 'model/../../x'])('refuses the unsafe path %j', (p) => {
    const r = release();
    r.components[0]!.archive = p;
    expect(invalidRelease(r)).toMatch(/path ".*"/);
  });

  it('refuses unsafe component names', () => {
    const r = release();
    r.components[0]!.version = '../1';
    expect(invalidRelease(r)).toMatch(/unsafe name/);
  });

  it('refuses a release without components and bad digests', () => {
    expect(invalidRelease({ ...release(), components: [] })).toMatch(/components/);
    const r = release();
    r.components[0]!.archiveSha256 = 'nope';
    expect(invalidRelease(r)).toMatch(/archiveSha256/);
  });

  it('refuses malformed JSON', () => {
    expect(() => parseReleaseManifestText('{', 'r.json')).toThrow(/r.json: not valid JSON/);
  });
});
