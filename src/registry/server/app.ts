/**
 * The registry as a plain `(req, res)` handler: a small route table where each route declares
 * what it needs (public, or an action in a namespace), one `authorize` step, and one error path
 * that always answers `{code, message}` JSON (HTML for the web UI), never a stack trace.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { DeployToolError, isDeployToolError } from '../../core/errors.js';
import { redact } from '../../core/redact.js';
import { validateProjectName, validateType, validateVersion } from '../../core/validate.js';
import type { Store } from '../../store/types.js';
import type { PublicKey } from '../../trust/keys.js';
import {
  can,
  checkToken,
  createFailureLimiter,
  hashToken,
  type Action,
  type FailureLimiter,
  type FailureLimiterOptions,
  type Principal,
} from './auth.js';
import { clientAddress, escapeHtml, HttpError, sendJson, splitPath } from './http.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { MetadataRepo } from './repo/types.js';
import { apiRoutes } from './routes-api.js';
import { uiRoutes } from './routes-ui.js';

export const STORE_SENTINEL = '_registry/store.json';

export interface AuthorizeInput {
  principal: Principal;
  action: Action;
  /** A namespace, '*' (server-wide) or 'any' (at least one namespace). */
  namespace: string;
  route: string;
  req: IncomingMessage;
}

export interface RegistryOptions {
  repo: MetadataRepo;
  store: Store;
  /** Folder for in-flight uploads (verified before anything reaches the store). */
  tmpDir: string;
  allowAnonymousRead?: boolean;
  /** Allow /metrics without a token. */
  publicMetrics?: boolean;
  /** Use X-Forwarded-For for the client address (only behind a trusted proxy). */
  trustProxy?: boolean;
  maxJsonBytes?: number;
  maxBlobBytes?: number;
  limiter?: Partial<FailureLimiterOptions>;
  /** Replaces the default role/namespace rule. */
  authorize?: (input: AuthorizeInput) => boolean | Promise<boolean>;
  /** Access log and server-side errors (already redacted). */
  log?: (line: string) => void;
  now?: () => Date;
  /** Public base URL shown in the UI's deploy commands (default: from the Host header). */
  publicUrl?: string;
  /**
   * Public keys the registry trusts (`serve --trusted-key`): uploaded signatures must verify with
   * one of them, and signature status says "verified". None: any well-formed signature is kept.
   */
  trustedKeys?: PublicKey[];
}

export type Need =
  | { kind: 'public' }
  /** Any valid token (or anonymous when allowed). */
  | { kind: 'authenticated' }
  | { kind: 'action'; action: Action; ns: string };

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  params: Record<string, string>;
  query: URLSearchParams;
  address: string;
  principal: Principal;
  routePath: string;
  /** The raw token, for UI pages that set the session cookie. */
  bearer: string | undefined;
}

export interface Route {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  need: Need;
  /** Web UI route: cookie auth, HTML errors, redirect to /login. */
  ui?: boolean;
  handle(ctx: RouteContext, app: RegistryApp): Promise<void>;
}

export interface RegistryApp {
  options: Required<Pick<RegistryOptions, 'maxJsonBytes' | 'maxBlobBytes' | 'tmpDir'>> & RegistryOptions;
  repo: MetadataRepo;
  store: Store;
  metrics: Metrics;
  limiter: FailureLimiter;
  now(): Date;
  audit(
    ctx: RouteContext,
    action: string,
    namespace: string | null,
    target: string | null,
    details?: Record<string, unknown>,
  ): Promise<void>;
  authorize(ctx: RouteContext, action: Action, namespace: string): Promise<boolean>;
  storeReady(): Promise<boolean>;
  log(line: string): void;
}

export interface Registry {
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  app: RegistryApp;
  /** Creates the schema, the store sentinel and the bootstrap token; clears stale uploads. */
  init(bootstrapToken?: string): Promise<{ bootstrapped: boolean }>;
  close(): Promise<void>;
}

interface CompiledRoute extends Route {
  segments: string[];
}

const PARAM_CHECKS: Record<string, (v: string) => void> = {
  ns: (v) => validateProjectName(v),
  type: (v) => validateType(v),
  version: (v) => validateVersion(v),
  release: (v) => validateVersion(v, 'Release'),
  name: (v) => validateType(v),
  sha: (v) => {
    if (!/^[0-9a-f]{64}$/.test(v))
      throw new HttpError('ERR_INVALID_NAME', 'a sha256 is 64 lowercase hex digits');
  },
  id: (v) => {
    if (!/^[0-9a-f]{16}$/.test(v))
      throw new HttpError('ERR_INVALID_NAME', 'a token id is 16 lowercase hex digits');
  },
};

function matchRoute(routes: CompiledRoute[], segments: string[], method: string) {
  let pathMatched = false;
  for (const r of routes) {
    if (r.segments.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < r.segments.length; i++) {
      const p = r.segments[i] ?? '';
      const s = segments[i] ?? '';
      if (p.startsWith(':')) params[p.slice(1)] = s;
      else if (p !== s) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    pathMatched = true;
    if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { route: r, params };
  }
  return pathMatched ? 'method' : undefined;
}

function bearerOf(req: IncomingMessage, ui: boolean): string | undefined {
  const h = req.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1] : '';
  }
  if (ui) {
    const cookie = req.headers.cookie ?? '';
    for (const part of cookie.split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === 'dt_token') return decodeURIComponent(v.join('='));
    }
  }
  return undefined;
}

export function errorBody(err: unknown): {
  status: number;
  code: string;
  message: string;
  headers: Record<string, string>;
} {
  if (err instanceof HttpError)
    return { status: err.status, code: err.code, message: err.message, headers: err.headers };
  if (isDeployToolError(err)) {
    const status =
      err.code === 'ERR_INVALID_NAME' || err.code === 'ERR_INVALID_VERSION' || err.code === 'ERR_USAGE'
        ? 400
        : err.code === 'ERR_MANIFEST_INVALID'
          ? 400
          : err.code === 'ERR_STORE'
            ? 503
            : 500;
    const code = err.code === 'ERR_INVALID_VERSION' ? 'ERR_INVALID_NAME' : err.code;
    return { status, code, message: err.message, headers: {} };
  }
  return { status: 500, code: 'ERR_INTERNAL', message: 'internal error (see the server log)', headers: {} };
}

/** Wraps the repository so that its failures become 503 (database unavailable). */
function guardRepo(repo: MetadataRepo): MetadataRepo {
  return new Proxy(repo, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || prop === 'close') return v;
      return async (...args: unknown[]) => {
        try {
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (err) {
          if (err instanceof HttpError) throw err;
          throw new UnavailableError(
            'ERR_DB_UNAVAILABLE',
            `metadata database ${target.location} is unavailable`,
            err,
          );
        }
      };
    },
  });
}

/** Wraps the store so that its failures (other than a missing object) become 503. */
function guardStore(store: Store): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || prop === 'localPath') return v;
      return async (...args: unknown[]) => {
        try {
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (err) {
          if (err instanceof HttpError) throw err;
          if (err && typeof err === 'object' && 'code' in err && err.code === 'ENOENT')
            throw new HttpError('ERR_NOT_FOUND', 'no such object');
          throw new UnavailableError(
            'ERR_STORE_UNAVAILABLE',
            `content store (${target.driver}) is unavailable`,
            err,
          );
        }
      };
    },
  });
}

export class UnavailableError extends HttpError {
  constructor(code: 'ERR_DB_UNAVAILABLE' | 'ERR_STORE_UNAVAILABLE', message: string, cause: unknown) {
    super(code, message, { 'retry-after': '5' });
    this.cause = cause;
  }
}

export function createRegistry(options: RegistryOptions): Registry {
  const repo = guardRepo(options.repo);
  const store = guardStore(options.store);
  const metrics = createMetrics();
  const limiter = createFailureLimiter({
    threshold: 5,
    windowMs: 15 * 60_000,
    baseDelayMs: 250,
    maxDelayMs: 4000,
    blockAfter: 30,
    ...options.limiter,
  });
  const now = options.now ?? (() => new Date());
  const log = (line: string): void => options.log?.(redact(line));
  const routes: CompiledRoute[] = [...apiRoutes, ...uiRoutes].map((r) => ({
    ...r,
    segments: r.path
      .split('/')
      .slice(1)
      .filter((s, i, a) => !(s === '' && a.length === 1)),
  }));

  let storeCheck: { at: number; ok: boolean } | undefined;
  const app: RegistryApp = {
    options: { maxJsonBytes: 64 * 1024 * 1024, maxBlobBytes: 2 ** 45, ...options },
    repo,
    store,
    metrics,
    limiter,
    now,
    log,
    async audit(ctx, action, namespace, target, details) {
      await repo.addAudit({
        at: now().toISOString(),
        actor: ctx.principal.label,
        address: ctx.address,
        action,
        namespace,
        target,
        details: details ?? null,
      });
    },
    async authorize(ctx, action, namespace) {
      const input: AuthorizeInput = {
        principal: ctx.principal,
        action,
        namespace,
        route: ctx.routePath,
        req: ctx.req,
      };
      return options.authorize ? await options.authorize(input) : can(ctx.principal, action, namespace);
    },
    async storeReady() {
      const t = Date.now();
      if (storeCheck && t - storeCheck.at < 1000) return storeCheck.ok;
      let ok: boolean;
      try {
        ok = (await options.store.head(STORE_SENTINEL)) !== undefined;
      } catch {
        ok = false;
      }
      storeCheck = { at: t, ok };
      return ok;
    },
  };

  const authenticate = async (
    req: IncomingMessage,
    res: ServerResponse,
    route: CompiledRoute,
    address: string,
  ): Promise<{ principal: Principal; bearer: string | undefined } | undefined> => {
    const bearer = bearerOf(req, !!route.ui);
    if (bearer === undefined) {
      if (app.options.allowAnonymousRead && (route.need.kind !== 'action' || route.need.action === 'read'))
        return { principal: { kind: 'anonymous', label: 'anonymous' }, bearer };
      if (route.need.kind === 'public')
        return { principal: { kind: 'anonymous', label: 'anonymous' }, bearer };
      metrics.authFailure('missing');
      throw new HttpError('ERR_UNAUTHENTICATED', 'this request needs a token (Authorization: Bearer TOKEN)', {
        'www-authenticate': 'Bearer realm="deploy-tool"',
      });
    }
    const check = await checkToken(repo, bearer, now());
    if (!check.ok) {
      metrics.authFailure(check.reason);
      log(`auth failure from ${address}: ${check.reason}`);
      // A valid token always works; failures from an address that keeps failing are refused
      // outright for a while, and before that each one is answered more slowly.
      const blocked = limiter.blockedFor(address);
      if (blocked > 0) {
        throw new HttpError(
          'ERR_TOO_MANY_FAILURES',
          'too many failed authentications from this address; try later',
          {
            'retry-after': String(blocked),
          },
        );
      }
      const delay = limiter.fail(address);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      if (res.destroyed) return undefined;
      throw new HttpError(
        'ERR_UNAUTHENTICATED',
        check.reason === 'expired'
          ? 'the token has expired'
          : check.reason === 'revoked'
            ? 'the token was revoked'
            : 'the token is not valid',
        { 'www-authenticate': 'Bearer realm="deploy-tool", error="invalid_token"' },
      );
    }
    limiter.succeed(address);
    const t = check.token;
    const at = now();
    if (!t.lastUsedAt || at.getTime() - Date.parse(t.lastUsedAt) > 60_000)
      await repo.touchToken(t.id, at.toISOString()).catch(() => undefined);
    return { principal: { kind: 'token', token: t, label: `${t.name} (${t.id})` }, bearer };
  };

  const dispatch = async (
    req: IncomingMessage,
    res: ServerResponse,
    state: { route: string; ui: boolean },
    address: string,
  ): Promise<void> => {
    const method = req.method ?? 'GET';
    // Split the raw path ourselves: URL parsing would resolve "%2e%2e" and "..", hiding them.
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const pathname = q === -1 ? raw : raw.slice(0, q);
    if (!pathname.startsWith('/'))
      throw new HttpError('ERR_BAD_REQUEST', 'the request target must be a path');
    const url = { pathname, searchParams: new URLSearchParams(q === -1 ? '' : raw.slice(q + 1)) };
    const segments = splitPath(pathname);
    const m = matchRoute(routes, segments, method);
    if (m === undefined) throw new HttpError('ERR_NOT_FOUND', `no such endpoint: ${method} ${url.pathname}`);
    if (m === 'method')
      throw new HttpError('ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
    const { route, params } = m;
    state.route = route.path;
    state.ui = !!route.ui;
    const auth = await authenticate(req, res, route, address);
    if (!auth) return;
    for (const [k, v] of Object.entries(params)) PARAM_CHECKS[k]?.(v);
    const ctx: RouteContext = {
      req,
      res,
      method,
      params,
      query: url.searchParams,
      address,
      principal: auth.principal,
      routePath: route.path,
      bearer: auth.bearer,
    };
    if (route.need.kind === 'action') {
      const ns = route.need.ns.startsWith(':') ? (params[route.need.ns.slice(1)] ?? '') : route.need.ns;
      if (!(await app.authorize(ctx, route.need.action, ns))) {
        metrics.authFailure('forbidden');
        throw new HttpError(
          'ERR_FORBIDDEN',
          `this token may not ${route.need.action} ${ns === '*' ? 'server-wide' : ns === 'any' ? 'here' : `in namespace "${ns}"`}`,
        );
      }
    }
    await route.handle(ctx, app);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const t0 = performance.now();
    const sock = req.socket;
    const in0 = sock.bytesRead;
    const out0 = sock.bytesWritten;
    const state = { route: 'unmatched', ui: false };
    const address = clientAddress(req, !!options.trustProxy);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      const secs = (performance.now() - t0) / 1000;
      const declared = Number(req.headers['content-length'] ?? 0);
      const bytesIn = Math.max(
        0,
        sock.bytesRead - in0,
        req.complete && Number.isFinite(declared) ? declared : 0,
      );
      const bytesOut = Math.max(0, sock.bytesWritten - out0);
      const status = res.writableFinished ? res.statusCode : 499;
      metrics.request(req.method ?? 'GET', state.route, status, secs, bytesIn, bytesOut);
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      log(`${address} ${req.method ?? '-'} ${path} ${status} ${bytesOut} ${(secs * 1000).toFixed(1)}ms`);
    };
    res.on('finish', finish);
    res.on('close', finish);
    dispatch(req, res, state, address).catch((err: unknown) => {
      const e = errorBody(err);
      if (e.status >= 500) {
        // Unexpected errors get their stack in the server log (never in the response);
        // expected ones (store or database unavailable) one line with the cause.
        const cause = err instanceof UnavailableError ? err.cause : err;
        const text =
          err instanceof HttpError
            ? `${err.message}${cause instanceof Error && cause !== err ? ` (${cause.message})` : ''}`
            : cause instanceof Error
              ? (cause.stack ?? cause.message)
              : String(cause);
        log(`error ${e.code} on ${req.method ?? '-'} ${(req.url ?? '').split('?')[0] ?? ''}: ${text}`);
      }
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      if (state.ui) {
        const page = renderErrorPage(e.status, e.code, e.message);
        if (e.status === 401) {
          res.writeHead(303, {
            location: `/login?next=${encodeURIComponent(req.url ?? '/')}`,
            'cache-control': 'no-store',
          });
          res.end();
          return;
        }
        res.writeHead(e.status, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': String(Buffer.byteLength(page)),
          'cache-control': 'no-store',
          ...e.headers,
        });
        res.end(page);
        return;
      }
      sendJson(res, e.status, { code: e.code, message: e.message }, e.headers);
    });
  };

  return {
    handler,
    app,
    async init(bootstrapToken) {
      await options.repo.migrate();
      if (!(await options.store.head(STORE_SENTINEL))) {
        await options.store.put(
          STORE_SENTINEL,
          `${JSON.stringify({ kind: 'deploy-tool/registry-store', createdAt: now().toISOString() })}\n`,
          { ifNoneMatch: true },
        );
      }
      await mkdir(app.options.tmpDir, { recursive: true });
      for (const name of await readdir(app.options.tmpDir).catch(() => [] as string[]))
        if (name.startsWith('upload-')) await rm(join(app.options.tmpDir, name), { force: true });
      let bootstrapped = false;
      if (bootstrapToken) {
        if (bootstrapToken.length < 16) {
          throw new DeployToolError('ERR_USAGE', 'The bootstrap token is shorter than 16 characters', {
            hint: 'Use a long random value, for example: openssl rand -hex 32 > bootstrap-token',
          });
        }
        if ((await options.repo.countTokens()) === 0) {
          const { id, hash } = hashToken(bootstrapToken);
          const r = await options.repo.insertToken({
            id,
            name: 'bootstrap',
            hash,
            role: 'admin',
            namespaces: ['*'],
            createdAt: now().toISOString(),
            createdBy: 'bootstrap',
            expiresAt: null,
            revokedAt: null,
            lastUsedAt: null,
          });
          bootstrapped = r === 'created';
          if (bootstrapped) {
            await options.repo.addAudit({
              at: now().toISOString(),
              actor: 'bootstrap',
              address: 'local',
              action: 'token.create',
              namespace: null,
              target: id,
              details: { name: 'bootstrap', role: 'admin', namespaces: ['*'] },
            });
          }
        }
      }
      return { bootstrapped };
    },
    close: () => options.repo.close(),
  };
}

function renderErrorPage(status: number, code: string, message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${status} · deploy-tool registry</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
code{background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}a{color:#0969da}</style></head>
<body><h1>${status}</h1><p>${escapeHtml(message)}</p><p><code>${escapeHtml(code)}</code></p><p><a href="/">Back to the registry</a></p></body></html>`;
}
