import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CONFIG_FILE, loadConfig, type ProjectConfig } from './config.js';
import { DeployToolError } from './errors.js';

export interface Project {
  root: string;
  config: ProjectConfig;
  warnings: string[];
  paths: ProjectPaths;
}

export interface ProjectPaths {
  configFile: string;
  deployment: string;
  manifests: string;
  releases: string;
  packageConfigs: string;
  dist: string;
  src: string;
}

export function projectPaths(root: string): ProjectPaths {
  return {
    configFile: join(root, CONFIG_FILE),
    deployment: join(root, 'deployment'),
    manifests: join(root, 'deployment', 'manifests'),
    releases: join(root, 'deployment', 'releases'),
    packageConfigs: join(root, 'deployment', 'package-configs'),
    dist: join(root, 'dist'),
    src: join(root, 'src'),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Walks up from `cwd` to the folder holding `.deploy-tool.yaml`. */
export async function findProjectRoot(cwd: string): Promise<string | undefined> {
  let dir = resolve(cwd);
  for (;;) {
    if (await exists(join(dir, CONFIG_FILE))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export interface OpenProjectOptions {
  cwd: string;
  projectRoot?: string | undefined;
}

export async function openProject(options: OpenProjectOptions): Promise<Project> {
  let root: string | undefined;
  if (options.projectRoot) {
    root = resolve(options.cwd, options.projectRoot);
    if (!(await exists(join(root, CONFIG_FILE)))) {
      throw new DeployToolError(
        'ERR_PROJECT_NOT_FOUND',
        `Project root not found: ${root} has no ${CONFIG_FILE}`,
        {
          hint: 'Run "deploy-tool init" there first, or pass the folder that holds .deploy-tool.yaml to --project-root.',
        },
      );
    }
  } else {
    root = await findProjectRoot(options.cwd);
    if (!root) {
      throw new DeployToolError(
        'ERR_PROJECT_NOT_FOUND',
        `Project root not found: no ${CONFIG_FILE} in ${resolve(options.cwd)} or any parent folder`,
        {
          hint: 'Run "deploy-tool init --name NAME --type TYPE" to create a project, or pass --project-root DIR.',
        },
      );
    }
  }
  const { config, warnings } = await loadConfig(join(root, CONFIG_FILE));
  return { root, config, warnings, paths: projectPaths(root) };
}

/** Like openProject, but returns undefined outside a project instead of failing. */
export async function tryOpenProject(options: OpenProjectOptions): Promise<Project | undefined> {
  if (!options.projectRoot && !(await findProjectRoot(options.cwd))) return undefined;
  return openProject(options);
}
