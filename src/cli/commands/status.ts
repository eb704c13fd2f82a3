import type { Command } from 'commander';
import { status } from '../../ops/status.js';
import { describeHolder } from '../../deploy/lock.js';
import { action } from '../context.js';
import { formatBytes } from '../ui.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'Show the current release of a target, its components, history, kept releases, disk use and lock',
    )
    .option('--target <dir>', 'target folder, or a name from deploy.targets in .deploy-tool.yaml')
    .action(
      action<{ target?: string }>(async (opts, ui, common) => {
        const r = await status({ ...common, target: opts.target });
        ui.json({ ok: true, ...r });
        ui.heading(`Target: ${r.target}`);
        if (!r.current) ui.info('Current release: none');
        else {
          ui.info(`Current release: ${r.current}`);
          ui.info(`Deployed: ${r.deployedAt ?? 'unknown'} by ${r.deployedBy ?? 'unknown'}`);
          ui.info('Components:');
          for (const c of r.components)
            ui.info(
              `  ${c.type.padEnd(16)} ${c.version.padEnd(14)} ${c.link} -> ${c.resolvedPath ?? '(broken)'}`,
            );
        }
        if (r.lastAction && r.lastAction.status !== 'success') {
          ui.info(
            `Last action: ${r.lastAction.action} ${r.lastAction.release}: ${r.lastAction.status}${r.lastAction.error ? ` (${r.lastAction.error})` : ''}`,
          );
        }
        ui.info(`Rollback target: ${r.rollbackTarget ?? 'none'}`);
        ui.info(`Kept releases (${r.releases.length}):`);
        for (const x of r.releases) {
          ui.info(
            `  ${x.current ? '*' : ' '} ${x.release.padEnd(24)} ${x.status.padEnd(11)} ${x.activatedAt ?? x.createdAt}  ${x.components.join(', ')}`,
          );
        }
        ui.info(
          `Disk use: ${formatBytes(r.diskUsage.bytes)} (${r.diskUsage.files} files; shared files counted once)`,
        );
        ui.info(
          `Lock: ${r.lock ? `${r.lock.stale ? 'STALE (holder is gone) ' : ''}held by ${describeHolder(r.lock)}` : 'free'}`,
        );
      }),
    );
}
