import type { Command } from 'commander';
import { openProject } from '../../core/project.js';
import { listComponents } from '../../ops/components.js';
import { listReleases } from '../../ops/releases.js';
import { action } from '../context.js';
import { formatBytes } from '../ui.js';

export function registerLists(program: Command): void {
  const component = program.command('component').description('Inspect packed components');
  component
    .command('list')
    .description('List the components of this project (from deployment/manifests)')
    .action(
      action(async (_opts, ui, common) => {
        const project = await openProject(common);
        const items = await listComponents(project);
        ui.json({ ok: true, components: items });
        if (items.length === 0) {
          ui.info(
            'No components yet. Pack one: deploy-tool pack ./models --auto --type model --version 1.0.0',
          );
          return;
        }
        ui.info(['TYPE', 'VERSION', 'FILES', 'SIZE', 'ARCHIVE', 'CREATED'].join('\t'));
        for (const c of items) {
          ui.info(
            [
              c.type,
              c.version,
              c.files,
              formatBytes(c.totalSize),
              c.archivePresent
                ? `${c.archive} (${formatBytes(c.archiveSize)})`
                : `${c.archive} (missing in dist/)`,
              c.createdAt,
            ].join('\t'),
          );
        }
      }),
    );
  const release = program.command('release').description('Inspect published releases');
  release
    .command('list')
    .description('List the releases of this project (from deployment/releases/*.release.json)')
    .action(
      action(async (_opts, ui, common) => {
        const project = await openProject(common);
        const items = await listReleases(project);
        ui.json({ ok: true, releases: items });
        if (items.length === 0) {
          ui.info(
            'No releases yet. Publish one: deploy-tool publish --component model:1.0.0 --release-version 2024.01.20',
          );
          return;
        }
        ui.info(['RELEASE', 'COMPONENTS', 'CREATED', 'PAYLOAD'].join('\t'));
        for (const r of items) {
          ui.info(
            [r.release, r.components.join(','), r.createdAt, r.payloadPresent ? 'present' : 'not here'].join(
              '\t',
            ),
          );
        }
      }),
    );
}
