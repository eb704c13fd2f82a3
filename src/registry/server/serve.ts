/**
 * Starts a registry server from command-line style options: picks the metadata database
 * (SQLite file or PostgreSQL URL) and the content store (a folder, or s3://BUCKET/PREFIX through
 * the S3 store driver), then listens. Embedded default: everything under one data folder.
 */
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DeployToolError, errnoCode } from '../../core/errors.js';
import { redact, registerSecret } from '../../core/redact.js';
import { createFilesystemStore } from '../../store/drivers/filesystem.js';
import type { Store } from '../../store/types.js';
import { loadPublicKey, type PublicKey } from '../../trust/keys.js';
import { createRegistry, type Registry, type RegistryOptions } from './app.js';
import { createPostgresRepo } from './repo/postgres.js';
import { createSqliteRepo } from './repo/sqlite.js';
import type { MetadataRepo } from './repo/types.js';

export interface ServeOptions {
  cwd: string;
  /** Data folder (default ./registry-data): SQLite file, filesystem store, temporary uploads. */
  data?: string | undefined;
  /** A folder, or s3://BUCKET/PREFIX. */
  store?: string | undefined;
  /** sqlite:PATH or postgres://... */
  db?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  allowAnonymousRead?: boolean | undefined;
  publicMetrics?: boolean | undefined;
  trustProxy?: boolean | undefined;
  publicUrl?: string | undefined;
  bootstrapTokenFile?: string | undefined;
  /** Falls back to DEPLOY_TOOL_BOOTSTRAP_TOKEN. */
  bootstrapToken?: string | undefined;
  maxJsonBytes?: number | undefined;
  limiter?: RegistryOptions['limiter'];
  log?: (line: string) => void;
  /** `--trusted-key FILE|KEY` (repeatable): signatures must verify with one of these keys. */
  trustedKeys?: string[] | undefined;
  maxBlobBytes?: number | undefined;
  /** Options for S3 stores (endpoint, region), passed to the S3 driver. */
  s3?: { endpoint?: string | undefined; region?: string | undefined } | undefined;
}

export interface RunningServer {
  url: string;
  server: Server;
  registry: Registry;
  bootstrapped: boolean;
  describe: { store: string; db: string };
  close(): Promise<void>;
}

export function openRepo(spec: string, dataDir: string): MetadataRepo {
  if (spec.startsWith('postgres://') || spec.startsWith('postgresql://')) return createPostgresRepo(spec);
  if (spec.startsWith('sqlite:')) return createSqliteRepo(resolve(dataDir, spec.slice('sqlite:'.length)));
  throw new DeployToolError('ERR_USAGE', `--db "${redact(spec)}" is not sqlite:PATH or postgres://...`, {
    hint: 'Examples: --db sqlite:/var/lib/deploy-tool/registry.db, --db postgres://user@db.example.com/registry',
  });
}

export async function openStore(spec: string, cwd: string, s3?: ServeOptions['s3']): Promise<Store> {
  if (spec.startsWith('s3://')) {
    const u = new URL(spec);
    // The S3 driver is loaded lazily (it pulls in the AWS SDK).
    const { createS3Store } = await import('../../store/drivers/s3.js');
    return createS3Store({
      bucket: u.hostname,
      prefix: u.pathname.replace(/^\/+/, ''),
      ...(s3?.endpoint ? { endpoint: s3.endpoint } : {}),
      ...(s3?.region ? { region: s3.region } : {}),
    });
  }
  return createFilesystemStore({ root: resolve(cwd, spec) });
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const dataDir = resolve(options.cwd, options.data ?? 'registry-data');
  const trustedKeys: PublicKey[] = [];
  for (const spec of options.trustedKeys ?? []) trustedKeys.push(await loadPublicKey(spec, options.cwd));
  const store = await openStore(options.store ?? join(dataDir, 'store'), options.cwd, options.s3);
  const repo = openRepo(options.db ?? `sqlite:${join(dataDir, 'registry.db')}`, dataDir);
  let bootstrap = options.bootstrapToken ?? process.env.DEPLOY_TOOL_BOOTSTRAP_TOKEN;
  if (options.bootstrapTokenFile) {
    try {
      bootstrap = (await readFile(resolve(options.cwd, options.bootstrapTokenFile), 'utf8')).trim();
    } catch (err) {
      await repo.close();
      throw new DeployToolError(
        'ERR_USAGE',
        `Cannot read the bootstrap token file ${options.bootstrapTokenFile} (${errnoCode(err) ?? 'error'})`,
        { hint: 'Write a long random token to it, for example: openssl rand -hex 32 > bootstrap-token' },
      );
    }
  }
  registerSecret(bootstrap);
  const registry = createRegistry({
    repo,
    store,
    tmpDir: join(dataDir, 'tmp'),
    allowAnonymousRead: !!options.allowAnonymousRead,
    publicMetrics: !!options.publicMetrics,
    trustProxy: !!options.trustProxy,
    ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
    ...(options.maxJsonBytes ? { maxJsonBytes: options.maxJsonBytes } : {}),
    ...(options.maxBlobBytes ? { maxBlobBytes: options.maxBlobBytes } : {}),
    ...(trustedKeys.length ? { trustedKeys } : {}),
    ...(options.limiter ? { limiter: options.limiter } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
  let bootstrapped: boolean;
  try {
    ({ bootstrapped } = await registry.init(bootstrap));
  } catch (err) {
    await repo.close().catch(() => undefined);
    if (err instanceof DeployToolError) throw err;
    throw new DeployToolError(
      'ERR_STORE',
      `Cannot open the registry (database ${repo.location}, store ${store.driver} ${store.location}): ${redact((err as Error).message)}`,
      { hint: 'Check that the database and the store are reachable and writable.', cause: err },
    );
  }
  const server = createServer(
    { keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000 },
    registry.handler,
  );
  server.on('clientError', (_err, socket) => {
    if (socket.writable) {
      const body = '{"code":"ERR_BAD_REQUEST","message":"malformed HTTP request"}\n';
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    } else socket.destroy();
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, host, () => resolvePromise());
  }).catch(async (err: unknown) => {
    await repo.close().catch(() => undefined);
    throw new DeployToolError(
      'ERR_USAGE',
      `Cannot listen on ${host}:${options.port ?? 8080} (${errnoCode(err) ?? String(err)})`,
      {
        hint: 'Choose another --port, or stop the process that uses it.',
      },
    );
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (options.port ?? 8080);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url,
    server,
    registry,
    bootstrapped,
    describe: { store: `${store.driver} ${store.location}`, db: repo.location },
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await registry.close();
    },
  };
}
