/**
 * HTTP plumbing for the registry: one error type mapped to `{code, message}` JSON, bounded body
 * reading, path decoding that refuses `..` and control characters, and Range parsing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A catalogue of the errors the API returns: code -> HTTP status. */
export const API_ERRORS = {
  ERR_BAD_REQUEST: 400,
  ERR_INVALID_NAME: 400,
  ERR_INVALID_JSON: 400,
  ERR_INVALID_BODY: 400,
  ERR_DIGEST_MISMATCH: 400,
  ERR_BLOB_MISSING: 400,
  ERR_MANIFEST_INVALID: 400,
  ERR_COMPONENT_MISMATCH: 400,
  ERR_SIGNATURE_INVALID: 400,
  ERR_UNTRUSTED_KEY: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_FORBIDDEN: 403,
  ERR_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_COMPONENT_EXISTS: 409,
  ERR_RELEASE_EXISTS: 409,
  ERR_IN_USE: 409,
  ERR_SIGNATURE_EXISTS: 409,
  ERR_PRECONDITION_FAILED: 412,
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_RANGE_NOT_SATISFIABLE: 416,
  ERR_PRECONDITION_REQUIRED: 428,
  ERR_TOO_MANY_FAILURES: 429,
  ERR_INTERNAL: 500,
  ERR_DB_UNAVAILABLE: 503,
  ERR_STORE_UNAVAILABLE: 503,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class HttpError extends Error {
  readonly status: number;
  readonly code: ApiErrorCode;
  readonly headers: Record<string, string>;
  constructor(code: ApiErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.code = code;
    this.status = API_ERRORS[code];
    this.headers = headers;
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

export function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

/** Reads a request body of at most `limit` bytes; 413 past it (checked on Content-Length first). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    req.resume();
    throw new HttpError('ERR_BODY_TOO_LARGE', `request body is larger than ${limit} bytes`, {
      connection: 'close',
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new HttpError('ERR_BODY_TOO_LARGE', `request body is larger than ${limit} bytes`, {
        connection: 'close',
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? 'application/json');
  if (!/^application\/(json|[a-z.+-]*\+json)\b/i.test(type)) {
    req.resume();
    throw new HttpError('ERR_UNSUPPORTED_MEDIA_TYPE', `expected an application/json body, got "${type}"`);
  }
  const body = await readBody(req, limit);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new HttpError('ERR_INVALID_JSON', 'the request body is not valid JSON');
  }
}

/**
 * Splits and decodes a path. Refuses malformed escapes, `.`/`..` segments, control characters,
 * backslashes and empty inner segments (one trailing slash is tolerated).
 */
export function splitPath(rawPath: string): string[] {
  let path = rawPath;
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  const raw = path.split('/').slice(1);
  const out: string[] = [];
  for (const seg of raw) {
    let s: string;
    try {
      s = decodeURIComponent(seg);
    } catch {
      throw new HttpError('ERR_INVALID_NAME', 'the path contains a malformed %-escape');
    }
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(s))
      throw new HttpError('ERR_INVALID_NAME', 'the path contains a control character');
    if (s === '.' || s === '..' || s.includes('/') || s.includes('\\'))
      throw new HttpError('ERR_INVALID_NAME', 'the path contains a "." or ".." segment or a separator');
    if (s === '' && raw.length > 1)
      throw new HttpError('ERR_INVALID_NAME', 'the path contains an empty segment');
    out.push(s);
  }
  return out.filter((s, i) => !(s === '' && i === 0 && out.length === 1));
}

export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a Range header against a size. Returns undefined to serve the whole object (no header,
 * several ranges, or a unit we do not know), or throws 416 when it cannot be satisfied.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  let start: number;
  let end: number;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0) throw unsatisfiable(size);
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return undefined;
  }
  if (start >= size || !Number.isSafeInteger(start) || !Number.isSafeInteger(end)) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): HttpError {
  return new HttpError('ERR_RANGE_NOT_SATISFIABLE', `the range is outside the object (${size} bytes)`, {
    'content-range': `bytes */${size}`,
  });
}

/** The client's address: the socket's, or the first X-Forwarded-For hop when behind a trusted proxy. */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const fwd = req.headers['x-forwarded-for'];
    const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? 'unknown';
}

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}
