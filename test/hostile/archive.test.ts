/* eslint-disable @typescript-eslint/no-unsafe-return -- hostile, deliberately untyped JSON */
/**
 * Hostile archives and manifests, deployed in process over a target that holds a good release:
 * each is refused with a specific code, nothing is written outside the target's staging area
 * (which is emptied), and the good release stays current and verifies.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../src/ops/deploy.js';
import { verify } from '../../src/ops/verify.js';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';
import {
  craft,
  expectRefused,
  makeArena,
  sha,
  writeRelease,
  type Arena,
  type CraftOptions,
  type Ent,
  type ReleaseTamper,
} from './lib.js';

afterAll(cleanupTempDirs);

let a: Arena;
beforeAll(async () => {
  a = await makeArena(await tempDir('hostile-archive-'));
});

interface Case {
  name: string;
  entries: Ent[];
  /** The exact error code, and a fragment of the message naming the problem. */
  code: string;
  message: RegExp;
  opts?: CraftOptions;
  release?: ReleaseTamper;
  /** Second component in the same release. */
  also?: { type: string; entries: Ent[] };
}

const outside = (): string => join(a.base, 'evil');

const cases: Case[] = [
  // paths
  {
    name: 'manifest path with ..',
    entries: [{ path: '../evil', data: 'x' }],
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "\.\.\/evil" contains "\.\."/,
  },
  {
    name: 'tar path with .. (index says evil)',
    entries: [{ path: 'evil', data: 'x', tarPath: '../evil' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /tar entry "\.\.\/evil" does not match index entry "evil"/,
  },
  {
    name: 'manifest absolute path',
    entries: [{ path: '/tmp/evil', data: 'x' }],
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "\/tmp\/evil" is absolute/,
  },
  {
    name: 'tar absolute path',
    entries: [{ path: 'evil', data: 'x', tarPath: '/tmp/evil' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /tar entry "\/tmp\/evil" does not match index entry "evil"/,
  },
  {
    name: 'NUL in a manifest path',
    entries: [{ path: 'a\u0000b', data: 'x' }],
    code: 'ERR_MANIFEST_INVALID',
    // eslint-disable-next-line no-control-regex -- the message must show the offending character
    message: /entry "a\u0000b" contains a NUL byte/,
  },
  {
    name: 'backslash path',
    entries: [{ path: '..\\evil', data: 'x' }],
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "\.\.\\evil" contains a backslash/,
  },
  {
    name: 'control character in a name',
    entries: [{ path: 'a\u001b[31m', data: 'x' }],
    code: 'ERR_MANIFEST_INVALID',
    // eslint-disable-next-line no-control-regex -- the message must show the offending character
    message: /entry "a\u001b\[31m" contains a control character/,
  },
  {
    name: 'lone surrogate (not Unicode) in a name',
    entries: [{ path: 'a\ud800', data: 'x' }],
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "a\ud800" is not valid Unicode/,
  },
  {
    name: 'non-UTF-8 bytes in a tar name',
    entries: [
      {
        path: 'caf\u00e9',
        data: 'x',
        rawHeader: (h) => {
          h[3] = 0xe9;
          h[4] = 0;
          return fixCksum(h);
        },
      },
    ],
    code: 'ERR_INDEX_MISMATCH',
    message: /tar entry "caf\ufffd" does not match index entry "caf\u00e9"/,
  },
  {
    name: 'overlong path (> 4096 bytes)',
    entries: [{ path: 'a'.repeat(5000), data: 'x', pax: true }],
    code: 'ERR_MANIFEST_INVALID',
    message: /files\.0\.path: is longer than 4096 characters/,
  },
  {
    name: 'overlong name segment (> 255 bytes)',
    entries: [{ path: 'n'.repeat(300), data: 'x', pax: true }],
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "n{300}" .*255 bytes/,
  },
  // symlinks and links
  {
    name: 'symlink leading outside (relative)',
    entries: [{ path: 'link', type: 'symlink', target: '../../../evil' }],
    code: 'ERR_ARCHIVE_UNSAFE',
    message: /entry "link": symlink target "\.\.\/\.\.\/\.\.\/evil" leaves the folder/,
  },
  {
    name: 'symlink leading outside (absolute)',
    entries: [{ path: 'link', type: 'symlink', target: '/etc' }],
    code: 'ERR_ARCHIVE_UNSAFE',
    message: /entry "link": symlink target "\/etc" leaves the folder/,
  },
  {
    name: 'path through a symlink planted earlier',
    entries: [
      { path: 'd', type: 'directory' },
      { path: 'link', type: 'symlink', target: 'd' },
      { path: 'link/evil', data: 'x' },
    ],
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "link\/evil" lies below the symlink "link"/,
  },
  {
    name: 'symlink then a folder through it (tar only)',
    entries: [
      { path: 'link', type: 'symlink', target: '.' },
      { path: 'x', data: 'x', tarPath: 'link/x' },
    ],
    code: 'ERR_INDEX_MISMATCH',
    message: /tar entry "link\/x" does not match index entry "x"/,
  },
  {
    name: 'hard link to /etc/passwd',
    entries: [{ path: 'hard', data: '', tarType: 'Link', tarLinkpath: '/etc/passwd' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "hard" has unsupported type Link/,
  },
  // special files and modes
  {
    name: 'character device',
    entries: [{ path: 'dev', data: '', tarType: 'CharacterDevice' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "dev" has unsupported type CharacterDevice/,
  },
  {
    name: 'block device',
    entries: [{ path: 'disk', data: '', tarType: 'BlockDevice' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "disk" has unsupported type BlockDevice/,
  },
  {
    name: 'fifo',
    entries: [{ path: 'fifo', data: '', tarType: 'FIFO' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "fifo" has unsupported type FIFO/,
  },
  {
    name: 'contiguous file (type 7)',
    entries: [{ path: 'c', data: 'x', tarType: 'ContiguousFile' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "c" has unsupported type ContiguousFile/,
  },
  {
    name: 'GNU long name header (type L)',
    entries: [
      {
        path: 'g',
        data: '',
        rawHeader: (h) => {
          h[156] = 0x4c;
          return fixCksum(h);
        },
      },
    ],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "g" has unsupported type NextFileHasLongPath/,
  },
  {
    name: 'sparse file (type S)',
    entries: [
      {
        path: 's',
        data: '',
        rawHeader: (h) => {
          h[156] = 0x53;
          return fixCksum(h);
        },
      },
    ],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "s" has unsupported type SparseFile/,
  },
  {
    name: 'bad tar header checksum',
    entries: [
      {
        path: 'c',
        data: 'x',
        rawHeader: (h) => {
          h[0]! ^= 0x20;
          return h;
        },
      },
    ],
    code: 'ERR_INDEX_MISMATCH',
    message: /bad tar header checksum at tar offset 0/,
  },
  {
    name: 'global PAX header',
    entries: [{ path: 'g', data: '', tarType: 'GlobalExtendedHeader' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /entry "g" has unsupported type GlobalExtendedHeader/,
  },
  {
    // the bits would be stripped, but a header that disagrees with the signed manifest is a changed byte
    name: 'setuid bit in the tar only',
    entries: [{ path: 'su', data: 'x', mode: '0755', tarMode: 0o4755 }],
    code: 'ERR_INDEX_MISMATCH',
    message: /"su" has mode 4755, the index says 0755/,
  },
  // duplicates and collisions
  {
    name: 'duplicate entries',
    entries: [
      { path: 'dup', data: 'one' },
      { path: 'dup', data: 'two' },
    ],
    code: 'ERR_MANIFEST_INVALID',
    message: /entries "dup" and "dup" name the same file/,
  },
  {
    name: 'names that differ only by case',
    entries: [
      { path: 'README', data: 'a' },
      { path: 'readme', data: 'b' },
    ],
    code: 'ERR_MANIFEST_INVALID',
    message: /entries "README" and "readme" name the same file/,
  },
  {
    name: 'names that differ only by Unicode normalization',
    entries: [
      { path: 'caf\u00e9', data: 'a' },
      { path: 'cafe\u0301', data: 'b' },
    ],
    code: 'ERR_MANIFEST_INVALID',
    message: /entries "caf\u00e9" and "cafe\u0301" name the same file/,
  },
  // sizes, digests, truncation, trailing data
  {
    name: 'truncated archive',
    entries: [{ path: 'f', data: 'x'.repeat(2000) }],
    opts: { mutateArchive: (b) => b.subarray(0, b.length - 700) },
    code: 'ERR_ARCHIVE_CORRUPT',
    message: /model-6\.6\.\d+\.tar: archive has \d+ bytes, the manifest says \d+/,
  },
  {
    name: 'trailing garbage after the archive',
    entries: [{ path: 'f', data: 'x' }],
    opts: { mutateArchive: (b) => Buffer.concat([b, Buffer.from('garbage')]) },
    code: 'ERR_ARCHIVE_CORRUPT',
    message: /archive has 2055 bytes, the manifest says 2048/,
  },
  {
    name: 'trailing garbage inside the tar (declared)',
    entries: [{ path: 'f', data: 'x' }],
    opts: { tarTrailer: Buffer.concat([Buffer.from('junk'), Buffer.alloc(508)]) },
    code: 'ERR_INDEX_MISMATCH',
    message: /unexpected data after the last indexed entry at tar offset 2048/,
  },
  {
    name: 'one flipped archive byte',
    entries: [{ path: 'f', data: 'hello' }],
    opts: {
      mutateArchive: (b) => {
        b[600]! ^= 1;
        return b;
      },
    },
    code: 'ERR_ARCHIVE_CORRUPT',
    message: /model-6\.6\.\d+\.tar: archive sha256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}/,
  },
  {
    name: 'decompression bomb (inflates past the declared size)',
    entries: [{ path: 'f', data: 'x' }],
    opts: {
      compression: 'gzip',
      tarTrailer: Buffer.alloc(1024 * 1024),
      declaredTarSize: (n) => n - 1024 * 1024,
    },
    code: 'ERR_ARCHIVE_UNSAFE',
    message: /frame 0 inflates past its declared 2048 bytes/,
  },
  {
    name: 'file sha256 wrong in the manifest',
    entries: [{ path: 'f', data: 'hello' }],
    opts: {
      tamper: (m) => {
        m.files[0].sha256 = sha('other');
      },
    },
    code: 'ERR_INDEX_MISMATCH',
    message: /file "f" has sha256 [0-9a-f]{64}, the manifest says/,
  },
  {
    name: 'file size wrong in the manifest',
    entries: [{ path: 'f', data: 'hello' }],
    opts: {
      tamper: (m) => {
        m.files[0].size = 4;
        m.summary.totalSize = 4;
      },
    },
    code: 'ERR_INDEX_MISMATCH',
    message: /tar entry "f" has 5 bytes, the index says 4/,
  },
  {
    name: 'tar holds more bytes than declared for a file',
    entries: [{ path: 'f', data: 'small', tarData: 'much bigger than declared' }],
    code: 'ERR_INDEX_MISMATCH',
    message: /tar entry "f" has 25 bytes, the index says 5/,
  },
  {
    name: 'file listed but missing from the tar',
    entries: [
      { path: 'a', data: 'x' },
      { path: 'b', data: 'y', notInTar: true },
    ],
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "b" lies past the end of the tar stream/,
  },
  {
    name: 'tar entry missing from the manifest',
    entries: [
      { path: 'a', data: 'x' },
      { tarPath: 'hidden', data: 'y' },
    ],
    code: 'ERR_INDEX_MISMATCH',
    message: /at tar offset 1024: a tar header for "hidden" that the index does not list/,
  },
  {
    name: 'index entry whose bytes belong to another file',
    entries: [
      { path: 'a', data: 'AAAA' },
      { path: 'b', data: 'BBBB' },
    ],
    opts: {
      tamper: (m) => {
        [m.files[0].sha256, m.files[1].sha256] = [m.files[1].sha256, m.files[0].sha256];
      },
    },
    code: 'ERR_INDEX_MISMATCH',
    message: /file "a" has sha256 [0-9a-f]{64}, the manifest says/,
  },
  {
    name: 'index offset pointing into another entry',
    entries: [
      { path: 'a', data: 'AAAA' },
      { path: 'b', data: 'BBBB' },
    ],
    opts: {
      tamper: (m) => {
        m.files[1].offset = m.files[0].offset;
        m.files[1].header = m.files[0].header;
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /entry "b" overlaps the previous entry/,
  },
  // frames
  {
    name: 'frame index with a gap',
    entries: [{ path: 'f', data: 'x' }],
    opts: {
      tamper: (m) => {
        m.frames[0].offset = 10;
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /frame 0 starts at 10, expected 0 \(gap or overlap\)/,
  },
  {
    name: 'frame index past the end',
    entries: [{ path: 'f', data: 'x' }],
    opts: {
      tamper: (m) => {
        m.frames.push({ ...m.frames[0], offset: m.archive.size, tarOffset: m.archive.tarSize });
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /frames cover 4096 bytes but the archive has 2048/,
  },
  {
    name: 'overlapping frames',
    entries: [{ path: 'f', data: 'x' }],
    opts: {
      tamper: (m) => {
        const f = m.frames[0];
        m.frames = [
          { ...f, size: f.size - 100, tarSize: f.tarSize },
          { ...f, offset: f.size - 200, size: 200, tarOffset: f.tarSize, tarSize: 512 },
        ];
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /frame 1 starts at \d+, expected \d+ \(gap or overlap\)/,
  },
  // manifest fields
  {
    name: 'unknown component schemaVersion',
    entries: [{ path: 'f', data: 'x' }],
    opts: {
      tamper: (m) => {
        m.schemaVersion = 99;
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /manifest\.json: unknown schemaVersion 99/,
  },
  {
    name: 'huge numbers',
    entries: [{ path: 'f', data: 'x' }],
    opts: {
      tamper: (m) => {
        m.files[0].size = 1e300;
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /files\.0\.size: Too big/,
  },
  {
    name: 'archive name escaping the folder',
    entries: [{ path: 'f', data: 'x' }],
    opts: {
      tamper: (m) => {
        m.archive.name = '../../evil.tar';
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /release\.json: path "model\/6\.6\.\d+\/\.\.\/\.\.\/evil\.tar" contains "\.\."/,
  },
  // releases
  {
    name: 'release names a component twice',
    entries: [{ path: 'f', data: 'x' }],
    release: { release: (r) => r.components.push({ ...r.components[0] }) },
    code: 'ERR_MANIFEST_INVALID',
    message: /component type "model" appears twice/,
  },
  {
    name: 'release manifestSha256 disagrees',
    entries: [{ path: 'f', data: 'x' }],
    release: {
      release: (r) => {
        r.components[0].manifestSha256 = sha('x');
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message:
      /model-6\.6\.\d+\.manifest\.json does not match release bad-\d+ \(its sha256 differs from manifestSha256/,
  },
  {
    name: 'release archive sha256 disagrees with the manifest',
    entries: [{ path: 'f', data: 'x' }],
    release: {
      release: (r) => {
        r.components[0].archiveSha256 = sha('x');
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /model-6\.6\.\d+\.manifest\.json: archive size\/sha256 differ from release bad-\d+/,
  },
  {
    name: 'release names another release',
    entries: [{ path: 'f', data: 'x' }],
    release: {
      release: (r) => {
        r.release = 'good';
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /release\.json describes release good, not bad-\d+/,
  },
  {
    name: 'release component type with a slash',
    entries: [{ path: 'f', data: 'x' }],
    release: {
      release: (r) => {
        r.components[0].type = 'model/../x';
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /component "model\/\.\.\/x:6\.6\.\d+" has an unsafe name/,
  },
  {
    name: 'release manifest path with ..',
    entries: [{ path: 'f', data: 'x' }],
    release: {
      release: (r) => {
        r.components[0].manifest = '../../evil.json';
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /release\.json: path "\.\.\/\.\.\/evil\.json" contains "\.\."/,
  },
  {
    name: 'release.json is not JSON',
    entries: [{ path: 'f', data: 'x' }],
    release: { releaseText: (t) => t.slice(0, 40) },
    code: 'ERR_MANIFEST_INVALID',
    message: /release\.json: not valid JSON/,
  },
  {
    name: 'unknown release schemaVersion',
    entries: [{ path: 'f', data: 'x' }],
    release: {
      release: (r) => {
        r.schemaVersion = 2;
      },
    },
    code: 'ERR_MANIFEST_INVALID',
    message: /release\.json: unknown schemaVersion 2/,
  },
  // a bad component next to a good one: the good one must not be left behind either
  {
    name: 'second component hostile',
    entries: [{ path: 'f', data: 'fine' }],
    also: { type: 'config', entries: [{ path: 'x', data: 'x', tarPath: '../../x' }] },
    code: 'ERR_INDEX_MISMATCH',
    message: /config-1\.0\.0\.tar: tar entry "\.\.\/\.\.\/x" does not match index entry "x"/,
  },
];

/** Recomputes a ustar header checksum after raw edits. */
function fixCksum(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

describe('setuid, setgid and sticky bits are stripped, not refused', () => {
  it('deploys an archive whose tar and manifest both carry them, with the bits cleared, and verifies', async () => {
    const base = await tempDir('hostile-suid-');
    const releases = join(base, 'releases');
    const target = join(base, 'target');
    const comp = await craft('model', '1.0.0', [
      { path: 'su', data: 'setuid\n', mode: '4755' },
      { path: 'sg', data: 'setgid\n', mode: '2755' },
      { path: 'both', data: 'both\n', mode: '6750' },
      { path: 'd', type: 'directory', mode: '3775' },
      { path: 'd/plain', data: 'plain\n', mode: '1644' },
    ]);
    // the manifest says what the tar header says (the header check still proves they match)
    expect(comp.manifest.files.map((f: { mode: string }) => f.mode)).toEqual([
      '4755',
      '2755',
      '6750',
      '3775',
      '1644',
    ]);
    await writeRelease(releases, 'suid', [comp]);
    const r = await deploy({ cwd: base, release: 'suid', target, releasesDir: releases });
    expect(r.release).toBe('suid');
    const modeOf = async (p: string): Promise<string> =>
      ((await stat(join(target, 'model', p))).mode & 0o7777).toString(8).padStart(4, '0');
    expect(await modeOf('su')).toBe('0755');
    expect(await modeOf('sg')).toBe('0755');
    expect(await modeOf('both')).toBe('0750');
    expect(await modeOf('d')).toBe('0755');
    expect(await modeOf('d/plain')).toBe('0644');
    expect(await readFile(join(target, 'model', 'su'), 'utf8')).toBe('setuid\n');
    const v = await verify({ cwd: base, target });
    expect(v.ok, JSON.stringify(v.problems)).toBe(true);
  });
});

describe('hostile archives, manifests and releases', () => {
  it('has at least 40 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });
  for (const [i, c] of cases.entries()) {
    it(`${i + 1}: ${c.name}`, async () => {
      const release = `bad-${i + 1}`;
      const comps = [await craft('model', `6.6.${i}`, c.entries, c.opts)];
      if (c.also) comps.push(await craft(c.also.type, '1.0.0', c.also.entries));
      await writeRelease(a.releases, release, comps, c.release);
      await expectRefused(
        a,
        c.code,
        () => deploy({ cwd: a.base, release, target: a.target, releasesDir: a.releases }),
        c.message,
      );
      expect(outside()).toBeTruthy();
    });
  }
});
