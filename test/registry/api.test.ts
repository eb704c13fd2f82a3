/**
 * The registry HTTP API over the embedded default (filesystem store + SQLite): content transfer
 * (streaming, digest check, ranges, ETags, caching headers), manifests, releases, pointers,
 * search, metrics, health, audit, stats, and every kind of bad input.
 */
import { createHash } from 'node:crypto';
import { readdir, rename } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/registry/server/serve.js';
import { cleanupTempDirs } from '../helpers/cli.js';
import {
  apiPublishComponent,
  BOOTSTRAP,
  createToken,
  jsonHeaders,
  packedProject,
  releaseManifest,
  request,
  startRegistry,
  type PackedComponent,
} from './helpers.js';

let srv: RunningServer & { dataDir: string; logs: string[] };
let base: string;
let comps: PackedComponent[];
const A = BOOTSTRAP;
const NS = 'test-project';
const secrets: string[] = [BOOTSTRAP];

beforeAll(async () => {
  const p = await packedProject([
    ['./models', 'model', '1.0.0'],
    ['./configs', 'config', '1.0.0'],
    ['./runtime', 'runtime', '3.10.0'],
  ]);
  comps = p.components;
  srv = await startRegistry({ maxJsonBytes: 1024 * 1024 });
  base = srv.url;
});
afterAll(async () => {
  await srv?.close();
  await cleanupTempDirs();
});

const noStack = (text: string): void => {
  expect(text).not.toMatch(/\n\s+at /);
  expect(text).not.toMatch(/node:internal|\.ts:\d+|\.js:\d+/);
};

describe('content transfer', () => {
  it('uploads by sha256, verifies while streaming, and serves ranges with ETags and immutable caching', async () => {
    const c = comps[0]!;
    const put = await request(base, 'PUT', `/api/v1/blobs/${c.archiveSha256}`, { token: A, body: c.archive });
    expect(put.status).toBe(201);
    expect(put.json).toMatchObject({ sha256: c.archiveSha256, size: c.archive.length, status: 'created' });
    const again = await request(base, 'PUT', `/api/v1/blobs/${c.archiveSha256}`, {
      token: A,
      body: c.archive,
    });
    expect(again.status).toBe(200);
    expect(again.json.status).toBe('exists');

    const full = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, { token: A });
    expect(full.status).toBe(200);
    expect(createHash('sha256').update(full.body).digest('hex')).toBe(c.archiveSha256);
    expect(full.headers.etag).toBe(`"${c.archiveSha256}"`);
    expect(full.headers['cache-control']).toContain('immutable');
    expect(full.headers['accept-ranges']).toBe('bytes');

    const part = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, {
      token: A,
      headers: { range: 'bytes=100-1099' },
    });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 100-1099/${c.archive.length}`);
    expect(part.body.equals(c.archive.subarray(100, 1100))).toBe(true);
    const suffix = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, {
      token: A,
      headers: { range: 'bytes=-10' },
    });
    expect(suffix.body.equals(c.archive.subarray(c.archive.length - 10))).toBe(true);
    const bad = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, {
      token: A,
      headers: { range: `bytes=${c.archive.length + 5}-` },
    });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${c.archive.length}`);
    const cached = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, {
      token: A,
      headers: { 'if-none-match': `"${c.archiveSha256}"` },
    });
    expect(cached.status).toBe(304);
    expect(cached.body.length).toBe(0);
    const staleIfRange = await request(base, 'GET', `/api/v1/blobs/${c.archiveSha256}`, {
      token: A,
      headers: { range: 'bytes=0-9', 'if-range': '"other"' },
    });
    expect(staleIfRange.status).toBe(200);
    const head = await request(base, 'HEAD', `/api/v1/blobs/${c.archiveSha256}`, { token: A });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(c.archive.length));
  });

  it('refuses content that does not match its declared sha256, and stores nothing', async () => {
    const data = Buffer.from('not what was declared');
    const wrong = createHash('sha256').update('something else').digest('hex');
    const r = await request(base, 'PUT', `/api/v1/blobs/${wrong}`, { token: A, body: data });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('ERR_DIGEST_MISMATCH');
    expect((await request(base, 'HEAD', `/api/v1/blobs/${wrong}`, { token: A })).status).toBe(404);
    const actual = createHash('sha256').update(data).digest('hex');
    expect((await request(base, 'HEAD', `/api/v1/blobs/${actual}`, { token: A })).status).toBe(404);
  });

  it('a client disconnecting mid-upload leaves nothing visible and the server keeps serving', async () => {
    const sha = 'f'.repeat(64);
    const u = new URL(base);
    await new Promise<void>((resolve) => {
      const sock = net.connect(Number(u.port), u.hostname, () => {
        sock.write(
          `PUT /api/v1/blobs/${sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${A}\r\nContent-Length: 10485760\r\n\r\n`,
        );
        sock.write(Buffer.alloc(512 * 1024, 1), () => {
          setTimeout(() => {
            sock.destroy();
            resolve();
          }, 100);
        });
      });
    });
    await new Promise((r) => setTimeout(r, 200));
    expect((await request(base, 'HEAD', `/api/v1/blobs/${sha}`, { token: A })).status).toBe(404);
    expect((await readdir(join(srv.dataDir, 'tmp'))).filter((n) => n.startsWith('upload-'))).toEqual([]);
    expect((await request(base, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('components, releases, pointers', () => {
  it('publishes components with metadata; versions are immutable', async () => {
    const meta = {
      description: 'ResNet-50 for image classification',
      author: 'ML Team',
      license: 'MIT',
      framework: 'pytorch',
      tags: ['computer-vision', 'classification'],
    };
    const r = await apiPublishComponent(base, A, NS, comps[0]!, meta);
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({
      namespace: NS,
      type: 'model',
      version: '1.0.0',
      metadata: meta,
      status: 'created',
    });
    for (const c of comps.slice(1)) expect((await apiPublishComponent(base, A, NS, c)).status).toBe(201);
    const same = await apiPublishComponent(base, A, NS, comps[0]!, meta);
    expect(same.status).toBe(200);
    expect(same.json.status).toBe('unchanged');
    // Same version, other content: 409.
    const other = JSON.parse(comps[0]!.manifestText) as Record<string, unknown>;
    other.createdAt = '2000-01-01T00:00:00.000Z';
    const conflict = await request(base, 'PUT', `/api/v1/namespaces/${NS}/components/model/1.0.0`, {
      token: A,
      headers: jsonHeaders,
      body: JSON.stringify({ manifest: JSON.stringify(other) }),
    });
    expect(conflict.status).toBe(409);
    expect(conflict.json.code).toBe('ERR_COMPONENT_EXISTS');
    // A manifest for another version than the URL names.
    const mismatch = await request(base, 'PUT', `/api/v1/namespaces/${NS}/components/model/9.9.9`, {
      token: A,
      headers: jsonHeaders,
      body: JSON.stringify({ manifest: comps[0]!.manifestText }),
    });
    expect(mismatch.status).toBe(400);
    // Exact manifest bytes come back.
    const m = await request(base, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0/manifest`, {
      token: A,
    });
    expect(m.status).toBe(200);
    expect(m.text).toBe(comps[0]!.manifestText);
    const info = await request(base, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0`, { token: A });
    expect(info.json).toMatchObject({
      archive: { sha256: comps[0]!.archiveSha256, compression: 'zstd' },
      signature: { status: 'unsigned' },
    });
  });

  it('refuses a component whose archive was not uploaded, and bad metadata', async () => {
    const p = await packedProject([['./configs', 'config', '2.0.0']], { 'configs/new.yaml': 'x: 2\n' });
    const c = p.components[0]!;
    const r = await request(base, 'PUT', `/api/v1/namespaces/${NS}/components/config/2.0.0`, {
      token: A,
      headers: jsonHeaders,
      body: JSON.stringify({ manifest: c.manifestText }),
    });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('ERR_BLOB_MISSING');
    const badMeta = await request(base, 'PUT', `/api/v1/namespaces/${NS}/components/config/2.0.0`, {
      token: A,
      headers: jsonHeaders,
      body: JSON.stringify({ manifest: c.manifestText, metadata: { tags: ['../x'], extra: 1 } }),
    });
    expect(badMeta.status).toBe(400);
    expect(badMeta.json.code).toBe('ERR_INVALID_BODY');
  });

  it('publishes releases over published components only; releases are immutable', async () => {
    const text = releaseManifest('2024.01.20', comps, 'first release');
    const r = await request(base, 'PUT', `/api/v1/namespaces/${NS}/releases/2024.01.20`, {
      token: A,
      headers: jsonHeaders,
      body: text,
    });
    expect(r.status).toBe(201);
    expect(r.json.components).toEqual(['model:1.0.0', 'config:1.0.0', 'runtime:3.10.0']);
    const again = await request(base, 'PUT', `/api/v1/namespaces/${NS}/releases/2024.01.20`, {
      token: A,
      headers: jsonHeaders,
      body: text,
    });
    expect(again.status).toBe(200);
    const other = releaseManifest('2024.01.20', comps.slice(0, 1), 'changed');
    const conflict = await request(base, 'PUT', `/api/v1/namespaces/${NS}/releases/2024.01.20`, {
      token: A,
      headers: jsonHeaders,
      body: other,
    });
    expect(conflict.status).toBe(409);
    expect(conflict.json.code).toBe('ERR_RELEASE_EXISTS');
    const missing = await request(base, 'PUT', `/api/v1/namespaces/other-ns/releases/2024.01.20`, {
      token: A,
      headers: jsonHeaders,
      body: text,
    });
    expect(missing.status).toBe(400);
    expect(missing.json.code).toBe('ERR_COMPONENT_MISMATCH');
    const got = await request(base, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.20/manifest`, {
      token: A,
    });
    expect(got.text).toBe(text);
    expect(
      (
        await request(base, 'PUT', `/api/v1/namespaces/${NS}/releases/2024.01.21`, {
          token: A,
          headers: jsonHeaders,
          body: releaseManifest('2024.01.21', comps.slice(0, 2)),
        })
      ).status,
    ).toBe(201);
    // A component in a release cannot be deleted.
    const del = await request(base, 'DELETE', `/api/v1/namespaces/${NS}/components/model/1.0.0`, {
      token: A,
    });
    expect(del.status).toBe(409);
  });

  it('moves pointers by compare-and-swap only', async () => {
    const path = `/api/v1/namespaces/${NS}/pointers/production`;
    const body = (target: string): string => JSON.stringify({ target });
    const none = await request(base, 'PUT', path, {
      token: A,
      headers: jsonHeaders,
      body: body('2024.01.20'),
    });
    expect(none.status).toBe(428);
    const created = await request(base, 'PUT', path, {
      token: A,
      headers: { ...jsonHeaders, 'if-none-match': '*' },
      body: body('2024.01.20'),
    });
    expect(created.status).toBe(201);
    expect(created.headers.etag).toBe('"1"');
    const dup = await request(base, 'PUT', path, {
      token: A,
      headers: { ...jsonHeaders, 'if-none-match': '*' },
      body: body('2024.01.20'),
    });
    expect(dup.status).toBe(412);
    const moved = await request(base, 'PUT', path, {
      token: A,
      headers: { ...jsonHeaders, 'if-match': '"1"' },
      body: body('2024.01.21'),
    });
    expect(moved.status).toBe(200);
    expect(moved.json).toMatchObject({ target: '2024.01.21', revision: 2 });
    const stale = await request(base, 'PUT', path, {
      token: A,
      headers: { ...jsonHeaders, 'if-match': '"1"' },
      body: body('2024.01.20'),
    });
    expect(stale.status).toBe(412);
    expect(stale.headers.etag).toBe('"2"');
    const unknown = await request(base, 'PUT', path, {
      token: A,
      headers: { ...jsonHeaders, 'if-match': '"2"' },
      body: body('9.9.9'),
    });
    expect(unknown.status).toBe(400);
    const g = await request(base, 'GET', path, { token: A });
    expect(g.json.target).toBe('2024.01.21');
    const rel = await request(base, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.21`, { token: A });
    expect(rel.json.pointers).toEqual(['production']);
    // A release a pointer names cannot be deleted.
    expect(
      (await request(base, 'DELETE', `/api/v1/namespaces/${NS}/releases/2024.01.21`, { token: A })).status,
    ).toBe(409);
  });

  it('searches names, versions and metadata', async () => {
    const r = await request(base, 'GET', '/api/v1/search?q=classification%20resnet', { token: A });
    expect(r.status).toBe(200);
    expect(r.json.components.map((c: { type: string }) => c.type)).toEqual(['model']);
    const tag = await request(base, 'GET', '/api/v1/search?tag=computer-vision', { token: A });
    expect(tag.json.components).toHaveLength(1);
    const rel = await request(base, 'GET', '/api/v1/search?q=2024.01', { token: A });
    expect(rel.json.releases.map((x: { release: string }) => x.release).sort()).toEqual([
      '2024.01.20',
      '2024.01.21',
    ]);
    const none = await request(base, 'GET', '/api/v1/search?q=nothing-like-this', { token: A });
    expect(none.json.components).toEqual([]);
  });

  it('counts downloads per component, and reports them in stats and metrics', async () => {
    const c = comps[0]!;
    const path = `/api/v1/namespaces/${NS}/components/model/1.0.0/archive`;
    for (let i = 0; i < 3; i++) expect((await request(base, 'GET', path, { token: A })).status).toBe(200);
    // A continuation range of one download does not count as a new download.
    await request(base, 'GET', path, { token: A, headers: { range: 'bytes=10-19' } });
    const info = await request(base, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0`, { token: A });
    expect(info.json.downloads).toBeGreaterThanOrEqual(3);
    const s = await request(base, 'GET', '/api/v1/stats', { token: A });
    const row = s.json.components.find((x: { type: string }) => x.type === 'model');
    expect(row.downloads).toBe(info.json.downloads);
    expect(row.bytes).toBeGreaterThanOrEqual(3 * c.archive.length);
    const m = await request(base, 'GET', '/metrics', { token: A });
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toContain('text/plain');
    for (const family of [
      'deploy_tool_registry_requests_total{',
      'deploy_tool_registry_bytes_received_total ',
      'deploy_tool_registry_bytes_sent_total ',
      'deploy_tool_registry_request_duration_seconds_bucket{',
      `deploy_tool_registry_downloads_total{namespace="${NS}",type="model"}`,
      'deploy_tool_registry_auth_failures_total',
    ])
      expect(m.text).toContain(family);
  });
});

describe('deletes (admin only), audited', () => {
  it('deletes a pointer, a release and a component; each is gone and each delete is in the audit log', async () => {
    const ptr = `/api/v1/namespaces/${NS}/pointers/production`;
    const cur = await request(base, 'GET', ptr, { token: A });
    expect(cur.status).toBe(200);
    const rev = cur.headers.etag ?? '';
    expect((await request(base, 'DELETE', ptr, { token: A, headers: { 'if-match': '"999"' } })).status).toBe(
      412,
    );
    expect((await request(base, 'DELETE', ptr, { token: A, headers: { 'if-match': rev } })).status).toBe(200);
    expect((await request(base, 'GET', ptr, { token: A })).status).toBe(404);

    const rel = `/api/v1/namespaces/${NS}/releases/2024.01.21`;
    expect((await request(base, 'DELETE', rel, { token: A })).status).toBe(200);
    expect((await request(base, 'GET', rel, { token: A })).status).toBe(404);
    expect((await request(base, 'GET', `${rel}/manifest`, { token: A })).status).toBe(404);
    const search = await request(base, 'GET', '/api/v1/search?q=2024.01', { token: A });
    expect(search.json.releases.map((x: { release: string }) => x.release)).toEqual(['2024.01.20']);

    const p = await packedProject([['./configs', 'config', '3.0.0']], { 'configs/three.yaml': 'x: 3\n' });
    const c = p.components[0]!;
    expect((await apiPublishComponent(base, A, NS, c)).status).toBe(201);
    const comp = `/api/v1/namespaces/${NS}/components/config/3.0.0`;
    const publisher = await createToken(base, A, 'publisher', [NS]);
    secrets.push(publisher.token);
    expect((await request(base, 'DELETE', comp, { token: publisher.token })).status).toBe(403);
    expect((await request(base, 'DELETE', comp, { token: A })).status).toBe(200);
    expect((await request(base, 'GET', comp, { token: A })).status).toBe(404);
    expect((await request(base, 'GET', `${comp}/archive`, { token: A })).status).toBe(404);
    expect((await request(base, 'DELETE', comp, { token: A })).status).toBe(404);
    // The version is free again: publishing it again creates it.
    expect((await apiPublishComponent(base, A, NS, c)).status).toBe(201);

    const audit = await request(base, 'GET', '/api/v1/audit?limit=1000', { token: A });
    const events = audit.json.events as {
      action: string;
      target: string;
      actor: string;
      namespace: string;
    }[];
    const find = (action: string) => events.find((e) => e.action === action);
    expect(find('pointer.delete')).toMatchObject({ target: 'production', namespace: NS });
    expect(find('release.delete')).toMatchObject({ target: '2024.01.21', namespace: NS });
    expect(find('component.delete')).toMatchObject({ target: 'config:3.0.0', namespace: NS });
    for (const a of ['pointer.delete', 'release.delete', 'component.delete'])
      expect(find(a)?.actor).toContain('bootstrap');
  });
});

describe('upload limits and framing', () => {
  const MAX = 64 * 1024;
  let small: Awaited<ReturnType<typeof startRegistry>>;
  beforeAll(async () => {
    small = await startRegistry({ maxBlobBytes: MAX });
  });
  afterAll(async () => {
    await small?.close();
  });

  /** A chunked upload (no Content-Length): the limit must hold while streaming. */
  const chunked = (
    sha: string,
    total: number,
  ): Promise<{ status: number; text: string } | { error: string }> =>
    new Promise((resolve) => {
      const u = new URL(small.url);
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          method: 'PUT',
          path: `/api/v1/blobs/${sha}`,
          headers: { authorization: `Bearer ${A}`, 'transfer-encoding': 'chunked' },
          agent: false,
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', (e) => resolve({ error: String(e) }));
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += 16 * 1024;
          if (!req.write(Buffer.alloc(16 * 1024, 7))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });

  it('refuses content over maxBlobBytes, declared or streamed, and stores nothing', async () => {
    const big = Buffer.alloc(MAX + 1, 3);
    const sha = createHash('sha256').update(big).digest('hex');
    const declared = await request(small.url, 'PUT', `/api/v1/blobs/${sha}`, { token: A, body: big });
    expect(declared.status).toBe(413);
    expect(declared.json.code).toBe('ERR_BODY_TOO_LARGE');
    const streamed = Buffer.alloc(4 * MAX, 7);
    const sha2 = createHash('sha256').update(streamed).digest('hex');
    const r = await chunked(sha2, streamed.length);
    expect(r).toMatchObject({ status: 413 });
    expect('text' in r && (JSON.parse(r.text) as { code: string }).code).toBe('ERR_BODY_TOO_LARGE');
    for (const s of [sha, sha2])
      expect((await request(small.url, 'HEAD', `/api/v1/blobs/${s}`, { token: A })).status).toBe(404);
    expect((await readdir(join(small.dataDir, 'tmp'))).filter((n) => n.startsWith('upload-'))).toEqual([]);
    // Exactly the limit is fine, and the server kept serving.
    const fits = Buffer.alloc(MAX, 5);
    const ok = await request(
      small.url,
      'PUT',
      `/api/v1/blobs/${createHash('sha256').update(fits).digest('hex')}`,
      {
        token: A,
        body: fits,
      },
    );
    expect(ok.status).toBe(201);
  });

  it('a body longer than its Content-Length: only the declared bytes count, nothing wrong is stored', async () => {
    const body = Buffer.from('x'.repeat(100) + 'y'.repeat(100));
    const whole = createHash('sha256').update(body).digest('hex');
    const first = createHash('sha256').update(body.subarray(0, 100)).digest('hex');
    const u = new URL(small.url);
    const text = await new Promise<string>((resolve) => {
      let out = '';
      const sock = net.connect(Number(u.port), u.hostname, () => {
        sock.write(
          `PUT /api/v1/blobs/${whole} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${A}\r\nContent-Length: 100\r\n\r\n`,
        );
        sock.write(body);
      });
      sock.on('data', (c) => (out += c.toString()));
      sock.on('close', () => resolve(out));
      setTimeout(() => sock.destroy(), 3000);
    });
    // The 100 bytes after the declared body are not a request: the connection is answered 400
    // and closed (before or after the upload's own answer: the declared 100 bytes do not have the
    // declared sha256, so that one is a 400 too).
    expect(text).toMatch(/^HTTP\/1\.1 400/);
    expect(text).not.toMatch(/HTTP\/1\.1 [235]\d\d/);
    expect(text).toMatch(/"code":"ERR_(BAD_REQUEST|DIGEST_MISMATCH)"/);
    noStack(text);
    await new Promise((r) => setTimeout(r, 300));
    expect((await readdir(join(small.dataDir, 'tmp'))).filter((n) => n.startsWith('upload-'))).toEqual([]);
    for (const s of [whole, first])
      expect((await request(small.url, 'HEAD', `/api/v1/blobs/${s}`, { token: A })).status).toBe(404);
    expect((await request(small.url, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('bad input: 4xx JSON {code, message}, never a 500 or a stack trace', () => {
  const cases: [string, string, string, Record<string, string>?, (string | Buffer)?][] = [
    ['unknown route', 'GET', '/api/v1/nope'],
    ['unknown top-level route', 'GET', '/wp-admin.php'],
    ['wrong method', 'PATCH', '/api/v1/search'],
    ['dot-dot segment', 'GET', '/api/v1/namespaces/../components'],
    ['encoded dot-dot', 'GET', '/api/v1/namespaces/%2e%2e/components'],
    ['control character', 'GET', '/api/v1/namespaces/a%01b/components'],
    ['NUL', 'GET', '/api/v1/namespaces/a%00/components'],
    ['bad escape', 'GET', '/api/v1/namespaces/%zz/components'],
    ['name with ..', 'GET', '/api/v1/namespaces/test-project/components/model/1..0'],
    ['name with space', 'GET', '/api/v1/namespaces/a%20b/components'],
    ['bad sha', 'GET', '/api/v1/blobs/xyz'],
    ['malformed JSON', 'POST', '/api/v1/tokens', jsonHeaders, '{"name": '],
    ['JSON of the wrong shape', 'POST', '/api/v1/tokens', jsonHeaders, '[1,2,3]'],
    ['wrong content type', 'POST', '/api/v1/tokens', { 'content-type': 'text/plain' }, 'x'],
    ['oversized body', 'POST', '/api/v1/tokens', jsonHeaders, Buffer.alloc(200 * 1024, 32)],
    [
      'oversized manifest',
      'PUT',
      '/api/v1/namespaces/test-project/components/model/5.0.0',
      jsonHeaders,
      Buffer.alloc(2 * 1024 * 1024, 32),
    ],
    [
      'manifest that is not a manifest',
      'PUT',
      '/api/v1/namespaces/test-project/components/model/5.0.0',
      jsonHeaders,
      '{"manifest": "{\\"a\\":1}"}',
    ],
    [
      'release manifest garbage',
      'PUT',
      '/api/v1/namespaces/test-project/releases/r9',
      jsonHeaders,
      '{"kind": 5}',
    ],
    [
      'pointer body garbage',
      'PUT',
      '/api/v1/namespaces/test-project/pointers/latest',
      { ...jsonHeaders, 'if-none-match': '*' },
      '"x"',
    ],
    ['bad limit', 'GET', '/api/v1/search?limit=-4'],
    ['bad date', 'GET', '/api/v1/stats?since=yesterday-ish'],
    ['bad range unit', 'GET', '/api/v1/blobs/' + 'a'.repeat(64)],
    [
      'bad If-Match',
      'PUT',
      '/api/v1/namespaces/test-project/pointers/latest',
      { ...jsonHeaders, 'if-match': 'W/"x"' },
      '{"target":"2024.01.20"}',
    ],
  ];
  it.each(cases)('%s', async (_name, method, path, headers, body) => {
    const r = await request(base, method, path, {
      token: A,
      headers: headers ?? {},
      ...(body !== undefined ? { body } : {}),
    });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.headers['content-type']).toContain('application/json');
    expect(typeof r.json.code).toBe('string');
    expect(typeof r.json.message).toBe('string');
    noStack(r.text);
  });

  it('answers a malformed HTTP request with 400', async () => {
    const u = new URL(base);
    const text = await new Promise<string>((resolve) => {
      let out = '';
      const sock = net.connect(Number(u.port), u.hostname, () => sock.write('GARBAGE /\r\n\r\n'));
      sock.on('data', (c) => (out += c.toString()));
      sock.on('close', () => resolve(out));
    });
    expect(text).toMatch(/^HTTP\/1\.1 400/);
    noStack(text);
  });
});

describe('tokens', () => {
  it('are shown once, stored as hashes, expire and can be revoked; changes are audited', async () => {
    const t = await createToken(base, A, 'reader', [NS], { expiresInDays: 1 });
    secrets.push(t.token);
    expect(t.token).toMatch(/^dtr_/);
    expect((await request(base, 'GET', '/api/v1/whoami', { token: t.token })).json).toMatchObject({
      role: 'reader',
      namespaces: [NS],
    });
    const list = await request(base, 'GET', '/api/v1/tokens', { token: A });
    expect(list.text).not.toContain(t.token);
    expect(list.text).not.toContain('"hash"');
    // Stored only as a hash.
    const db = new Database(join(srv.dataDir, 'registry.db'), { readonly: true });
    const rows = db.prepare('SELECT * FROM tokens').all() as Record<string, unknown>[];
    expect(JSON.stringify(rows)).not.toContain(t.token);
    expect(JSON.stringify(rows)).not.toContain(BOOTSTRAP);
    db.close();
    // Expire it (as time would).
    const w = new Database(join(srv.dataDir, 'registry.db'));
    w.prepare('UPDATE tokens SET expires_at = ? WHERE id = ?').run('2000-01-01T00:00:00.000Z', t.id);
    w.close();
    const expired = await request(base, 'GET', '/api/v1/whoami', { token: t.token });
    expect(expired.status).toBe(401);
    expect(expired.json.message).toContain('expired');
    const t2 = await createToken(base, A, 'publisher', [NS]);
    secrets.push(t2.token);
    expect((await request(base, 'DELETE', `/api/v1/tokens/${t2.id}`, { token: A })).status).toBe(200);
    expect((await request(base, 'GET', '/api/v1/whoami', { token: t2.token })).json.message).toContain(
      'revoked',
    );
    // A scoped admin cannot mint tokens outside its scope or above its role.
    const scoped = await createToken(base, A, 'admin', [NS]);
    secrets.push(scoped.token);
    const escalate = await request(base, 'POST', '/api/v1/tokens', {
      token: scoped.token,
      headers: jsonHeaders,
      body: JSON.stringify({ name: 'x', role: 'admin', namespaces: ['*'] }),
    });
    expect(escalate.status).toBe(403);
    const audit = await request(base, 'GET', '/api/v1/audit?limit=1000', { token: A });
    const actions = audit.json.events.map((e: { action: string }) => e.action);
    for (const a of ['token.create', 'token.revoke', 'component.publish', 'release.publish', 'pointer.move'])
      expect(actions).toContain(a);
    const pub = audit.json.events.find((e: { action: string }) => e.action === 'release.publish');
    expect(pub).toMatchObject({
      actor: expect.stringContaining('bootstrap'),
      namespace: NS,
      address: '127.0.0.1',
    });
  });
});

describe('health', () => {
  it('readyz is 503 while the store is gone, and recovers when it is back', async () => {
    expect((await request(base, 'GET', '/readyz')).json).toEqual({
      status: 'ready',
      checks: { database: 'ok', store: 'ok' },
    });
    const store = join(srv.dataDir, 'store');
    await rename(store, `${store}.away`);
    try {
      await new Promise((r) => setTimeout(r, 1100));
      const r = await request(base, 'GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.json.checks.store).toBe('unavailable');
      const blob = await request(base, 'GET', `/api/v1/blobs/${comps[0]!.archiveSha256}`, { token: A });
      expect(blob.status).toBe(503);
      expect(blob.json.code).toBe('ERR_STORE_UNAVAILABLE');
    } finally {
      await rename(`${store}.away`, store);
    }
    await new Promise((r) => setTimeout(r, 1100));
    expect((await request(base, 'GET', '/readyz')).status).toBe(200);
    expect(
      (await request(base, 'GET', `/api/v1/blobs/${comps[0]!.archiveSha256}`, { token: A })).status,
    ).toBe(200);
  });

  it('never writes a token to its log', () => {
    const log = srv.logs.join('\n');
    expect(log.length).toBeGreaterThan(0);
    for (const s of secrets) expect(log).not.toContain(s);
    noStack(
      log
        .split('\n')
        .filter((l) => !l.startsWith('error'))
        .join('\n'),
    );
  });
});
