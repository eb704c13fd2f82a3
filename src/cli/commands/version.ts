import type { Command } from 'commander';
import { listVersions, rollback, switchVersion, type SwitchResult } from '../../ops/version.js';
import { action } from '../context.js';
import type { Ui } from '../ui.js';
import { commandLine, hookPrinter } from './deploy.js';

interface TargetFlags {
  target?: string;
  wait?: boolean;
  healthCheck?: string;
}

const TARGET_HELP = 'target folder, or a name from deploy.targets in .deploy-tool.yaml';

function renderSwitch(ui: Ui, r: SwitchResult): void {
  ui.json({ ok: true, ...r });
  if (r.status === 'unchanged') {
    ui.success(`${r.release} is already current on ${r.target}; nothing changed`);
    return;
  }
  ui.success(
    `${r.action === 'rollback' ? 'Rolled back' : 'Switched'} ${r.target} to ${r.release} (was ${r.previous ?? 'none'}; switch ${r.switchMs.toFixed(1)} ms)`,
  );
  if (r.healthCheck) ui.success(`Health check passed (${r.healthCheck.ms} ms)`);
}

export function registerVersion(program: Command): void {
  const version = program
    .command('version')
    .description('List the releases kept on a target, switch between them, roll back');
  version
    .command('list')
    .description('List the releases kept on a target, the current one marked')
    .option('--target <dir>', TARGET_HELP)
    .action(
      action<TargetFlags>(async (opts, ui, common) => {
        const r = await listVersions({ ...common, target: opts.target });
        ui.json({ ok: true, ...r });
        if (r.releases.length === 0) {
          ui.info(`Nothing deployed on ${r.target} yet.`);
          return;
        }
        ui.info(['', 'RELEASE', 'STATUS', 'DEPLOYED', 'COMPONENTS'].join('\t'));
        for (const x of r.releases) {
          ui.info(
            [
              x.current ? '*' : x.rollbackTarget ? 'r' : '',
              x.release,
              x.status,
              x.activatedAt ?? x.createdAt,
              x.components.join(','),
            ].join('\t'),
          );
        }
        ui.info('');
        ui.info(`* current${r.rollbackTarget ? `, r: rollback target (${r.rollbackTarget})` : ''}`);
      }),
    );
  version
    .command('switch')
    .description('Make a kept release current (atomic; runs the hooks and the health check)')
    .argument('<release>', 'release to switch to')
    .option('--target <dir>', TARGET_HELP)
    .option('--health-check <cmd>', 'command run after the switch; on failure switch back')
    .option('--wait', 'wait for the target lock instead of failing')
    .action(
      action<TargetFlags>(async (opts, ui, common, args) => {
        const r = await switchVersion({
          ...common,
          release: args[0] ?? '',
          target: opts.target,
          wait: opts.wait ?? false,
          healthCheck: opts.healthCheck,
          onHookOutput: hookPrinter(ui),
          command: commandLine(),
        });
        renderSwitch(ui, r);
      }),
    );
  version
    .command('rollback')
    .description('Return to the previous successful release (atomic; runs post_rollback)')
    .option('--target <dir>', TARGET_HELP)
    .option('--health-check <cmd>', 'command run after the switch; on failure switch back')
    .option('--wait', 'wait for the target lock instead of failing')
    .action(
      action<TargetFlags>(async (opts, ui, common) => {
        const r = await rollback({
          ...common,
          target: opts.target,
          wait: opts.wait ?? false,
          healthCheck: opts.healthCheck,
          onHookOutput: hookPrinter(ui),
          command: commandLine(),
        });
        renderSwitch(ui, r);
      }),
    );
}
