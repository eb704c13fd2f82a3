/**
 * The real S3 of record for tests: a Ceph radosgw on loopback, booted (or found running) by the
 * project's own scripts/ceph.sh. Idempotent and fast when the cluster is up; each test file makes
 * its own buckets.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createS3Store, type S3Store, type S3StoreOptions } from '../../src/store/drivers/s3.js';
import { REPO } from '../helpers/cli.js';

const run = promisify(execFile);
export const CEPH_SCRIPT = join(REPO, 'scripts', 'ceph.sh');

export interface Ceph {
  endpoint: string;
  /** The second gateway (started on demand with startGateway2; killed by the failure tests). */
  endpoint2: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Environment for a CLI run against this cluster. */
  env: Record<string, string>;
}

let booted: Promise<Ceph> | undefined;

export function startCeph(): Promise<Ceph> {
  booted ??= (async () => {
    await run(CEPH_SCRIPT, ['start'], { timeout: 240_000 });
    const { stdout } = await run(CEPH_SCRIPT, ['env']);
    const vars: Record<string, string> = {};
    for (const m of stdout.matchAll(/^export (\w+)=(.*)$/gm)) vars[m[1]!] = m[2]!;
    const ceph: Ceph = {
      endpoint: vars.CEPH_S3_ENDPOINT!,
      endpoint2: vars.CEPH_S3_ENDPOINT2!,
      accessKeyId: vars.CEPH_S3_ACCESS_KEY!,
      secretAccessKey: vars.CEPH_S3_SECRET_KEY!,
      env: {},
    };
    ceph.env = {
      AWS_ACCESS_KEY_ID: ceph.accessKeyId,
      AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Never read the developer's own AWS files.
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    };
    return ceph;
  })();
  return booted;
}

export async function gateway2(action: 'start' | 'kill'): Promise<void> {
  await run(CEPH_SCRIPT, [action === 'start' ? 'gateway-start' : 'gateway-kill', 'b'], { timeout: 60_000 });
}

export const bucketName = (tag: string): string =>
  `dt-${tag}-${randomBytes(4).toString('hex')}`.toLowerCase().slice(0, 63);

/** A fresh bucket on the cluster and a store on it. */
export async function makeS3Store(
  ceph: Ceph,
  tag: string,
  extra: Partial<S3StoreOptions> = {},
): Promise<S3Store> {
  const store = createS3Store({
    bucket: bucketName(tag),
    endpoint: ceph.endpoint,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    retryBaseMs: 50,
    ...extra,
  });
  await store.createBucket();
  return store;
}
