/**
 * The whole access matrix, generated from the route table (a new route is covered automatically):
 * every endpoint x {no token, bad token, revoked token, reader/publisher/admin of another
 * namespace, reader/publisher/admin of the namespace}, for each method (HEAD too) and with bad,
 * revoked and expired tokens. Plus anonymous read, and the slow-down of repeated failures from one
 * address, on the API and on the web UI's login form.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Route } from '../../src/registry/server/app.js';
import { apiRoutes } from '../../src/registry/server/routes-api.js';
import { uiRoutes } from '../../src/registry/server/routes-ui.js';
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

const NS = 'test-project';
let srv: Awaited<ReturnType<typeof startRegistry>>;
let base: string;
let comp: PackedComponent;
const tokens: Record<string, string> = {};

const ACTION_RANK = { read: 1, write: 2, admin: 3 } as const;
const ROLE_RANK = { reader: 1, publisher: 2, admin: 3 } as const;

function concretePath(route: Route): string {
  const values: Record<string, string> = {
    ns: NS,
    type: 'model',
    version: '1.0.0',
    release: '2024.01.20',
    name: 'latest',
    sha: comp.archiveSha256,
    id: '0123456789abcdef',
  };
  return route.path.replace(/:([a-z]+)/g, (_m, k: string) => values[k] ?? k);
}

beforeAll(async () => {
  comp = (await packedProject())[`components`][0]!;
  srv = await startRegistry({ limiter: { baseDelayMs: 1, maxDelayMs: 2, blockAfter: 1_000_000 } });
  base = srv.url;
  expect((await apiPublishComponent(base, BOOTSTRAP, NS, comp)).status).toBe(201);
  const rel = await request(base, 'PUT', `/api/v1/namespaces/${NS}/releases/2024.01.20`, {
    token: BOOTSTRAP,
    headers: jsonHeaders,
    body: releaseManifest('2024.01.20', [comp]),
  });
  expect(rel.status).toBe(201);
  for (const role of ['reader', 'publisher', 'admin'] as const) {
    tokens[`${role}-own`] = (await createToken(base, BOOTSTRAP, role, [NS])).token;
    tokens[`${role}-other`] = (await createToken(base, BOOTSTRAP, role, ['another-project'])).token;
  }
  const revoked = await createToken(base, BOOTSTRAP, 'admin', ['*']);
  await request(base, 'DELETE', `/api/v1/tokens/${revoked.id}`, { token: BOOTSTRAP });
  tokens.revoked = revoked.token;
  tokens.bad = 'dtr_not-a-real-token-at-all-0000000000';
  // An admin token that has expired (as time would make it).
  const expired = await createToken(base, BOOTSTRAP, 'admin', ['*'], { expiresInDays: 1 });
  const db = new Database(join(srv.dataDir, 'registry.db'));
  db.prepare('UPDATE tokens SET expires_at = ? WHERE id = ?').run('2000-01-01T00:00:00.000Z', expired.id);
  db.close();
  tokens.expired = expired.token;
});
afterAll(async () => {
  await srv?.close();
  await cleanupTempDirs();
});

const routes = [...apiRoutes, ...uiRoutes].filter((r) => r.need.kind !== 'public');

// Every GET route answers HEAD too, with the same access rules.
const cases = routes.flatMap((r) => [
  [`${r.method} ${r.path}`, r, r.method] as const,
  ...(r.method === 'GET' ? [[`HEAD ${r.path}`, r, 'HEAD'] as const] : []),
]);

describe('access matrix', () => {
  it.each(cases)('%s', async (_label, route, method) => {
    const path = concretePath(route);
    const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : '{}';
    const headers = body ? jsonHeaders : {};
    const call = (token?: string) =>
      request(base, method, path, { token, headers, ...(body ? { body } : {}) });
    const denied = async (token: string | undefined, expected: number): Promise<void> => {
      const r = await call(token);
      if (route.ui && expected === 401) {
        expect(r.status, `${method} ${path} without a valid token`).toBe(303);
        expect(r.headers.location).toMatch(/^\/login/);
      } else {
        expect(r.status, `${method} ${path} token=${token ?? 'none'}`).toBe(expected);
        if (!route.ui && method !== 'HEAD') expect(r.json.code).toBe('ERR_UNAUTHENTICATED');
      }
    };
    await denied(undefined, 401);
    await denied(tokens.bad, 401);
    await denied(tokens.revoked, 401);
    await denied(tokens.expired, 401);
    if (route.need.kind !== 'action') return;
    const need = route.need;
    for (const role of ['reader', 'publisher', 'admin'] as const) {
      for (const scope of ['own', 'other'] as const) {
        const token = tokens[`${role}-${scope}`]!;
        const roleOk = ROLE_RANK[role] >= ACTION_RANK[need.action];
        // Content is read through a namespace that holds it, even though the route is global;
        // publishers may HEAD any content (to skip uploading it again).
        const blob =
          (route.path === '/api/v1/blobs/:sha' || route.path === '/api/v1/recipes/:sha') &&
          route.method === 'GET';
        const contentRead = blob && !(method === 'HEAD' && ROLE_RANK[role] >= ROLE_RANK.publisher);
        const scopeOk = scope === 'own' || (need.ns === 'any' && !contentRead);
        const r = await call(token);
        if (roleOk && scopeOk) {
          expect(
            [401, 403],
            `${method} ${path} as ${role}-${scope} should be allowed (got ${r.status} ${r.text})`,
          ).not.toContain(r.status);
        } else {
          expect(r.status, `${method} ${path} as ${role}-${scope}`).toBe(403);
        }
        if (!route.ui) expect(r.status).toBeLessThan(500);
      }
    }
  });

  it('/metrics needs a token that may read every namespace', async () => {
    expect((await request(base, 'GET', '/metrics')).status).toBe(401);
    expect((await request(base, 'GET', '/metrics', { token: tokens['admin-own'] })).status).toBe(403);
    expect((await request(base, 'GET', '/metrics', { token: BOOTSTRAP })).status).toBe(200);
  });

  it('content is readable only through a namespace that holds it', async () => {
    const path = `/api/v1/blobs/${comp.archiveSha256}`;
    expect((await request(base, 'GET', path, { token: tokens['reader-own'] })).status).toBe(200);
    expect((await request(base, 'GET', path, { token: tokens['reader-other'] })).status).toBe(403);
    expect((await request(base, 'GET', path, { token: tokens['publisher-other'] })).status).toBe(403);
    // Publishers may check that content exists (to skip uploading it again).
    expect((await request(base, 'HEAD', path, { token: tokens['publisher-other'] })).status).toBe(200);
    expect((await request(base, 'HEAD', path, { token: tokens['reader-other'] })).status).toBe(403);
    const search = await request(base, 'GET', '/api/v1/search?q=model', { token: tokens['reader-other'] });
    expect(search.json.components).toEqual([]);
  });

  it('health endpoints are public', async () => {
    expect((await request(base, 'GET', '/healthz')).status).toBe(200);
    expect((await request(base, 'GET', '/readyz')).status).toBe(200);
  });
});

describe('anonymous read', () => {
  it('is off by default, and when on allows reading only', async () => {
    expect((await request(base, 'GET', '/api/v1/search')).status).toBe(401);
    const open = await startRegistry({ allowAnonymousRead: true });
    try {
      expect((await apiPublishComponent(open.url, BOOTSTRAP, NS, comp)).status).toBe(201);
      const s = await request(open.url, 'GET', '/api/v1/search?q=model');
      expect(s.status).toBe(200);
      expect(s.json.components).toHaveLength(1);
      const blob = await request(open.url, 'GET', `/api/v1/blobs/${comp.archiveSha256}`);
      expect(blob.status).toBe(200);
      expect(blob.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect((await request(open.url, 'PUT', `/api/v1/blobs/${'0'.repeat(64)}`, { body: 'x' })).status).toBe(
        401,
      );
      expect((await request(open.url, 'GET', '/api/v1/tokens')).status).toBe(401);
      expect((await request(open.url, 'GET', '/')).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe('repeated failures from one address', () => {
  it('are slowed down, then refused for a while; valid tokens keep working', async () => {
    const s = await startRegistry({
      limiter: { threshold: 3, baseDelayMs: 150, maxDelayMs: 600, blockAfter: 6 },
    });
    try {
      const times: number[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const t0 = performance.now();
        const r = await request(s.url, 'GET', '/api/v1/whoami', {
          token: `dtr_wrong-guess-number-${i}-000000000`,
        });
        times.push(performance.now() - t0);
        statuses.push(r.status);
      }
      expect(statuses.slice(0, 6)).toEqual([401, 401, 401, 401, 401, 401]);
      expect(statuses.slice(6)).toEqual([429, 429]);
      expect(Math.max(...times.slice(0, 3))).toBeLessThan(120);
      expect(times[3]).toBeGreaterThanOrEqual(140);
      expect(times[5]).toBeGreaterThanOrEqual(550);
      const blocked = await request(s.url, 'GET', '/api/v1/whoami', {
        token: 'dtr_wrong-again-000000000000000',
      });
      expect(blocked.headers['retry-after']).toBeDefined();
      expect(blocked.json.code).toBe('ERR_TOO_MANY_FAILURES');
      expect((await request(s.url, 'GET', '/api/v1/whoami', { token: BOOTSTRAP })).status).toBe(200);
      const m = await request(s.url, 'GET', '/metrics', { token: BOOTSTRAP });
      expect(m.text).toMatch(/deploy_tool_registry_auth_failures_total\{reason="unknown"\} \d+/);
    } finally {
      await s.close();
    }
  });

  it('on the web UI login form too: slowed down, then refused; the API shares the count; a valid token logs in', async () => {
    const s = await startRegistry({
      limiter: { threshold: 3, baseDelayMs: 150, maxDelayMs: 600, blockAfter: 6 },
    });
    const login = (token: string) =>
      request(s.url, 'POST', '/login', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, next: '/' }).toString(),
      });
    try {
      const times: number[] = [];
      const results: Awaited<ReturnType<typeof login>>[] = [];
      for (let i = 0; i < 8; i++) {
        const t0 = performance.now();
        results.push(await login(`dtr_wrong-browser-guess-${i}-0000000`));
        times.push(performance.now() - t0);
      }
      for (const r of results.slice(0, 6)) {
        expect(r.status).toBe(303);
        expect(r.headers.location).toMatch(/^\/login\?failed=1/);
        expect(r.headers['set-cookie']).toBeUndefined();
      }
      for (const r of results.slice(6)) {
        expect(r.status).toBe(429);
        expect(r.headers['content-type']).toContain('text/html');
        expect(r.headers['retry-after']).toBeDefined();
        expect(r.text).toContain('too many failed logins');
        expect(r.text).not.toMatch(/\n\s+at /);
      }
      expect(Math.max(...times.slice(0, 3))).toBeLessThan(120);
      expect(times[3]).toBeGreaterThanOrEqual(140);
      expect(times[5]).toBeGreaterThanOrEqual(550);
      // One count per address: the API refuses a bad bearer token from it now too.
      const api = await request(s.url, 'GET', '/api/v1/whoami', { token: 'dtr_wrong-api-guess-00000000000' });
      expect(api.status).toBe(429);
      // A valid token still logs in (and the cookie it sets works).
      const ok = await login(BOOTSTRAP);
      expect(ok.status).toBe(303);
      expect(ok.headers.location).toBe('/');
      const cookie = String(ok.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';
      expect(cookie).toMatch(/^dt_token=/);
      expect((await request(s.url, 'GET', '/', { headers: { cookie } })).status).toBe(200);
      const m = await request(s.url, 'GET', '/metrics', { token: BOOTSTRAP });
      expect(m.text).toMatch(/deploy_tool_registry_auth_failures_total\{reason="unknown"\} ([6-9]|\d\d)/);
    } finally {
      await s.close();
    }
  });
});
