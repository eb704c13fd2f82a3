// End-to-end demo on the embedded default (filesystem store, no services), in a temporary folder.
// Run with `npm run demo` (which builds first). Prints every command and its output.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bin', 'deploy-tool.js');
const work = mkdtempSync(join(tmpdir(), 'deploy-tool-demo-'));
const project = join(work, 'my-ml-project');
const server = join(work, 'server');
mkdirSync(project);

function run(args, { cwd = project, allowFail = false } = {}) {
  console.log(`\n$ deploy-tool ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, stdio: 'inherit', env: { ...process.env } });
  if (r.status !== 0 && !allowFail) {
    console.error(`\ndemo failed: "deploy-tool ${args.join(' ')}" exited with ${r.status}`);
    process.exit(1);
  }
  return r.status;
}

function noise(size, seed) {
  const buf = Buffer.allocUnsafe(size);
  let x = seed;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  return buf;
}

function write(rel, content) {
  const p = join(project, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content);
}

console.log(`deploy-tool demo in ${work}`);
run(['init', '--name', 'my-ml-project', '--type', 'algorithm']);
write('models/weights-0.bin', noise(24 * 1024 * 1024, 1));
write('models/weights-1.bin', noise(24 * 1024 * 1024, 2));
write('models/tokenizer.json', JSON.stringify({ vocab: ['a', 'b', 'c'] }));
write('configs/settings.yaml', 'threshold: 0.5\nbatch_size: 8\n');
write('runtime/requirements.txt', 'numpy==1.26.4\n');

run(['pack', './models', '--auto', '--type', 'model', '--version', '1.0.0']);
run(['pack', './configs', '--auto', '--type', 'config', '--version', '1.0.0']);
run(['pack', './runtime', '--auto', '--type', 'runtime', '--version', '3.10.0']);
run([
  'publish',
  '--component',
  'model:1.0.0',
  '--component',
  'config:1.0.0',
  '--component',
  'runtime:3.10.0',
  '--release-version',
  '2024.01.20',
  '--method',
  'filesystem',
]);

// A second release that only changes the config.
write('configs/settings.yaml', 'threshold: 0.7\nbatch_size: 8\n');
run(['pack', './configs', '--type', 'config', '--version', '1.1.0']);
run([
  'publish',
  '--component',
  'model:1.0.0',
  '--component',
  'config:1.1.0',
  '--component',
  'runtime:3.10.0',
  '--release-version',
  '2024.01.21',
]);
run(['release', 'list']);

const hasDeploy = /\n\s+deploy\b/.test(
  spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' }).stdout,
);
if (hasDeploy) {
  // "Transfer" the release folders to the server, then deploy from there.
  mkdirSync(join(server, 'releases'), { recursive: true });
  for (const r of ['2024.01.20', '2024.01.21']) {
    spawnSync('cp', ['-r', join(project, 'deployment', 'releases', r), join(server, 'releases', r)], {
      stdio: 'inherit',
    });
  }
  const target = join(server, 'ml-apps', 'my-project');
  const releasesDir = join(server, 'releases');
  run(
    [
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      target,
      '--method',
      'filesystem',
      '--releases-dir',
      releasesDir,
    ],
    { cwd: server },
  );
  run(['deploy', '--release', '2024.01.21', '--target', target, '--releases-dir', releasesDir, '--dry-run'], {
    cwd: server,
  });
  run(['deploy', '--release', '2024.01.21', '--target', target, '--releases-dir', releasesDir], {
    cwd: server,
  });
  run(['version', 'list', '--target', target], { cwd: server });
  run(['version', 'switch', '2024.01.20', '--target', target], { cwd: server });
  run(['version', 'rollback', '--target', target], { cwd: server });
  run(['verify', '--target', target], { cwd: server });
  run(['status', '--target', target], { cwd: server });
  if (existsSync(join(target, 'config')))
    console.log(`\n${target}/config -> ${readlinkSync(join(target, 'config'))}`);
}

console.log(`\nDemo finished. Everything is in ${work}`);
if (process.env.DEMO_KEEP !== '1') {
  rmSync(work, { recursive: true, force: true });
  console.log('(removed; set DEMO_KEEP=1 to keep it)');
}
