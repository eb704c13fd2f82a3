import { access, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CONFIG_FILE, renderInitialConfig } from '../core/config.js';
import { DeployToolError } from '../core/errors.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { gitInit } from '../core/git.js';
import { projectPaths } from '../core/project.js';
import { validateProjectName, validateType } from '../core/validate.js';

export interface InitOptions {
  cwd: string;
  /** Folder to initialise (default: cwd, or --project-root). */
  dir?: string | undefined;
  name: string;
  type: string;
  git?: boolean;
  force?: boolean;
}

export interface InitResult {
  root: string;
  created: string[];
  kept: string[];
  gitInitialized: boolean;
}

const GITIGNORE = `# deploy-tool defaults
# Packaged archives (large; transfer them, do not commit them)
dist/
# Published release payload folders (the *.release.json files beside them ARE committed)
deployment/releases/*/
deployment/components/
# Python and editor noise
__pycache__/
*.pyc
.DS_Store
`;

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

export async function initProject(options: InitOptions): Promise<InitResult> {
  const root = resolve(options.cwd, options.dir ?? '.');
  validateProjectName(options.name);
  validateType(options.type);
  const configPath = join(root, CONFIG_FILE);
  if ((await exists(configPath)) && !options.force) {
    throw new DeployToolError('ERR_PROJECT_EXISTS', `A deploy-tool project already exists in ${root}`, {
      hint: 'Use --force to re-initialise it (your existing files are kept), or run init in another folder.',
    });
  }
  const paths = projectPaths(root);
  const created: string[] = [];
  const kept: string[] = [];
  await mkdir(root, { recursive: true });
  for (const dir of [
    paths.deployment,
    paths.manifests,
    paths.releases,
    paths.packageConfigs,
    paths.src,
    paths.dist,
  ]) {
    if (await exists(dir)) kept.push(dir);
    else {
      await mkdir(dir, { recursive: true });
      created.push(dir);
    }
  }
  // Keep empty, git-tracked folders visible in a fresh clone.
  for (const dir of [paths.manifests, paths.packageConfigs]) {
    const keep = join(dir, '.gitkeep');
    if (!(await exists(keep))) await writeFile(keep, '');
  }
  if (await exists(configPath)) {
    // --force: the user's configuration is theirs; never overwrite it.
    kept.push(configPath);
  } else {
    await writeFileAtomic(configPath, renderInitialConfig(options.name, options.type));
    created.push(configPath);
  }
  const gitignore = join(root, '.gitignore');
  if (await exists(gitignore)) kept.push(gitignore);
  else {
    await writeFileAtomic(gitignore, GITIGNORE);
    created.push(gitignore);
  }
  const gitInitialized = options.git === false ? false : await gitInit(root);
  return { root, created, kept, gitInitialized };
}
