/** The S3 driver on a real Ceph radosgw (scripts/ceph.sh), and the BOS factory on the same gateway. */
import { createBosStore } from '../../src/store/drivers/s3.js';
import { makeS3Store, startCeph } from './ceph.js';
import { testStore } from './conformance.js';

testStore('s3 (Ceph radosgw)', async () =>
  makeS3Store(await startCeph(), 's3', { partSize: 5 * 1024 * 1024 }),
);

testStore('s3 with a prefix (Ceph radosgw)', async () =>
  makeS3Store(await startCeph(), 's3p', { prefix: 'team/models', partSize: 5 * 1024 * 1024 }),
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
