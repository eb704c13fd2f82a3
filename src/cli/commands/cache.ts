import type { Command } from 'commander';
import { cacheClear, cacheList, cachePrune } from '../../ops/cache.js';
import { action } from '../context.js';
import { formatBytes } from '../ui.js';

interface CacheFlags {
  cacheDir?: string;
  maxSize?: string;
}

export function registerCache(program: Command): void {
  const cache = program
    .command('cache')
    .description('The download cache of s3/bos deploys (verified chunks)');
  cache
    .command('list')
    .description('list cached chunks, most recently used first')
    .option(
      '--cache-dir <dir>',
      'cache folder (default: $DEPLOY_TOOL_CACHE_DIR, else cache.dir, else $XDG_CACHE_HOME/deploy-tool)',
    )
    .action(
      action<CacheFlags>(async (opts, ui, common) => {
        const r = await cacheList({ ...common, cacheDir: opts.cacheDir });
        ui.json({ ok: true, ...r });
        ui.info(
          `${r.dir}: ${r.entries.length} chunks, ${formatBytes(r.totalBytes)} of ${formatBytes(r.maxBytes)}`,
        );
        ui.info(
          `  chunks: ${formatBytes(r.chunkBytes)}; recipes: ${r.recipes} (${formatBytes(r.recipeBytes)})`,
        );
        if (r.partials) ui.info(`  partial downloads: ${r.partials} (${formatBytes(r.partialBytes)})`);
        for (const e of r.entries)
          ui.info(`  ${e.sha256.slice(0, 16)}  ${formatBytes(e.size).padStart(10)}  ${e.lastUsed}`);
      }),
    );
  cache
    .command('prune')
    .description('evict least recently used chunks, recipes and stale partial downloads down to the size cap')
    .option('--cache-dir <dir>', 'cache folder')
    .option('--max-size <size>', 'target size (default: cache.max_size, else 10GB), e.g. 2GB')
    .action(
      action<CacheFlags>(async (opts, ui, common) => {
        const r = await cachePrune({ ...common, cacheDir: opts.cacheDir, maxSize: opts.maxSize });
        ui.json({ ok: true, ...r });
        ui.success(
          `Removed ${r.removed} files (${formatBytes(r.freedBytes)}); ${formatBytes(r.totalBytes)} left in ${r.dir}`,
        );
      }),
    );
  cache
    .command('clear')
    .description('remove everything from the cache')
    .option('--cache-dir <dir>', 'cache folder')
    .action(
      action<CacheFlags>(async (opts, ui, common) => {
        const r = await cacheClear({ ...common, cacheDir: opts.cacheDir });
        ui.json({ ok: true, ...r });
        ui.success(`Cleared ${r.dir}: ${r.removed} files, ${formatBytes(r.freedBytes)}`);
      }),
    );
}
