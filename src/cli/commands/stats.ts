import type { Command } from 'commander';
import { clientFromFlags, parseWhen, table, type RegistryFlags } from '../../registry/cli-helpers.js';
import { action } from '../context.js';
import { formatBytes } from '../ui.js';

interface StatsFlags extends RegistryFlags {
  since?: string;
  until?: string;
}

export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('Downloads and bandwidth per component over a period (default: the last 30 days)')
    .option('--since <when>', 'from this date (ISO 8601) or age (7d)', '30d')
    .option('--until <when>', 'up to this date (default: today)')
    .option('--registry <url>', 'registry URL')
    .action(
      action<StatsFlags>(async (opts, ui) => {
        const client = await clientFromFlags(opts);
        try {
          const s = await client.stats({ since: parseWhen(opts.since), until: parseWhen(opts.until) });
          ui.json({ ok: true, ...s });
          ui.heading(`Downloads ${s.since} .. ${s.until}`);
          if (s.components.length === 0) {
            ui.info('No downloads in that period.');
            return;
          }
          ui.info(
            table([
              ['NAMESPACE', 'COMPONENT', 'DOWNLOADS', 'BANDWIDTH'],
              ...s.components.map((c) => [
                c.namespace,
                `${c.type}:${c.version}`,
                String(c.downloads),
                formatBytes(c.bytes),
              ]),
              ['total', '', String(s.totals.downloads), formatBytes(s.totals.bytes)],
            ]),
          );
        } finally {
          client.close();
        }
      }),
    );
}
