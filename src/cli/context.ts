import type { Command } from 'commander';
import type { CommonOptions } from '../core/events.js';
import { createUi, type GlobalFlags, type Ui } from './ui.js';

/** Runs a command's handler: builds the UI from the global flags, renders errors, sets the exit code. */
export function action<O>(
  handler: (opts: O, ui: Ui, common: CommonOptions, args: string[]) => Promise<void>,
) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const opts = cmd.optsWithGlobals<O & GlobalFlags>();
    // Flags given to the command itself win: optsWithGlobals lets the program's defaults (color: true,
    // from --no-color) hide them, which made `pack ... --no-color` still print colors.
    for (const [k, v] of Object.entries(cmd.opts()))
      if (cmd.getOptionValueSource(k) !== 'default') (opts as Record<string, unknown>)[k] = v;
    const ui = createUi(opts);
    const common: CommonOptions = {
      cwd: process.cwd(),
      projectRoot: opts.projectRoot,
      onProgress: (ev) => ui.progress(ev),
      onLog: (m) => ui.verbose(m),
      onWarning: (m) => ui.warn(m),
    };
    try {
      await handler(opts, ui, common, cmd.args);
      ui.stopProgress();
    } catch (err) {
      process.exitCode = ui.error(err);
    }
  };
}

export const collect = (value: string, prev: string[] = []): string[] => [...prev, value];
