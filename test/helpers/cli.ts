/**
 * Test helpers: run the built CLI as a user would, in temporary folders built from inline files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'dist', 'bin', 'deploy-tool.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
}

export function runCli(args: string[], options: RunOptions): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Runs the CLI with --json and parses stdout. */
export async function runJson<T = Record<string, unknown>>(
  args: string[],
  options: RunOptions,
): Promise<{ code: number; json: T; stderr: string }> {
  const r = await runCli([...args, '--json'], options);
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, json, stderr: r.stderr };
}

const cleanups: string[] = [];

export async function tempDir(prefix = 'dt-'): Promise<string> {
  const base = join(tmpdir(), 'deploy-tool-tests');
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, prefix));
  cleanups.push(dir);
  return dir;
}

export async function cleanupTempDirs(): Promise<void> {
  for (const d of cleanups.splice(0)) await rm(d, { recursive: true, force: true });
}

export type Tree = Record<string, string | Buffer | { symlink: string }>;

/** Writes files (and symlinks) under `root`. */
export async function writeTree(root: string, tree: Tree): Promise<void> {
  for (const [rel, content] of Object.entries(tree)) {
    const abs = join(root, rel);
    await mkdir(dirname(abs), { recursive: true });
    if (typeof content === 'object' && !Buffer.isBuffer(content)) await symlink(content.symlink, abs);
    else await writeFile(abs, content);
  }
}

/** Deterministic pseudo-random bytes (fast; for test payloads). */
export function noise(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (i + 4 <= size) buf.writeUInt32LE(x, i);
    else for (let j = i; j < size; j++) buf[j] = (x >>> ((j - i) * 8)) & 0xff;
  }
  return buf;
}

/** A project with three components' sources, initialised with init --no-git. */
export async function makeProject(extra: Tree = {}): Promise<string> {
  const dir = await tempDir('proj-');
  const r = await runCli(['init', '--name', 'test-project', '--type', 'algorithm', '--no-git'], { cwd: dir });
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
  await writeTree(dir, {
    'models/weights.bin': noise(3 * 1024 * 1024 + 123, 7),
    'models/vocab.json': '{"a": 1, "b": 2}\n',
    'configs/settings.yaml': 'threshold: 0.5\n',
    'runtime/requirements.txt': 'numpy==1.26.0\n',
    ...extra,
  });
  return dir;
}

export interface Served {
  url: string;
  child: ChildProcess;
  /** What the server wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/** Starts `deploy-tool serve --data DIR --port 0 ...` (the built CLI) and waits for its URL. */
export async function startServe(dataDir: string, args: string[] = []): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--data', dataDir, '--port', '0', ...args], {
    cwd: dataDir,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out} ${err}`)), 20_000);
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
  });
  return {
    url,
    child,
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    },
  };
}

/** Compressed bytes of one file of a packed component: the frames that hold its data. */
export async function compressedFileBytes(
  project: string,
  type: string,
  version: string,
  path: string,
): Promise<number> {
  const m = JSON.parse(
    await readFile(join(project, 'deployment', 'manifests', `${type}-${version}.manifest.json`), 'utf8'),
  ) as {
    files: { path: string; offset: number; size: number }[];
    frames: { tarOffset: number; tarSize: number; size: number }[];
  };
  const f = m.files.find((x) => x.path === path);
  if (!f) throw new Error(`${path} is not in ${type}:${version}`);
  return m.frames
    .filter((fr) => fr.tarOffset >= f.offset && fr.tarOffset + fr.tarSize <= f.offset + f.size)
    .reduce((s, fr) => s + fr.size, 0);
}
