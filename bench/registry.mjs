/**
 * The `registry` group of `npm run bench` (bench/run.mjs calls benchRegistry; `BENCH_ONLY=registry
 * node bench/run.mjs` runs it alone). Against the built server (`deploy-tool serve`, SQLite + filesystem
 * store, its own process):
 *  1. Publishing a 1 GiB object through the server with the registry client's uploadBlobFile (what
 *     `publish --registry` uses for an archive): the server's RSS before and at its peak (it must stay flat).
 *  2. Eight concurrent clients downloading that object from the registry vs Debian nginx serving the
 *     very same stored file from the same disk, alternated, BENCH_REGISTRY_RUNS times: aggregate
 *     throughput, the ratio, and the server's peak RSS.
 *  3. Search latency over 10,000 component versions published through the API (PUT
 *     /api/v1/namespaces/NS/components/TYPE/VERSION with the registry client, as `publish --registry`
 *     does): median and p95 over HTTP.
 * Installs nginx with apt when missing. BENCH_REGISTRY_MIB sets the object size (default 1024).
 * BENCH_REGISTRY_SEARCH=0 skips step 3 (publishing 10,000 versions takes minutes), for a quick look
 * at the download figures; `registrySearch` then keeps its previously measured value.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { clearInterval, setInterval } from 'node:timers';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 * 1024;
const CLIENTS = 8;
const VERSIONS = 10_000;
const TOKEN = `dtr_bench-${randomBytes(16).toString('hex')}`;

const freePort = () =>
  new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

function rssOf(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Polls a process's VmRSS every 20 ms; `peak` since the last reset. */
function sampler(pid) {
  let peak = 0;
  const t = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20);
  return {
    reset() {
      peak = rssOf(pid);
    },
    get peak() {
      return Math.max(peak, rssOf(pid));
    },
    stop() {
      clearInterval(t);
    },
  };
}

async function makeBlob(path, size) {
  if (existsSync(path) && statSync(path).size === size) return;
  await mkdir(dirname(path), { recursive: true });
  const chunk = randomBytes(64 * MiB);
  const out = createWriteStream(path);
  for (let done = 0; done < size; done += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, size - done));
    if (!out.write(part)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
}

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(c);
  return h.digest('hex');
}

function get(port, path, headers = {}) {
  return new Promise((res, rej) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (r) => {
      let n = 0;
      r.on('data', (c) => (n += c.length));
      r.on('end', () => res({ status: r.statusCode, bytes: n }));
      r.on('error', rej);
    });
    req.on('error', rej);
  });
}

async function concurrentDownload(port, path, headers, size) {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: CLIENTS }, () => get(port, path, headers)));
  const secs = (performance.now() - t0) / 1000;
  const bytes = rs.reduce((s, r) => s + r.bytes, 0);
  if (rs.some((r) => r.status !== 200 || r.bytes !== size))
    throw new Error(`bad download from port ${port}: ${JSON.stringify(rs)}`);
  return { seconds: secs, mibPerSec: bytes / MiB / secs };
}

async function waitHttp(port, path) {
  for (let i = 0; i < 400; i++) {
    try {
      const r = await get(port, path);
      if (r.status) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing answers on ${port}`);
}

async function startRegistry(cli, dataDir) {
  const port = await freePort();
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'boot'), TOKEN);
  const child = spawn(
    process.execPath,
    [
      cli,
      'serve',
      '--data',
      dataDir,
      '--port',
      String(port),
      '--bootstrap-token-file',
      join(dataDir, 'boot'),
      '--no-access-log',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitHttp(port, '/healthz');
  return {
    port,
    child,
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))),
  };
}

function nginxBinary(log) {
  const bin = '/usr/sbin/nginx';
  if (!existsSync(bin)) {
    log('nginx is missing: apt-get install -y nginx');
    execFileSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq nginx >/dev/null'], {
      stdio: 'inherit',
    });
  }
  return bin;
}

async function startNginx(bin, dir, root) {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const conf = `worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
daemon off;
user root;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(bin, ['-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitHttp(port, '/');
  return { port, child, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGQUIT'))) };
}

/** Publishes VERSIONS component versions through the API, then times /api/v1/search. */
async function searchBench(ctx, dataDir) {
  const { createRegistryClient } = await import(join(ROOT, 'dist', 'registry', 'client.js'));
  // One real packed component: its manifest is the template of every published version.
  const project = ctx.freshProject('registry-search');
  await mkdir(join(project, 'tiny'), { recursive: true });
  await writeFile(join(project, 'tiny', 'settings.json'), '{"threshold": 0.5}\n');
  ctx.runCli(['pack', './tiny', '--type', 'tiny', '--version', '1.0.0'], project);
  const template = JSON.parse(
    readFileSync(join(project, 'deployment', 'manifests', 'tiny-1.0.0.manifest.json'), 'utf8'),
  );
  const archive = readFileSync(join(project, 'dist', template.archive.name));

  await rm(dataDir, { recursive: true, force: true });
  const reg = await startRegistry(ctx.CLI, dataDir);
  const client = createRegistryClient({ url: reg.url, token: TOKEN });
  const frameworks = ['pytorch', 'tensorflow', 'onnx', 'jax', 'sklearn'];
  const words = ['resnet', 'bert', 'whisper', 'llama', 'yolo', 'unet', 'gpt', 'clip', 'vit', 'mistral'];
  try {
    await client.uploadBlob(template.archive.sha256, archive);
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < VERSIONS) {
        const i = next++;
        const w = words[i % words.length];
        const type = `${w}-${Math.floor(i / 100)}`;
        const version = `1.${i % 100}.0`;
        const text = `${JSON.stringify({ ...template, type, version }, null, 2)}\n`;
        const r = await client.putComponent(`team-${i % 20}`, type, version, text, {
          description: `${w} model number ${i} for ${i % 2 ? 'vision' : 'language'} tasks`,
          author: `team ${i % 20}`,
          license: 'MIT',
          framework: frameworks[i % frameworks.length],
          tags: [w, i % 2 ? 'vision' : 'nlp'],
        });
        if (r.status !== 'created') throw new Error(`publish ${type}:${version}: ${r.status}`);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const publishSeconds = (performance.now() - t0) / 1000;
    ctx.log(`  published ${VERSIONS} versions through the API in ${publishSeconds.toFixed(1)} s`);

    const queries = [
      'resnet',
      'vision',
      'llama 1.5',
      'model number 42',
      'whisper language',
      'nothing-matches-this',
      'team-3',
      'onnx',
    ];
    const times = [];
    const hits = {};
    for (let i = 0; i < 400; i++) {
      const q = queries[i % queries.length];
      const t = performance.now();
      const r = await client.request('GET', `api/v1/search?q=${encodeURIComponent(q)}`);
      const chunks = [];
      for await (const c of r.body) chunks.push(c);
      times.push(performance.now() - t);
      if (r.status !== 200) throw new Error(`search ${q}: ${r.status}`);
      hits[q] ??= JSON.parse(Buffer.concat(chunks).toString('utf8')).components.length;
    }
    times.sort((a, b) => a - b);
    return {
      versions: VERSIONS,
      publishedThrough:
        'PUT /api/v1/namespaces/NS/components/TYPE/VERSION (registry client putComponent, 4 in flight)',
      publishSeconds: ctx.round(publishSeconds, 1),
      queries: queries.length,
      requests: times.length,
      hitsPerQuery: hits,
      medianMs: ctx.round(times[Math.floor(times.length / 2)], 2),
      p95Ms: ctx.round(times[Math.floor(times.length * 0.95)], 2),
    };
  } finally {
    client.close();
    await reg.stop();
    await rm(project, { recursive: true, force: true });
  }
}

export async function benchRegistry(ctx) {
  const { log, round, median, results } = ctx;
  const size = Number(process.env.BENCH_REGISTRY_MIB ?? 1024) * MiB;
  const runs = Number(process.env.BENCH_REGISTRY_RUNS ?? 3);
  const data = join(ctx.DATA, 'registry');
  const nginxBin = nginxBinary(log);
  // nginx -v prints to stderr
  results.machine.tools.nginx =
    spawnSync(nginxBin, ['-v'], { encoding: 'utf8' })
      .stderr.trim()
      .replace(/^nginx version: /, '') || 'unknown';
  const { createRegistryClient } = await import(join(ROOT, 'dist', 'registry', 'client.js'));

  log(`registry: ${size / MiB} MiB object, ${CLIENTS} clients, ${runs} runs`);
  const src = join(data, 'blob.bin');
  await makeBlob(src, size);
  const sha = await sha256File(src);
  const dataDir = join(ctx.WORK, 'registry-server');
  await rm(dataDir, { recursive: true, force: true });
  const reg = await startRegistry(ctx.CLI, dataDir);
  const rss = sampler(reg.child.pid);
  const all = sampler(reg.child.pid); // the whole session: upload, downloads
  const client = createRegistryClient({ url: reg.url, token: TOKEN });
  let nginx;
  try {
    const idle = rssOf(reg.child.pid);
    rss.reset();
    const t0 = performance.now();
    const up = await client.uploadBlobFile(sha, src);
    const upSeconds = (performance.now() - t0) / 1000;
    if (up.status !== 'created' || up.size !== size) throw new Error(`upload: ${JSON.stringify(up)}`);
    const upPeak = rss.peak;
    log(
      `  publish ${size / MiB} MiB: ${upSeconds.toFixed(2)} s, server RSS ${(idle / MiB).toFixed(0)} -> peak ${(upPeak / MiB).toFixed(0)} MiB`,
    );

    const stored = join(dataDir, 'store', 'blobs', 'sha256', sha.slice(0, 2));
    nginx = await startNginx(nginxBin, join(ctx.WORK, 'registry-nginx'), stored);
    // warm the page cache once, then alternate the two servers
    await get(nginx.port, `/${sha}`);
    const ng = [];
    const rg = [];
    let dlPeak = 0;
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (let i = 0; i < runs; i++) {
      ng.push((await concurrentDownload(nginx.port, `/${sha}`, {}, size)).mibPerSec);
      rss.reset();
      rg.push((await concurrentDownload(reg.port, `/api/v1/blobs/${sha}`, auth, size)).mibPerSec);
      dlPeak = Math.max(dlPeak, rss.peak);
      log(
        `  run ${i + 1}/${runs}: nginx ${ng[i].toFixed(0)} MiB/s, registry ${rg[i].toFixed(0)} MiB/s aggregate`,
      );
    }
    const sessionPeak = all.peak;
    const nm = median(ng);
    const rm_ = median(rg);
    const mb = (b) => round(b / 1e6, 1);
    results.figures.registryPublish = {
      command: `registry client uploadBlobFile (PUT /api/v1/blobs/SHA, streamed; the server checks the sha256) of ${size / MiB} MiB`,
      seconds: round(upSeconds),
      serverIdleRssMB: mb(idle),
      serverPeakRssMB: mb(upPeak),
      growthMB: mb(upPeak - idle),
      target: 'flat: growth < 50 MB and peak < 150 MB',
      pass: upPeak - idle < 50e6 && upPeak < 150e6,
    };
    results.figures.registryDownload = {
      command: `${CLIENTS} concurrent GET /api/v1/blobs/SHA of the ${size / MiB} MiB object (token auth)`,
      tool: `nginx (${results.machine.tools.nginx}, 2 workers, sendfile) serving the same stored file`,
      nginxMiBps: ng.map((x) => round(x, 0)),
      registryMiBps: rg.map((x) => round(x, 0)),
      nginxMedianMiBps: round(nm, 0),
      registryMedianMiBps: round(rm_, 0),
      ratio: round(rm_ / nm),
      target: 'registry/nginx >= 0.8',
      pass: rm_ / nm >= 0.8,
    };
    results.figures.registryRss = {
      method: 'VmRSS of the server process polled every 20 ms',
      downloadPeakMB: mb(dlPeak),
      sessionPeakMB: mb(sessionPeak),
      target: 'server RSS < 150 MB throughout (upload and downloads)',
      pass: sessionPeak < 150e6,
    };
  } finally {
    rss.stop();
    all.stop();
    client.close();
    if (nginx) await nginx.stop();
    await reg.stop();
    await rm(dataDir, { recursive: true, force: true });
  }

  if (process.env.BENCH_REGISTRY_INCREMENTAL !== '0') await incrementalBench(ctx);

  if (process.env.BENCH_REGISTRY_SEARCH === '0') {
    log('registry: search skipped (BENCH_REGISTRY_SEARCH=0)');
    return;
  }
  log(`registry: search over ${VERSIONS} versions published through the API`);
  const search = await searchBench(ctx, join(ctx.WORK, 'registry-search-data'));
  await rm(join(ctx.WORK, 'registry-search-data'), { recursive: true, force: true });
  results.figures.registrySearch = {
    command: 'GET /api/v1/search?q=... (8 queries, 400 requests, sequential, token auth, SQLite)',
    ...search,
    target: 'median < 50 ms',
    pass: search.medianMs < 50,
  };
}

/** Runs the built CLI with --json; returns its wall time and JSON result (throws on failure). */
function timedCli(ctx, args, cwd, env) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [ctx.CLI, ...args, '--json'], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', ...env },
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { seconds, json: JSON.parse(r.stdout) };
}

/**
 * Incremental transfers through `serve`, as the S3 figures: model 1.1.0 differs from 1.0.0 in one
 * of 8 weight files; publish and deploy of it against the full publish and deploy of 1.0.0.
 */
async function incrementalBench(ctx) {
  const { log, round, results } = ctx;
  const { ensureModelV2, CHANGED_FILE } = await import('./s3.mjs');
  log('registry: model 1.0.0 and 1.1.0 (one of 8 weight files changed) through serve: publish, deploy');
  const modelV2 = ensureModelV2(ctx);
  const project = ctx.freshProject('registry-project');
  ctx.runCli(['pack', ctx.MODEL, '--type', 'model', '--version', '1.0.0'], project);
  ctx.runCli(['pack', modelV2, '--type', 'model', '--version', '1.1.0'], project);
  const changedFileBytes = statSync(join(modelV2, CHANGED_FILE)).size;
  const dataDir = join(ctx.WORK, 'registry-incremental');
  await rm(dataDir, { recursive: true, force: true });
  const reg = await startRegistry(ctx.CLI, dataDir);
  const rss = sampler(reg.child.pid);
  const env = { DEPLOY_TOOL_TOKEN: TOKEN, DEPLOY_TOOL_CREDENTIALS: join(dataDir, 'none.json') };
  const flags = ['--method', 'registry', '--registry', reg.url];
  const target = join(ctx.WORK, 'registry-target');
  const cache = join(ctx.WORK, 'registry-cache');
  await rm(target, { recursive: true, force: true });
  await rm(cache, { recursive: true, force: true });
  try {
    const pub = (c, r) =>
      timedCli(ctx, ['publish', '--component', c, '--release-version', r, ...flags], project, env);
    const dep = (r) =>
      timedCli(
        ctx,
        [
          'deploy',
          '--release',
          r,
          '--target',
          target,
          '--namespace',
          'bench',
          ...flags,
          '--cache-dir',
          cache,
        ],
        project,
        env,
      );
    spawnSync('sync');
    const p1 = pub('model:1.0.0', '1.0.0');
    const d1 = dep('1.0.0');
    spawnSync('sync');
    const p2 = pub('model:1.1.0', '2.0.0');
    const d2 = dep('2.0.0');
    const up = p2.json.store.bytesUploaded;
    const down = d2.json.transfer.bytesDownloaded;
    log(
      `  full publish ${p1.seconds.toFixed(2)} s, incremental ${p2.seconds.toFixed(2)} s (${up} bytes); ` +
        `full deploy ${d1.seconds.toFixed(2)} s, incremental ${d2.seconds.toFixed(2)} s (${down} bytes)`,
    );
    const inc = (what, command, bytes, seconds, full, extra) => ({
      command,
      changedFile: `${CHANGED_FILE} (${changedFileBytes} bytes raw) of 8 weight files`,
      changedFileBytes,
      bytes,
      bytesRatio: round(bytes / changedFileBytes),
      seconds: round(seconds),
      fullOperationSeconds: round(full),
      timeRatio: round(seconds / full),
      ...extra,
      target: `${what} <= 1.05 x the changed file (as for S3)`,
      pass: bytes <= 1.05 * changedFileBytes,
    });
    results.figures.registryIncrementalPublish = inc(
      'bytes uploaded',
      'deploy-tool publish --component model:1.1.0 --release-version 2.0.0 --method registry (the registry has model:1.0.0)',
      up,
      p2.seconds,
      p1.seconds,
      {
        bytesFrom: 'publish --json store.bytesUploaded',
        chunksUploaded: p2.json.store.components[0]?.chunksUploaded,
        // The server reads every chunk of a new archive through one sha256 before it stores the recipe.
        serverPeakRssMB: round(rss.peak / 1e6, 1),
      },
    );
    results.figures.registryIncrementalDeploy = inc(
      'bytes downloaded',
      'deploy-tool deploy --release 2.0.0 --method registry on the target at 1.0.0, same --cache-dir',
      down,
      d2.seconds,
      d1.seconds,
      { bytesFrom: 'deploy --json transfer.bytesDownloaded' },
    );
  } finally {
    rss.stop();
    await reg.stop();
    for (const d of [dataDir, target, cache, project]) await rm(d, { recursive: true, force: true });
  }
}

/** Rows for run.mjs's summary table. */
export function registryRows(f, add) {
  if (f.registryPublish)
    add(
      'registry publish, server RSS (MB)',
      '',
      `${f.registryPublish.serverIdleRssMB} -> ${f.registryPublish.serverPeakRssMB}`,
      '',
      f.registryPublish.target,
      f.registryPublish.pass,
    );
  if (f.registryDownload)
    add(
      'registry 8 clients (MiB/s)',
      f.registryDownload.nginxMedianMiBps,
      f.registryDownload.registryMedianMiBps,
      f.registryDownload.ratio,
      f.registryDownload.target,
      f.registryDownload.pass,
    );
  if (f.registryRss)
    add(
      'registry server peak RSS (MB)',
      '',
      f.registryRss.sessionPeakMB,
      '',
      f.registryRss.target,
      f.registryRss.pass,
    );
  for (const [label, x] of [
    ['registry incremental publish (bytes / file)', f.registryIncrementalPublish],
    ['registry incremental deploy (bytes / file)', f.registryIncrementalDeploy],
  ])
    if (x) add(label, x.changedFileBytes, x.bytes, x.bytesRatio, x.target, x.pass);
  if (f.registrySearch)
    add(
      'registry search 10k (ms)',
      '',
      `${f.registrySearch.medianMs} (p95 ${f.registrySearch.p95Ms})`,
      '',
      f.registrySearch.target,
      f.registrySearch.pass,
    );
}
