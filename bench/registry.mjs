#!/usr/bin/env node
/**
 * Registry benchmark (run after `npm run build`: `node bench/registry.mjs [--size-mib 1024]`).
 *  1. Publishing a 1 GiB object through the server (streamed upload + sha256 check): time and the
 *     server's peak RSS (it must stay flat).
 *  2. Eight concurrent clients downloading that object from the registry vs Debian nginx serving
 *     the very same stored file: aggregate throughput and the ratio; server peak RSS.
 *  3. Search latency over 10,000 component versions (median and p95 over HTTP).
 * Writes bench/registry-results.json and prints a summary. Installs nginx with apt when missing.
 */
import { execFileSync, spawn } from 'node:child_process';
import { setInterval, clearInterval } from 'node:timers';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = join(ROOT, 'bench', 'data', 'registry');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const argSize = process.argv.indexOf('--size-mib');
const SIZE = (argSize > 0 ? Number(process.argv[argSize + 1]) : 1024) * 1024 * 1024;
const CLIENTS = 8;
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
    const s = execFileSync('cat', [`/proc/${pid}/status`]).toString();
    const m = /VmRSS:\s+(\d+) kB/.exec(s);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function sampler(pid) {
  let peak = 0;
  const t = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 50);
  return {
    reset() {
      peak = rssOf(pid);
    },
    get peak() {
      return peak;
    },
    stop() {
      clearInterval(t);
    },
  };
}

async function makeBlob(path) {
  if (existsSync(path)) {
    const { size } = await import('node:fs').then((fs) => fs.statSync(path));
    if (size === SIZE) return;
  }
  await mkdir(dirname(path), { recursive: true });
  const chunk = randomBytes(64 * 1024 * 1024);
  const out = createWriteStream(path);
  for (let done = 0; done < SIZE; done += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, SIZE - done));
    if (!out.write(part)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
}

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) h.update(c);
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

async function concurrentDownload(port, path, headers) {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: CLIENTS }, () => get(port, path, headers)));
  const secs = (performance.now() - t0) / 1000;
  const bytes = rs.reduce((s, r) => s + r.bytes, 0);
  if (rs.some((r) => r.status !== 200 || r.bytes !== SIZE))
    throw new Error(`bad download: ${JSON.stringify(rs)}`);
  return { seconds: secs, bytes, mibPerSec: bytes / 1024 / 1024 / secs };
}

async function waitHttp(port, path) {
  for (let i = 0; i < 200; i++) {
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

async function startRegistry(dataDir) {
  const port = await freePort();
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'boot'), TOKEN);
  const child = spawn(
    process.execPath,
    [
      CLI,
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
  return { port, child, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

function upload(port, sha, path) {
  return new Promise((res, rej) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path: `/api/v1/blobs/${sha}`,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-length': String(SIZE) },
      },
      (r) => {
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () =>
          r.statusCode < 300 ? res(JSON.parse(body)) : rej(new Error(`${r.statusCode} ${body}`)),
        );
      },
    );
    req.on('error', rej);
    createReadStream(path, { highWaterMark: 1024 * 1024 }).pipe(req);
  });
}

async function startNginx(root) {
  if (!existsSync('/usr/sbin/nginx'))
    execFileSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq nginx >/dev/null'], {
      stdio: 'inherit',
    });
  const port = await freePort();
  const dir = join(DATA, 'nginx');
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
  const child = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitHttp(port, '/');
  return { port, child, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGQUIT'))) };
}

async function searchBench() {
  const dataDir = join(DATA, 'search');
  await rm(dataDir, { recursive: true, force: true });
  await mkdir(dataDir, { recursive: true });
  const { createSqliteRepo } = await import(join(ROOT, 'dist', 'registry', 'server', 'repo', 'sqlite.js'));
  const repo = createSqliteRepo(join(dataDir, 'registry.db'));
  await repo.migrate();
  const frameworks = ['pytorch', 'tensorflow', 'onnx', 'jax', 'sklearn'];
  const words = ['resnet', 'bert', 'whisper', 'llama', 'yolo', 'unet', 'gpt', 'clip', 'vit', 'mistral'];
  const t0 = performance.now();
  for (let i = 0; i < 10_000; i++) {
    const w = words[i % words.length];
    const sha = createHash('sha256').update(String(i)).digest('hex');
    await repo.insertComponent({
      namespace: `team-${i % 20}`,
      type: `${w}-${Math.floor(i / 100)}`,
      version: `1.${i % 100}.0`,
      manifestSha256: sha,
      manifestSize: 1000,
      archiveSha256: sha,
      archiveSize: 1_000_000 + i,
      archiveName: `${w}.tar.zst`,
      compression: 'zstd',
      files: 8,
      totalSize: 2_000_000,
      metadata: {
        description: `${w} model number ${i} for ${i % 2 ? 'vision' : 'language'} tasks`,
        author: `team ${i % 20}`,
        license: 'MIT',
        framework: frameworks[i % frameworks.length],
        tags: [w, i % 2 ? 'vision' : 'nlp'],
      },
      createdAt: new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString(),
      publishedBy: 'bench',
    });
  }
  const insertSecs = (performance.now() - t0) / 1000;
  await repo.close();
  const reg = await startRegistry(dataDir);
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
  for (let i = 0; i < 400; i++) {
    const q = queries[i % queries.length];
    const t = performance.now();
    const r = await get(reg.port, `/api/v1/search?q=${encodeURIComponent(q)}`, {
      authorization: `Bearer ${TOKEN}`,
    });
    times.push(performance.now() - t);
    if (r.status !== 200) throw new Error(`search ${r.status}`);
  }
  await reg.stop();
  times.sort((a, b) => a - b);
  return {
    versions: 10_000,
    insertSeconds: Number(insertSecs.toFixed(2)),
    medianMs: Number(times[Math.floor(times.length / 2)].toFixed(2)),
    p95Ms: Number(times[Math.floor(times.length * 0.95)].toFixed(2)),
  };
}

async function main() {
  if (!existsSync(CLI)) throw new Error('run "npm run build" first');
  const src = join(DATA, 'blob.bin');
  console.log(`registry bench: ${SIZE / 1024 / 1024} MiB object, ${CLIENTS} clients`);
  await makeBlob(src);
  const sha = await sha256File(src);
  const dataDir = join(DATA, 'server');
  await rm(dataDir, { recursive: true, force: true });
  const reg = await startRegistry(dataDir);
  const rss = sampler(reg.child.pid);
  const idleRss = rssOf(reg.child.pid);

  rss.reset();
  const t0 = performance.now();
  await upload(reg.port, sha, src);
  const publish = { seconds: (performance.now() - t0) / 1000, peakRssMiB: rss.peak / 1024 / 1024 };
  console.log(
    `publish ${SIZE >> 20} MiB: ${publish.seconds.toFixed(2)} s, server peak RSS ${publish.peakRssMiB.toFixed(0)} MiB`,
  );

  const stored = join(dataDir, 'store', 'blobs', 'sha256', sha.slice(0, 2));
  const nginx = await startNginx(stored);
  // Warm the page cache once, then measure each server.
  await get(nginx.port, `/${sha}`);
  const ng = await concurrentDownload(nginx.port, `/${sha}`);
  console.log(`nginx:    ${ng.mibPerSec.toFixed(0)} MiB/s aggregate`);
  rss.reset();
  const rg = await concurrentDownload(reg.port, `/api/v1/blobs/${sha}`, { authorization: `Bearer ${TOKEN}` });
  const downloadRss = rss.peak / 1024 / 1024;
  console.log(
    `registry: ${rg.mibPerSec.toFixed(0)} MiB/s aggregate (ratio ${(rg.mibPerSec / ng.mibPerSec).toFixed(2)}), server peak RSS ${downloadRss.toFixed(0)} MiB`,
  );
  await nginx.stop();
  rss.stop();
  await reg.stop();

  const search = await searchBench();
  console.log(
    `search over ${search.versions} versions: median ${search.medianMs} ms, p95 ${search.p95Ms} ms`,
  );

  const results = {
    date: new Date().toISOString(),
    sizeBytes: SIZE,
    clients: CLIENTS,
    serverIdleRssMiB: Number((idleRss / 1024 / 1024).toFixed(1)),
    publish: {
      seconds: Number(publish.seconds.toFixed(2)),
      peakRssMiB: Number(publish.peakRssMiB.toFixed(1)),
    },
    download: {
      nginxMiBps: Number(ng.mibPerSec.toFixed(0)),
      registryMiBps: Number(rg.mibPerSec.toFixed(0)),
      ratio: Number((rg.mibPerSec / ng.mibPerSec).toFixed(3)),
      peakRssMiB: Number(downloadRss.toFixed(1)),
    },
    search,
    targets: { downloadRatio: '>= 0.8', rssMiB: '< 150', searchMedianMs: '< 50' },
  };
  await writeFile(join(ROOT, 'bench', 'registry-results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written bench/registry-results.json`);
  if (process.argv.includes('--json')) console.log(JSON.stringify(results));
  void readFile;
}

await main();
