/**
 * Runs hooks and health checks: a shell command in the target folder, with a timeout (the whole
 * process group is killed), its output passed line by line to a callback and kept (last 64 KiB).
 */
import { spawn } from 'node:child_process';
import { DeployToolError } from '../core/errors.js';

export type HookName = 'pre_deploy' | 'post_deploy' | 'post_rollback' | 'health_check';

export interface HookOutput {
  hook: HookName;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface HookResult {
  hook: HookName;
  command: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  ms: number;
  output: string;
}

export interface RunHookOptions {
  hook: HookName;
  command: string;
  cwd: string;
  timeoutSeconds: number;
  env: Record<string, string>;
  onOutput?: ((o: HookOutput) => void) | undefined;
}

const MAX_KEPT = 64 * 1024;

export function runHook(o: RunHookOptions): Promise<HookResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', o.command], {
      cwd: o.cwd,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    let timedOut = false;
    const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
    const feed = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      output = (output + text).slice(-MAX_KEPT);
      const all = pending[stream] + text;
      const lines = all.split('\n');
      pending[stream] = lines.pop() ?? '';
      for (const line of lines) o.onOutput?.({ hook: o.hook, stream, line });
    };
    child.stdout.on('data', (c: Buffer) => feed('stdout', c));
    child.stderr.on('data', (c: Buffer) => feed('stderr', c));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, o.timeoutSeconds * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const stream of ['stdout', 'stderr'] as const) {
        if (pending[stream]) o.onOutput?.({ hook: o.hook, stream, line: pending[stream] });
      }
      resolve({
        hook: o.hook,
        command: o.command,
        exitCode: code,
        signal: signal ?? null,
        timedOut,
        ms: Math.round(performance.now() - t0),
        output,
      });
    });
  });
}

export function hookFailed(r: HookResult): boolean {
  return r.timedOut || r.exitCode !== 0;
}

export function hookError(r: HookResult, extra: string): DeployToolError {
  const why = r.timedOut
    ? `timed out after ${(r.ms / 1000).toFixed(1)} s`
    : r.signal
      ? `was killed by ${r.signal}`
      : `exited with code ${r.exitCode}`;
  const code = r.hook === 'health_check' ? 'ERR_HEALTH_CHECK_FAILED' : 'ERR_HOOK_FAILED';
  const what = r.hook === 'health_check' ? 'Health check' : `Hook ${r.hook}`;
  return new DeployToolError(code, `${what} "${r.command}" ${why}; ${extra}`, {
    hint:
      r.hook === 'health_check'
        ? 'Fix the release (or the check) and deploy again; the output of the check is shown above.'
        : `Fix the hook in .deploy-tool.yaml (hooks.${r.hook}) or what it calls; its output is shown above.`,
    details: { hook: r.hook, exitCode: r.exitCode, timedOut: r.timedOut, output: r.output.slice(-4096) },
  });
}
