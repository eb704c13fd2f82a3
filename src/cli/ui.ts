/**
 * The only place that prints. Human output on stderr/stdout with colors on a TTY (off with
 * NO_COLOR or --no-color), progress bars with bytes, rate and ETA on long work, one JSON document
 * on stdout with --json, and errors as "error [CODE]: message" plus a hint.
 */
import cliProgress from 'cli-progress';
import { isDeployToolError } from '../core/errors.js';
import type { ProgressEvent } from '../core/events.js';
import { redact } from '../core/redact.js';

export interface GlobalFlags {
  verbose?: boolean;
  quiet?: boolean;
  json?: boolean;
  color?: boolean;
  projectRoot?: string;
}

export interface Ui {
  flags: GlobalFlags;
  color: boolean;
  info(msg: string): void;
  success(msg: string): void;
  warn(msg: string): void;
  verbose(msg: string): void;
  heading(msg: string): void;
  raw(msg: string): void;
  json(value: unknown): void;
  progress(ev: ProgressEvent): void;
  stopProgress(): void;
  error(err: unknown): number;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function createUi(flags: GlobalFlags): Ui {
  const color = flags.color !== false && !process.env.NO_COLOR && !!process.stdout.isTTY && !flags.json;
  const paint = (code: string, s: string): string => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  const out = (s: string): void => {
    if (!flags.json && !flags.quiet) process.stdout.write(`${redact(s)}\n`);
  };
  const err = (s: string): void => {
    process.stderr.write(`${redact(s)}\n`);
  };
  let bar: cliProgress.SingleBar | undefined;
  let barKey = '';
  const barsEnabled = !!process.stderr.isTTY && !flags.json && !flags.quiet;
  const started = new Map<string, number>();

  const stopProgress = (): void => {
    bar?.stop();
    bar = undefined;
    barKey = '';
  };

  return {
    flags,
    color,
    info: out,
    raw: (s) => {
      if (!flags.json) process.stdout.write(`${redact(s)}\n`);
    },
    success: (s) => out(`${paint('32', '✓')} ${s}`),
    heading: (s) => out(paint('1', s)),
    warn: (s) => {
      if (!flags.quiet) err(`${paint('33', 'warning:')} ${s}`);
    },
    verbose: (s) => {
      // Each step with the time since the process started (node's own start-up included).
      if (flags.verbose) err(paint('2', `· ${`${Math.round(performance.now())}`.padStart(5)} ms  ${s}`));
    },
    json: (value) => {
      if (flags.json) process.stdout.write(`${redact(JSON.stringify(value, null, 2))}\n`);
    },
    progress(ev) {
      const key = `${ev.phase}:${ev.item ?? ''}`;
      if (flags.verbose && !started.has(key)) started.set(key, performance.now());
      if (!barsEnabled || ev.total <= 0) return;
      if (key !== barKey) {
        stopProgress();
        barKey = key;
        const fmt =
          ev.unit === 'bytes'
            ? `${ev.phase} ${ev.item ?? ''} [{bar}] {percentage}% | {doneh}/{totalh} | {rate}/s | ETA {eta_formatted}`
            : `${ev.phase} ${ev.item ?? ''} [{bar}] {value}/{total}`;
        bar = new cliProgress.SingleBar(
          {
            format: fmt,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 20,
            fps: 10,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(ev.total, 0, { doneh: '0 B', totalh: formatBytes(ev.total), rate: '0 B' });
      }
      const t0 = started.get(key) ?? performance.now();
      started.set(key, t0);
      const secs = Math.max(0.001, (performance.now() - t0) / 1000);
      bar?.update(ev.done, {
        doneh: formatBytes(ev.done),
        totalh: formatBytes(ev.total),
        rate: formatBytes(ev.done / secs),
      });
      if (ev.done >= ev.total) stopProgress();
    },
    stopProgress,
    error(e) {
      stopProgress();
      if (isDeployToolError(e)) {
        if (flags.json) {
          process.stdout.write(
            `${redact(JSON.stringify({ ok: false, error: { code: e.code, message: e.message, hint: e.hint ?? null, details: e.details ?? null } }, null, 2))}\n`,
          );
        } else {
          err(`${paint('31', 'error')} [${e.code}]: ${e.message}`);
          if (e.hint) err(`${paint('36', 'hint:')} ${e.hint}`);
          if (flags.verbose && e.cause instanceof Error) err(e.cause.stack ?? e.cause.message);
          if (flags.verbose && e.stack) err(e.stack);
        }
        return e.code === 'ERR_USAGE' ? 2 : 1;
      }
      const message = e instanceof Error ? e.message : String(e);
      if (flags.json) {
        process.stdout.write(
          `${redact(JSON.stringify({ ok: false, error: { code: 'ERR_INTERNAL', message, hint: null } }, null, 2))}\n`,
        );
      } else {
        err(`${paint('31', 'error')} [ERR_INTERNAL]: ${message}`);
        if (flags.verbose && e instanceof Error && e.stack) err(e.stack);
        else
          err(`${paint('36', 'hint:')} Run again with --verbose for details, and report it if it persists.`);
      }
      return 1;
    },
  };
}
