import type { Command } from 'commander';
import { relative } from 'node:path';
import { publish } from '../../ops/publish.js';
import { action, collect } from '../context.js';
import { formatBytes } from '../ui.js';

interface PublishFlags {
  component?: string[];
  releaseVersion?: string;
  method?: string;
  notes?: string;
  sign?: string;
}

export function registerPublish(program: Command): void {
  program
    .command('publish')
    .description('Publish components (and a release: a set of component versions) for deployment')
    .option('--component <type:version>', 'component to publish (repeatable)', collect)
    .option('--release-version <version>', 'release version to create (for example 2024.01.20)')
    .option('--method <method>', 'filesystem (default)', 'filesystem')
    .option('--notes <text>', 'release notes stored in the release manifest')
    .option('--sign <key>', 'sign the release and component manifests with this private key (keys generate)')
    .action(
      action<PublishFlags>(async (opts, ui, common) => {
        const r = await publish({
          ...common,
          components: opts.component ?? [],
          releaseVersion: opts.releaseVersion,
          method: opts.method,
          notes: opts.notes,
          sign: opts.sign,
        });
        ui.json({ ok: true, ...r });
        const rel = (p: string): string => relative(process.cwd(), p) || '.';
        const dir = `${rel(r.publishedDir)}/`;
        if (r.release) {
          ui.success(
            r.status === 'unchanged'
              ? `Release ${r.release} is already published (identical); nothing changed`
              : `Release created: ${r.release}`,
          );
        } else {
          ui.success(
            `Published ${r.components.map((c) => `${c.type}:${c.version}`).join(', ')} (no release)`,
          );
        }
        ui.success(
          `Published to: ${dir} (${formatBytes(r.totalBytes)}; ${r.components.filter((c) => c.placedBy === 'link').length} hard-linked)`,
        );
        if (r.signed)
          ui.success(`Signed with key ${r.signed.keyId} (${r.signed.files.length} .minisig files)`);
        ui.info('');
        ui.info('Directory structure:');
        ui.info(dir);
        for (const c of r.components) ui.info(`  ${c.type}/${c.version}/${c.archive.split('/').pop() ?? ''}`);
        if (!r.release) return;
        const R = r.release;
        ui.info('');
        ui.info('Next steps for filesystem publishing:');
        ui.info('1. Add release manifest to Git:');
        ui.info(`   git add ${rel(r.gitReleaseFile ?? '')}`);
        ui.info(`   git commit -m "Release version ${R}"`);
        ui.info('   git push');
        ui.info('');
        ui.info('2. Transfer the published files to your deployment server:');
        ui.info('   # Option A: Using rsync (recommended for large files)');
        ui.info(`   rsync -avz ${dir} user@server:/opt/deployments/releases/${R}/`);
        ui.info('   # Option B: Using scp');
        ui.info(`   scp -r ${dir} user@server:/opt/deployments/releases/`);
        ui.info('   # Option C: Using shared storage');
        ui.info(`   cp -r ${dir} /mnt/shared/deployments/releases/`);
        ui.info('');
        ui.info('3. On the deployment server, ensure the files are in:');
        ui.info(`   /opt/deployments/releases/${R}/`);
        ui.info(
          `   then: deploy-tool deploy --release ${R} --target /opt/ml-apps/my-project --releases-dir /opt/deployments/releases`,
        );
      }),
    );
}
