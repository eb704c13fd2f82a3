/**
 * S3-compatible object storage as a Store: AWS S3, Ceph radosgw, MinIO, and Baidu BOS through its
 * S3-compatible API (createBosStore). The SDK is imported lazily, on the first request.
 *
 * - Immutable writes: PutObject with `If-None-Match: *` (412 -> 'exists'), enforced by the server.
 * - Compare-and-swap: PutObject with `If-Match: ETAG` (412 -> 'conflict'). The ETag is sent
 *   unquoted (Ceph answers 412 to the quoted form). CAS is for small objects (single PutObject).
 * - File ranges (content-addressed blobs) stream from the file, never buffered: one PutObject up to
 *   `singlePutMax` (If-None-Match enforced by the server), above it a multipart upload (parts of
 *   `partSize`, `queueSize` in parallel). Every request is signed with the sha256 of its body
 *   (SigV4 `x-amz-content-sha256`: the caller's sha256 of the range, else one hashing pass), which
 *   the server verifies before storing (XAmzContentSHA256Mismatch otherwise); after a multipart
 *   upload the object's size is checked with a HEAD. No MD5 is computed: a single PutObject hashes
 *   each byte once on our side; multipart hashes the parts (and the whole, against the caller's).
 * - Retries with exponential backoff and jitter on 5xx, 429, timeouts and dropped connections
 *   (the SDK's own retries are off, so that attempts do not multiply).
 * - Errors: DeployToolError ERR_STORE, "[s3] ENDPOINT bucket B: ...", secrets redacted.
 * - Credentials: `credentials` (library use) or the SDK's default chain (environment, profiles,
 *   credential files, ...). BOS: BOS_ACCESS_KEY_ID/BOS_SECRET_ACCESS_KEY first.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { DeployToolError, errnoCode } from '../../core/errors.js';
import { redact } from '../../core/redact.js';
import { checkKey, type ObjectInfo, type PutOptions, type PutResult, type Store } from '../types.js';
import { sha256OfFileRange } from '../util.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ("team/models"); no leading or trailing slash needed. */
  prefix?: string | undefined;
  /** Endpoint URL (Ceph, MinIO, BOS, ...). Default: AWS for the region. */
  endpoint?: string | undefined;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1. */
  region?: string | undefined;
  /** Explicit credentials (library use). Default: the SDK's default provider chain. */
  credentials?: S3Credentials | undefined;
  /** Path-style URLs (endpoint/bucket/key). Default: true when an endpoint is given. */
  forcePathStyle?: boolean | undefined;
  /** Attempts per request, first included (default 5). */
  maxAttempts?: number | undefined;
  /** First backoff delay in ms (default 250; doubles, with jitter, up to 8 s). */
  retryBaseMs?: number | undefined;
  /** Connection timeout in ms (default 5000). */
  connectTimeoutMs?: number | undefined;
  /** Socket idle timeout in ms (default 60000). */
  requestTimeoutMs?: number | undefined;
  /** Multipart part size (default 16 MiB). */
  partSize?: number | undefined;
  /** File ranges up to this size are one streamed PutObject, larger ones multipart (default 256 MiB, at least partSize). */
  singlePutMax?: number | undefined;
  /** Parts uploaded in parallel (default 4). */
  queueSize?: number | undefined;
  /** Driver name used in messages: "s3" (default) or "bos". */
  driverName?: string | undefined;
}

export interface S3Store extends Store {
  readonly bucket: string;
  /**
   * Streams bytes [offset, offset+length) to `onData` as they arrive (`at`: offset in the range;
   * a retried attempt starts again at 0), with the retries of getRange. Returns the bytes sent.
   */
  getRangeStream(
    key: string,
    offset: number,
    length: number,
    onData: (data: Uint8Array, at: number) => void | Promise<void>,
  ): Promise<number>;
  readonly endpoint: string;
  /** Checks that the bucket exists and the credentials may use it (HeadBucket). */
  checkBucket(): Promise<void>;
  /** Creates the bucket if missing (tests, first setup). */
  createBucket(): Promise<void>;
}

const MiB = 1024 * 1024;
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'InternalError',
  'ServiceUnavailable',
]);

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
  cause?: unknown;
}

const asSdk = (err: unknown): SdkError => (err && typeof err === 'object' ? err : {});
const statusOf = (err: unknown): number | undefined =>
  asSdk(err).$metadata?.httpStatusCode ?? asSdk(err).$response?.statusCode;
const nameOf = (err: unknown): string => {
  const e = asSdk(err);
  return e.Code ?? e.name ?? errnoCode(err) ?? 'Error';
};
/** A network-level code anywhere in the error or its causes. */
const netCodeOf = (err: unknown): string | undefined => {
  let cur: unknown = err;
  for (let i = 0; i < 5 && cur; i++) {
    const code = errnoCode(cur);
    if (code && RETRYABLE_CODES.has(code)) return code;
    const name = asSdk(cur).name;
    if (name && RETRYABLE_CODES.has(name)) return name;
    if (/socket hang up|other side closed|premature close/i.test(asSdk(cur).message ?? ''))
      return 'ECONNRESET';
    cur = asSdk(cur).cause;
  }
  return undefined;
};

export function isRetryable(err: unknown): boolean {
  if (err instanceof DeployToolError) return false;
  const status = statusOf(err);
  if (status !== undefined && status > 0) return status >= 500 || status === 429 || status === 408;
  return netCodeOf(err) !== undefined || RETRYABLE_CODES.has(nameOf(err));
}

const unquote = (etag: string | undefined): string | undefined => etag?.replace(/^(W\/)?"|"$/g, '');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function normalizePrefix(driver: string, prefix: string | undefined): string {
  const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (p) checkKey(driver, p);
  return p;
}

/** The SDK warns on the console when a streamed request fails; our retry loop reports instead. */
const silentLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Signs the request with a known sha256 of its body (the server verifies it), instead of UNSIGNED-PAYLOAD. */
function signBody<C extends { middlewareStack: { add: (...a: never[]) => unknown } }>(
  cmd: C,
  sha256: string,
): C {
  const add = cmd.middlewareStack.add as unknown as (
    mw: (
      next: (args: { request: unknown }) => Promise<unknown>,
    ) => (args: { request: unknown }) => Promise<unknown>,
    opts: { step: 'build'; name: string },
  ) => void;
  add(
    (next) => (args) => {
      const req = args.request as { headers?: Record<string, string> };
      if (req.headers) req.headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 'deployToolContentSha256' },
  );
  return cmd;
}

const isShaMismatch = (err: unknown): boolean =>
  nameOf(err) === 'XAmzContentSHA256Mismatch' || /XAmzContentSHA256Mismatch/.test(asSdk(err).message ?? '');

export function createS3Store(options: S3StoreOptions): S3Store {
  const driver = options.driverName ?? 's3';
  const bucket = options.bucket;
  if (!bucket || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new DeployToolError('ERR_USAGE', `[${driver}] invalid bucket name "${bucket}"`, {
      hint: 'Bucket names are 3-63 characters: lowercase letters, digits, dots and hyphens.',
    });
  }
  const prefix = normalizePrefix(driver, options.prefix);
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const endpoint = options.endpoint?.replace(/\/+$/, '');
  if (endpoint && !/^https?:\/\/[^/\s]+/.test(endpoint)) {
    throw new DeployToolError('ERR_USAGE', `[${driver}] invalid endpoint "${redact(endpoint)}"`, {
      hint: 'Give a URL such as https://s3.example.com or http://127.0.0.1:7480.',
    });
  }
  const endpointLabel = redact(endpoint ?? `https://s3.${region}.amazonaws.com`);
  const location = `${endpointLabel} bucket ${bucket}${prefix ? ` prefix ${prefix}` : ''}`;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 5);
  const retryBaseMs = options.retryBaseMs ?? 250;
  const partSize = Math.max(5 * MiB, options.partSize ?? 16 * MiB);
  const queueSize = Math.max(1, options.queueSize ?? 4);
  const singlePutMax = Math.max(partSize, options.singlePutMax ?? 256 * MiB);
  const forcePathStyle = options.forcePathStyle ?? endpoint !== undefined;

  const full = (key: string): string => {
    checkKey(driver, key);
    return prefix ? `${prefix}/${key}` : key;
  };

  let clientPromise: Promise<{ client: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> | undefined;
  const getClient = (): Promise<{ client: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> => {
    clientPromise ??= (async () => {
      // We pin the SDK version (package.json), so its Node-version notice is noise for our users.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const sdk = await import('@aws-sdk/client-s3');
      const client = new sdk.S3Client({
        region,
        endpoint,
        forcePathStyle,
        credentials: options.credentials,
        maxAttempts: 1,
        logger: silentLogger,
        // S3-compatible servers (Ceph, BOS) do not all accept the newer checksum trailers.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler: {
          connectionTimeout: options.connectTimeoutMs ?? 5000,
          requestTimeout: options.requestTimeoutMs ?? 60_000,
        },
      });
      return { client, sdk };
    })();
    return clientPromise;
  };

  const fail = (err: unknown, op: string, key: string | undefined, attempts: number): DeployToolError => {
    if (err instanceof DeployToolError) return err;
    const status = statusOf(err);
    const name = nameOf(err);
    const net = netCodeOf(err);
    const where = `[${driver}] ${endpointLabel} bucket ${bucket}`;
    const what = key ? `${op} ${full(key)}` : op;
    const credHint =
      driver === 'bos'
        ? 'Check BOS_ACCESS_KEY_ID/BOS_SECRET_ACCESS_KEY (or the AWS_* variables, AWS_PROFILE, ~/.aws/credentials) and that they may use this bucket.'
        : 'Check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE or ~/.aws/credentials, and that they may use this bucket.';
    let message: string;
    let hint: string;
    if (name === 'NoSuchBucket') {
      message = `${where}: the bucket does not exist (${what})`;
      hint =
        'Create the bucket, or check --bucket, --endpoint and --region (or the store in .deploy-tool.yaml).';
    } else if (
      ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'ExpiredToken'].includes(
        name,
      ) ||
      status === 403
    ) {
      message = `${where}: access denied (${name}) on ${what}`;
      hint = credHint;
    } else if (name === 'CredentialsProviderError' || /credential/i.test(asSdk(err).message ?? '')) {
      message = `${where}: no credentials found for ${what}`;
      hint = `Credentials come only from the environment or standard files. ${credHint}`;
    } else if (name === 'PermanentRedirect' || status === 301) {
      message = `${where}: the bucket is in another region (${what})`;
      hint = 'Pass --region with the bucket region (or set region in the store of .deploy-tool.yaml).';
    } else if (net || errnoCode(err) === 'ENOTFOUND') {
      const code = net ?? 'ENOTFOUND';
      message = `${where}: cannot reach the endpoint (${code}${attempts > 1 ? ` after ${attempts} attempts` : ''}) during ${what}`;
      hint =
        'Check --endpoint (or the store in .deploy-tool.yaml), the network, and that the server is running.';
    } else {
      message = `${where}: ${what} failed: ${name}${status ? ` (HTTP ${status})` : ''}${attempts > 1 ? ` after ${attempts} attempts` : ''}`;
      hint = status && status >= 500 ? 'The server failed; try again later.' : 'See --verbose for details.';
    }
    return new DeployToolError('ERR_STORE', redact(message), {
      hint,
      cause: err,
      details: {
        driver,
        endpoint: endpointLabel,
        bucket,
        key: key ?? null,
        status: status ?? null,
        error: name,
      },
    });
  };

  /** Runs fn with retries; fn gets the attempt number (1-based). */
  const retry = async <T>(
    op: string,
    key: string | undefined,
    fn: (attempt: number) => Promise<T>,
  ): Promise<T> => {
    if (key !== undefined) full(key); // bad keys are refused before any request
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (err) {
        if (attempt >= maxAttempts || !isRetryable(err)) throw fail(err, op, key, attempt);
        const delay = Math.min(8000, retryBaseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        await sleep(delay);
      }
    }
  };

  const head = (key: string): Promise<ObjectInfo | undefined> =>
    retry('head', key, async () => {
      const { client, sdk } = await getClient();
      try {
        const r = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: full(key) }));
        return { key, size: r.ContentLength ?? 0, etag: unquote(r.ETag) };
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    });

  const readBody = async (body: unknown): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  };

  const get = (key: string): Promise<Buffer | undefined> =>
    retry('get', key, async () => {
      const { client, sdk } = await getClient();
      try {
        const r = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: full(key) }));
        const buf = await readBody(r.Body);
        if (r.ContentLength !== undefined && buf.length !== r.ContentLength) {
          throw Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
        }
        return buf;
      } catch (err) {
        if (nameOf(err) === 'NoSuchKey') return undefined;
        throw err;
      }
    });

  const contentType = (key: string): string =>
    key.endsWith('.json') ? 'application/json' : 'application/octet-stream';

  const put = (key: string, data: Buffer | string, opts: PutOptions = {}): Promise<PutResult> => {
    const body = typeof data === 'string' ? Buffer.from(data) : data;
    const md5 = createHash('md5').update(body).digest('hex');
    return retry('put', key, async (attempt) => {
      const { client, sdk } = await getClient();
      let existed = false;
      if (!opts.ifNoneMatch && opts.ifMatch === undefined) existed = (await head(key)) !== undefined;
      try {
        const r = await client.send(
          new sdk.PutObjectCommand({
            Bucket: bucket,
            Key: full(key),
            Body: body,
            ContentLength: body.length,
            ContentType: contentType(key),
            IfNoneMatch: opts.ifNoneMatch ? '*' : undefined,
            IfMatch: opts.ifMatch !== undefined ? unquote(opts.ifMatch) : undefined,
          }),
        );
        const etag = unquote(r.ETag);
        if (etag && /^[0-9a-f]{32}$/.test(etag) && etag !== md5) {
          throw new DeployToolError(
            'ERR_STORE',
            `[${driver}] ${location}: the server stored other bytes than sent for ${full(key)} (ETag ${etag}, expected ${md5})`,
            { hint: 'The transfer was damaged. Publish again.' },
          );
        }
        const replaced = opts.ifMatch !== undefined || existed;
        return { status: replaced ? 'replaced' : 'created', etag };
      } catch (err) {
        const status = statusOf(err);
        const precondition = status === 412 || nameOf(err) === 'PreconditionFailed';
        const missing = opts.ifMatch !== undefined && (status === 404 || nameOf(err) === 'NoSuchKey');
        if (!precondition && !missing) throw err;
        // A retried conditional write may have succeeded the first time: same bytes there = ours.
        if (attempt > 1 && precondition) {
          const cur = await get(key);
          if (cur?.equals(body)) {
            const info = await head(key);
            return { status: opts.ifNoneMatch ? 'created' : 'replaced', etag: info?.etag };
          }
        }
        return { status: opts.ifNoneMatch ? 'exists' : 'conflict' };
      }
    });
  };

  const damaged = (key: string, why: string): DeployToolError =>
    new DeployToolError('ERR_STORE', `[${driver}] ${location}: the server refused ${full(key)}: ${why}`, {
      hint: 'The file changed while it was uploaded, or the transfer was damaged. Publish again.',
    });

  /** A stream of bytes [offset, offset+length) of a file (a fresh one for every attempt). */
  const rangeBody = (path: string, offset: number, length: number): Readable | Buffer =>
    length === 0
      ? Buffer.alloc(0)
      : createReadStream(path, { start: offset, end: offset + length - 1, highWaterMark: MiB });

  const putFileRange = async (
    key: string,
    path: string,
    range: { offset: number; length: number },
    opts: PutOptions = {},
  ): Promise<PutResult> => {
    if (opts.ifMatch !== undefined) {
      // Compare-and-swap is for small objects: read the range and put() it.
      if (range.length > partSize) {
        throw new Error(`[${driver}] compare-and-swap is for small objects (single PutObject), not ${key}`);
      }
      const fh = await open(path, 'r');
      let buf: Buffer;
      try {
        buf = Buffer.allocUnsafe(range.length);
        let got = 0;
        while (got < range.length) {
          const { bytesRead } = await fh.read(buf, got, range.length - got, range.offset + got);
          if (bytesRead === 0) throw new Error(`[${driver}] ${path} is shorter than expected`);
          got += bytesRead;
        }
      } finally {
        await fh.close();
      }
      return put(key, buf, opts);
    }
    full(key);
    if (range.length <= singlePutMax) {
      // One streamed PutObject, signed with the sha256 of the range (the server verifies it).
      const sha256 = opts.sha256 ?? (await sha256OfFileRange(path, range.offset, range.length));
      return retry('put', key, async () => {
        const { client, sdk } = await getClient();
        const existed = opts.ifNoneMatch ? false : (await head(key)) !== undefined;
        const body = rangeBody(path, range.offset, range.length);
        try {
          const r = await client.send(
            signBody(
              new sdk.PutObjectCommand({
                Bucket: bucket,
                Key: full(key),
                Body: body,
                ContentLength: range.length,
                ContentType: contentType(key),
                IfNoneMatch: opts.ifNoneMatch ? '*' : undefined,
              }),
              sha256,
            ),
          );
          return { status: existed ? 'replaced' : 'created', etag: unquote(r.ETag) };
        } catch (err) {
          if (isShaMismatch(err))
            throw damaged(key, 'its sha256 is not the one signed (XAmzContentSHA256Mismatch)');
          // 412 on a retry: the first attempt may have stored it; either way it is there.
          if (statusOf(err) === 412 || nameOf(err) === 'PreconditionFailed') return { status: 'exists' };
          throw err;
        } finally {
          if (body instanceof Readable) body.destroy();
        }
      });
    }
    // Servers ignore If-None-Match on CompleteMultipartUpload (Ceph does): check first. Large
    // objects are content-addressed blobs, where a concurrent writer writes the same bytes.
    const before = await head(key);
    if (opts.ifNoneMatch && before) return { status: 'exists' };
    const parts: { offset: number; length: number; sha256: string }[] = [];
    for (let off = 0; off < range.length; off += partSize) {
      const length = Math.min(partSize, range.length - off);
      parts.push({ offset: range.offset + off, length, sha256: '' });
    }
    // One pass: every part's sha256 (each part is signed with it), and the whole range's when the
    // caller gave it (the key of a content-addressed blob), so that a file changed since is refused.
    const whole = opts.sha256 ? createHash('sha256') : undefined;
    for (const p of parts) {
      const h = createHash('sha256');
      for await (const c of createReadStream(path, {
        start: p.offset,
        end: p.offset + p.length - 1,
        highWaterMark: 4 * MiB,
      })) {
        h.update(c as Buffer);
        whole?.update(c as Buffer);
      }
      p.sha256 = h.digest('hex');
    }
    if (whole && whole.digest('hex') !== opts.sha256)
      throw damaged(key, `its sha256 is not ${opts.sha256} (the file changed?)`);
    const { client, sdk } = await getClient();
    const created = await retry('start upload of', key, () =>
      client.send(
        new sdk.CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: full(key),
          ContentType: contentType(key),
        }),
      ),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw fail(new Error('no UploadId'), 'start upload of', key, 1);
    try {
      const etags: string[] = new Array<string>(parts.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < parts.length) {
          const i = next++;
          const p = parts[i]!;
          etags[i] = await retry(`upload part ${i + 1} of`, key, async () => {
            const body = rangeBody(path, p.offset, p.length);
            try {
              const r = await client.send(
                signBody(
                  new sdk.UploadPartCommand({
                    Bucket: bucket,
                    Key: full(key),
                    UploadId: uploadId,
                    PartNumber: i + 1,
                    Body: body,
                    ContentLength: p.length,
                  }),
                  p.sha256,
                ),
              );
              if (!r.ETag) throw Object.assign(new Error('no ETag for a part'), { name: 'InternalError' });
              return r.ETag;
            } catch (err) {
              if (isShaMismatch(err))
                throw damaged(
                  key,
                  `part ${i + 1}: its sha256 is not the one signed (XAmzContentSHA256Mismatch)`,
                );
              throw err;
            } finally {
              if (body instanceof Readable) body.destroy();
            }
          });
        }
      };
      await Promise.all(Array.from({ length: Math.min(queueSize, parts.length) }, worker));
      await retry('complete upload of', key, () =>
        client.send(
          new sdk.CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: full(key),
            UploadId: uploadId,
            MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
          }),
        ),
      );
    } catch (err) {
      await client
        .send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: full(key), UploadId: uploadId }))
        .catch(() => undefined);
      throw err;
    }
    // Ceph's CompleteMultipartUpload answers an empty ETag: read it back.
    const info = await head(key);
    if (!info || info.size !== range.length) {
      throw new DeployToolError(
        'ERR_STORE',
        `[${driver}] ${location}: ${full(key)} has ${info?.size ?? 'no'} bytes after upload, expected ${range.length}`,
        { hint: 'The upload did not complete. Publish again.' },
      );
    }
    return { status: before ? 'replaced' : 'created', etag: info.etag };
  };

  /**
   * Streams bytes [offset, offset+length) of an object to `onData` as they arrive (`at`: where the
   * piece lies in the range; awaited, so a slow consumer slows the transfer). A retried attempt
   * starts again at 0. Returns the number of bytes the server sent (the caller checks it).
   */
  const getRangeStream = (
    key: string,
    offset: number,
    length: number,
    onData: (data: Uint8Array, at: number) => void | Promise<void>,
  ): Promise<number> => {
    if (length <= 0) return Promise.resolve(0);
    return retry('get range of', key, async () => {
      const { client, sdk } = await getClient();
      try {
        const r = await client.send(
          new sdk.GetObjectCommand({
            Bucket: bucket,
            Key: full(key),
            Range: `bytes=${offset}-${offset + length - 1}`,
          }),
        );
        let got = 0;
        for await (const c of r.Body as AsyncIterable<Uint8Array>) {
          // More than asked for: stop reading (the caller refuses the range: got > length).
          if (got + c.length > length) {
            got += c.length;
            break;
          }
          await onData(c, got);
          got += c.length;
        }
        if (got <= length && r.ContentLength !== undefined && got !== r.ContentLength) {
          throw Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
        }
        return got;
      } catch (err) {
        if (statusOf(err) === 416 || nameOf(err) === 'InvalidRange') return 0;
        if (nameOf(err) === 'NoSuchKey') {
          throw new DeployToolError('ERR_STORE', `[${driver}] ${location}: ${full(key)} does not exist`, {
            hint: 'Publish it again, or check the store location.',
          });
        }
        throw err;
      }
    });
  };

  const getRange = (key: string, offset: number, length: number): Promise<Buffer> => {
    if (length <= 0) return Promise.resolve(Buffer.alloc(0));
    return retry('get range of', key, async () => {
      const { client, sdk } = await getClient();
      try {
        const r = await client.send(
          new sdk.GetObjectCommand({
            Bucket: bucket,
            Key: full(key),
            Range: `bytes=${offset}-${offset + length - 1}`,
          }),
        );
        // One buffer of the expected size, filled as the body arrives (no list of pieces joined).
        let buf = Buffer.allocUnsafe(length);
        let got = 0;
        for await (const c of r.Body as AsyncIterable<Uint8Array>) {
          if (got + c.length > buf.length) {
            const bigger = Buffer.allocUnsafe(Math.max(got + c.length, buf.length * 2));
            buf.copy(bigger, 0, 0, got);
            buf = bigger;
          }
          buf.set(c, got);
          got += c.length;
        }
        if (r.ContentLength !== undefined && got !== r.ContentLength) {
          throw Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
        }
        return got === buf.length ? buf : buf.subarray(0, got);
      } catch (err) {
        if (statusOf(err) === 416 || nameOf(err) === 'InvalidRange') return Buffer.alloc(0);
        if (nameOf(err) === 'NoSuchKey') {
          throw new DeployToolError('ERR_STORE', `[${driver}] ${location}: ${full(key)} does not exist`, {
            hint: 'Publish it again, or check the store location.',
          });
        }
        throw err;
      }
    });
  };

  const store: S3Store = {
    driver,
    location,
    bucket,
    endpoint: endpointLabel,
    head,
    get,
    getRange,
    getRangeStream,
    async getStream(key, range) {
      return retry('get', key, async () => {
        const { client, sdk } = await getClient();
        try {
          const r = await client.send(
            new sdk.GetObjectCommand({
              Bucket: bucket,
              Key: full(key),
              Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
            }),
          );
          return r.Body instanceof Readable ? r.Body : Readable.from(r.Body as AsyncIterable<Buffer>);
        } catch (err) {
          if (nameOf(err) === 'NoSuchKey') {
            throw new DeployToolError('ERR_STORE', `[${driver}] ${location}: ${full(key)} does not exist`, {
              hint: 'Publish it again, or check the store location.',
            });
          }
          throw err;
        }
      });
    },
    put,
    async putFile(key, path, opts) {
      const size = (await stat(path)).size;
      return putFileRange(key, path, { offset: 0, length: size }, opts);
    },
    putFileRange,
    async list(listPrefix) {
      const out: ObjectInfo[] = [];
      const base = prefix ? `${prefix}/` : '';
      let token: string | undefined;
      do {
        const page = await retry('list', undefined, async () => {
          const { client, sdk } = await getClient();
          return client.send(
            new sdk.ListObjectsV2Command({
              Bucket: bucket,
              Prefix: base + listPrefix,
              ContinuationToken: token,
            }),
          );
        });
        for (const o of page.Contents ?? []) {
          if (!o.Key?.startsWith(base)) continue;
          out.push({ key: o.Key.slice(base.length), size: o.Size ?? 0, etag: unquote(o.ETag) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async delete(key) {
      await retry('delete', key, async () => {
        const { client, sdk } = await getClient();
        await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: full(key) }));
      });
    },
    async checkBucket() {
      await retry('check bucket', undefined, async () => {
        const { client, sdk } = await getClient();
        try {
          await client.send(new sdk.HeadBucketCommand({ Bucket: bucket }));
        } catch (err) {
          if (statusOf(err) === 404) throw Object.assign(new Error('NoSuchBucket'), { name: 'NoSuchBucket' });
          throw err;
        }
      });
    },
    async createBucket() {
      await retry('create bucket', undefined, async () => {
        const { client, sdk } = await getClient();
        try {
          await client.send(new sdk.CreateBucketCommand({ Bucket: bucket }));
        } catch (err) {
          const name = nameOf(err);
          if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return;
          throw err;
        }
      });
    },
  };
  return store;
}

export interface BosStoreOptions extends Omit<S3StoreOptions, 'driverName' | 'region'> {
  /** BOS region: bj (default), gz, su, bd, fwh, hkg, ... */
  region?: string | undefined;
}

/** BOS default endpoint of a region (S3-compatible API). */
export const bosEndpoint = (region: string): string => `https://s3.${region}.bcebos.com`;

/**
 * Baidu Object Storage over its S3-compatible API: the S3 driver with BOS's endpoints as defaults
 * (`https://s3.REGION.bcebos.com`, region bj) and BOS_ACCESS_KEY_ID/BOS_SECRET_ACCESS_KEY first.
 */
export function createBosStore(options: BosStoreOptions): S3Store {
  const region = options.region ?? 'bj';
  const id = process.env.BOS_ACCESS_KEY_ID;
  const secret = process.env.BOS_SECRET_ACCESS_KEY;
  const credentials =
    options.credentials ??
    (id && secret
      ? { accessKeyId: id, secretAccessKey: secret, sessionToken: process.env.BOS_SESSION_TOKEN }
      : undefined);
  return createS3Store({
    ...options,
    driverName: 'bos',
    region,
    endpoint: options.endpoint ?? bosEndpoint(region),
    // BOS's own domains are virtual-hosted; a custom endpoint (a gateway, tests) is path-style.
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    credentials,
  });
}
