/**
 * Test helpers: run the built CLI as a user would, in temporary folders built from inline files.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'dist', 'cli', 'main.js');

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
