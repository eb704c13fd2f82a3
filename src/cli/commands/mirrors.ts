import type { Command } from 'commander';
import { mirrorsCheck } from '../../ops/mirrors.js';
import { action } from '../context.js';

interface MirrorsFlags {
  store?: string;
  method?: string;
  bucket?: string;
  endpoint?: string;
  region?: string;
  prefix?: string;
}

export function registerMirrors(program: Command): void {
  const mirrors = program
    .command('mirrors')
    .description('Stores and their mirrors (stores: in .deploy-tool.yaml)');
  mirrors
    .command('check')
    .description("print each store's health and latency (a store and its mirrors, or every store)")
    .option('--store <name>', 'a store from .deploy-tool.yaml (with its mirrors)')
    .option('--method <method>', 's3 or bos (with --bucket)')
    .option('--bucket <bucket>', 'bucket name')
    .option('--endpoint <url>', 'endpoint URL')
    .option('--region <region>', 'region')
    .option('--prefix <prefix>', 'key prefix')
    .action(
      action<MirrorsFlags>(async (opts, ui, common) => {
        const r = await mirrorsCheck({ ...common, ...opts });
        ui.json({ ok: r.healthy === r.total, ...r });
        for (const s of r.stores) {
          const head = `${s.priority === 0 ? '' : '  mirror '}${s.name} [${s.type}] ${s.location}`;
          if (s.ok) ui.success(`${head}: ok (${s.ms} ms)${s.latest ? `, latest ${s.latest}` : ''}`);
          else ui.warn(`${head}: ${s.error?.message ?? 'failed'} (${s.ms} ms)`);
        }
        ui.info(`${r.healthy}/${r.total} healthy`);
        if (r.healthy < r.total) process.exitCode = 1;
      }),
    );
}
