import type { Command } from 'commander';
import { relative } from 'node:path';
import { initProject } from '../../ops/init.js';
import { action } from '../context.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('Create a project: .deploy-tool.yaml, deployment/ folders, .gitignore and a git repository')
    .requiredOption('--name <name>', 'project name')
    .requiredOption('--type <type>', 'project type (for example algorithm, service)')
    .option('--no-git', 'do not initialise a git repository')
    .option('--force', 'initialise even if a project exists here (existing files are kept)')
    .action(
      action<{ name: string; type: string; git: boolean; force?: boolean; projectRoot?: string }>(
        async (opts, ui, common) => {
          const r = await initProject({
            cwd: common.cwd,
            dir: opts.projectRoot,
            name: opts.name,
            type: opts.type,
            git: opts.git,
            force: opts.force ?? false,
          });
          ui.json({ ok: true, ...r });
          const rel = (p: string): string => relative(r.root, p) || '.';
          ui.success(`Initialised deploy-tool project "${opts.name}" in ${r.root}`);
          for (const p of r.created) ui.info(`  created ${rel(p)}`);
          for (const p of r.kept) ui.info(`  kept    ${rel(p)} (already there)`);
          if (r.gitInitialized) ui.info('  initialised a git repository');
          ui.info('');
          ui.info('Next: package a component, for example');
          ui.info('  deploy-tool pack ./models --auto --type model --version 1.0.0');
        },
      ),
    );
}
