/** Where a deploy goes: --target (a path, or a name from .deploy-tool.yaml), else the configured default. */
import { isAbsolute, join, resolve } from 'node:path';
import { DeployToolError } from '../core/errors.js';
import type { Project } from '../core/project.js';

const BARE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Rules (docs/formats.md, "Deploy targets"):
 * - `--target NAME` where NAME is a key of `deploy.targets` in .deploy-tool.yaml: that folder
 *   (relative to the project root);
 * - any other `--target` value is a folder path, relative to the current folder;
 * - no --target: `deploy.target` of .deploy-tool.yaml (a name of deploy.targets, or a path relative
 *   to the project root), else `deployment/targets/default` inside the project.
 */
export function resolveTarget(value: string | undefined, cwd: string, project: Project | undefined): string {
  const deploy = project?.config.deploy;
  const fromConfig = (v: string): string => {
    if (v.startsWith('~/') && process.env.HOME) return join(process.env.HOME, v.slice(2));
    return isAbsolute(v) ? v : resolve(project?.root ?? cwd, v);
  };
  const byName = (name: string): string | undefined => {
    const mapped = deploy?.targets?.[name];
    if (mapped) return fromConfig(mapped);
    return undefined;
  };
  if (value !== undefined) {
    if (value === '')
      throw new DeployToolError('ERR_USAGE', '--target is empty', {
        hint: 'Pass a folder: --target /opt/ml-apps/prod',
      });
    if (value.startsWith('~/') && process.env.HOME) return join(process.env.HOME, value.slice(2));
    return (BARE_NAME.test(value) ? byName(value) : undefined) ?? resolve(cwd, value);
  }
  if (deploy?.target) {
    return BARE_NAME.test(deploy.target)
      ? (byName(deploy.target) ?? fromConfig(deploy.target))
      : fromConfig(deploy.target);
  }
  if (project) return join(project.root, 'deployment', 'targets', 'default');
  throw new DeployToolError('ERR_USAGE', 'No deploy target: pass --target DIR', {
    hint: 'Example: deploy-tool deploy --release 2024.01.20 --target /opt/ml-apps/my-project (or set deploy.target in .deploy-tool.yaml).',
  });
}
