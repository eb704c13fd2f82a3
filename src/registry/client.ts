/**
 * A client of the registry API (`/api/v1`), on node:http(s) with keep-alive: streaming uploads
 * from files, ranged downloads, retries with backoff on connection errors and 5xx for idempotent
 * requests, and server errors mapped to DeployToolError codes with hints. Never logs the token.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable, Transform } from 'node:stream';
import { DeployToolError, type ErrorCode } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';

export interface RegistryClientOptions {
  url: string;
  token?: string | undefined;
  timeoutMs?: number;
  retries?: number;
  /** Base backoff between retries (ms). */
  backoffMs?: number;
}

export interface ComponentInfo {
  namespace: string;
  type: string;
  version: string;
  manifestSha256: string;
  manifestSize: number;
  archive: { name: string; sha256: string; size: number; compression: string };
  files: number;
  totalSize: number;
  metadata: {
    description: string | null;
    author: string | null;
    license: string | null;
    framework: string | null;
    tags: string[];
  };
  createdAt: string;
  publishedBy: string;
  downloads?: number;
  releases?: string[];
  status?: string;
  signature?: SignatureInfo;
  /** Detail view only: the archive is stored encrypted with age (null: plaintext). */
  encryption?: { format: 'age'; recipients: string[]; passphrase: boolean } | null;
}

/** Signature status as the registry reports it (see docs/api.md, "Signatures"). */
export type SignatureInfo =
  | { status: 'unsigned' }
  | { status: 'signed'; keyId: string; verified: boolean; trustedComment: string }
  | { status: 'invalid'; keyId: string | null; reason: string };

/** One line for people: "signed by key K (verified by the registry)", "not signed", ... */
export function describeSignature(s: SignatureInfo | undefined): string {
  if (!s || s.status === 'unsigned') return 'not signed';
  if (s.status === 'invalid') return `INVALID${s.keyId ? ` (key ${s.keyId})` : ''}: ${s.reason}`;
  return `signed by key ${s.keyId} (${s.verified ? 'verified by the registry' : 'not checked by the registry: it does not trust this key'})`;
}

export interface SignatureUploadResult {
  status: 'created' | 'unchanged';
  keyId: string;
  verified: boolean;
}

export interface ReleaseInfo {
  namespace: string;
  release: string;
  manifestSha256: string;
  notes: string | null;
  components: string[];
  createdAt: string;
  publishedBy: string;
  pointers?: string[];
  status?: string;
  signature?: SignatureInfo;
}

export interface PointerInfo {
  namespace: string;
  name: string;
  target: string;
  revision: number;
  updatedAt: string;
  updatedBy: string;
}

export interface TokenInfo {
  id: string;
  name: string;
  role: 'reader' | 'publisher' | 'admin';
  namespaces: string[];
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  status: string;
}

export interface AuditEventInfo {
  id: number;
  at: string;
  actor: string;
  address: string;
  action: string;
  namespace: string | null;
  target: string | null;
  details: Record<string, unknown> | null;
}

export interface StatsInfo {
  since: string;
  until: string;
  components: { namespace: string; type: string; version: string; downloads: number; bytes: number }[];
  totals: { downloads: number; bytes: number };
}

export interface WhoAmI {
  kind: 'token' | 'anonymous';
  id?: string;
  name?: string;
  role: string;
  namespaces: string[];
  expiresAt?: string | null;
}

interface RawResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: IncomingMessage;
}

type Body = Buffer | string | (() => Readable) | undefined;

const RETRYABLE_NET = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
]);

async function readAll(res: IncomingMessage, limit = 256 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw new Error('response too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks, size);
}

export type RegistryClient = ReturnType<typeof createRegistryClient>;

export function createRegistryClient(options: RegistryClientOptions) {
  const base = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`);
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new DeployToolError('ERR_USAGE', `Registry URL "${options.url}" is not http(s)://`, {
      hint: 'Example: --registry https://registry.example.com',
    });
  registerSecret(options.token);
  const lib = base.protocol === 'https:' ? https : http;
  const agent = new lib.Agent({ keepAlive: true, maxSockets: 16 });
  const timeoutMs = options.timeoutMs ?? 60_000;
  const retries = options.retries ?? 3;
  const backoffMs = options.backoffMs ?? 250;
  const location = base.origin + base.pathname.replace(/\/$/, '');

  const once = (
    method: string,
    path: string,
    headers: Record<string, string>,
    body: Body,
  ): Promise<RawResponse> =>
    new Promise((resolve, reject) => {
      const url = new URL(path.replace(/^\//, ''), base);
      const h: Record<string, string> = { 'user-agent': 'deploy-tool', ...headers };
      if (options.token) h.authorization = `Bearer ${options.token}`;
      if (typeof body === 'string' || Buffer.isBuffer(body))
        h['content-length'] = String(Buffer.byteLength(body));
      const req = lib.request(url, { method, headers: h, agent, timeout: timeoutMs }, (res) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      if (typeof body === 'function') {
        const src = body();
        src.on('error', (e) => req.destroy(e));
        src.pipe(req);
      } else req.end(body);
    });

  const netError = (err: unknown, method: string, path: string): DeployToolError => {
    const code = err && typeof err === 'object' && 'code' in err ? String(err.code) : '';
    return new DeployToolError(
      'ERR_REGISTRY',
      `Registry ${location} did not answer ${method} ${path} (${code || (err as Error).message})`,
      {
        hint: 'Check the registry URL and that the server is running (deploy-tool serve), then retry.',
        cause: err,
      },
    );
  };

  /** Sends a request; retries connection errors and 5xx when `idempotent`. */
  const request = async (
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: Body; idempotent?: boolean } = {},
  ): Promise<RawResponse> => {
    const idempotent = init.idempotent ?? (method === 'GET' || method === 'HEAD');
    let attempt = 0;
    for (;;) {
      try {
        const res = await once(method, path, init.headers ?? {}, init.body);
        if (res.status >= 500 && res.status !== 501 && idempotent && attempt < retries) {
          res.body.resume();
          attempt++;
          await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
          continue;
        }
        return res;
      } catch (err) {
        const code = err && typeof err === 'object' && 'code' in err ? String(err.code) : '';
        if (idempotent && attempt < retries && (RETRYABLE_NET.has(code) || code === '')) {
          attempt++;
          await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
          continue;
        }
        throw netError(err, method, path);
      }
    }
  };

  const fail = async (
    res: RawResponse,
    method: string,
    path: string,
    notFound?: ErrorCode,
  ): Promise<never> => {
    let code = '';
    let message = `HTTP ${res.status}`;
    try {
      const j = JSON.parse((await readAll(res.body, 1024 * 1024)).toString('utf8')) as {
        code?: string;
        message?: string;
      };
      code = j.code ?? '';
      message = j.message ?? message;
    } catch {
      // not JSON: keep the status
    }
    const where = `${location}: ${method} ${path.split('?')[0] ?? path}`;
    if (res.status === 401)
      throw new DeployToolError('ERR_REGISTRY_AUTH', `${where}: ${message}`, {
        hint: 'Log in with "deploy-tool login URL" or set DEPLOY_TOOL_TOKEN to a valid token.',
        details: { status: res.status, code },
      });
    if (res.status === 403)
      throw new DeployToolError('ERR_REGISTRY_AUTH', `${where}: ${message}`, {
        hint: 'Your token lacks the role or namespace for this; ask a registry admin for one that has it.',
        details: { status: res.status, code },
      });
    if (res.status === 404 && notFound)
      throw new DeployToolError(notFound, `${where}: ${message}`, { details: { status: res.status, code } });
    if (code === 'ERR_COMPONENT_EXISTS' || code === 'ERR_RELEASE_EXISTS')
      throw new DeployToolError(code, `${where}: ${message}`, {
        hint: 'Published versions are immutable: choose a new version.',
        details: { status: res.status, code },
      });
    if (res.status === 409 || res.status === 412)
      throw new DeployToolError('ERR_CONFLICT', `${where}: ${message}`, {
        hint: 'Someone changed it meanwhile: read it again and retry.',
        details: { status: res.status, code },
      });
    if (res.status === 429)
      throw new DeployToolError('ERR_REGISTRY_AUTH', `${where}: ${message}`, {
        hint: `Too many failed attempts from this address; retry after ${String(res.headers['retry-after'] ?? 'a while')} s.`,
        details: { status: res.status, code },
      });
    throw new DeployToolError('ERR_REGISTRY', `${where}: ${message}${code ? ` [${code}]` : ''}`, {
      hint: res.status >= 500 ? 'The registry has a problem; retry later or check its /readyz.' : undefined,
      details: { status: res.status, code },
    });
  };

  const json = async <T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { notFound?: ErrorCode; headers?: Record<string, string>; idempotent?: boolean } = {},
  ): Promise<{ value: T; headers: IncomingMessage['headers']; status: number }> => {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    let payload: Buffer | undefined;
    if (body !== undefined) {
      payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      headers['content-type'] = 'application/json';
    }
    const res = await request(method, path, { headers, body: payload, idempotent: opts.idempotent });
    if (res.status >= 400) return fail(res, method, path, opts.notFound);
    const text = (await readAll(res.body)).toString('utf8');
    return { value: (text ? JSON.parse(text) : {}) as T, headers: res.headers, status: res.status };
  };

  const e = encodeURIComponent;
  const nsPath = (ns: string): string => `api/v1/namespaces/${e(ns)}`;

  const textOrUndefined = async (path: string): Promise<string | undefined> => {
    const res = await request('GET', path);
    if (res.status === 404) {
      res.body.resume();
      return undefined;
    }
    if (res.status >= 400) return fail(res, 'GET', path);
    return (await readAll(res.body, 1024 * 1024)).toString('utf8');
  };

  const putSignatureText = async (path: string, signature: string): Promise<SignatureUploadResult> => {
    const res = await request('PUT', path, {
      headers: { 'content-type': 'text/plain; charset=utf-8', accept: 'application/json' },
      body: signature,
      idempotent: true,
    });
    if (res.status === 409 || res.status === 400) {
      let j: { code?: string; message?: string } = {};
      try {
        j = JSON.parse((await readAll(res.body, 1024 * 1024)).toString('utf8')) as typeof j;
      } catch {
        // not JSON
      }
      const where = `${location}: PUT ${path}`;
      if (j.code === 'ERR_SIGNATURE_EXISTS')
        throw new DeployToolError('ERR_SIGNATURE_INVALID', `${where}: ${j.message ?? 'already signed'}`, {
          hint: 'Signatures on the registry are immutable. Keep the existing one, or ask an admin to delete it first (DELETE .../signature).',
          details: { status: res.status, code: j.code },
        });
      if (j.code === 'ERR_UNTRUSTED_KEY' || j.code === 'ERR_SIGNATURE_INVALID')
        throw new DeployToolError(j.code, `${where}: ${j.message ?? 'signature refused'}`, {
          hint:
            j.code === 'ERR_UNTRUSTED_KEY'
              ? 'The registry accepts only signatures by the keys it trusts (serve --trusted-key). Sign with one of them.'
              : 'The signature does not match the published manifest; sign the exact published bytes again.',
          details: { status: res.status, code: j.code },
        });
      throw new DeployToolError('ERR_REGISTRY', `${where}: ${j.message ?? `HTTP ${res.status}`}`, {
        details: { status: res.status, code: j.code ?? '' },
      });
    }
    if (res.status >= 400) return fail(res, 'PUT', path);
    return JSON.parse((await readAll(res.body)).toString('utf8')) as SignatureUploadResult;
  };

  return {
    location,
    request,
    fail,
    async whoami(): Promise<WhoAmI> {
      return (await json<WhoAmI>('GET', 'api/v1/whoami')).value;
    },
    async headBlob(sha256: string): Promise<{ size: number } | undefined> {
      const res = await request('HEAD', `api/v1/blobs/${sha256}`);
      res.body.resume();
      if (res.status === 404) return undefined;
      if (res.status >= 400) return fail(res, 'HEAD', `api/v1/blobs/${sha256}`);
      return { size: Number(res.headers['content-length'] ?? 0) };
    },
    /**
     * Streams a local file (or bytes [offset, offset+length) of it) as the blob `sha256`; the
     * server checks it against `sha256` before storing it.
     */
    async uploadBlobFile(
      sha256: string,
      path: string,
      onProgress?: (done: number, total: number) => void,
      range?: { offset: number; length: number },
    ): Promise<{ status: 'created' | 'exists'; size: number }> {
      const size = range ? range.length : (await stat(path)).size;
      const res = await request('PUT', `api/v1/blobs/${sha256}`, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        idempotent: true,
        body: () => {
          let done = 0;
          const from = range
            ? size === 0
              ? Readable.from([])
              : createReadStream(path, {
                  start: range.offset,
                  end: range.offset + range.length - 1,
                  highWaterMark: 1024 * 1024,
                })
            : createReadStream(path, { highWaterMark: 1024 * 1024 });
          return from.pipe(
            new Transform({
              transform(chunk: Buffer, _enc, cb) {
                done += chunk.length;
                onProgress?.(done, size);
                cb(null, chunk);
              },
            }),
          );
        },
      });
      if (res.status >= 400) return fail(res, 'PUT', `api/v1/blobs/${sha256}`);
      const j = JSON.parse((await readAll(res.body)).toString('utf8')) as {
        status: 'created' | 'exists';
        size: number;
      };
      return j;
    },
    /** The recipe of an archive stored as chunks; undefined when it is one blob (or unknown). */
    async recipeText(sha256: string): Promise<string | undefined> {
      const path = `api/v1/recipes/${sha256}`;
      const res = await request('GET', path);
      if (res.status === 404) {
        res.body.resume();
        return undefined;
      }
      if (res.status >= 400) return fail(res, 'GET', path);
      return (await readAll(res.body, 64 * 1024 * 1024)).toString('utf8');
    },
    /**
     * Declares archive `sha256` as the concatenation of chunks already uploaded as blobs (the
     * recipe JSON of the bucket layout); the server checks the digest before it stores it.
     */
    async putRecipe(
      sha256: string,
      recipeText: string,
    ): Promise<{ status: 'created' | 'exists'; size: number }> {
      const res = await request('PUT', `api/v1/recipes/${sha256}`, {
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(recipeText),
        idempotent: true,
      });
      if (res.status >= 400) return fail(res, 'PUT', `api/v1/recipes/${sha256}`);
      return JSON.parse((await readAll(res.body)).toString('utf8')) as {
        status: 'created' | 'exists';
        size: number;
      };
    },
    async uploadBlob(sha256: string, data: Buffer): Promise<{ status: 'created' | 'exists'; size: number }> {
      const res = await request('PUT', `api/v1/blobs/${sha256}`, {
        headers: { 'content-type': 'application/octet-stream' },
        body: data,
        idempotent: true,
      });
      if (res.status >= 400) return fail(res, 'PUT', `api/v1/blobs/${sha256}`);
      return JSON.parse((await readAll(res.body)).toString('utf8')) as {
        status: 'created' | 'exists';
        size: number;
      };
    },
    /** Reads [offset, offset+length) of a blob (one range request, retried). */
    async readBlobRange(
      sha256: string,
      offset: number,
      length: number,
      opts: { continuation?: boolean; path?: string } = {},
    ): Promise<Buffer> {
      if (length === 0) return Buffer.alloc(0);
      const path = opts.path ?? `api/v1/blobs/${sha256}`;
      const headers: Record<string, string> = { range: `bytes=${offset}-${offset + length - 1}` };
      if (opts.continuation) headers['x-deploy-tool-continuation'] = '1';
      for (let attempt = 0; ; attempt++) {
        const res = await request('GET', path, { headers });
        if (res.status === 404) return fail(res, 'GET', path, 'ERR_ARCHIVE_MISSING');
        if (res.status === 416) {
          res.body.resume();
          return Buffer.alloc(0);
        }
        if (res.status >= 400) return fail(res, 'GET', path);
        try {
          const buf = await readAll(res.body, length + 1);
          if (res.status === 200) return buf.subarray(offset, offset + length);
          return buf;
        } catch (err) {
          if (attempt >= retries) throw netError(err, 'GET', path);
          await new Promise((r) => setTimeout(r, backoffMs * 2 ** attempt));
        }
      }
    },
    /** Streams a whole blob (or a range of it). */
    async blobStream(sha256: string, range?: { offset: number; length: number }): Promise<Readable> {
      const headers: Record<string, string> = {};
      if (range) headers.range = `bytes=${range.offset}-${range.offset + range.length - 1}`;
      const res = await request('GET', `api/v1/blobs/${sha256}`, { headers });
      if (res.status >= 400) return fail(res, 'GET', `api/v1/blobs/${sha256}`, 'ERR_ARCHIVE_MISSING');
      return res.body;
    },
    async getBlob(sha256: string): Promise<Buffer | undefined> {
      const res = await request('GET', `api/v1/blobs/${sha256}`);
      if (res.status === 404) {
        res.body.resume();
        return undefined;
      }
      if (res.status >= 400) return fail(res, 'GET', `api/v1/blobs/${sha256}`);
      return readAll(res.body);
    },
    async putComponent(
      ns: string,
      type: string,
      version: string,
      manifestText: string,
      metadata?: Partial<ComponentInfo['metadata']>,
    ): Promise<ComponentInfo> {
      return (
        await json<ComponentInfo>(
          'PUT',
          `${nsPath(ns)}/components/${e(type)}/${e(version)}`,
          { manifest: manifestText, ...(metadata ? { metadata } : {}) },
          { idempotent: true },
        )
      ).value;
    },
    async getComponent(ns: string, type: string, version: string): Promise<ComponentInfo> {
      return (
        await json<ComponentInfo>('GET', `${nsPath(ns)}/components/${e(type)}/${e(version)}`, undefined, {
          notFound: 'ERR_COMPONENT_NOT_FOUND',
        })
      ).value;
    },
    async findComponent(type: string, version: string): Promise<ComponentInfo[]> {
      return (
        await json<{ components: ComponentInfo[] }>('GET', `api/v1/components/${e(type)}/${e(version)}`)
      ).value.components;
    },
    async listComponents(ns: string, type?: string): Promise<ComponentInfo[]> {
      const q = type ? `?type=${e(type)}&limit=10000` : '?limit=10000';
      return (await json<{ components: ComponentInfo[] }>('GET', `${nsPath(ns)}/components${q}`)).value
        .components;
    },
    async componentManifestText(ns: string, type: string, version: string): Promise<string | undefined> {
      const path = `${nsPath(ns)}/components/${e(type)}/${e(version)}/manifest`;
      const res = await request('GET', path);
      if (res.status === 404) {
        res.body.resume();
        return undefined;
      }
      if (res.status >= 400) return fail(res, 'GET', path);
      return (await readAll(res.body)).toString('utf8');
    },
    archivePath(ns: string, type: string, version: string): string {
      return `${nsPath(ns)}/components/${e(type)}/${e(version)}/archive`;
    },
    /** The `.minisig` of a component manifest, or undefined when it is not signed. */
    async componentSignatureText(ns: string, type: string, version: string): Promise<string | undefined> {
      return textOrUndefined(`${nsPath(ns)}/components/${e(type)}/${e(version)}/signature`);
    },
    async putComponentSignature(
      ns: string,
      type: string,
      version: string,
      signature: string,
    ): Promise<SignatureUploadResult> {
      return putSignatureText(`${nsPath(ns)}/components/${e(type)}/${e(version)}/signature`, signature);
    },
    async deleteComponentSignature(ns: string, type: string, version: string): Promise<void> {
      await json('DELETE', `${nsPath(ns)}/components/${e(type)}/${e(version)}/signature`, undefined, {
        notFound: 'ERR_UNSIGNED',
      });
    },
    async deleteComponent(ns: string, type: string, version: string): Promise<void> {
      await json('DELETE', `${nsPath(ns)}/components/${e(type)}/${e(version)}`, undefined, {
        notFound: 'ERR_COMPONENT_NOT_FOUND',
      });
    },
    async putRelease(ns: string, release: string, manifestText: string): Promise<ReleaseInfo> {
      return (
        await json<ReleaseInfo>('PUT', `${nsPath(ns)}/releases/${e(release)}`, manifestText, {
          idempotent: true,
        })
      ).value;
    },
    async getRelease(ns: string, release: string): Promise<ReleaseInfo> {
      return (
        await json<ReleaseInfo>('GET', `${nsPath(ns)}/releases/${e(release)}`, undefined, {
          notFound: 'ERR_RELEASE_NOT_FOUND',
        })
      ).value;
    },
    async listReleases(ns: string): Promise<ReleaseInfo[]> {
      return (await json<{ releases: ReleaseInfo[] }>('GET', `${nsPath(ns)}/releases?limit=10000`)).value
        .releases;
    },
    async releaseManifestText(ns: string, release: string): Promise<string | undefined> {
      const path = `${nsPath(ns)}/releases/${e(release)}/manifest`;
      const res = await request('GET', path);
      if (res.status === 404) {
        res.body.resume();
        return undefined;
      }
      if (res.status >= 400) return fail(res, 'GET', path);
      return (await readAll(res.body)).toString('utf8');
    },
    /** The `.minisig` of a release manifest (release.json.minisig), or undefined when unsigned. */
    async releaseSignatureText(ns: string, release: string): Promise<string | undefined> {
      return textOrUndefined(`${nsPath(ns)}/releases/${e(release)}/signature`);
    },
    async putReleaseSignature(
      ns: string,
      release: string,
      signature: string,
    ): Promise<SignatureUploadResult> {
      return putSignatureText(`${nsPath(ns)}/releases/${e(release)}/signature`, signature);
    },
    async deleteReleaseSignature(ns: string, release: string): Promise<void> {
      await json('DELETE', `${nsPath(ns)}/releases/${e(release)}/signature`, undefined, {
        notFound: 'ERR_UNSIGNED',
      });
    },
    async deleteRelease(ns: string, release: string): Promise<void> {
      await json('DELETE', `${nsPath(ns)}/releases/${e(release)}`, undefined, {
        notFound: 'ERR_RELEASE_NOT_FOUND',
      });
    },
    async getPointer(ns: string, name: string): Promise<PointerInfo | undefined> {
      const path = `${nsPath(ns)}/pointers/${e(name)}`;
      const res = await request('GET', path);
      if (res.status === 404) {
        res.body.resume();
        return undefined;
      }
      if (res.status >= 400) return fail(res, 'GET', path);
      return JSON.parse((await readAll(res.body)).toString('utf8')) as PointerInfo;
    },
    async listPointers(ns: string): Promise<PointerInfo[]> {
      return (await json<{ pointers: PointerInfo[] }>('GET', `${nsPath(ns)}/pointers`)).value.pointers;
    },
    /** Compare-and-swap: expectedRevision null creates; a number replaces only that revision. */
    async setPointer(
      ns: string,
      name: string,
      target: string,
      expectedRevision: number | null,
    ): Promise<PointerInfo> {
      const headers: Record<string, string> =
        expectedRevision === null ? { 'if-none-match': '*' } : { 'if-match': `"${expectedRevision}"` };
      return (await json<PointerInfo>('PUT', `${nsPath(ns)}/pointers/${e(name)}`, { target }, { headers }))
        .value;
    },
    async search(
      query: string,
      filter: { namespace?: string; type?: string; tag?: string; framework?: string; limit?: number } = {},
    ): Promise<{ components: ComponentInfo[]; releases: ReleaseInfo[] }> {
      const q = new URLSearchParams({ q: query });
      for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
      return (
        await json<{ components: ComponentInfo[]; releases: ReleaseInfo[] }>(
          'GET',
          `api/v1/search?${q.toString()}`,
        )
      ).value;
    },
    async createToken(body: {
      name: string;
      role: string;
      namespaces: string[];
      expiresInDays?: number;
    }): Promise<TokenInfo & { token: string }> {
      const r = (await json<TokenInfo & { token: string }>('POST', 'api/v1/tokens', body)).value;
      registerSecret(r.token);
      return r;
    },
    async listTokens(): Promise<TokenInfo[]> {
      return (await json<{ tokens: TokenInfo[] }>('GET', 'api/v1/tokens')).value.tokens;
    },
    async revokeToken(id: string): Promise<void> {
      await json('DELETE', `api/v1/tokens/${e(id)}`, undefined, { notFound: 'ERR_USAGE' });
    },
    async audit(filter: { since?: string; until?: string; limit?: number } = {}): Promise<AuditEventInfo[]> {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
      return (await json<{ events: AuditEventInfo[] }>('GET', `api/v1/audit?${q.toString()}`)).value.events;
    },
    async stats(filter: { since?: string; until?: string } = {}): Promise<StatsInfo> {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
      return (await json<StatsInfo>('GET', `api/v1/stats?${q.toString()}`)).value;
    },
    close(): void {
      agent.destroy();
    },
  };
}
