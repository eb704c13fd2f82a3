import type { Command } from 'commander';
import { positiveInt } from '../../core/validate.js';
import { clientFromFlags, table, type RegistryFlags } from '../../registry/cli-helpers.js';
import { action } from '../context.js';
import { formatBytes } from '../ui.js';

interface SearchFlags extends RegistryFlags {
  namespace?: string;
  type?: string;
  tag?: string;
  framework?: string;
  limit: string;
}

export function registerSearch(program: Command): void {
  program
    .command('search')
    .description('Search the registry for components and releases')
    .argument(
      '[query...]',
      'words that must all match names, versions, descriptions, tags, frameworks, authors',
    )
    .option('--namespace <ns>', 'only this namespace')
    .option('--type <type>', 'only this component type')
    .option('--tag <tag>', 'only components with this tag')
    .option('--framework <name>', 'only components of this framework')
    .option('--limit <n>', 'at most this many of each', '50')
    .option('--registry <url>', 'registry URL')
    .action(
      action<SearchFlags>(async (opts, ui, _common, args) => {
        const client = await clientFromFlags(opts);
        try {
          const query = args.join(' ');
          const r = await client.search(query, {
            ...(opts.namespace ? { namespace: opts.namespace } : {}),
            ...(opts.type ? { type: opts.type } : {}),
            ...(opts.tag ? { tag: opts.tag } : {}),
            ...(opts.framework ? { framework: opts.framework } : {}),
            limit: positiveInt(opts.limit, '--limit', 1, 500),
          });
          ui.json({ ok: true, query, ...r });
          if (r.components.length === 0 && r.releases.length === 0) {
            ui.info(`Nothing matches "${query}".`);
            return;
          }
          if (r.components.length) {
            ui.heading('Components');
            ui.info(
              table([
                ['NAMESPACE', 'COMPONENT', 'SIZE', 'DOWNLOADS', 'DESCRIPTION'],
                ...r.components.map((c) => [
                  c.namespace,
                  `${c.type}:${c.version}`,
                  formatBytes(c.archive.size),
                  String(c.downloads ?? 0),
                  [c.metadata.description ?? '', ...c.metadata.tags.map((t) => `#${t}`)].join(' ').trim(),
                ]),
              ]),
            );
          }
          if (r.releases.length) {
            ui.heading('Releases');
            ui.info(
              table([
                ['NAMESPACE', 'RELEASE', 'COMPONENTS', 'CREATED'],
                ...r.releases.map((x) => [
                  x.namespace,
                  x.release,
                  x.components.join(','),
                  x.createdAt.slice(0, 10),
                ]),
              ]),
            );
          }
        } finally {
          client.close();
        }
      }),
    );
}
