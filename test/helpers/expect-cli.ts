/**
 * Assertions on CLI results shared by the end-to-end tests of init, pack, publish, lists and flags.
 */
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { CliResult } from './cli.js';

/**
 * A user error: exit code 1 (2 for ERR_USAGE), "error [CODE]: message" and a "hint:" line on stderr,
 * nothing on stdout, and no stack trace. Returns the message.
 */
export function expectUserError(r: CliResult, code: string, exitCode = code === 'ERR_USAGE' ? 2 : 1): string {
  const ctx = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  expect(r.code, ctx).toBe(exitCode);
  const m = new RegExp(`^error \\[${code}\\]: (.+)$`, 'm').exec(r.stderr);
  expect(m, ctx).not.toBeNull();
  expect(r.stderr, ctx).toMatch(/^hint: \S.*$/m);
  expect(r.stderr, ctx).not.toMatch(/^\s+at /m);
  expect(r.stdout.trim(), ctx).toBe('');
  return m?.[1] ?? '';
}

/** Every folder, file (sha256 and exec bit) and symlink (target) under `root`, sorted. */
export async function snapshotTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      if (st.isDirectory()) {
        out.push(`dir  ${r}`);
        await walk(abs, r);
      } else if (st.isSymbolicLink()) out.push(`link ${r} -> ${await readlink(abs)}`);
      else if (st.isFile()) {
        const sha = createHash('sha256')
          .update(await readFile(abs))
          .digest('hex');
        out.push(`file ${r} ${sha} ${st.mode & 0o111 ? 'x' : '-'}`);
      } else out.push(`special ${r}`);
    }
  };
  await walk(root, '');
  return out;
}

/** Names of files in a folder tree whose name marks a temporary or partial write. */
export async function leftovers(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const abs = join(dir, name);
      if (/\.tmp-|\.partial|\.part$/.test(name)) found.push(abs);
      if ((await lstat(abs)).isDirectory()) await walk(abs);
    }
  };
  await walk(root);
  return found;
}
