/**
 * Every compression's archive, a concatenation of independent frames, reads with GNU tar and the
 * standard decompressor, and gives back the source tree byte for byte.
 */
import { execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, symlink, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, noise, runJson, tempDir, writeTree } from '../helpers/cli.js';
import { snapshotTree } from '../helpers/expect-cli.js';
import { parseComponentManifestText } from '../../src/manifest/component.js';

afterAll(cleanupTempDirs);

let dir: string;
let source: string;

/** Compressible "weights": float-like noise with little entropy, so every codec is fast. */
function weights(size: number, seed: number): Buffer {
  const n = noise(size, seed);
  for (let i = 0; i < n.length; i++) n[i] = (n[i] ?? 0) & 0x0f;
  return n;
}

beforeAll(async () => {
  dir = await makeProject();
  source = join(dir, 'bundle');
  const small: Record<string, Buffer> = {};
  for (let i = 0; i < 24; i++)
    small[`bundle/shards/part-${String(i).padStart(2, '0')}.json`] = weights(48 * 1024 + i, 100 + i);
  await writeTree(dir, {
    'bundle/model.safetensors': weights(2 * 1024 * 1024 + 77, 1),
    'bundle/tokenizer/vocab.txt': 'a\nb\nc\n',
    'bundle/empty.txt': '',
    'bundle/run.sh': '#!/bin/sh\necho run\n',
    'bundle/Ünïcödé 文件.txt': 'unicode\n',
    [`bundle/${'long-dir-name/'.repeat(12)}deep.txt`]: 'deep (ustar prefix)\n',
    [`bundle/${'x'.repeat(230)}/${'y'.repeat(60)}.bin`]: 'very long path (PAX)\n',
    ...small,
  });
  await chmod(join(source, 'run.sh'), 0o755);
  await mkdir(join(source, 'empty-folder'));
  await symlink('model.safetensors', join(source, 'current'));
  await symlink('../tokenizer/vocab.txt', join(source, 'shards', 'vocab-link'));
});

const TOOLS: [string, string, (archive: string, out: string) => string, (archive: string) => string][] = [
  ['zstd', 'tar.zst', (a, o) => `tar --zstd -xf '${a}' -C '${o}'`, (a) => `zstd -dc '${a}'`],
  ['gzip', 'tar.gz', (a, o) => `tar -xzf '${a}' -C '${o}'`, (a) => `gzip -dc '${a}'`],
  ['bzip2', 'tar.bz2', (a, o) => `tar -xjf '${a}' -C '${o}'`, (a) => `bzip2 -dc '${a}'`],
  ['xz', 'tar.xz', (a, o) => `tar -xJf '${a}' -C '${o}'`, (a) => `xz -dc '${a}'`],
  ['lz4', 'tar.lz4', (a, o) => `lz4 -dc '${a}' | tar -x -C '${o}'`, (a) => `lz4 -dc '${a}'`],
  ['none', 'tar', (a, o) => `tar -xf '${a}' -C '${o}'`, (a) => `cat '${a}'`],
];

describe('interop with GNU tar and the standard decompressors', () => {
  it.each(TOOLS)(
    '%s: extracts with the standard tools to the same tree, byte for byte',
    async (alg, ext, extract, decompress) => {
      const r = await runJson<{ archivePath: string; frames: number }>(
        ['pack', 'bundle', '--type', `c-${alg}`, '--version', '1.0.0', '--compression', alg],
        { cwd: dir },
      );
      expect(r.code, r.stderr).toBe(0);
      const archive = join(dir, 'dist', `c-${alg}-1.0.0.${ext}`);
      expect(r.json.archivePath).toBe(archive);
      // Several independent frames, concatenated: the standard tools must read past the first.
      expect(r.json.frames).toBeGreaterThanOrEqual(4);
      const out = await tempDir(`x-${alg}-`);
      execSync(`set -o pipefail; ${extract(archive, out)}`, { shell: '/bin/bash', stdio: 'pipe' });
      expect(await snapshotTree(out)).toEqual(await snapshotTree(source));
      // The standard decompressor yields exactly the tar stream the manifest describes.
      const tar = execSync(decompress(archive), { shell: '/bin/bash', maxBuffer: 64 * 1024 * 1024 });
      const manifest = parseComponentManifestText(
        await readFile(join(dir, 'deployment/manifests', `c-${alg}-1.0.0.manifest.json`), 'utf8'),
        alg,
      );
      expect(tar.length).toBe(manifest.archive.tarSize);
      expect(createHash('sha256').update(tar).digest('hex')).toBe(manifest.archive.tarSha256);
      // The standard tool's own integrity test passes on the concatenation.
      if (alg !== 'none') {
        const test = { zstd: 'zstd -tq', gzip: 'gzip -t', bzip2: 'bzip2 -t', xz: 'xz -t', lz4: 'lz4 -t' }[
          alg
        ];
        execSync(`${test} '${archive}'`, { stdio: 'pipe' });
      }
    },
  );
});
