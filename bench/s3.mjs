/**
 * The `s3` group of `npm run bench` (bench/run.mjs calls benchS3): publish and deploy of the 512 MiB
 * synthetic model against a real Ceph radosgw on loopback (scripts/ceph.sh), each against the S3 SDK
 * doing the plain thing with the same bytes, in the same run:
 *
 *  - publish --method s3 (fresh bucket)  vs  @aws-sdk/lib-storage Upload of the same archive file
 *  - deploy --method s3 (fresh target, empty cache)  vs  parallel ranged GetObject of it into a file
 *  - a model version in which 1 of the 8 weight files changed: bytes and time of publish and deploy
 *  - republishing an unchanged release: content bytes uploaded
 *  - peak RSS of publish and deploy (GNU time %M)
 *
 * The plain SDK transfers run in a child node process (this file, `node bench/s3.mjs plain-upload|
 * plain-download ...`), so that both sides pay for node's start-up and the SDK's loading. Both use the
 * driver's client settings (path style, checksums WHEN_REQUIRED) and its parallelism: 16 MiB parts or
 * ranges, 4 in flight.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCH = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(BENCH, '..');
const CEPH = join(REPO, 'scripts', 'ceph.sh');
const MiB = 1024 * 1024;
const PART = 16 * MiB;
const IN_FLIGHT = 4;
/** The weight file that differs in the second model version (model-v2/). */
export const CHANGED_FILE = 'weights-03.bin';

// ---------------------------------------------------------------------------------------------
// the plain SDK side (child process)

function sdkClient(sdk, endpoint) {
  return new sdk.S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function plainMain([mode, endpoint, bucket, key, file]) {
  const sdk = await import('@aws-sdk/client-s3');
  const client = sdkClient(sdk, endpoint);
  if (mode === 'plain-upload') {
    const { Upload } = await import('@aws-sdk/lib-storage');
    await new Upload({
      client,
      params: { Bucket: bucket, Key: key, Body: createReadStream(file, { highWaterMark: MiB }) },
      partSize: PART,
      queueSize: IN_FLIGHT,
    }).done();
  } else if (mode === 'plain-download') {
    const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }));
    const size = Number(head.ContentLength);
    const fh = await open(file, 'w');
    let next = 0;
    const worker = async () => {
      while (next < size) {
        const start = next;
        next += PART;
        const end = Math.min(size, start + PART) - 1;
        const r = await client.send(
          new sdk.GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}` }),
        );
        let pos = start;
        for await (const c of r.Body) {
          await fh.write(c, 0, c.length, pos);
          pos += c.length;
        }
        if (pos !== end + 1) throw new Error(`short range ${start}-${end}: ${pos - start} bytes`);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    await fh.close();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  client.destroy();
}

// ---------------------------------------------------------------------------------------------
// the bench (called by run.mjs)

/** Endpoint, keys and config of the cluster, booting it when it is not running. */
function ceph(log) {
  if (spawnSync(CEPH, ['status'], { stdio: 'ignore' }).status !== 0) {
    log('s3: starting Ceph (scripts/ceph.sh start)');
    execFileSync(CEPH, ['start'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
  }
  const vars = {};
  for (const m of execFileSync(CEPH, ['env'], { encoding: 'utf8' }).matchAll(/^export (\w+)=(.*)$/gm))
    vars[m[1]] = m[2];
  return {
    endpoint: vars.CEPH_S3_ENDPOINT,
    conf: join(vars.CEPH_DIR, 'ceph.conf'),
    env: {
      AWS_ACCESS_KEY_ID: vars.CEPH_S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: vars.CEPH_S3_SECRET_KEY,
      AWS_REGION: 'us-east-1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
      NO_COLOR: '1',
    },
  };
}

/** The second model version: the same files (hard links) but one weight file regenerated. */
export function ensureModelV2(ctx) {
  const dir = join(ctx.DATA, 'model-v2');
  const marker = join(dir, '.complete');
  if (existsSync(marker)) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(ctx.MODEL)) {
    if (name === CHANGED_FILE) continue;
    linkSync(join(ctx.MODEL, name), join(dir, name));
  }
  ctx.writeNoise(join(dir, CHANGED_FILE), statSync(join(ctx.MODEL, CHANGED_FILE)).size, 1004);
  writeFileSync(marker, new Date().toISOString());
  return dir;
}

export async function benchS3(ctx) {
  const { log, round, median, results, WORK, CLI } = ctx;
  const runs = Number(process.env.BENCH_S3_RUNS ?? 3);
  const c = ceph(log);
  const env = { ...process.env, ...c.env };
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sdk = await import('@aws-sdk/client-s3');
  const admin = new sdk.S3Client({
    region: 'us-east-1',
    endpoint: c.endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: c.env.AWS_ACCESS_KEY_ID, secretAccessKey: c.env.AWS_SECRET_ACCESS_KEY },
  });
  const tag = randomBytes(3).toString('hex');
  const buckets = [];
  const makeBucket = async (name) => {
    const b = `dtbench-${tag}-${name}`;
    await admin.send(new sdk.CreateBucketCommand({ Bucket: b }));
    buckets.push(b);
    return b;
  };
  const listAll = async (bucket, prefix = '') => {
    const out = [];
    let token;
    do {
      const r = await admin.send(
        new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of r.Contents ?? []) out.push({ key: o.Key, size: Number(o.Size) });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  };
  const blobBytes = async (bucket) => (await listAll(bucket, 'blobs/')).reduce((s, o) => s + o.size, 0);
  /** Deletes a bucket and its objects, then lets radosgw reclaim the space now (the OSD is in memory). */
  const dropBucket = async (bucket) => {
    for (const o of await listAll(bucket))
      await admin.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: o.key }));
    await admin.send(new sdk.DeleteBucketCommand({ Bucket: bucket }));
    buckets.splice(buckets.indexOf(bucket), 1);
    spawnSync('radosgw-admin', ['-c', c.conf, 'gc', 'process', '--include-all'], { stdio: 'ignore' });
  };

  const time = ctx.gnuTime();
  /**
   * Runs argv (a node process) under GNU time: wall seconds, peak RSS (MB), output, and a timeline
   * of its stderr lines (seconds since the start, for the -v log: where the time goes).
   */
  const measure = async (argv, cwd) => {
    const out = join(WORK, 's3-time.out');
    const cmd = time ? [time, '-f', '%M', '-o', out, ...argv] : argv;
    spawnSync('sync');
    const t0 = performance.now();
    const child = spawn(cmd[0], cmd.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timeline = [];
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      const lines = (partial + d).split('\n');
      partial = lines.pop();
      const at = round((performance.now() - t0) / 1000, 2);
      for (const l of lines)
        if (l.trim()) timeline.push([at, l.replace(/^\W+(\d+ ms {2})?/, '').slice(0, 140)]);
    });
    const code = await new Promise((res) => child.on('close', res));
    const seconds = (performance.now() - t0) / 1000;
    if (code !== 0) throw new Error(`${argv.slice(1).join(' ')} failed (${code}):\n${stdout}\n${stderr}`);
    const rssMB = time
      ? round((Number(readFileSync(out, 'utf8').trim().split('\n').pop()) * 1024) / 1e6, 1)
      : null;
    let json;
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
    return { seconds, rssMB, json, stderr, timeline };
  };
  const cli = (args, cwd) => measure([process.execPath, CLI, ...args, '--json'], cwd);
  const plain = (mode, bucket, key, file) =>
    measure([process.execPath, fileURLToPath(import.meta.url), mode, c.endpoint, bucket, key, file], WORK);
  const s3Flags = (bucket) => ['--method', 's3', '--bucket', bucket, '--endpoint', c.endpoint];
  /** Bytes deploy fetched from the bucket: its --json figure when it has one, else its -v log. */
  const downloaded = (r) => {
    const j = r.json ?? {};
    const reported = j.transfer?.bytesDownloaded ?? j.bytesDownloaded;
    let logged = 0;
    let ms = 0;
    for (const m of r.stderr.matchAll(/: (\d+) bytes downloaded\b[^(\n]*\((\d+) ms\)/g)) {
      logged += Number(m[1]);
      ms += Number(m[2]);
    }
    return {
      bytes: typeof reported === 'number' ? reported : logged,
      from: typeof reported === 'number' ? 'deploy --json transfer.bytesDownloaded' : 'deploy -v log',
      fetchMs: ms,
    };
  };

  log('s3: packing model 1.0.0 and 1.1.0 (one weight file changed) (not timed)');
  const modelV2 = ensureModelV2(ctx);
  const project = ctx.freshProject('s3-project');
  ctx.runCli(['pack', ctx.MODEL, '--type', 'model', '--version', '1.0.0'], project);
  ctx.runCli(['pack', modelV2, '--type', 'model', '--version', '1.1.0'], project);
  const archive = join(project, 'dist', 'model-1.0.0.tar.zst');
  const archiveBytes = statSync(archive).size;
  const changedFileBytes = statSync(join(modelV2, CHANGED_FILE)).size;

  const pub = { tool: [], ours: [], rss: [], toolRss: [], bytes: [] };
  const dep = { tool: [], ours: [], op: [], fetchMs: [], rss: [], toolRss: [], bytes: [] };
  let last;
  try {
    log(`s3: publish vs lib-storage Upload, deploy vs ranged GetObject (${runs} runs, ${c.endpoint})`);
    for (let i = 0; i < runs; i++) {
      const plainBucket = await makeBucket(`plain-${i}`);
      const ours = await makeBucket(`ours-${i}`);
      const release = `1.0.${i}`;
      const file = join(WORK, 's3-plain-download');
      const target = join(WORK, `s3-target-${i}`);
      const cache = join(WORK, `s3-cache-${i}`);
      rmSync(target, { recursive: true, force: true });
      rmSync(cache, { recursive: true, force: true });

      const pu = await plain('plain-upload', plainBucket, 'model-1.0.0.tar.zst', archive);
      pub.tool.push(pu.seconds);
      pub.toolRss.push(pu.rssMB);
      const p = await cli(
        ['publish', '--component', 'model:1.0.0', '--release-version', release, ...s3Flags(ours), '-v'],
        project,
      );
      pub.ours.push(p.seconds);
      pub.rss.push(p.rssMB);
      pub.bytes.push(p.json?.store?.bytesUploaded);
      pub.timeline = p.timeline;

      rmSync(file, { force: true });
      const pd = await plain('plain-download', plainBucket, 'model-1.0.0.tar.zst', file);
      dep.tool.push(pd.seconds);
      dep.toolRss.push(pd.rssMB);
      if (statSync(file).size !== archiveBytes) throw new Error('plain download: wrong size');
      rmSync(file, { force: true });
      const d = await cli(
        ['deploy', '--release', release, '--target', target, ...s3Flags(ours), '--cache-dir', cache, '-v'],
        project,
      );
      const dl = downloaded(d);
      dep.ours.push(d.seconds);
      dep.op.push(d.json?.seconds ?? d.seconds);
      dep.fetchMs.push(dl.fetchMs);
      dep.rss.push(d.rssMB);
      dep.bytes.push(dl.bytes);
      dep.timeline = d.timeline;
      log(
        `  run ${i + 1}/${runs}: upload ${pub.tool[i].toFixed(2)} s, publish ${p.seconds.toFixed(2)} s; ` +
          `download ${dep.tool[i].toFixed(2)} s, deploy ${d.seconds.toFixed(2)} s (fetch ${(dl.fetchMs / 1000).toFixed(2)} s)`,
      );
      await dropBucket(plainBucket);
      if (last) {
        await dropBucket(last.bucket);
        rmSync(last.target, { recursive: true, force: true });
        rmSync(last.cache, { recursive: true, force: true });
      }
      last = { bucket: ours, target, cache, release };
    }

    const ratioFig = (r, extra) => {
      const tm = median(r.tool);
      const om = median(r.ours);
      return {
        toolSeconds: r.tool.map((x) => round(x)),
        oursSeconds: r.ours.map((x) => round(x)),
        toolMedian: round(tm),
        oursMedian: round(om),
        ratio: round(om / tm),
        ...extra,
        target: 'ratio <= 1.15',
        pass: om / tm <= 1.15,
      };
    };
    const f = results.figures;
    f.s3Publish = {
      command: 'deploy-tool publish --component model:1.0.0 --release-version R --method s3 (fresh bucket)',
      tool: `@aws-sdk/lib-storage Upload of dist/model-1.0.0.tar.zst (${archiveBytes} bytes), ${PART / MiB} MiB parts, ${IN_FLIGHT} in flight, child node process`,
      endpoint: c.endpoint,
      archiveBytes,
      bytesUploaded: pub.bytes,
      ...ratioFig(pub),
      toolPeakRssMB: pub.toolRss,
      lastRunLog: pub.timeline,
    };
    f.s3Deploy = {
      command:
        'deploy-tool deploy --release R --target FRESH --method s3 --cache-dir EMPTY (download and check every chunk, then extract, verify, fsync, switch)',
      tool: `parallel ranged GetObject of the same archive into a file (${PART / MiB} MiB ranges, ${IN_FLIGHT} in flight, no fsync), child node process`,
      endpoint: c.endpoint,
      bytesDownloaded: dep.bytes,
      operationSeconds: dep.op.map((x) => round(x)),
      fetchSeconds: dep.fetchMs.map((x) => round(x / 1000)),
      ...ratioFig(dep),
      toolPeakRssMB: dep.toolRss,
      lastRunLog: dep.timeline,
    };

    // ---- a new model version where one weight file changed, on the last run's bucket and target
    log('s3: model 1.1.0 (one of 8 weight files changed): publish, then deploy on the same target');
    const before = await blobBytes(last.bucket);
    const ip = await cli(
      ['publish', '--component', 'model:1.1.0', '--release-version', '2.0.0', ...s3Flags(last.bucket), '-v'],
      project,
    );
    const newBlobBytes = (await blobBytes(last.bucket)) - before;
    const up = ip.json?.store?.bytesUploaded;
    const id = await cli(
      [
        'deploy',
        '--release',
        '2.0.0',
        '--target',
        last.target,
        ...s3Flags(last.bucket),
        '--cache-dir',
        last.cache,
        '-v',
      ],
      project,
    );
    const idl = downloaded(id);
    const fullPub = median(pub.ours);
    const fullDep = median(dep.ours);
    const inc = (what, bytes, seconds, full, extra) => ({
      ...extra,
      changedFile: `${CHANGED_FILE} (${changedFileBytes} bytes raw) of 8 weight files`,
      changedFileBytes,
      bytes,
      bytesRatio: round(bytes / changedFileBytes),
      seconds: round(seconds),
      fullOperationSeconds: round(full),
      timeRatio: round(seconds / full),
      target: `${what} <= 1.05 x the changed file, time <= 0.25 x the full operation`,
      pass: bytes <= 1.05 * changedFileBytes && seconds / full <= 0.25,
    });
    f.s3IncrementalPublish = inc('bytes uploaded', up, ip.seconds, fullPub, {
      command:
        'deploy-tool publish --component model:1.1.0 --release-version 2.0.0 --method s3 (bucket has model:1.0.0)',
      bytesFrom: 'publish --json store.bytesUploaded',
      newBlobBytesInBucket: newBlobBytes,
      log: ip.timeline,
    });
    f.s3IncrementalDeploy = inc('bytes downloaded', idl.bytes, id.seconds, fullDep, {
      command: 'deploy-tool deploy --release 2.0.0 on the target at 1.0.x, same --cache-dir',
      bytesFrom: idl.from,
      operationSeconds: round(id.json?.seconds),
      fetchSeconds: round(idl.fetchMs / 1000),
      log: id.timeline,
    });

    // ---- republishing an unchanged release, and the same component in a new release
    log('s3: republishing the unchanged release');
    const b0 = await blobBytes(last.bucket);
    const same = await cli(
      [
        'publish',
        '--component',
        'model:1.0.0',
        '--release-version',
        last.release,
        ...s3Flags(last.bucket),
        '-v',
      ],
      project,
    );
    const again = await cli(
      ['publish', '--component', 'model:1.0.0', '--release-version', '1.0.100', ...s3Flags(last.bucket)],
      project,
    );
    const grown = (await blobBytes(last.bucket)) - b0;
    const sameBytes = same.json?.store?.bytesUploaded;
    const againBytes = again.json?.store?.bytesUploaded;
    f.s3Republish = {
      command: `deploy-tool publish --component model:1.0.0 --release-version ${last.release} (again), then --release-version 1.0.100 (same component)`,
      sameRelease: {
        status: same.json?.status,
        bytesUploaded: sameBytes,
        seconds: round(same.seconds),
        log: same.timeline,
      },
      newRelease: { status: again.json?.status, bytesUploaded: againBytes, seconds: round(again.seconds) },
      newBlobBytesInBucket: grown,
      target: 'content bytes uploaded = 0',
      pass: sameBytes === 0 && againBytes === 0 && grown === 0,
    };

    const worst = (xs) => Math.max(...xs.filter((x) => typeof x === 'number'));
    const pubRss = worst([...pub.rss, ip.rssMB]);
    const depRss = worst([...dep.rss, id.rssMB]);
    f.s3PeakRss = time
      ? {
          method: 'GNU time %M, the worst of every publish and deploy run above',
          publishMB: pubRss,
          deployMB: depRss,
          publishRunsMB: pub.rss,
          deployRunsMB: dep.rss,
          target: 'peak RSS < 250 MB',
          pass: pubRss < 250 && depRss < 250,
        }
      : { skipped: 'GNU time is missing', pass: null };
  } finally {
    for (const b of [...buckets]) await dropBucket(b).catch(() => undefined);
    if (last) {
      rmSync(last.target, { recursive: true, force: true });
      rmSync(last.cache, { recursive: true, force: true });
    }
    rmSync(project, { recursive: true, force: true });
    admin.destroy();
  }
}

/** Rows for run.mjs's summary table. */
export function s3Rows(f, add) {
  if (f.s3Publish)
    add(
      's3 publish 512 MiB (s)',
      f.s3Publish.toolMedian,
      f.s3Publish.oursMedian,
      f.s3Publish.ratio,
      f.s3Publish.target,
      f.s3Publish.pass,
    );
  if (f.s3Deploy)
    add(
      's3 deploy 512 MiB (s)',
      f.s3Deploy.toolMedian,
      f.s3Deploy.oursMedian,
      f.s3Deploy.ratio,
      f.s3Deploy.target,
      f.s3Deploy.pass,
    );
  for (const [k, label] of [
    ['s3IncrementalPublish', 's3 publish, 1 file changed'],
    ['s3IncrementalDeploy', 's3 deploy, 1 file changed'],
  ]) {
    const x = f[k];
    if (x)
      add(
        label,
        x.fullOperationSeconds,
        x.seconds,
        `${x.bytesRatio}x file, ${x.timeRatio}x time`,
        '<= 1.05x, <= 0.25x',
        x.pass,
      );
  }
  if (f.s3Republish)
    add(
      's3 republish unchanged (bytes)',
      '',
      `${f.s3Republish.sameRelease.bytesUploaded}/${f.s3Republish.newRelease.bytesUploaded}`,
      '',
      f.s3Republish.target,
      f.s3Republish.pass,
    );
  if (f.s3PeakRss)
    add(
      's3 peak RSS publish/deploy (MB)',
      '',
      `${f.s3PeakRss.publishMB}/${f.s3PeakRss.deployMB}`,
      '',
      f.s3PeakRss.target ?? '-',
      f.s3PeakRss.pass ?? undefined,
    );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await plainMain(process.argv.slice(2));
}
