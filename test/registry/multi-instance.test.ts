/**
 * Two stateless server instances over one PostgreSQL and one shared store serve the same data
 * consistently: what one publishes the other serves, racing publishes of one version have
 * exactly one winner, pointer compare-and-swap holds across instances, tokens are shared, and
 * both report 503 while the database is down and recover when it is back.
 * The suite runs twice: over a shared filesystem folder, and over one bucket of a real Ceph radosgw
 * (`serve --store s3://BUCKET/PREFIX`), as a company runs several instances behind a load balancer.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Store } from '../../src/store/drivers/s3.js';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';
import { makeS3Store, startCeph } from '../store/ceph.js';
import {
  apiPublishComponent,
  BOOTSTRAP,
  createToken,
  destroyPostgres,
  jsonHeaders,
  packedProject,
  releaseManifest,
  request,
  startPostgres,
  startRegistry,
  type PackedComponent,
  type Postgres,
} from './helpers.js';

const NS = 'test-project';

describe.each(['filesystem folder', 'Ceph bucket'] as const)(
  'two instances, one PostgreSQL, one %s',
  (kind) => {
    let pgServer: Postgres;
    let a: Awaited<ReturnType<typeof startRegistry>>;
    let b: Awaited<ReturnType<typeof startRegistry>>;
    let comps: PackedComponent[];
    let bucket: S3Store | undefined;
    const savedEnv: Record<string, string | undefined> = {};

    beforeAll(async () => {
      pgServer = await startPostgres();
      const db = await pgServer.createDatabase();
      let store: string;
      let s3: { endpoint: string } | undefined;
      if (kind === 'Ceph bucket') {
        const ceph = await startCeph();
        // The servers run in this process: the S3 driver reads credentials from the environment.
        for (const [k, v] of Object.entries(ceph.env)) {
          savedEnv[k] = process.env[k];
          process.env[k] = v;
        }
        bucket = await makeS3Store(ceph, 'registry-shared');
        store = `s3://${bucket.bucket}/registry`;
        s3 = { endpoint: ceph.endpoint };
      } else {
        store = await tempDir('shared-store-');
      }
      comps = (
        await packedProject([
          ['./models', 'model', '1.0.0'],
          ['./configs', 'config', '1.0.0'],
        ])
      ).components;
      [a, b] = await Promise.all([startRegistry({ db, store, s3 }), startRegistry({ db, store, s3 })]);
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
      await destroyPostgres(pgServer);
      for (const [k, v] of Object.entries(savedEnv)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await cleanupTempDirs();
    });

    it('bootstraps once', () => {
      expect([a.bootstrapped, b.bootstrapped].filter(Boolean)).toHaveLength(1);
    });

    it('serves on B what was published on A', async () => {
      for (const c of comps)
        expect((await apiPublishComponent(a.url, BOOTSTRAP, NS, c, { tags: ['shared'] })).status).toBe(201);
      const info = await request(b.url, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0`, {
        token: BOOTSTRAP,
      });
      expect(info.status).toBe(200);
      expect(info.json.metadata.tags).toEqual(['shared']);
      const m = await request(b.url, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0/manifest`, {
        token: BOOTSTRAP,
      });
      expect(m.text).toBe(comps[0]!.manifestText);
      const blob = await request(b.url, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0/archive`, {
        token: BOOTSTRAP,
      });
      expect(createHash('sha256').update(blob.body).digest('hex')).toBe(comps[0]!.archiveSha256);
      const s = await request(b.url, 'GET', '/api/v1/search?tag=shared', { token: BOOTSTRAP });
      expect(s.json.components).toHaveLength(2);
    });

    it('racing publishes of one release version: exactly one wins, the other gets a conflict', async () => {
      for (let round = 0; round < 5; round++) {
        const version = `2025.01.${10 + round}`;
        const [ra, rb] = await Promise.all([
          request(a.url, 'PUT', `/api/v1/namespaces/${NS}/releases/${version}`, {
            token: BOOTSTRAP,
            headers: jsonHeaders,
            body: releaseManifest(version, comps.slice(0, 1), 'from A'),
          }),
          request(b.url, 'PUT', `/api/v1/namespaces/${NS}/releases/${version}`, {
            token: BOOTSTRAP,
            headers: jsonHeaders,
            body: releaseManifest(version, comps, 'from B'),
          }),
        ]);
        expect([ra.status, rb.status].sort()).toEqual([201, 409]);
        const winner = ra.status === 201 ? 'from A' : 'from B';
        for (const s of [a, b]) {
          const g = await request(s.url, 'GET', `/api/v1/namespaces/${NS}/releases/${version}`, {
            token: BOOTSTRAP,
          });
          expect(g.json.notes).toBe(winner);
        }
      }
    });

    it('pointer compare-and-swap holds across instances', async () => {
      const path = `/api/v1/namespaces/${NS}/pointers/production`;
      const created = await request(a.url, 'PUT', path, {
        token: BOOTSTRAP,
        headers: { ...jsonHeaders, 'if-none-match': '*' },
        body: JSON.stringify({ target: '2025.01.10' }),
      });
      expect(created.status).toBe(201);
      const [ra, rb] = await Promise.all(
        [a, b].map((s, i) =>
          request(s.url, 'PUT', path, {
            token: BOOTSTRAP,
            headers: { ...jsonHeaders, 'if-match': '"1"' },
            body: JSON.stringify({ target: `2025.01.1${i + 1}` }),
          }),
        ),
      );
      expect([ra!.status, rb!.status].sort()).toEqual([200, 412]);
      const pa = await request(a.url, 'GET', path, { token: BOOTSTRAP });
      const pb = await request(b.url, 'GET', path, { token: BOOTSTRAP });
      expect(pa.json).toEqual(pb.json);
      expect(pa.json.revision).toBe(2);
    });

    it('shares tokens: created on A, used and revoked on B', async () => {
      const t = await createToken(a.url, BOOTSTRAP, 'reader', [NS]);
      expect((await request(b.url, 'GET', '/api/v1/whoami', { token: t.token })).status).toBe(200);
      expect((await request(b.url, 'DELETE', `/api/v1/tokens/${t.id}`, { token: BOOTSTRAP })).status).toBe(
        200,
      );
      expect((await request(a.url, 'GET', '/api/v1/whoami', { token: t.token })).status).toBe(401);
    });

    it('reports 503 while the database is down and recovers when it is back', async () => {
      await pgServer.stop();
      try {
        for (const s of [a, b]) {
          const r = await request(s.url, 'GET', '/readyz');
          expect(r.status).toBe(503);
          expect(r.json.checks.database).toBe('unavailable');
          const q = await request(s.url, 'GET', '/api/v1/search?q=model', { token: BOOTSTRAP });
          expect(q.status).toBe(503);
          expect(q.json.code).toBe('ERR_DB_UNAVAILABLE');
          expect(q.text).not.toMatch(/\n\s+at /);
          expect((await request(s.url, 'GET', '/healthz')).status).toBe(200);
        }
      } finally {
        await pgServer.start();
      }
      for (const s of [a, b]) {
        let status = 0;
        for (let i = 0; i < 50 && status !== 200; i++) {
          status = (await request(s.url, 'GET', '/readyz')).status;
          if (status !== 200) await new Promise((r) => setTimeout(r, 200));
        }
        expect(status).toBe(200);
        expect((await request(s.url, 'GET', '/api/v1/search?q=model', { token: BOOTSTRAP })).status).toBe(
          200,
        );
      }
    });

    if (kind === 'Ceph bucket')
      it('keeps the archives in the Ceph bucket that both instances share', async () => {
        const objects = await bucket!.list('registry/');
        const sizes = objects.map((o) => o.size);
        for (const c of comps) expect(sizes).toContain(c.archive.length);
        expect(a.describe.store).toMatch(/s3|registry-shared/);
      });
  },
);
