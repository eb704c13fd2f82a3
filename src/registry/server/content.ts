/**
 * Content-addressed objects: streaming upload verified against the declared sha256 before
 * anything reaches the store (a temporary file, then an exclusive put), and streaming download
 * with Range, ETag / If-None-Match / If-Range and `Cache-Control: immutable`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { errnoCode } from '../../core/errors.js';
import type { RegistryApp, RouteContext } from './app.js';
import { HttpError, parseRange, sendJson } from './http.js';

export function blobKey(sha256: string): string {
  return `blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;
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
 * Writes `length` bytes of `file` from `start` to `res`, then ends it and waits for the response
 * to finish. `onSent` is told of every chunk handed to the socket. Throws if the client goes away
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
    res.end();
    await finished(res);
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
  const key = blobKey(sha256);
  const info = await app.store.head(key);
  if (!info) {
    if (!(await app.storeReady()))
      throw new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
    throw new HttpError('ERR_NOT_FOUND', `no content with sha256 ${sha256}`);
  }
  const size = info.size;
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
  const local = app.store.localPath?.(key);
  let file: FileHandle | undefined;
  let source: Readable | undefined;
  if (local) {
    file = await open(local, 'r').catch((err: unknown) => {
      throw errnoCode(err) === 'ENOENT'
        ? new HttpError('ERR_NOT_FOUND', `no content with sha256 ${sha256}`)
        : new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
    });
  } else {
    source = await app.store.getStream(key, range ? { offset: start, length } : undefined);
  }
  let sent = 0;
  res.writeHead(status, headers);
  const counted = !range || (range.start === 0 && !req.headers['x-deploy-tool-continuation']);
  try {
    if (file) {
      await sendFileRange(file, res, start, length, (n) => (sent += n));
    } else if (source) {
      source.on('data', (chunk: Buffer) => (sent += chunk.length));
      await pipeline(source, res);
    }
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
