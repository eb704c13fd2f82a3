/**
 * Archives stored as chunks (PUT /api/v1/recipes/:sha): a client uploads only the chunks the
 * server lacks, then the recipe; the server checks that the chunks concatenate to the archive's
 * sha256 before it stores anything, then serves the archive, whole or by ranges spanning chunks,
 * like any blob. Run over the embedded filesystem store and over a real Ceph bucket (where chunks
 * are streamed from S3 instead of read from local files).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComponentManifest } from '../../src/manifest/component.js';
import { planChunks } from '../../src/store/bucket.js';
import type { S3Store } from '../../src/store/drivers/s3.js';
import { cleanupTempDirs, noise } from '../helpers/cli.js';
import { makeS3Store, startCeph } from '../store/ceph.js';
import {
  BOOTSTRAP,
  createToken,
  jsonHeaders,
  packedProject,
  request,
  startRegistry,
  type PackedComponent,
} from './helpers.js';

const NS = 'test-project';
const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Chunk {
  sha256: string;
  offset: number;
  size: number;
  frames: [number, number] | null;
}

function recipeOf(c: PackedComponent, chunks: Chunk[], archiveSha = c.archiveSha256): string {
  return JSON.stringify({
    schemaVersion: 1,
    kind: 'deploy-tool/archive-recipe',
    archive: { name: 'model-1.0.0.tar.zst', size: c.archive.length, sha256: archiveSha },
    chunks,
  });
}

describe.each(['filesystem store', 'Ceph bucket'] as const)('archives stored as chunks, %s', (kind) => {
  let srv: Awaited<ReturnType<typeof startRegistry>>;
  let base: string;
  let c: PackedComponent;
  let chunks: Chunk[];
  let reader = '';
  let bucket: S3Store | undefined;
  const savedEnv: Record<string, string | undefined> = {};
  const put = (
    path: string,
    body: Buffer | string,
    token = BOOTSTRAP,
    headers: Record<string, string> = {},
  ) => request(base, 'PUT', path, { token, body, headers });

  beforeAll(async () => {
    let opts: Parameters<typeof startRegistry>[0] = {};
    if (kind === 'Ceph bucket') {
      const ceph = await startCeph();
      for (const [k, v] of Object.entries(ceph.env)) {
        savedEnv[k] = process.env[k];
        process.env[k] = v;
      }
      bucket = await makeS3Store(ceph, 'registry-chunks');
      opts = { store: `s3://${bucket.bucket}/reg`, s3: { endpoint: ceph.endpoint } };
    }
    const p = await packedProject([['./models', 'model', '1.0.0']], {
      'models/a.bin': noise(3 * MiB + 17, 1),
      'models/b.bin': noise(2 * MiB + 5, 2),
      'models/c.bin': noise(3 * MiB + 999, 3),
    });
    c = p.components[0]!;
    const m = JSON.parse(c.manifestText) as ComponentManifest;
    chunks = planChunks(m).map((x) => ({
      ...x,
      sha256: sha(c.archive.subarray(x.offset, x.offset + x.size)),
    }));
    srv = await startRegistry(opts);
    base = srv.url;
    reader = (await createToken(base, BOOTSTRAP, 'reader', [NS])).token;
  }, 120_000);
  afterAll(async () => {
    await srv?.close();
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await cleanupTempDirs();
  });

  it('the archive has several chunks, one per weight file', () => {
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    expect(chunks.every((x) => x.sha256 !== c.archiveSha256)).toBe(true);
  });

  it('refuses a recipe whose chunks are not all uploaded, and stores nothing', async () => {
    for (const x of chunks.slice(1)) {
      const r = await put(`/api/v1/blobs/${x.sha256}`, c.archive.subarray(x.offset, x.offset + x.size));
      expect(r.status).toBe(201);
    }
    const r = await put(`/api/v1/recipes/${c.archiveSha256}`, recipeOf(c, chunks), BOOTSTRAP, jsonHeaders);
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('ERR_BLOB_MISSING');
    expect(r.json.message).toContain(chunks[0]!.sha256);
    expect(
      (await request(base, 'HEAD', `/api/v1/blobs/${c.archiveSha256}`, { token: BOOTSTRAP })).status,
    ).toBe(404);
  });

  it('refuses chunks that do not concatenate to the archive (digest checked), and stores nothing', async () => {
    const first = chunks[0]!;
    expect(
      (
        await put(
          `/api/v1/blobs/${first.sha256}`,
          c.archive.subarray(first.offset, first.offset + first.size),
        )
      ).status,
    ).toBe(201);
    // The recipe tiles and every chunk is there, but it claims a digest the bytes do not have.
    const wrongArchive = noise(64, 9);
    const lying = recipeOf(c, chunks, sha(wrongArchive));
    const r = await put(`/api/v1/recipes/${sha(wrongArchive)}`, lying, BOOTSTRAP, jsonHeaders);
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('ERR_DIGEST_MISMATCH');
    expect(r.json.message).toContain('nothing was stored');
    expect(
      (await request(base, 'HEAD', `/api/v1/blobs/${sha(wrongArchive)}`, { token: BOOTSTRAP })).status,
    ).toBe(404);
    expect(
      (await request(base, 'GET', `/api/v1/recipes/${sha(wrongArchive)}`, { token: BOOTSTRAP })).status,
    ).toBe(404);
  });

  it('refuses recipes that are malformed, do not tile, or name another archive', async () => {
    const gap = chunks.map((x, i) => (i === 1 ? { ...x, offset: x.offset + 1 } : x));
    const cases: [string, string, string][] = [
      [c.archiveSha256, '{"schemaVersion": 1', 'ERR_INVALID_JSON'],
      [c.archiveSha256, JSON.stringify({ schemaVersion: 2, chunks: [] }), 'ERR_INVALID_BODY'],
      [c.archiveSha256, recipeOf(c, gap), 'ERR_INVALID_BODY'],
      [c.archiveSha256, recipeOf(c, chunks.slice(0, -1)), 'ERR_INVALID_BODY'],
      ['0'.repeat(64), recipeOf(c, chunks), 'ERR_INVALID_BODY'],
    ];
    for (const [s, body, code] of cases) {
      const r = await put(`/api/v1/recipes/${s}`, body, BOOTSTRAP, jsonHeaders);
      expect(r.status, body.slice(0, 80)).toBe(400);
      expect(r.json.code, body.slice(0, 80)).toBe(code);
      expect(r.text).not.toContain('    at ');
    }
    const denied = await put(`/api/v1/recipes/${c.archiveSha256}`, recipeOf(c, chunks), reader, jsonHeaders);
    expect(denied.status).toBe(403);
  });

  it('stores a checked recipe; the archive is then served whole, by ranges across chunks, and published', async () => {
    const r = await put(`/api/v1/recipes/${c.archiveSha256}`, recipeOf(c, chunks), BOOTSTRAP, jsonHeaders);
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ status: 'created', size: c.archive.length, chunks: chunks.length });
    const again = await put(
      `/api/v1/recipes/${c.archiveSha256}`,
      recipeOf(c, chunks),
      BOOTSTRAP,
      jsonHeaders,
    );
    expect(again.status).toBe(200);
    expect(again.json.status).toBe('exists');

    const head = await request(base, 'HEAD', `/api/v1/blobs/${c.archiveSha256}`, { token: BOOTSTRAP });
    expect(head.status).toBe(200);
    expect(Number(head.headers['content-length'])).toBe(c.archive.length);
    const whole = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, { token: BOOTSTRAP });
    expect(whole.status).toBe(200);
    expect(sha(whole.body)).toBe(c.archiveSha256);
    expect(whole.headers.etag).toBe(`"${c.archiveSha256}"`);

    // Ranges that start and end inside different chunks, and one exactly on a boundary.
    // A weight file's chunk, then the tar header frame of the next file (a small chunk), then the
    // next weight file's chunk: ranges across two and three chunks.
    const big = chunks.findIndex((x) => x.size > 1000);
    expect(big).toBeGreaterThanOrEqual(0);
    const b1 = chunks[big]!.offset + chunks[big]!.size;
    const b2 = chunks[big + 1]!.offset + chunks[big + 1]!.size;
    expect(b2 - b1).toBeLessThan(1000);
    for (const [from, to] of [
      [b1 - 100, b2 + 100],
      [0, chunks[big]!.offset + 5],
      [b1, b1 + 9],
      [b1 - 1, b1],
      [c.archive.length - 10, c.archive.length - 1],
    ] as const) {
      const g = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, {
        token: BOOTSTRAP,
        headers: { range: `bytes=${from}-${to}` },
      });
      expect(g.status, `bytes=${from}-${to}: ${g.text.slice(0, 200)}`).toBe(206);
      expect(g.headers['content-range']).toBe(`bytes ${from}-${to}/${c.archive.length}`);
      expect(g.body.equals(c.archive.subarray(from, to + 1))).toBe(true);
    }

    // The component can now be published, and a reader downloads its archive.
    const pc = await put(
      `/api/v1/namespaces/${NS}/components/model/1.0.0`,
      JSON.stringify({ manifest: c.manifestText }),
      BOOTSTRAP,
      jsonHeaders,
    );
    expect(pc.status).toBe(201);
    const dl = await request(base, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0/archive`, {
      token: reader,
    });
    expect(dl.status).toBe(200);
    expect(sha(dl.body)).toBe(c.archiveSha256);
    const recipe = await request(base, 'GET', `/api/v1/recipes/${c.archiveSha256}`, { token: reader });
    expect(recipe.status).toBe(200);
    expect(recipe.headers['cache-control']).toContain('immutable');
    expect(recipe.json.chunks.map((x: Chunk) => x.sha256)).toEqual(chunks.map((x) => x.sha256));
    // A reader of another namespace may not read it.
    const other = (await createToken(base, BOOTSTRAP, 'reader', ['another-project'])).token;
    expect((await request(base, 'GET', `/api/v1/recipes/${c.archiveSha256}`, { token: other })).status).toBe(
      403,
    );
  });
});
