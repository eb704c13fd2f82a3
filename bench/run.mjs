#!/usr/bin/env node
/**
 * `npm run bench`: deploy-tool against the standard tools, on the same data, in the same run.
 *
 * Figures (see bench/README.md): pack (zstd) vs `tar -cf - | zstd -3 -T2`, pack --compression gzip vs
 * `tar -czf`, peak RSS of pack, and, when the deploy commands exist, a full deploy vs
 * `zstd -d -c | tar -x`, switch/rollback medians for a small and a large release, and a redeploy
 * where only the config changed; the `s3` group (bench/s3.mjs: publish/deploy --method s3 against
 * Ceph vs the S3 SDK) and the `registry` group (bench/registry.mjs: the registry server vs nginx,
 * its RSS, search). Everything is merged into bench/results.json (a subset keeps the other figures).
 *
 * Environment: BENCH_RUNS (default 5), BENCH_GZIP_RUNS (default 3), BENCH_SWITCH_RUNS (default 7),
 * BENCH_S3_RUNS (default 3), BENCH_REGISTRY_RUNS (default 3), BENCH_REGISTRY_MIB (default 1024),
 * BENCH_ONLY (comma-separated: pack,gzip,rss,deploy,s3,registry) to run a subset.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchRegistry, registryRows } from './registry.mjs';
import { benchS3, s3Rows } from './s3.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(BENCH, '..');
const CLI = join(REPO, 'dist', 'bin', 'deploy-tool.js');
const DATA = join(BENCH, 'data');
const WORK = join(DATA, 'work');
const MODEL = join(DATA, 'model');
const CONFIG_V1 = join(DATA, 'config-v1');
const CONFIG_V2 = join(DATA, 'config-v2');
const MiB = 1024 * 1024;
const MODEL_FILES = 8;
const MODEL_FILE_SIZE = 64 * MiB;
const DATA_VERSION = 2;

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const GZIP_RUNS = Number(process.env.BENCH_GZIP_RUNS ?? 3);
const SWITCH_RUNS = Number(process.env.BENCH_SWITCH_RUNS ?? 7);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;
const ran = new Set();
const want = (name) => {
  const yes = !ONLY || ONLY.has(name);
  if (yes) ran.add(name);
  return yes;
};

// ---------------------------------------------------------------------------------------------
// helpers

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, d = 3) => (x === null || x === undefined ? x : Math.round(x * 10 ** d) / 10 ** d);

function log(msg) {
  process.stderr.write(`${msg}\n`);
}

/** Runs a shell command, returns wall seconds; throws on failure. */
function timeShell(cmd, opts = {}) {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${cmd}\n${r.stderr}`);
  return s;
}

/** Runs the built CLI; returns { seconds, json }. */
function runCli(args, cwd, { allowFail = false } = {}) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args, '--json'], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    maxBuffer: 64 * MiB,
  });
  const seconds = (performance.now() - t0) / 1000;
  let json;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  if (r.status !== 0 && !allowFail) {
    throw new Error(`deploy-tool ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return { seconds, json, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function have(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

/** GNU time, installed when missing (allowed for a measuring tool); undefined if that fails. */
function gnuTime() {
  const ok = () =>
    spawnSync('/usr/bin/time', ['-f', '%M', 'true'], { stdio: 'ignore' }).status === 0
      ? '/usr/bin/time'
      : undefined;
  if (ok()) return ok();
  log('GNU time is missing: apt-get install -y time');
  spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq time'], { stdio: 'inherit' });
  return ok();
}

/** Peak RSS (KiB) of a command: GNU time's %M, or VmHWM polled from /proc as a fallback. */
function peakRssKiB(argv, cwd) {
  const time = gnuTime();
  if (time) {
    const out = join(WORK, 'time.out');
    const r = spawnSync(time, ['-f', '%M', '-o', out, ...argv], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed:\n${r.stderr}`);
    return { kib: Number(readFileSync(out, 'utf8').trim().split('\n').pop()), method: 'GNU time %M' };
  }
  // Fallback: poll VmHWM of the child from a shell loop (the child is node; VmHWM is its peak).
  const script = `${argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')} >/dev/null 2>&1 & p=$!; m=0;
while kill -0 $p 2>/dev/null; do v=$(awk '/VmHWM/{print $2}' /proc/$p/status 2>/dev/null); [ -n "$v" ] && m=$v; sleep 0.05; done; wait $p; echo $m`;
  const r = spawnSync('sh', ['-c', script], { cwd, encoding: 'utf8' });
  return { kib: Number(r.stdout.trim()), method: 'VmHWM polled from /proc' };
}

// ---------------------------------------------------------------------------------------------
// data

/** Seeded xoshiro128** and Box-Muller: float32 Gaussian noise, sigma 0.02, deterministic per seed. */
function writeNoise(path, bytes, seed) {
  // splitmix32 to spread the seed over the four state words
  let sm = seed >>> 0;
  const split = () => {
    sm = (sm + 0x9e3779b9) >>> 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  const next = () => {
    const t = b << 9;
    let r = Math.imul(b, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
    return (r >>> 0) / 4294967296;
  };
  const chunk = 4 * MiB;
  const f32 = new Float32Array(chunk / 4);
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < bytes; done += chunk) {
      for (let i = 0; i < f32.length; i += 2) {
        const u1 = next() || 1e-12;
        const u2 = next();
        const r = 0.02 * Math.sqrt(-2 * Math.log(u1));
        f32[i] = r * Math.cos(2 * Math.PI * u2);
        f32[i + 1] = r * Math.sin(2 * Math.PI * u2);
      }
      const n = Math.min(chunk, bytes - done);
      writeSync(fd, new Uint8Array(f32.buffer, 0, n));
    }
  } finally {
    closeSync(fd);
  }
}

function writeConfig(dir, variant) {
  mkdirSync(dir, { recursive: true });
  // about 1 MB: a settings file plus a vocabulary-like list
  const settings = { variant, temperature: variant === 1 ? 0.7 : 0.8, max_tokens: 2048, layers: 24 };
  writeFileSync(join(dir, 'settings.json'), JSON.stringify(settings, null, 2));
  const lines = [];
  for (let i = 0; lines.join('\n').length < 1000 * 1000 && i < 1e6; i += 1000) {
    for (let j = i; j < i + 1000; j++) lines.push(`token_${j}\t${(j * 2654435761) % 100003}\tv${variant}`);
  }
  writeFileSync(join(dir, 'vocab.tsv'), `${lines.join('\n').slice(0, 1000 * 1000)}\n`);
}

function ensureData() {
  const marker = join(DATA, `.complete-v${DATA_VERSION}`);
  if (existsSync(marker)) return;
  log(`generating synthetic data in ${DATA} (once; cached)`);
  rmSync(DATA, { recursive: true, force: true });
  mkdirSync(MODEL, { recursive: true });
  for (let i = 0; i < MODEL_FILES; i++) {
    writeNoise(join(MODEL, `weights-${String(i).padStart(2, '0')}.bin`), MODEL_FILE_SIZE, i + 1);
  }
  writeFileSync(
    join(MODEL, 'config.json'),
    JSON.stringify(
      {
        architecture: 'synthetic',
        dtype: 'float32',
        sigma: 0.02,
        shards: MODEL_FILES,
        shard_bytes: MODEL_FILE_SIZE,
      },
      null,
      2,
    ),
  );
  writeConfig(CONFIG_V1, 1);
  writeConfig(CONFIG_V2, 2);
  writeFileSync(marker, new Date().toISOString());
}

function freshProject(name) {
  const dir = join(WORK, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  runCli(['init', '--name', 'bench', '--type', 'service', '--no-git'], dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// figures

const results = {
  schema: 1,
  date: new Date().toISOString(),
  machine: {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    tools: {},
  },
  data: {
    model: `${MODEL_FILES} files x ${MODEL_FILE_SIZE / MiB} MiB float32 Gaussian noise (sigma 0.02) + config.json`,
    modelBytes: MODEL_FILES * MODEL_FILE_SIZE,
    config: '1 MB config component (settings.json + vocab.tsv)',
  },
  runs: { pack: RUNS, gzip: GZIP_RUNS, switch: SWITCH_RUNS },
  figures: {},
  skipped: {},
};

function toolVersion(cmd) {
  try {
    return execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return 'missing';
  }
}

/** Alternates tool and ours, `runs` times each; returns medians and the ratio ours/tool. */
function compare(runs, tool, ours) {
  const t = [];
  const o = [];
  for (let i = 0; i < runs; i++) {
    // Flush what the previous run left dirty, so that no run pays for another's disk writes.
    spawnSync('sync');
    t.push(tool(i));
    spawnSync('sync');
    o.push(ours(i));
    log(`  run ${i + 1}/${runs}: tool ${t[i].toFixed(3)} s, deploy-tool ${o[i].toFixed(3)} s`);
  }
  const tm = median(t);
  const om = median(o);
  return {
    toolSeconds: t.map((x) => round(x)),
    oursSeconds: o.map((x) => round(x)),
    toolMedian: round(tm),
    oursMedian: round(om),
    ratio: round(om / tm),
  };
}

function benchPackZstd() {
  log('pack (zstd -3) vs tar -cf - | zstd -3 -T2');
  const out = join(WORK, 'ref.tar.zst');
  const r = compare(
    RUNS,
    () => {
      rmSync(out, { force: true });
      return timeShell(`tar -cf - -C '${DATA}' model | zstd -3 -T2 -q > '${out}'`);
    },
    (i) => {
      const p = freshProject(`pack-zstd-${i}`);
      const res = runCli(['pack', MODEL, '--type', 'model', '--version', '1.0.0'], p);
      const seconds = res.seconds;
      rmSync(p, { recursive: true, force: true });
      return seconds;
    },
  );
  results.figures.packZstd = {
    command: `deploy-tool pack bench/data/model --type model --version 1.0.0 (zstd level 3, fresh project)`,
    tool: `tar -cf - model | zstd -3 -T2 > out`,
    ...r,
    target: 'ratio <= 1.0',
    pass: r.ratio <= 1.0,
  };
}

function benchPackGzip() {
  log('pack --compression gzip vs tar -czf');
  const out = join(WORK, 'ref.tar.gz');
  const r = compare(
    GZIP_RUNS,
    () => {
      rmSync(out, { force: true });
      return timeShell(`tar -czf '${out}' -C '${DATA}' model`);
    },
    (i) => {
      const p = freshProject(`pack-gzip-${i}`);
      const res = runCli(
        ['pack', MODEL, '--type', 'model', '--version', '1.0.0', '--compression', 'gzip'],
        p,
      );
      rmSync(p, { recursive: true, force: true });
      return res.seconds;
    },
  );
  const speedup = round(r.toolMedian / r.oursMedian);
  results.figures.packGzip = {
    command: 'deploy-tool pack bench/data/model --type model --version 1.0.0 --compression gzip',
    tool: 'tar -czf out model',
    ...r,
    speedup,
    target: 'speedup (tool / ours) >= 1.5',
    pass: speedup >= 1.5,
  };
}

function benchRss() {
  log('peak RSS of pack');
  const p = freshProject('pack-rss');
  const m = peakRssKiB(
    [process.execPath, CLI, 'pack', MODEL, '--type', 'model', '--version', '1.0.0', '--quiet'],
    p,
  );
  rmSync(p, { recursive: true, force: true });
  const mb = round((m.kib * 1024) / 1e6, 1);
  results.figures.packPeakRss = {
    command: 'deploy-tool pack bench/data/model --type model --version 1.0.0',
    method: m.method,
    peakRssMB: mb,
    target: 'peak RSS < 300 MB',
    pass: mb < 300,
  };
}

// ---------------------------------------------------------------------------------------------
// deploy figures (only when the deploy commands exist)

function deployAvailable() {
  const probe = (args) => spawnSync(process.execPath, [CLI, ...args, '--help'], { encoding: 'utf8' });
  const missing = [];
  for (const args of [['deploy'], ['version', 'switch'], ['version', 'rollback']]) {
    const r = probe(args);
    // commander prints the program help (not the subcommand's) for unknown commands
    if (r.status !== 0 || !new RegExp(`Usage: deploy-tool ${args.join(' ')}`).test(r.stdout))
      missing.push(args.join(' '));
  }
  return missing;
}

/**
 * Merges this run into bench/results.json: the figures (and skips) of the groups that ran replace
 * theirs; the other groups' figures stay, with the date they were measured in `measured`.
 */
function writeResults() {
  const path = join(BENCH, 'results.json');
  let prev;
  try {
    prev = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    prev = {};
  }
  const skipped = { ...(prev.skipped ?? {}) };
  for (const g of ran) delete skipped[g];
  const measured = { ...(prev.measured ?? {}) };
  // A file from before `measured` existed was written by a full run of the first four groups.
  if (!prev.measured && prev.date)
    for (const g of ['pack', 'gzip', 'rss', 'deploy']) if (!ran.has(g)) measured[g] = prev.date;
  for (const g of ran) measured[g] = results.date;
  const merged = {
    ...prev,
    ...results,
    runs: { ...(prev.runs ?? {}), ...results.runs },
    measured,
    figures: { ...(prev.figures ?? {}), ...results.figures },
    skipped: { ...skipped, ...results.skipped },
  };
  writeFileSync(path, `${JSON.stringify(merged, null, 2)}\n`);
}

function printTable() {
  const rows = [];
  const f = results.figures;
  const s = (x) => (x === undefined || x === null ? '-' : String(x));
  const add = (name, tool, ours, ratio, target, pass) =>
    rows.push([name, s(tool), s(ours), s(ratio), target, pass === undefined ? '-' : pass ? 'PASS' : 'FAIL']);
  if (f.packZstd)
    add(
      'pack zstd -3 (s)',
      f.packZstd.toolMedian,
      f.packZstd.oursMedian,
      f.packZstd.ratio,
      f.packZstd.target,
      f.packZstd.pass,
    );
  if (f.packGzip)
    add(
      'pack gzip -6 (s)',
      f.packGzip.toolMedian,
      f.packGzip.oursMedian,
      `${f.packGzip.speedup}x faster`,
      f.packGzip.target,
      f.packGzip.pass,
    );
  if (f.packPeakRss)
    add('pack peak RSS (MB)', '', f.packPeakRss.peakRssMB, '', f.packPeakRss.target, f.packPeakRss.pass);
  if (f.deployFull)
    add(
      'full deploy 512 MiB (s)',
      f.deployFull.toolMedian,
      f.deployFull.oursMedian,
      f.deployFull.ratio,
      f.deployFull.target,
      f.deployFull.pass,
    );
  for (const k of ['switchSmall', 'switchLarge', 'rollbackSmall', 'rollbackLarge']) {
    if (f[k]) add(`${f[k].label} (ms)`, '', f[k].medianMs, '', f[k].target, f[k].pass);
  }
  if (f.switchParity)
    add(
      'switch/rollback 512 MiB vs 1 MB',
      '',
      '',
      f.switchParity.ratio,
      f.switchParity.target,
      f.switchParity.pass,
    );
  if (f.redeployConfig)
    add(
      'redeploy config only (s)',
      f.redeployConfig.fullDeploySeconds,
      f.redeployConfig.oursMedian,
      `${f.redeployConfig.percentOfFull}%`,
      f.redeployConfig.target,
      f.redeployConfig.pass,
    );
  s3Rows(f, add);
  registryRows(f, add);
  const head = ['figure', 'tool', 'deploy-tool', 'ratio', 'target', ''];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(w[i])).join('  ');
  console.log(
    `\ndeploy-tool bench: ${results.machine.cores} cores, node ${results.machine.node}, ${results.date}`,
  );
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
  for (const [k, why] of Object.entries(results.skipped)) console.log(`skipped ${k}: ${why}`);
  console.log(`\nwritten to ${join('bench', 'results.json')}`);
}

async function main() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm run bench does)`);
  for (const bin of ['tar', 'zstd', 'gzip']) {
    if (!have(bin))
      throw new Error(`${bin} is required for the reference figures (apt-get install -y ${bin})`);
  }
  results.machine.tools = {
    tar: toolVersion('tar --version'),
    zstd: toolVersion('zstd --version'),
    gzip: toolVersion('gzip --version'),
    deployTool: toolVersion(`'${process.execPath}' '${CLI}' --version`),
  };
  ensureData();
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  // warm the page cache so that every run (tool or ours) reads the model from memory
  timeShell(`cat '${MODEL}'/* > /dev/null`);

  if (want('pack')) benchPackZstd();
  if (want('gzip')) benchPackGzip();
  if (want('rss')) benchRss();
  if (want('deploy')) {
    const missing = deployAvailable();
    if (missing.length) {
      const why = `deploy-tool has no ${missing.join(', ')} command yet`;
      log(`skipping the deploy figures: ${why}`);
      results.skipped.deploy = why;
    } else {
      await benchDeploy();
    }
  }
  // What the S3 and registry groups (bench/s3.mjs, bench/registry.mjs) use of this file.
  const groupContext = {
    log,
    round,
    median,
    results,
    runCli,
    freshProject,
    gnuTime,
    writeNoise,
    CLI,
    DATA,
    WORK,
    MODEL,
  };
  if (want('s3')) {
    results.runs.s3 = Number(process.env.BENCH_S3_RUNS ?? 3);
    await benchS3(groupContext);
  }
  if (want('registry')) {
    results.runs.registry = Number(process.env.BENCH_REGISTRY_RUNS ?? 3);
    await benchRegistry(groupContext);
  }
  writeResults();
  printTable();
  rmSync(WORK, { recursive: true, force: true });
}

/** Release versions used by the deploy figures. */
const REL = {
  model: '1.0.0', // model:1.0.0 alone (512 MiB): the full deploy
  small1: '2.0.0', // config:1.0.0 (1 MB)
  small2: '2.0.1', // config:1.0.1 (1 MB)
  large1: '3.0.0', // model:1.0.0 + config:1.0.0
  large2: '3.0.1', // model:1.0.0 + config:1.0.1: only the config changed
};

function deployProject() {
  const p = freshProject('deploy-project');
  runCli(['pack', MODEL, '--type', 'model', '--version', '1.0.0'], p);
  runCli(['pack', CONFIG_V1, '--type', 'config', '--version', '1.0.0'], p);
  runCli(['pack', CONFIG_V2, '--type', 'config', '--version', '1.0.1'], p);
  const publish = (release, ...components) =>
    runCli(['publish', ...components.flatMap((c) => ['--component', c]), '--release-version', release], p);
  publish(REL.model, 'model:1.0.0');
  publish(REL.small1, 'config:1.0.0');
  publish(REL.small2, 'config:1.0.1');
  publish(REL.large1, 'model:1.0.0', 'config:1.0.0');
  publish(REL.large2, 'model:1.0.0', 'config:1.0.1');
  return p;
}

/**
 * Medians of in-process switch and rollback (the operation, without node's start-up) on several
 * targets, measured interleaved (one switch + rollback on each target in turn, every round) after
 * one warm-up round that is not counted, so that no target pays alone for the first calls (module
 * loading, JIT) or for what the machine happened to be doing while it was measured.
 */
async function switchFigures(project, targets) {
  const { switchVersion, rollback } = await import('../dist/ops/version.js');
  const acc = targets.map(() => ({ sw: [], rb: [], inner: [] }));
  for (let i = -1; i < SWITCH_RUNS; i++) {
    for (const [k, { target, releases }] of targets.entries()) {
      const common = { cwd: project, target };
      const release = releases[Math.max(i, 0) % 2];
      let t0 = performance.now();
      const r = await switchVersion({ ...common, release });
      const sw = performance.now() - t0;
      t0 = performance.now();
      await rollback(common);
      const rb = performance.now() - t0;
      if (i < 0) continue; // warm-up
      acc[k].sw.push(sw);
      acc[k].rb.push(rb);
      if (typeof r.switchMs === 'number') acc[k].inner.push(r.switchMs);
    }
  }
  return targets.map(({ target, releases, label }, k) => {
    const { sw, rb, inner } = acc[k];
    const cli = [];
    for (let i = 0; i < 3; i++) {
      cli.push(runCli(['version', 'switch', releases[i % 2], '--target', target], project).seconds * 1000);
    }
    return {
      switch: {
        label: `switch, ${label}`,
        runsMs: sw.map((x) => round(x, 1)),
        medianMs: round(median(sw), 1),
        linksAndRenameMedianMs: inner.length ? round(median(inner), 2) : null,
        cliWallMedianMs: round(median(cli), 0),
        target: '< 50 ms',
        pass: median(sw) < 50,
      },
      rollback: {
        label: `rollback, ${label}`,
        runsMs: rb.map((x) => round(x, 1)),
        medianMs: round(median(rb), 1),
        target: '< 50 ms',
        pass: median(rb) < 50,
      },
    };
  });
}

async function benchDeploy() {
  log('deploy: packing and publishing the releases (not timed)');
  const project = deployProject();
  const modelArchive = join(project, 'dist', 'model-1.0.0.tar.zst');
  const deployArgs = (release, target) => ['deploy', '--release', release, '--target', target];

  log('full deploy of the 512 MiB model vs zstd -d -c | tar -x; then a config-only redeploy');
  const full = { tool: [], ours: [], op: [] };
  const redeploy = [];
  const redeployOp = [];
  let lastTarget;
  for (let i = 0; i < RUNS; i++) {
    const dir = join(WORK, `tool-extract-${i}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    spawnSync('sync');
    full.tool.push(timeShell(`zstd -d -q -c '${modelArchive}' | tar -x -C '${dir}'`));
    rmSync(dir, { recursive: true, force: true });
    const target = join(WORK, `target-${i}`);
    rmSync(target, { recursive: true, force: true });
    spawnSync('sync');
    const f = runCli(deployArgs(REL.model, target), project);
    full.ours.push(f.seconds);
    full.op.push(f.json?.seconds ?? f.seconds);
    // a release with the same model and a 1 MB config, then one where only the config changed
    runCli(deployArgs(REL.large1, target), project);
    spawnSync('sync');
    const r = runCli(deployArgs(REL.large2, target), project);
    redeploy.push(r.seconds);
    redeployOp.push(r.json?.seconds ?? r.seconds);
    log(
      `  run ${i + 1}/${RUNS}: tool ${full.tool[i].toFixed(3)} s, deploy ${full.ours[i].toFixed(3)} s, config-only redeploy ${r.seconds.toFixed(3)} s`,
    );
    if (lastTarget) rmSync(lastTarget, { recursive: true, force: true });
    lastTarget = target;
  }
  const tm = median(full.tool);
  const om = median(full.ours);
  results.figures.deployFull = {
    command: `deploy-tool deploy --release ${REL.model} --target DIR (model:1.0.0, 512 MiB: verify archive, extract, verify every file, fsync, switch)`,
    tool: 'zstd -d -c model-1.0.0.tar.zst | tar -x -C DIR (no verification, no fsync)',
    toolSeconds: full.tool.map((x) => round(x)),
    oursSeconds: full.ours.map((x) => round(x)),
    toolMedian: round(tm),
    oursMedian: round(om),
    ratio: round(om / tm),
    target: 'ratio <= 1.1',
    pass: om / tm <= 1.1,
  };
  // Both on the same basis: the deploy operation as the command reports it (its `seconds`, without
  // node's start-up, which is the same for every command); the process wall times are kept too.
  const rm = median(redeployOp);
  const fm = median(full.op);
  results.figures.redeployConfig = {
    command: `deploy-tool deploy --release ${REL.large2} on a target at ${REL.large1} (same model, config 1.0.0 -> 1.0.1)`,
    basis: 'operation time reported by deploy --json (seconds), for both the redeploy and the full deploy',
    oursSeconds: redeployOp.map((x) => round(x)),
    oursMedian: round(rm),
    fullDeploySeconds: round(fm),
    fullDeployRuns: full.op.map((x) => round(x)),
    percentOfFull: round((100 * rm) / fm, 2),
    processWallSeconds: { redeploy: round(median(redeploy)), fullDeploy: round(om) },
    target: '< 5% of the full deploy',
    pass: rm / fm < 0.05,
  };

  log('switch and rollback: 512 MiB releases and 1 MB releases, interleaved');
  const smallTarget = join(WORK, 'target-small');
  runCli(deployArgs(REL.small1, smallTarget), project);
  runCli(deployArgs(REL.small2, smallTarget), project);
  spawnSync('sync');
  const [large, small] = await switchFigures(project, [
    { target: lastTarget, releases: [REL.large1, REL.large2], label: '512 MiB release' },
    { target: smallTarget, releases: [REL.small1, REL.small2], label: '1 MB release' },
  ]);
  results.figures.switchSmall = small.switch;
  results.figures.switchLarge = large.switch;
  results.figures.rollbackSmall = small.rollback;
  results.figures.rollbackLarge = large.rollback;
  const ratios = [
    large.switch.medianMs / small.switch.medianMs,
    large.rollback.medianMs / small.rollback.medianMs,
  ];
  const worst = Math.max(...ratios.map((r) => Math.max(r, 1 / r)));
  results.figures.switchParity = {
    description: 'median time for the 512 MiB release / median time for the 1 MB release (switch, rollback)',
    switchRatio: round(ratios[0]),
    rollbackRatio: round(ratios[1]),
    ratio: round(worst),
    target: 'within 1.5x of each other',
    pass: worst <= 1.5,
  };
  rmSync(lastTarget, { recursive: true, force: true });
}

await main();
