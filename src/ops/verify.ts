/** `verify`: re-hashes the deployed files of a release and reports modified, missing and extra files. */
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployToolError } from '../core/errors.js';
import { tryOpenProject } from '../core/project.js';
import { validateVersion } from '../core/validate.js';
import { verifyRelease, type FileProblem } from '../deploy/engine.js';
import { readCurrent, readTargetRelease, targetPaths } from '../deploy/layout.js';
import { resolveTarget } from '../deploy/target.js';
import type { TargetCommandOptions } from './deploy.js';

export interface VerifyOptions extends TargetCommandOptions {
  release?: string | undefined;
}

export interface VerifyResult {
  ok: boolean;
  target: string;
  release: string;
  current: boolean;
  files: number;
  bytes: number;
  problems: FileProblem[];
  seconds: number;
}

export async function verify(o: VerifyOptions): Promise<VerifyResult> {
  const t0 = performance.now();
  const project = await tryOpenProject(o);
  const root = resolveTarget(o.target, o.cwd, project);
  const t = targetPaths(root);
  const current = (await readCurrent(t)) ?? null;
  const release = o.release ? validateVersion(o.release, 'Release') : current;
  if (!release) {
    throw new DeployToolError('ERR_NOT_DEPLOYED', `Nothing is deployed on ${root} (no current release)`, {
      hint: 'Deploy a release first, or pass --release R to verify a kept release.',
    });
  }
  const r = await verifyRelease(t, release, o.onProgress);
  if (release === current) {
    // The per-type links must lead into the current release.
    const rec = await readTargetRelease(t, release);
    for (const c of rec?.components ?? []) {
      const link = await readlink(join(root, c.type)).catch(() => undefined);
      if (link !== `current/.links/${c.type}`) {
        r.problems.push({
          release,
          component: `${c.type}:${c.version}`,
          path: c.type,
          problem: link === undefined ? 'missing' : 'modified',
          detail: `${join(root, c.type)} should be a link to current/.links/${c.type}`,
        });
      }
    }
  }
  return {
    ok: r.problems.length === 0,
    target: root,
    release,
    current: release === current,
    files: r.files,
    bytes: r.bytes,
    problems: r.problems,
    seconds: (performance.now() - t0) / 1000,
  };
}
