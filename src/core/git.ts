import { execFile } from 'node:child_process';

function run(cwd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile('git', args, { cwd, timeout: 10_000 }, (err, stdout) =>
      resolve({ ok: !err, out: String(stdout) }),
    );
  });
}

export interface GitInfo {
  commit: string;
  dirty: boolean;
}

/** The commit of the repository holding `cwd` and whether its tree has changes; null outside git. */
export async function gitInfo(cwd: string): Promise<GitInfo | null> {
  const head = await run(cwd, ['rev-parse', '--verify', 'HEAD']);
  if (!head.ok) return null;
  const status = await run(cwd, ['status', '--porcelain', '--untracked-files=normal']);
  return { commit: head.out.trim(), dirty: status.ok ? status.out.trim().length > 0 : true };
}

export async function gitInit(cwd: string): Promise<boolean> {
  const inside = await run(cwd, ['rev-parse', '--is-inside-work-tree']);
  if (inside.ok && inside.out.trim() === 'true') return false;
  const r = await run(cwd, ['init', '-q']);
  return r.ok;
}
