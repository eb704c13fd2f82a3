/**
 * Content-addressed objects: streaming upload verified against the declared sha256 before
 * anything reaches the store (a temporary file, then an exclusive put), and streaming download
 * with Range, ETag / If-None-Match / If-Range and `Cache-Control: immutable`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { errnoCode } from '../../core/errors.js';
import { recipeSchema } from '../../store/bucket.js';
import type { RegistryApp, RouteContext } from './app.js';
import { HttpError, parseRange, readJson, sendJson } from './http.js';

export function blobKey(sha256: string): string {
  return `blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;
}

/** Where the recipe of an archive stored as chunks lives (see PUT /api/v1/recipes/:sha). */
export function recipeKey(sha256: string): string {
  return `recipes/sha256/${sha256.slice(0, 2)}/${sha256}.json`;
}

/**
 * What holds the bytes of a content sha256: one blob, or the chunks (blobs) of a recipe that
 * concatenate to it, in order. Recipes are immutable (content-addressed), so parsed ones are kept.
 */
export interface StoredContent {
  size: number;
  parts: { key: string; size: number }[];
  chunked: boolean;
}

const RECIPES_KEPT = 512;
/** Per store (several apps may run in one process, each over its own store). */
const recipesByStore = new WeakMap<object, Map<string, StoredContent>>();

export async function resolveContent(app: RegistryApp, sha256: string): Promise<StoredContent | undefined> {
  const key = blobKey(sha256);
  const info = await app.store.head(key);
  if (info) return { size: info.size, parts: [{ key, size: info.size }], chunked: false };
  let recipes = recipesByStore.get(app.store);
  if (!recipes) recipesByStore.set(app.store, (recipes = new Map<string, StoredContent>()));
  const known = recipes.get(sha256);
  if (known) return known;
  const text = await app.store.get(recipeKey(sha256));
  if (!text) return undefined;
  const parsed = recipeSchema.safeParse(JSON.parse(text.toString('utf8')) as unknown);
  if (!parsed.success) throw new HttpError('ERR_INTERNAL', `the stored recipe of ${sha256} is unreadable`);
  const c: StoredContent = {
    size: parsed.data.archive.size,
    parts: parsed.data.chunks.map((x) => ({ key: blobKey(x.sha256), size: x.size })),
    chunked: true,
  };
  if (recipes.size >= RECIPES_KEPT) recipes.delete(recipes.keys().next().value as string);
  recipes.set(sha256, c);
  return c;
}

/** Writes bytes [start, start+length) of the content to `res` (not ending it), part by part. */
async function sendParts(
  app: RegistryApp,
  res: ServerResponse,
  content: StoredContent,
  start: number,
  length: number,
  onSent: (bytes: number) => void,
): Promise<void> {
  const end = start + length;
  let base = 0;
  for (const part of content.parts) {
    const from = Math.max(start, base) - base;
    const to = Math.min(end, base + part.size) - base;
    base += part.size;
    if (to <= from) continue;
    const local = app.store.localPath?.(part.key);
    if (local) {
      const file = await open(local, 'r');
      try {
        await sendFileRange(file, res, from, to - from, onSent);
      } finally {
        await file.close().catch(() => undefined);
      }
    } else {
      const source = await app.store.getStream(part.key, { offset: from, length: to - from });
      let got = 0;
      for await (const chunk of source as AsyncIterable<Buffer>) {
        got += chunk.length;
        await writeChunk(res, chunk);
        onSent(chunk.length);
      }
      if (got !== to - from) throw new Error('a stored chunk is shorter than its recorded size');
    }
  }
}

/**
 * Downloads from a local store read the file in large chunks straight into buffers that are
 * written to the socket as they are (no copy, no per-chunk stream machinery): while one chunk is
 * being written, the next is read. Two buffers per download, reused, and handed back to a small
 * shared pool when it ends, so memory stays flat however many downloads come and go.
 */
const CHUNK = 1024 * 1024;
const POOL_MAX = 16;
const pool: Buffer[] = [];
const takeBuffer = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);

/** Resolves once `chunk` is handed to the kernel (so its buffer may be reused); rejects if the response closes first. */
function writeChunk(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (res.destroyed) {
      reject(new Error('the response is closed'));
      return;
    }
    const onClose = (): void => reject(new Error('the response closed mid-write'));
    res.once('close', onClose);
    res.write(chunk, (err) => {
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * Writes `length` bytes of `file` from `start` to `res` (the caller ends it). `onSent` is told of
 * every chunk handed to the socket. Throws if the client goes away
 * or the file is shorter than expected (the caller then destroys the socket, so the client sees a
 * truncated body, never a wrong one).
 */
async function sendFileRange(
  file: FileHandle,
  res: ServerResponse,
  start: number,
  length: number,
  onSent: (bytes: number) => void,
): Promise<void> {
  const bufs = [takeBuffer(), takeBuffer()];
  let clean = false;
  let writing: Promise<void> | undefined;
  let writingBytes = 0;
  const settle = async (): Promise<void> => {
    if (!writing) return;
    const w = writing;
    writing = undefined;
    await w;
    onSent(writingBytes);
  };
  try {
    const end = start + length;
    for (let pos = start, i = 0; pos < end; i ^= 1) {
      // Read the next chunk while the previous one is being written (from the other buffer).
      const buf = bufs[i] ?? takeBuffer();
      const want = Math.min(CHUNK, end - pos);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await file.read(buf, got, want - got, pos + got);
        if (bytesRead === 0) throw new Error('the stored file is shorter than its recorded size');
        got += bytesRead;
      }
      pos += got;
      await settle();
      writing = writeChunk(res, got === buf.length ? buf : buf.subarray(0, got));
      writingBytes = got;
      // A failed write is reported at the next settle(); until then it must not count as unhandled.
      writing.catch(() => undefined);
    }
    await settle();
    clean = true;
  } finally {
    // After a failure a write may still hold a buffer: leave those to the garbage collector.
    if (clean) for (const b of bufs) if (pool.length < POOL_MAX) pool.push(b);
  }
}

export interface Attribution {
  namespace: string;
  type: string;
  version: string;
}

/** Streams a blob to the client. Records a download (and its bytes) when `attribution` is given. */
export async function serveBlob(
  ctx: RouteContext,
  app: RegistryApp,
  sha256: string,
  options: { attribution?: Attribution | undefined; filename?: string; contentType?: string } = {},
): Promise<void> {
  const { req, res } = ctx;
  const content = await resolveContent(app, sha256);
  if (!content) {
    if (!(await app.storeReady()))
      throw new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
    throw new HttpError('ERR_NOT_FOUND', `no content with sha256 ${sha256}`);
  }
  const size = content.size;
  const etag = `"${sha256}"`;
  const cacheControl = `${app.options.allowAnonymousRead ? 'public' : 'private'}, max-age=31536000, immutable`;
  const common: Record<string, string> = {
    etag,
    'cache-control': cacheControl,
    'accept-ranges': 'bytes',
    'content-type': options.contentType ?? 'application/octet-stream',
  };
  if (options.filename)
    common['content-disposition'] = `attachment; filename="${options.filename.replace(/[^\w.+-]/g, '_')}"`;
  const inm = req.headers['if-none-match'];
  if (inm && (inm === '*' || inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag))) {
    res.writeHead(304, common);
    res.end();
    return;
  }
  let range = parseRange(req.headers.range, size);
  const ifRange = req.headers['if-range'] as string | undefined;
  if (range && ifRange && ifRange.trim() !== etag) range = undefined;
  const start = range?.start ?? 0;
  const length = range ? range.end - range.start + 1 : size;
  const headers: Record<string, string> = { ...common, 'content-length': String(length) };
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
  const status = range ? 206 : 200;
  if (ctx.method === 'HEAD' || length === 0) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  // A single local blob is opened before the headers go out, so a vanished file is still a 404.
  const only = content.parts.length === 1 ? content.parts[0] : undefined;
  const local = only ? app.store.localPath?.(only.key) : undefined;
  let file: FileHandle | undefined;
  if (local) {
    file = await open(local, 'r').catch((err: unknown) => {
      throw errnoCode(err) === 'ENOENT'
        ? new HttpError('ERR_NOT_FOUND', `no content with sha256 ${sha256}`)
        : new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
    });
  }
  let sent = 0;
  res.writeHead(status, headers);
  const counted = !range || (range.start === 0 && !req.headers['x-deploy-tool-continuation']);
  try {
    if (file) await sendFileRange(file, res, start, length, (n) => (sent += n));
    else await sendParts(app, res, content, start, length, (n) => (sent += n));
    res.end();
    await finished(res);
  } catch {
    // Client went away, or the store failed mid-stream: the socket is closed, nothing else to do.
    res.destroy();
  } finally {
    const a = options.attribution;
    await file?.close().catch(() => undefined);
    if (a) {
      app.metrics.download(a.namespace, a.type, counted, sent);
      await app.repo
        .recordDownload(
          a.namespace,
          a.type,
          a.version,
          app.now().toISOString().slice(0, 10),
          counted ? 1 : 0,
          sent,
        )
        .catch((err: unknown) => app.log(`could not record a download: ${String(err)}`));
    }
  }
}

/**
 * PUT /api/v1/recipes/:sha: the archive `sha` is the concatenation of chunks already uploaded as
 * blobs (so a new version uploads only the chunks that changed). The server reads the chunks
 * through one sha256 and stores the recipe only if the concatenation has that digest; from then
 * on the archive is served (whole or by ranges) exactly like a blob.
 */
export async function receiveRecipe(ctx: RouteContext, app: RegistryApp, sha256: string): Promise<void> {
  const body = await readJson(ctx.req, app.options.maxJsonBytes);
  const parsed = recipeSchema.safeParse(body);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new HttpError(
      'ERR_INVALID_BODY',
      `not an archive recipe: ${i ? `${i.path.join('.') || 'body'}: ${i.message}` : 'invalid'}`,
    );
  }
  const r = parsed.data;
  if (r.archive.sha256 !== sha256)
    throw new HttpError(
      'ERR_INVALID_BODY',
      `the recipe describes archive ${r.archive.sha256}, not ${sha256}`,
    );
  let off = 0;
  for (const c of r.chunks) {
    if (c.offset !== off) throw new HttpError('ERR_INVALID_BODY', 'the chunks do not tile the archive');
    off += c.size;
  }
  if (off !== r.archive.size)
    throw new HttpError(
      'ERR_INVALID_BODY',
      `the chunks cover ${off} bytes, the archive has ${r.archive.size}`,
    );
  const existing = await resolveContent(app, sha256);
  if (existing) {
    app.metrics.upload('exists');
    sendJson(ctx.res, 200, { sha256, size: existing.size, status: 'exists' });
    return;
  }
  if (!(await app.storeReady()))
    throw new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
  for (const c of r.chunks) {
    const h = await app.store.head(blobKey(c.sha256));
    if (!h) throw new HttpError('ERR_BLOB_MISSING', `upload the chunk first: PUT /api/v1/blobs/${c.sha256}`);
    if (h.size !== c.size)
      throw new HttpError(
        'ERR_BLOB_MISSING',
        `chunk ${c.sha256} has ${h.size} bytes, the recipe says ${c.size}`,
      );
  }
  // The concatenation must be the archive: read every chunk once through one sha256.
  const hash = createHash('sha256');
  for (const c of r.chunks) {
    const local = app.store.localPath?.(blobKey(c.sha256));
    const source = local
      ? createReadStream(local, { highWaterMark: 4 * 1024 * 1024 })
      : await app.store.getStream(blobKey(c.sha256));
    for await (const chunk of source as AsyncIterable<Buffer>) hash.update(chunk);
  }
  const digest = hash.digest('hex');
  if (digest !== sha256) {
    app.metrics.upload('digest-mismatch');
    throw new HttpError(
      'ERR_DIGEST_MISMATCH',
      `the chunks concatenate to sha256 ${digest}, not ${sha256}; nothing was stored`,
    );
  }
  const w = await app.store.put(recipeKey(sha256), `${JSON.stringify(r)}\n`, { ifNoneMatch: true });
  const created = w.status !== 'exists';
  app.metrics.upload(created ? 'created' : 'exists');
  sendJson(ctx.res, created ? 201 : 200, {
    sha256,
    size: r.archive.size,
    status: created ? 'created' : 'exists',
    chunks: r.chunks.length,
  });
}

/** GET /api/v1/recipes/:sha: the chunks an archive is stored as (404 when it is one blob). */
export async function sendRecipe(ctx: RouteContext, app: RegistryApp, sha256: string): Promise<void> {
  const etag = `"recipe-${sha256}"`;
  const text = await app.store.get(recipeKey(sha256));
  if (!text) {
    if (!(await app.storeReady()))
      throw new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
    throw new HttpError('ERR_NOT_FOUND', `content ${sha256} is not stored as chunks`);
  }
  const headers = {
    etag,
    'cache-control': `${app.options.allowAnonymousRead ? 'public' : 'private'}, max-age=31536000, immutable`,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(text.length),
  };
  if (ctx.req.headers['if-none-match'] === etag) {
    ctx.res.writeHead(304, { etag });
    ctx.res.end();
    return;
  }
  ctx.res.writeHead(200, headers);
  ctx.res.end(ctx.method === 'HEAD' ? undefined : text);
}

/** PUT /api/v1/blobs/:sha: stream to a temporary file while hashing; store only if the digest matches. */
export async function receiveBlob(ctx: RouteContext, app: RegistryApp, sha256: string): Promise<void> {
  const { req, res } = ctx;
  const declared = req.headers['content-length'];
  const max = app.options.maxBlobBytes;
  if (declared !== undefined && Number(declared) > max) {
    req.resume();
    throw new HttpError('ERR_BODY_TOO_LARGE', `content is larger than this server accepts (${max} bytes)`, {
      connection: 'close',
    });
  }
  const key = blobKey(sha256);
  const existing = await app.store.head(key);
  if (existing) {
    app.metrics.upload('exists');
    req.resume();
    sendJson(res, 200, { sha256, size: existing.size, status: 'exists' });
    return;
  }
  if (!(await app.storeReady()))
    throw new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
  const tmp = join(app.options.tmpDir, `upload-${process.pid}-${randomBytes(8).toString('hex')}`);
  const hash = createHash('sha256');
  let size = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > max) {
        cb(new HttpError('ERR_BODY_TOO_LARGE', `content is larger than this server accepts (${max} bytes)`));
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    try {
      await pipeline(req, hasher, createWriteStream(tmp, { flags: 'wx', highWaterMark: 1024 * 1024 }));
    } catch (err) {
      if (err instanceof HttpError) throw err;
      app.metrics.upload('aborted');
      // The client went away: nothing was stored, the temporary file is removed below.
      res.destroy();
      return;
    }
    if (declared !== undefined && Number(declared) !== size) {
      app.metrics.upload('truncated');
      throw new HttpError('ERR_BAD_REQUEST', `received ${size} bytes, Content-Length said ${declared}`);
    }
    const digest = hash.digest('hex');
    if (digest !== sha256) {
      app.metrics.upload('digest-mismatch');
      throw new HttpError(
        'ERR_DIGEST_MISMATCH',
        `the content's sha256 is ${digest}, not ${sha256}; nothing was stored`,
      );
    }
    const st = await stat(tmp);
    const r = await app.store.putFile(key, tmp, { ifNoneMatch: true });
    app.metrics.upload(r.status === 'exists' ? 'exists' : 'created');
    sendJson(res, r.status === 'exists' ? 200 : 201, {
      sha256,
      size: st.size,
      status: r.status === 'exists' ? 'exists' : 'created',
    });
  } finally {
    await rm(tmp, { force: true });
  }
}
