import type { Command } from 'commander';
import { positiveInt } from '../../core/validate.js';
import { clientFromFlags, parseWhen, table, type RegistryFlags } from '../../registry/cli-helpers.js';
import { action } from '../context.js';

interface AuditFlags extends RegistryFlags {
  since?: string;
  until?: string;
  limit: string;
}

export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('Show the registry audit log: publishes, deletes, pointer moves, token changes (admin)')
    .option('--since <when>', 'from this date (ISO 8601) or age (7d, 12h)')
    .option('--until <when>', 'up to this date')
    .option('--limit <n>', 'at most this many events', '100')
    .option('--registry <url>', 'registry URL')
    .action(
      action<AuditFlags>(async (opts, ui) => {
        const client = await clientFromFlags(opts);
        try {
          const events = await client.audit({
            since: parseWhen(opts.since),
            until: parseWhen(opts.until),
            limit: positiveInt(opts.limit, '--limit', 1, 10_000),
          });
          ui.json({ ok: true, events });
          if (events.length === 0) {
            ui.info('No audit events in that period.');
            return;
          }
          ui.info(
            table([
              ['WHEN', 'WHO', 'ACTION', 'NAMESPACE', 'TARGET', 'FROM'],
              ...events.map((e) => [
                e.at.replace('T', ' ').slice(0, 19),
                e.actor,
                e.action,
                e.namespace ?? '-',
                e.target ?? '-',
                e.address,
              ]),
            ]),
          );
        } finally {
          client.close();
        }
      }),
    );
}
