/**
 * Registry test helpers: a throwaway PostgreSQL (scripts/postgres.sh) with one fresh database per
 * server, registry servers started in-process on loopback, a tiny HTTP client, and a real packed
 * component made with the CLI.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startServer, type RunningServer, type ServeOptions } from '../../src/registry/server/serve.js';
import { makeProject, REPO, runCli, tempDir, type Tree } from '../helpers/cli.js';

const exec = promisify(execFile);

export const BOOTSTRAP = 'dtr_test-bootstrap-token-0123456789abcdef';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Postgres {
  url: string;
  dir: string;
  port: number;
  /** A fresh, empty database; returns its URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

let dbCounter = 0;

export async function startPostgres(): Promise<Postgres> {
  // Under /tmp directly: the server runs as user postgres, who cannot enter our 0700 temp folders.
  const dir = await mkdtemp(join(tmpdir(), 'dt-pg-'));
  const port = await freePort();
  const script = join(REPO, 'scripts', 'postgres.sh');
  const start = async (): Promise<string> => (await exec(script, ['start', dir, String(port)])).stdout.trim();
  const url = await start();
  return {
    url,
    dir,
    port,
    async createDatabase() {
      const name = `reg_${process.pid}_${++dbCounter}_${Date.now() % 100000}`;
      const c = new pg.Client(url);
      await c.connect();
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      return url.replace(/\/postgres$/, `/${name}`);
    },
    async stop() {
      await exec(script, ['stop', dir]);
    },
    async start() {
      await start();
    },
  };
}

export async function destroyPostgres(p: Postgres | undefined): Promise<void> {
  if (!p) return;
  await p.stop().catch(() => undefined);
  await rm(p.dir, { recursive: true, force: true });
  await rm(`${p.dir}.initdb.log`, { force: true });
}

export async function startRegistry(
  options: Partial<ServeOptions> & { db?: string } = {},
): Promise<RunningServer & { dataDir: string; logs: string[] }> {
  const dataDir = options.data ?? (await tempDir('reg-'));
  const logs: string[] = [];
  const s = await startServer({
    cwd: dataDir,
    data: dataDir,
    port: 0,
    bootstrapToken: BOOTSTRAP,
    limiter: { baseDelayMs: 5, maxDelayMs: 20 },
    log: (l) => logs.push(l),
    ...options,
  });
  return Object.assign(s, { dataDir, logs });
}

export interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** One HTTP request (a fresh connection each time, so tests see exactly what a client sees). */
export function request(
  base: string,
  method: string,
  path: string,
  options: { token?: string | undefined; headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const u = new URL(base);
    const req = http.request(
      { host: u.hostname, port: u.port, method, path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export const jsonHeaders = { 'content-type': 'application/json' };

export interface PackedComponent {
  project: string;
  type: string;
  version: string;
  manifestText: string;
  archive: Buffer;
  archivePath: string;
  archiveSha256: string;
}

/** A project with components packed by the real CLI. */
export async function packedProject(
  versions: [string, string, string][] = [['./models', 'model', '1.0.0']],
  extra: Tree = {},
): Promise<{ dir: string; components: PackedComponent[] }> {
  const dir = await makeProject(extra);
  const components: PackedComponent[] = [];
  for (const [path, type, version] of versions) {
    const r = await runCli(['pack', path, '--auto', '--type', type, '--version', version], { cwd: dir });
    if (r.code !== 0) throw new Error(`pack failed: ${r.stderr}`);
    const manifestText = await readFile(
      join(dir, 'deployment', 'manifests', `${type}-${version}.manifest.json`),
      'utf8',
    );
    const m = JSON.parse(manifestText) as { archive: { name: string; sha256: string } };
    const archivePath = join(dir, 'dist', m.archive.name);
    components.push({
      project: 'test-project',
      type,
      version,
      manifestText,
      archive: await readFile(archivePath),
      archivePath,
      archiveSha256: m.archive.sha256,
    });
  }
  return { dir, components };
}

/** Publishes a packed component through the raw API; returns nothing, throws on failure. */
export async function apiPublishComponent(
  base: string,
  token: string,
  ns: string,
  c: PackedComponent,
  metadata?: Record<string, unknown>,
): Promise<Res> {
  const up = await request(base, 'PUT', `/api/v1/blobs/${c.archiveSha256}`, { token, body: c.archive });
  if (up.status !== 201 && up.status !== 200) throw new Error(`upload: ${up.status} ${up.text}`);
  return request(base, 'PUT', `/api/v1/namespaces/${ns}/components/${c.type}/${c.version}`, {
    token,
    headers: jsonHeaders,
    body: JSON.stringify({ manifest: c.manifestText, ...(metadata ? { metadata } : {}) }),
  });
}

export function releaseManifest(
  release: string,
  comps: PackedComponent[],
  notes: string | null = null,
): string {
  return `${JSON.stringify(
    {
      schemaVersion: 1,
      kind: 'deploy-tool/release',
      release,
      createdAt: new Date().toISOString(),
      tool: 'test',
      notes,
      project: { name: 'test-project', type: 'algorithm' },
      git: null,
      components: comps.map((c) => {
        const m = JSON.parse(c.manifestText) as {
          archive: { name: string; size: number; compression: string };
        };
        return {
          type: c.type,
          version: c.version,
          manifest: `${c.type}/${c.version}/${c.type}-${c.version}.manifest.json`,
          manifestSha256: createHash('sha256').update(c.manifestText).digest('hex'),
          archive: `${c.type}/${c.version}/${m.archive.name}`,
          archiveSha256: c.archiveSha256,
          archiveSize: m.archive.size,
          compression: m.archive.compression,
        };
      }),
    },
    null,
    2,
  )}\n`;
}

export async function createToken(
  base: string,
  admin: string,
  role: string,
  namespaces: string[],
  extra: Record<string, unknown> = {},
): Promise<{ id: string; token: string }> {
  const r = await request(base, 'POST', '/api/v1/tokens', {
    token: admin,
    headers: jsonHeaders,
    body: JSON.stringify({ name: `${role}-${namespaces.join('-')}`, role, namespaces, ...extra }),
  });
  if (r.status !== 201) throw new Error(`token create: ${r.status} ${r.text}`);
  return r.json as { id: string; token: string };
}
