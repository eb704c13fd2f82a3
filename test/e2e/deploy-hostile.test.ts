/**
 * Hostile archives and manifests, crafted byte by byte: each is refused, nothing is written outside
 * the staging folder (which is removed), and the current release stays current and intact.
 */
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, runCli, runJson, tempDir } from '../helpers/cli.js';
import { craft, writeRelease, type CraftEntry } from '../hostile/craft.js';
import { exists, listTree } from './deploy-fixture.js';

afterAll(cleanupTempDirs);

let base: string;
let releases: string;
let target: string;
let before: string[];
let outsideBefore: string[];

beforeAll(async () => {
  base = await tempDir('hostile-');
  releases = join(base, 'releases');
  target = join(base, 'target');
  const good = await craft('model', '1.0.0', [
    { path: 'weights.bin', data: 'good weights\n' },
    { path: 'sub', type: 'directory' },
    { path: 'sub/inner.txt', data: 'inner\n' },
    { path: 'sub/ok-link', type: 'symlink', target: '../weights.bin' },
  ]);
  await writeRelease(releases, 'good', [good]);
  const r = await runCli(['deploy', '--release', 'good', '--target', target, '--releases-dir', releases], {
    cwd: base,
  });
  expect(r.code, r.stderr).toBe(0);
  before = await listTree(target);
  outsideBefore = (await listTree(base)).filter(
    (p) => !p.startsWith('target/') && !p.startsWith('releases/'),
  );
});

interface Case {
  entries: CraftEntry[];
  code: string | RegExp;
  opts?: Parameters<typeof craft>[3];
}

const evilAbs = (): string => join(base, 'evil-absolute');

const cases: [string, () => Case][] = [
  [
    'manifest entry with ..',
    () => ({ entries: [{ path: '../evil', data: 'x' }], code: 'ERR_MANIFEST_INVALID' }),
  ],
  [
    'tar entry with .. (index says evil)',
    () => ({
      entries: [{ path: 'evil', data: 'x', tarPath: '../evil' }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'tar entry with .. deep',
    () => ({
      entries: [
        { path: 'a', type: 'directory' },
        { path: 'a/b', data: 'x', tarPath: 'a/../../../evil' },
      ],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'manifest absolute path',
    () => ({ entries: [{ path: evilAbs(), data: 'x' }], code: 'ERR_MANIFEST_INVALID' }),
  ],
  [
    'tar absolute path',
    () => ({
      entries: [{ path: 'evil', data: 'x', tarPath: evilAbs() }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'symlink leading outside (relative)',
    () => ({
      entries: [{ path: 'link', type: 'symlink', target: '../../../../../evil' }],
      code: 'ERR_ARCHIVE_UNSAFE',
    }),
  ],
  [
    'symlink leading outside (absolute)',
    () => ({
      entries: [{ path: 'link', type: 'symlink', target: '/etc' }],
      code: 'ERR_ARCHIVE_UNSAFE',
    }),
  ],
  [
    'file written through a symlink',
    () => ({
      entries: [
        { path: 'link', type: 'symlink', target: '.' },
        { path: 'link/evil', data: 'x' },
      ],
      code: /ERR_MANIFEST_INVALID|ERR_ARCHIVE_UNSAFE/,
    }),
  ],
  [
    'hard link to a file outside',
    () => ({
      entries: [{ path: 'hard', data: '', tarType: 'Link', tarLinkpath: '/etc/passwd' }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'hard link to ../',
    () => ({
      entries: [{ path: 'hard', data: '', tarType: 'Link', tarLinkpath: '../../evil' }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'character device',
    () => ({
      entries: [{ path: 'dev', data: '', tarType: 'CharacterDevice' }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'block device',
    () => ({
      entries: [{ path: 'dev', data: '', tarType: 'BlockDevice' }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  ['fifo', () => ({ entries: [{ path: 'fifo', data: '', tarType: 'FIFO' }], code: 'ERR_INDEX_MISMATCH' })],
  // setuid in both the manifest and the tar is deployed with the bit stripped (test/hostile/archive.test.ts)
  [
    'setuid in the tar only',
    () => ({
      entries: [{ path: 'suid', data: '#!/bin/sh\n', mode: '0755', tarMode: 0o4755 }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'duplicate entries in the manifest',
    () => ({
      entries: [
        { path: 'dup', data: 'one' },
        { path: 'dup', data: 'two' },
      ],
      code: 'ERR_MANIFEST_INVALID',
    }),
  ],
  [
    'duplicate entry in the tar only',
    () => ({
      entries: [
        { path: 'dup', data: 'one' },
        { tarPath: 'dup', data: 'two' },
      ],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'file with more bytes than the manifest declares',
    () => ({
      entries: [{ path: 'big', data: 'small', tarData: 'much much bigger than declared' }],
      code: 'ERR_INDEX_MISMATCH',
    }),
  ],
  [
    'frame inflating past its declared size (bomb)',
    () => ({
      entries: [{ path: 'f', data: 'x' }],
      opts: { gzip: true, extraTrailer: 64 * 1024, declaredTarSize: (n: number) => n - 64 * 1024 },
      code: 'ERR_ARCHIVE_UNSAFE',
    }),
  ],
  [
    'entry missing from the tar',
    () => ({
      entries: [
        { path: 'a', data: 'x' },
        { path: 'b', data: 'y', notInTar: true },
      ],
      code: /ERR_INDEX_MISMATCH|ERR_MANIFEST_INVALID/,
    }),
  ],
];

describe('hostile archives are refused and the current release is kept', () => {
  for (const [i, [name, make]] of cases.entries()) {
    it(`case ${i + 1}: ${name}`, async () => {
      const c = make();
      const release = `bad-${i + 1}`;
      const crafted = await craft('model', `6.6.${i}`, c.entries, c.opts);
      await writeRelease(releases, release, [crafted]);
      const r = await runJson<{ ok: boolean; error: { code: string; message: string } }>(
        ['deploy', '--release', release, '--target', target, '--releases-dir', releases],
        { cwd: base },
      );
      expect(r.code).toBe(1);
      expect(r.json.ok).toBe(false);
      if (typeof c.code === 'string') expect(r.json.error.code).toBe(c.code);
      else expect(r.json.error.code).toMatch(c.code);
      // Nothing outside: no new files next to the target, no absolute-path victim.
      expect(await exists(evilAbs())).toBe(false);
      expect(await exists(join(base, 'evil'))).toBe(false);
      const outside = (await listTree(base)).filter(
        (p) => !p.startsWith('target/') && !p.startsWith('releases/'),
      );
      expect(outside).toEqual(outsideBefore);
      // The target: same files as before (staging removed, no new release folder), current kept.
      expect(await listTree(target)).toEqual(before);
      expect(await readlink(join(target, 'current'))).toBe('releases/good');
      expect(await readFile(join(target, 'model', 'weights.bin'), 'utf8')).toBe('good weights\n');
      const v = await runCli(['verify', '--target', target], { cwd: base });
      expect(v.code, `${v.stdout}\n${v.stderr}`).toBe(0);
    });
  }
});
