/** The S3 driver on a real Ceph radosgw (scripts/ceph.sh), and the BOS factory on the same gateway. */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeployToolError } from '../../src/core/errors.js';
import { createBosStore, createS3Store, isRetryable } from '../../src/store/drivers/s3.js';
import { resolveStore } from '../../src/store/resolve.js';
import { makeS3Store, startCeph } from './ceph.js';
import { testStore } from './conformance.js';

testStore('s3 (Ceph radosgw)', async () =>
  makeS3Store(await startCeph(), 's3', { partSize: 5 * 1024 * 1024, singlePutMax: 5 * 1024 * 1024 }),
);

testStore('s3 with a prefix (Ceph radosgw)', async () =>
  makeS3Store(await startCeph(), 's3p', {
    prefix: 'team/models',
    partSize: 5 * 1024 * 1024,
    singlePutMax: 5 * 1024 * 1024,
  }),
);

testStore('bos --endpoint (Ceph radosgw)', async () => {
  const ceph = await startCeph();
  const prev = { id: process.env.BOS_ACCESS_KEY_ID, secret: process.env.BOS_SECRET_ACCESS_KEY };
  process.env.BOS_ACCESS_KEY_ID = ceph.accessKeyId;
  process.env.BOS_SECRET_ACCESS_KEY = ceph.secretAccessKey;
  try {
    // Buckets are created with the S3 driver: radosgw refuses BOS's "bj" as a location constraint.
    const bucket = (await makeS3Store(ceph, 'bos')).bucket;
    const store = createBosStore({
      bucket,
      endpoint: ceph.endpoint,
      partSize: 5 * 1024 * 1024,
      singlePutMax: 5 * 1024 * 1024,
      retryBaseMs: 50,
    });
    return store;
  } finally {
    process.env.BOS_ACCESS_KEY_ID = prev.id;
    process.env.BOS_SECRET_ACCESS_KEY = prev.secret;
    if (prev.id === undefined) delete process.env.BOS_ACCESS_KEY_ID;
    if (prev.secret === undefined) delete process.env.BOS_SECRET_ACCESS_KEY;
  }
});

describe('BOS endpoints', () => {
  it('defaults to https://s3.bj.bcebos.com; --region picks the region endpoint; --endpoint wins', () => {
    const d = createBosStore({ bucket: 'my-bucket' });
    expect(d.endpoint).toBe('https://s3.bj.bcebos.com');
    expect(d.location).toBe('https://s3.bj.bcebos.com bucket my-bucket');
    expect(createBosStore({ bucket: 'my-bucket', region: 'gz' }).endpoint).toBe('https://s3.gz.bcebos.com');
    // Through the CLI's flags (--method bos --bucket B --region R) and a configured store.
    const flags = resolveStore({ method: 'bos', bucket: 'my-bucket', region: 'su' }, { baseDir: '/' });
    expect(flags.store.location).toBe('https://s3.su.bcebos.com bucket my-bucket');
    const config = {
      schema_version: 1 as const,
      project: { name: 'p', type: 't' },
      stores: { b: { type: 'bos' as const, bucket: 'my-bucket', region: 'bj' } },
    };
    expect(resolveStore({ store: 'b', region: 'fwh' }, { config, baseDir: '/' }).store.location).toBe(
      'https://s3.fwh.bcebos.com bucket my-bucket',
    );
    expect(
      resolveStore({ store: 'b', endpoint: 'http://127.0.0.1:9000' }, { config, baseDir: '/' }).store
        .location,
    ).toBe('http://127.0.0.1:9000 bucket my-bucket');
  });
});

describe('credentials from AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE (Ceph radosgw)', () => {
  const names = [
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_PROFILE',
    'AWS_SHARED_CREDENTIALS_FILE',
    'AWS_CONFIG_FILE',
  ];
  const saved: Record<string, string | undefined> = {};
  beforeEach(() => {
    for (const n of names) saved[n] = process.env[n];
  });
  afterEach(() => {
    for (const n of names) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
  });

  it('a profile of the credentials file signs real requests; the default profile with wrong keys is refused', async () => {
    const ceph = await startCeph();
    const bucket = (await makeS3Store(ceph, 'creds')).bucket;
    const dir = await mkdtemp(join(tmpdir(), 'dt-creds-'));
    try {
      const file = join(dir, 'credentials');
      await writeFile(
        file,
        `[default]\naws_access_key_id = AKIAWRONGWRONGWRONG0\naws_secret_access_key = wrong\n\n[ceph-test]\naws_access_key_id = ${ceph.accessKeyId}\naws_secret_access_key = ${ceph.secretAccessKey}\n`,
        { mode: 0o600 },
      );
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
      delete process.env.AWS_SESSION_TOKEN;
      process.env.AWS_CONFIG_FILE = join(dir, 'no-config');
      process.env.AWS_SHARED_CREDENTIALS_FILE = file;
      process.env.AWS_PROFILE = 'ceph-test';
      const store = createS3Store({ bucket, endpoint: ceph.endpoint, retryBaseMs: 50, maxAttempts: 2 });
      expect((await store.put('creds/hello.txt', 'hello')).status).toBe('created');
      expect((await store.get('creds/hello.txt'))?.toString()).toBe('hello');

      process.env.AWS_PROFILE = 'default';
      const wrong = createS3Store({ bucket, endpoint: ceph.endpoint, retryBaseMs: 50, maxAttempts: 2 });
      const err = await wrong.get('creds/hello.txt').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeployToolError);
      expect((err as DeployToolError).code).toBe('ERR_STORE');
      expect((err as DeployToolError).message).toMatch(/access denied/);
      expect((err as DeployToolError).message).not.toContain(ceph.secretAccessKey);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('uploads signed with the sha256 of their bytes', () => {
  it('the server refuses a range whose bytes are not the sha256 given (single PUT and multipart): nothing stored', async () => {
    const store = await makeS3Store(await startCeph(), 'sha', {
      partSize: 5 * 1024 * 1024,
      singlePutMax: 5 * 1024 * 1024,
      maxAttempts: 2,
    });
    const dir = await mkdtemp(join(tmpdir(), 'dt-sha-'));
    try {
      const file = join(dir, 'data.bin');
      const data = Buffer.alloc(11 * 1024 * 1024);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
      await writeFile(file, data);
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      const wrong = sha(Buffer.from('other bytes'));
      for (const length of [1024 * 1024, data.length]) {
        const key = `sha/${length}.bin`;
        const err = await store.putFileRange!(
          key,
          file,
          { offset: 0, length },
          { ifNoneMatch: true, sha256: wrong },
        ).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DeployToolError);
        expect((err as DeployToolError).message).toMatch(/refused .*sha256/);
        expect(await store.head(key)).toBeUndefined();
        // The right sha256 (given, or computed by the driver) is accepted.
        const given = await store.putFileRange!(
          key,
          file,
          { offset: 0, length },
          { sha256: sha(data.subarray(0, length)) },
        );
        expect(given.status).toBe('created');
        expect((await store.get(key))?.equals(data.subarray(0, length))).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('isRetryable', () => {
  const http = (status: number, name = 'Error'): unknown => ({ name, $metadata: { httpStatusCode: status } });
  const net = (code: string): Error => Object.assign(new Error(code), { code });
  it.each([
    ['HTTP 500', http(500, 'InternalError'), true],
    ['HTTP 503 SlowDown', http(503, 'SlowDown'), true],
    ['HTTP 429', http(429), true],
    ['HTTP 408', http(408), true],
    ['ECONNRESET', net('ECONNRESET'), true],
    [
      'ECONNREFUSED in a cause',
      Object.assign(new Error('fetch failed'), { cause: net('ECONNREFUSED') }),
      true,
    ],
    ['ETIMEDOUT', net('ETIMEDOUT'), true],
    ['a premature close', net('ERR_STREAM_PREMATURE_CLOSE'), true],
    ['socket hang up', new Error('socket hang up'), true],
    ['TimeoutError', Object.assign(new Error('timed out'), { name: 'TimeoutError' }), true],
    ['HTTP 404', http(404, 'NoSuchKey'), false],
    ['HTTP 403', http(403, 'AccessDenied'), false],
    ['HTTP 412', http(412, 'PreconditionFailed'), false],
    ['HTTP 400', http(400, 'InvalidArgument'), false],
    ['ENOTFOUND (a wrong host does not heal)', net('ENOTFOUND'), false],
    ['a plain error', new Error('boom'), false],
    ['a DeployToolError', new DeployToolError('ERR_STORE', 'x', { hint: 'y' }), false],
  ])('%s -> %s', (_what, err, expected) => {
    expect(isRetryable(err)).toBe(expected);
  });
});
