/**
 * One conformance suite for the metadata repository, run against SQLite and a real PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createPostgresRepo } from '../../src/registry/server/repo/postgres.js';
import { createSqliteRepo } from '../../src/registry/server/repo/sqlite.js';
import type { ComponentRow, MetadataRepo } from '../../src/registry/server/repo/types.js';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';
import { destroyPostgres, startPostgres, type Postgres } from './helpers.js';

let pgServer: Postgres | undefined;

beforeAll(async () => {
  pgServer = await startPostgres();
});
afterAll(async () => {
  await destroyPostgres(pgServer);
  await cleanupTempDirs();
});

const component = (
  ns: string,
  type: string,
  version: string,
  extra: Partial<ComponentRow> = {},
): ComponentRow => ({
  namespace: ns,
  type,
  version,
  manifestSha256: 'a'.repeat(64),
  manifestSize: 100,
  archiveSha256: 'b'.repeat(64),
  archiveSize: 1000,
  archiveName: `${type}-${version}.tar.zst`,
  compression: 'zstd',
  files: 3,
  totalSize: 2000,
  metadata: {
    description: `${type} for tests`,
    author: 'ML Team',
    license: 'MIT',
    framework: 'pytorch',
    tags: ['vision'],
  },
  createdAt: new Date().toISOString(),
  publishedBy: 'tester',
  ...extra,
});

const factories: [string, () => Promise<MetadataRepo>][] = [
  ['sqlite', async () => createSqliteRepo(join(await tempDir('sqlite-'), 'r.db'))],
  ['postgres', async () => createPostgresRepo(await pgServer!.createDatabase())],
];

describe.each(factories)('metadata repository: %s', (_name, make) => {
  let repo: MetadataRepo;
  beforeAll(async () => {
    repo = await make();
    await repo.migrate();
    await repo.migrate(); // idempotent
  });
  afterAll(async () => {
    await repo.close();
  });

  it('answers ping', async () => {
    await expect(repo.ping()).resolves.toBeUndefined();
  });

  it('stores tokens, finds them by id, revokes once', async () => {
    const row = {
      id: '0123456789abcdef',
      name: 'ci',
      hash: 'c'.repeat(64),
      role: 'publisher' as const,
      namespaces: ['proj-a'],
      createdAt: new Date().toISOString(),
      createdBy: 'admin',
      expiresAt: null,
      revokedAt: null,
      lastUsedAt: null,
    };
    expect(await repo.insertToken(row)).toBe('created');
    expect(await repo.insertToken(row)).toBe('exists');
    expect(await repo.countTokens()).toBe(1);
    expect(await repo.getToken(row.id)).toEqual(row);
    expect(await repo.revokeToken(row.id, new Date().toISOString())).toBe(true);
    expect(await repo.revokeToken(row.id, new Date().toISOString())).toBe(false);
    expect((await repo.getToken(row.id))?.revokedAt).toBeTruthy();
  });

  it('component versions are immutable: the second insert of a key is "exists"', async () => {
    expect(await repo.insertComponent(component('proj-a', 'model', '1.0.0'))).toBe('created');
    expect(
      await repo.insertComponent(component('proj-a', 'model', '1.0.0', { manifestSha256: 'd'.repeat(64) })),
    ).toBe('exists');
    expect((await repo.getComponent('proj-a', 'model', '1.0.0'))?.manifestSha256).toBe('a'.repeat(64));
    // Concurrent inserts of one key: exactly one wins.
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        repo.insertComponent(component('proj-a', 'model', '2.0.0', { manifestSha256: String(i).repeat(64) })),
      ),
    );
    expect(results.filter((r) => r === 'created')).toHaveLength(1);
    expect(await repo.blobNamespaces('b'.repeat(64))).toContainEqual({
      namespace: 'proj-a',
      type: 'model',
      version: '1.0.0',
      isArchive: true,
    });
  });

  it('releases link components; one transaction; duplicates are "exists"', async () => {
    const r = {
      namespace: 'proj-a',
      release: '2024.01.20',
      manifestSha256: 'e'.repeat(64),
      notes: 'first',
      components: ['model:1.0.0'],
      createdAt: new Date().toISOString(),
      publishedBy: 'tester',
    };
    expect(await repo.insertRelease(r)).toBe('created');
    expect(await repo.insertRelease({ ...r, manifestSha256: 'f'.repeat(64) })).toBe('exists');
    expect(await repo.releasesUsing('proj-a', 'model', '1.0.0')).toEqual(['2024.01.20']);
    expect((await repo.listReleases({ namespaces: ['proj-a'], limit: 10 })).map((x) => x.release)).toEqual([
      '2024.01.20',
    ]);
    expect(await repo.listReleases({ namespaces: ['other'], limit: 10 })).toEqual([]);
  });

  it('pointers move by compare-and-swap only', async () => {
    const at = new Date().toISOString();
    const c1 = await repo.setPointer('proj-a', 'production', '2024.01.20', null, 'a', at);
    expect(c1.status).toBe('ok');
    expect((await repo.setPointer('proj-a', 'production', 'x', null, 'a', at)).status).toBe('conflict');
    expect((await repo.setPointer('proj-a', 'production', 'x', 7, 'a', at)).status).toBe('conflict');
    // Eight racing movers from revision 1: exactly one wins.
    const racers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => repo.setPointer('proj-a', 'production', `r${i}`, 1, `m${i}`, at)),
    );
    expect(racers.filter((r) => r.status === 'ok')).toHaveLength(1);
    const p = await repo.getPointer('proj-a', 'production');
    expect(p?.revision).toBe(2);
    expect(await repo.deletePointer('proj-a', 'production', 1)).toBe(false);
    expect(await repo.deletePointer('proj-a', 'production', 2)).toBe(true);
  });

  it('searches names and metadata, filters by namespace, tag and framework, escapes LIKE', async () => {
    await repo.insertComponent(
      component('proj-b', 'resnet50', '1.0.0', {
        metadata: {
          description: 'ResNet-50 image classifier',
          author: 'Vision',
          license: 'Apache-2.0',
          framework: 'onnx',
          tags: ['computer-vision', 'classification'],
        },
      }),
    );
    const all = null;
    const s1 = await repo.search({ terms: ['resnet'], namespaces: all, limit: 10 });
    expect(s1.components.map((c) => c.type)).toEqual(['resnet50']);
    expect(
      (await repo.search({ terms: ['IMAGE', 'classifier'], namespaces: all, limit: 10 })).components,
    ).toHaveLength(1);
    expect(
      (await repo.search({ terms: ['resnet'], namespaces: ['proj-a'], limit: 10 })).components,
    ).toHaveLength(0);
    expect(
      (await repo.search({ terms: [], namespaces: all, tag: 'classification', limit: 10 })).components,
    ).toHaveLength(1);
    expect(
      (await repo.search({ terms: [], namespaces: all, tag: 'class', limit: 10 })).components,
    ).toHaveLength(0);
    expect(
      (await repo.search({ terms: [], namespaces: all, framework: 'ONNX', limit: 10 })).components,
    ).toHaveLength(1);
    expect((await repo.search({ terms: ['%'], namespaces: all, limit: 10 })).components).toHaveLength(0);
    expect((await repo.search({ terms: ['2024.01'], namespaces: all, limit: 10 })).releases).toHaveLength(1);
  });

  it('aggregates downloads per day and reports a period', async () => {
    await repo.recordDownload('proj-a', 'model', '1.0.0', '2026-01-01', 1, 100);
    await repo.recordDownload('proj-a', 'model', '1.0.0', '2026-01-01', 1, 50);
    await repo.recordDownload('proj-a', 'model', '1.0.0', '2026-01-02', 0, 25);
    await repo.recordDownload('proj-b', 'resnet50', '1.0.0', '2026-01-03', 1, 10);
    expect(await repo.downloadsOf('proj-a', 'model', '1.0.0')).toBe(2);
    const s = await repo.stats({ since: '2026-01-01', until: '2026-01-02', namespaces: null });
    expect(s).toEqual([{ namespace: 'proj-a', type: 'model', version: '1.0.0', downloads: 2, bytes: 175 }]);
    expect(
      await repo.stats({ since: '2026-01-01', until: '2026-01-31', namespaces: ['proj-b'] }),
    ).toHaveLength(1);
  });

  it('keeps an audit log, newest first, filtered by namespace', async () => {
    await repo.addAudit({
      at: '2026-01-01T00:00:00.000Z',
      actor: 'a',
      address: '127.0.0.1',
      action: 'release.publish',
      namespace: 'proj-a',
      target: 'r1',
      details: { x: 1 },
    });
    await repo.addAudit({
      at: '2026-01-02T00:00:00.000Z',
      actor: 'b',
      address: '127.0.0.1',
      action: 'token.create',
      namespace: null,
      target: 't',
      details: null,
    });
    const all = await repo.listAudit({ limit: 10, namespaces: null });
    expect(all.map((e) => e.action)).toEqual(['token.create', 'release.publish']);
    expect(all[1]?.details).toEqual({ x: 1 });
    expect((await repo.listAudit({ limit: 10, namespaces: ['proj-a'] })).map((e) => e.target)).toEqual([
      'r1',
    ]);
    expect(
      await repo.listAudit({ limit: 10, namespaces: null, since: '2026-01-02T00:00:00.000Z' }),
    ).toHaveLength(1);
  });
});
