import type { Command } from 'commander';
import { relative } from 'node:path';
import { signProjectFiles } from '../../trust/sign.js';
import { action } from '../context.js';

interface SignFlags {
  release?: string;
  component?: string;
  key: string;
  force?: boolean;
}

export function registerSign(program: Command): void {
  program
    .command('sign')
    .description(
      'Sign a published release (release.json, which covers every byte by sha256) or a component manifest',
    )
    .option('--release <version>', 'release in deployment/releases/ to sign')
    .option('--component <type:version>', 'component manifest in deployment/manifests/ to sign on its own')
    .requiredOption('--key <file>', 'private key (made by "deploy-tool keys generate")')
    .option('--force', 'replace a signature made by another key')
    .action(
      action<SignFlags>(async (opts, ui, common) => {
        const r = await signProjectFiles({
          ...common,
          key: opts.key,
          release: opts.release,
          component: opts.component,
          force: opts.force,
        });
        ui.json({ ok: true, ...r });
        const rel = (p: string): string => relative(common.cwd, p) || p;
        for (const f of r.signatureFiles) ui.success(`Signed with key ${r.keyId}: ${rel(f)}`);
        ui.info('');
        ui.info('Transfer the .minisig files with the release (they live beside the manifests).');
        if (opts.release)
          ui.info(
            `   git add ${r.signatureFiles
              .map(rel)
              .filter((f) => f.endsWith('.release.json.minisig'))
              .join(' ')}`,
          );
      }),
    );
}
