import type { Command } from 'commander';
import { DeployToolError } from '../../core/errors.js';
import { parseComponentRef } from '../../core/validate.js';
import { clientFromFlags, type RegistryFlags } from '../../registry/cli-helpers.js';
import { describeSignature } from '../../registry/client.js';
import { action } from '../context.js';
import { formatBytes } from '../ui.js';

interface InfoFlags extends RegistryFlags {
  namespace?: string;
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('Show a component version in the registry: metadata, archive, downloads, releases')
    .argument('<type:version>', 'component, for example model:1.0.0 (or NS/model:1.0.0)')
    .option('--namespace <ns>', 'namespace (default: wherever the component is, if in one only)')
    .option('--registry <url>', 'registry URL')
    .action(
      action<InfoFlags>(async (opts, ui, _common, args) => {
        let spec = args[0] ?? '';
        let ns = opts.namespace;
        const slash = spec.indexOf('/');
        if (slash > 0) {
          ns = spec.slice(0, slash);
          spec = spec.slice(slash + 1);
        }
        const ref = parseComponentRef(spec);
        const client = await clientFromFlags(opts);
        try {
          if (!ns) {
            const found = await client.findComponent(ref.type, ref.version);
            if (found.length === 0)
              throw new DeployToolError(
                'ERR_COMPONENT_NOT_FOUND',
                `${ref.type}:${ref.version} is not in ${client.location}`,
                {
                  hint: `Search for it: deploy-tool search ${ref.type}`,
                },
              );
            if (found.length > 1)
              throw new DeployToolError(
                'ERR_USAGE',
                `${ref.type}:${ref.version} is in several namespaces: ${found.map((c) => c.namespace).join(', ')}`,
                {
                  hint: 'Pass --namespace NS (or write NS/TYPE:VERSION).',
                },
              );
            ns = found[0]?.namespace ?? '';
          }
          const c = await client.getComponent(ns, ref.type, ref.version);
          ui.json({ ok: true, component: c });
          const m = c.metadata;
          ui.heading(`${c.type}:${c.version}  (namespace ${c.namespace})`);
          if (m.description) ui.info(m.description);
          const rows: [string, string][] = [
            ['author', m.author ?? '-'],
            ['license', m.license ?? '-'],
            ['framework', m.framework ?? '-'],
            ['tags', m.tags.join(', ') || '-'],
            ['files', `${c.files} (${formatBytes(c.totalSize)})`],
            ['archive', `${c.archive.name} (${formatBytes(c.archive.size)}, ${c.archive.compression})`],
            ['sha256', c.archive.sha256],
            ['manifest', c.manifestSha256],
            ['signature', describeSignature(c.signature)],
            [
              'encryption',
              c.encryption
                ? `age (${c.encryption.passphrase ? 'passphrase' : c.encryption.recipients.join(', ')})`
                : 'none',
            ],
            ['downloads', String(c.downloads ?? 0)],
            ['releases', c.releases?.join(', ') || '-'],
            ['published', `${c.createdAt} by ${c.publishedBy}`],
          ];
          for (const [k, v] of rows) ui.info(`  ${k.padEnd(10)} ${v}`);
        } finally {
          client.close();
        }
      }),
    );
}
