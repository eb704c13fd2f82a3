/* eslint-disable @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any -- hostile, deliberately untyped JSON */
/**
 * Property-based tests (fast-check): whatever the input, the manifest, release and config parsers
 * either accept it or refuse it with a DeployToolError (never another exception), and a randomly
 * mutated archive is either read correctly or refused with a DeployToolError, writing nothing
 * outside its extraction folder. Then the same mutations (with the manifest re-hashed to match)
 * through the real deploy engine on a target holding a good release: a correct deploy of exactly
 * what the manifest lists, or a refusal with a specific code that leaves everything as it was.
 */
import { lstat, mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExtractSink } from '../../src/archive/extract.js';
import { createCodecPool, type CodecPool } from '../../src/archive/pool.js';
import { openLocalArchive, readArchive } from '../../src/archive/reader.js';
import { parseConfig } from '../../src/core/config.js';
import { isDeployToolError } from '../../src/core/errors.js';
import { parseComponentManifest, parseComponentManifestText } from '../../src/manifest/component.js';
import { parseReleaseManifest, parseReleaseManifestText } from '../../src/manifest/release.js';
import { parseSignature } from '../../src/trust/signature.js';
import { parsePublicKey } from '../../src/trust/keys.js';
import { deploy } from '../../src/ops/deploy.js';
import { verify } from '../../src/ops/verify.js';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';
import {
  craft,
  expectIntact,
  makeArena,
  outsideOf,
  sha,
  tree,
  writeRelease,
  type Arena,
  type Crafted,
} from './lib.js';

afterAll(cleanupTempDirs);

/** Runs fn; only a DeployToolError may escape. Returns true if it was accepted. */
function acceptsOrRefuses(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (!isDeployToolError(err)) throw err;
    return false;
  }
}

let good: Crafted;
let goodGz: Crafted;
const release = {
  schemaVersion: 1,
  kind: 'deploy-tool/release',
  release: '1.0',
  createdAt: 'x',
  tool: 't',
  notes: null,
  project: null,
  git: null,
  components: [
    {
      type: 'model',
      version: '1.0.0',
      manifest: 'model/1.0.0/model-1.0.0.manifest.json',
      manifestSha256: 'a'.repeat(64),
      archive: 'model/1.0.0/model-1.0.0.tar',
      archiveSha256: 'b'.repeat(64),
      archiveSize: 10,
      compression: 'none',
    },
  ],
};

beforeAll(async () => {
  const entries = [
    { path: 'weights.bin', data: Buffer.alloc(3000, 7) },
    { path: 'sub', type: 'directory' as const },
    { path: 'sub/a.txt', data: 'alpha\n' },
    { path: 'sub/link', type: 'symlink' as const, target: 'a.txt' },
  ];
  good = await craft('model', '1.0.0', entries);
  goodGz = await craft('model', '1.0.0', entries, { compression: 'gzip' });
});

/** Replaces the value at a random path of a JSON value. */
const mutateJson = (base: unknown) =>
  fc
    .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), fc.jsonValue(), fc.boolean())
    .map(([path, value, del]) => {
      const copy = structuredClone(base) as any;
      let node = copy;
      for (let i = 0; i < path.length; i++) {
        if (!node || typeof node !== 'object') break;
        const keys = Object.keys(node);
        if (keys.length === 0) break;
        const k = keys[path[i]! % keys.length]!;
        if (i === path.length - 1 || !node[k] || typeof node[k] !== 'object') {
          if (del && !Array.isArray(node)) delete node[k];
          else node[k] = value;
          break;
        }
        node = node[k];
      }
      return copy;
    });

describe('parsers never throw anything but a DeployToolError', () => {
  it('component manifests: arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => void acceptsOrRefuses(() => parseComponentManifest(v, 'fuzz'))),
      { numRuns: 300 },
    );
  });
  it('component manifests: mutations of a valid one', () => {
    expect(acceptsOrRefuses(() => parseComponentManifest(good.manifest, 'good'))).toBe(true);
    fc.assert(
      fc.property(
        mutateJson(good.manifest),
        (m) => void acceptsOrRefuses(() => parseComponentManifest(m, 'fuzz')),
      ),
      { numRuns: 500 },
    );
  });
  it('component manifests: arbitrary and damaged text', () => {
    fc.assert(
      fc.property(fc.string(), fc.nat(), (s, at) => {
        acceptsOrRefuses(() => parseComponentManifestText(s, 'fuzz'));
        const t = good.manifestText;
        const i = at % t.length;
        acceptsOrRefuses(() => parseComponentManifestText(t.slice(0, i) + s + t.slice(i + 1), 'fuzz'));
      }),
      { numRuns: 300 },
    );
  });
  it('release manifests: arbitrary JSON, mutations and text', () => {
    expect(acceptsOrRefuses(() => parseReleaseManifest(release, 'good'))).toBe(true);
    fc.assert(
      fc.property(fc.jsonValue(), (v) => void acceptsOrRefuses(() => parseReleaseManifest(v, 'fuzz'))),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(mutateJson(release), (m) => void acceptsOrRefuses(() => parseReleaseManifest(m, 'fuzz'))),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.string(), (s) => void acceptsOrRefuses(() => parseReleaseManifestText(s, 'fuzz'))),
      { numRuns: 200 },
    );
  });
  it('configs: arbitrary YAML-ish text and mutations of a valid one', () => {
    const valid =
      'schema_version: 1\nproject:\n  name: p\n  type: t\ntrust:\n  keys: [a.pub]\n  require_signatures: true\n';
    expect(acceptsOrRefuses(() => parseConfig(valid, 'good'))).toBe(true);
    const yamlish = fc.stringMatching(/^[a-z_:\-[\]{}&*!|>'" \n#0-9.]{0,200}$/);
    fc.assert(
      fc.property(yamlish, (s) => void acceptsOrRefuses(() => parseConfig(s, 'fuzz'))),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.nat(), fc.string({ maxLength: 8 }), (at, s) => {
        const i = at % valid.length;
        acceptsOrRefuses(() => parseConfig(valid.slice(0, i) + s + valid.slice(i), 'fuzz'));
      }),
      { numRuns: 300 },
    );
  });
  it('signatures and public keys: arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        acceptsOrRefuses(() => parseSignature(s, 'fuzz'));
        acceptsOrRefuses(() => parsePublicKey(s, 'fuzz'));
      }),
      { numRuns: 300 },
    );
  });
});

describe('mutated archives: read correctly or refused, never written outside', () => {
  let pool: CodecPool;
  let base: string;
  beforeAll(async () => {
    pool = createCodecPool(1);
    base = await tempDir('fuzz-archive-');
  });
  afterAll(async () => {
    await pool.close();
  });

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({
      kind: fc.constant('overwrite' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
  );

  const apply = (a: Buffer, m: any): Buffer => {
    const at = m.at % a.length;
    if (m.kind === 'flip') {
      const b = Buffer.from(a);
      b[at]! ^= 1 << m.bit;
      return b;
    }
    if (m.kind === 'truncate') return a.subarray(0, at);
    if (m.kind === 'insert') return Buffer.concat([a.subarray(0, at), Buffer.from(m.bytes), a.subarray(at)]);
    const b = Buffer.from(a);
    Buffer.from(m.bytes).copy(b, at);
    return b;
  };

  for (const [label, getCrafted, verifyDigest] of [
    ['uncompressed, whole-archive digest on', () => good, true],
    ['gzip, whole-archive digest off (frame digests and the tar checker only)', () => goodGz, false],
    ['uncompressed, whole-archive digest off', () => good, false],
  ] as const) {
    it(label, async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(mutation, { minLength: 1, maxLength: 3 }),
          fc.boolean(),
          async (muts, mutateManifest) => {
            const c = getCrafted();
            const dir = join(base, `run-${run++}`);
            const out = join(dir, 'out');
            await mkdir(out, { recursive: true });
            const file = join(dir, 'archive');
            let bytes = c.archive;
            let manifest = c.manifest;
            if (mutateManifest) {
              // Keep the archive digest in step so that the frame and tar layers are exercised.
              manifest = structuredClone(c.manifest);
              bytes = muts.reduce((b, m) => apply(b, m), bytes);
              const { createHash } = await import('node:crypto');
              manifest.archive.size = bytes.length;
              manifest.archive.sha256 = createHash('sha256').update(bytes).digest('hex');
            } else {
              bytes = muts.reduce((b, m) => apply(b, m), bytes);
            }
            await writeFile(file, bytes);
            const src = await openLocalArchive(file);
            const sink = createExtractSink(out, { durable: false });
            let ok = true;
            try {
              await readArchive({ manifest, source: src, pool, sink, verifyDigest });
            } catch (err) {
              if (!isDeployToolError(err)) throw err;
              ok = false;
              await sink.abort();
            } finally {
              await src.close();
            }
            // Nothing beside the extraction folder and the archive.
            expect((await readdir(dir)).sort()).toEqual(['archive', 'out']);
            if (ok) {
              // Accepted only if the bytes were equivalent (e.g. a mutation that changed nothing).
              expect(bytes.equals(c.archive) || mutateManifest).toBe(true);
              const names = (await readdir(out, { recursive: true })).map(String).sort();
              expect(names).toEqual(['sub', 'sub/a.txt', 'sub/link', 'weights.bin']);
            }
            await rm(dir, { recursive: true, force: true });
          },
        ),
        { numRuns: 120 },
      );
    });
  }
});

describe('mutated archives through the real deploy engine (manifest re-hashed to match)', () => {
  let a: Arena;
  let n = 0;
  beforeAll(async () => {
    a = await makeArena(await tempDir('fuzz-deploy-'));
  });

  /** Codes a refusal may carry: each names a specific problem with the input. */
  const REFUSALS = new Set([
    'ERR_MANIFEST_INVALID',
    'ERR_INDEX_MISMATCH',
    'ERR_ARCHIVE_CORRUPT',
    'ERR_ARCHIVE_UNSAFE',
  ]);

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({
      kind: fc.constant('overwrite' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
  );
  const apply = (b: Buffer, m: any): Buffer => {
    const at = m.at % b.length;
    if (m.kind === 'flip') {
      const c = Buffer.from(b);
      c[at]! ^= 1 << m.bit;
      return c;
    }
    if (m.kind === 'truncate') return b.subarray(0, at);
    if (m.kind === 'insert') return Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
    const c = Buffer.from(b);
    Buffer.from(m.bytes).copy(c, at);
    return c;
  };

  /**
   * The manifest of mutated bytes, re-hashed so that the archive, frame and file digests match:
   * what is left to catch the damage is the structure (tar headers, index, paths, sizes).
   */
  const rehash = (c: Crafted, bytes: Buffer): any => {
    const m = structuredClone(c.manifest);
    m.version = `9.9.${++n}`;
    m.archive.name = m.archive.name.replace('1.0.0', m.version);
    m.archive.size = bytes.length;
    m.archive.sha256 = sha(bytes);
    m.frames[0].size = bytes.length;
    m.frames[0].sha256 = sha(bytes);
    let tar: Buffer | undefined;
    try {
      tar = m.archive.compression === 'gzip' ? gunzipSync(bytes) : bytes;
    } catch {
      tar = undefined;
    }
    if (tar) {
      m.archive.tarSha256 = sha(tar);
      for (const f of m.files)
        if (f.type === 'file' && f.offset + f.size <= tar.length)
          f.sha256 = sha(tar.subarray(f.offset, f.offset + f.size));
    } else {
      // The bytes do not decode, so no file digest is right: give each file one that nothing on
      // the target has. Otherwise the engine would rightly link every file from the good release
      // (same digests) without reading the archive at all, and such runs prove nothing.
      for (const f of m.files) if (f.type === 'file') f.sha256 = sha(`undecodable ${f.path} ${sha(bytes)}`);
    }
    return m;
  };

  /** The deployed component is exactly what its manifest lists. */
  const expectDeployedAsListed = async (m: any): Promise<void> => {
    const root = join(a.target, 'model');
    const listed: string[] = [];
    for (const e of m.files) {
      const p = join(root, ...e.path.split('/'));
      const st = await lstat(p);
      if (e.type === 'file') {
        expect(st.isFile(), e.path).toBe(true);
        expect(sha(await readFile(p)), e.path).toBe(e.sha256);
        listed.push(`${e.path} ${e.size}`);
      } else if (e.type === 'directory') {
        expect(st.isDirectory(), e.path).toBe(true);
        listed.push(`${e.path}/`);
      } else {
        expect(await readlink(p), e.path).toBe(e.target);
        listed.push(`${e.path} -> ${e.target}`);
      }
    }
    expect(await tree(root)).toEqual(listed.sort());
  };

  for (const [label, getCrafted] of [
    ['uncompressed', () => good],
    ['gzip', () => goodGz],
  ] as const) {
    it(`${label}: a correct deploy or a specific refusal, the good release intact`, async () => {
      const seen = { deployed: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (muts) => {
          const c = getCrafted();
          const bytes = muts.reduce((b, m) => apply(b, m), c.archive);
          const manifest = rehash(c, bytes);
          const comp: Crafted = {
            manifest,
            manifestText: `${JSON.stringify(manifest, null, 2)}\n`,
            archive: bytes,
            tar: bytes,
          };
          const release = `fz-${n}`;
          await writeRelease(a.releases, release, [comp]);
          let caught: unknown;
          try {
            await deploy({ cwd: a.base, release, target: a.target, releasesDir: a.releases, keep: 2 });
          } catch (err) {
            caught = err;
          }
          if (caught !== undefined) {
            if (!isDeployToolError(caught)) throw caught as Error;
            expect(REFUSALS.has(caught.code), `${caught.code}: ${caught.message}`).toBe(true);
            expect(caught.message.length).toBeGreaterThan(10);
            await expectIntact(a);
            seen.refused++;
            return;
          }
          // Accepted: the bytes still formed a valid archive of exactly what the manifest lists.
          expect(await readlink(join(a.target, 'current'))).toBe(`releases/${release}`);
          await expectDeployedAsListed(manifest);
          const v = await verify({ cwd: a.base, target: a.target });
          expect(v.ok, JSON.stringify(v.problems)).toBe(true);
          // Nothing beside the target changed; back to the good release for the next run.
          expect(await outsideOf(a)).toEqual(a.before.outside);
          await deploy({ cwd: a.base, release: 'good', target: a.target, releasesDir: a.releases, keep: 2 });
          a.before = { target: await tree(a.target), outside: await outsideOf(a) };
          seen.deployed++;
        }),
        {
          numRuns: 40,
          // Besides the random runs, one of each outcome: a byte of weights.bin's data changed (its
          // sha256 re-hashed: a valid archive of other content) and a byte of the first header.
          examples: [
            [[{ kind: 'overwrite', at: 512 + 1000, bytes: new Uint8Array([1, 2, 3]) }]],
            [[{ kind: 'flip', at: 0, bit: 0 }]],
          ],
        },
      );
      if (label === 'uncompressed') expect(seen.deployed, JSON.stringify(seen)).toBeGreaterThan(0);
      expect(seen.refused, JSON.stringify(seen)).toBeGreaterThan(0);
    }, 120_000);
  }
});
