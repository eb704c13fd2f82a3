/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents from the CLI */
/**
 * A project with published releases, built once per test file with the real CLI:
 *   2024.01.19: model:1.0.0, config:1.0.0, runtime:3.10.0
 *   2024.01.20: model:1.0.0, config:1.1.0, runtime:3.10.0   (only the config changed)
 *   2024.02.01: model:2.0.0, config:1.1.0                     (new model, no runtime)
 * plus config:1.2.0 packed but only published as a component (deployment/components/).
 */
import { cp, lstat, readFile, readdir, readlink, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { makeProject, noise, runCli, runJson, writeTree } from '../helpers/cli.js';

export const MODEL1 = noise(2 * 1024 * 1024 + 77, 11);
export const MODEL2 = noise(2 * 1024 * 1024 + 5, 12);

async function ok(args: string[], cwd: string): Promise<string> {
  const r = await runCli(args, { cwd });
  if (r.code !== 0) throw new Error(`${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export interface Fixture {
  project: string;
  releases: string;
}

export async function makeDeployFixture(): Promise<Fixture> {
  const project = await makeProject({ 'models/weights.bin': MODEL1, 'models/sub/notes.txt': 'v1 notes\n' });
  await ok(['pack', './models', '--type', 'model', '--version', '1.0.0', '--compression', 'zstd'], project);
  await ok(['pack', './configs', '--type', 'config', '--version', '1.0.0'], project);
  await ok(['pack', './runtime', '--type', 'runtime', '--version', '3.10.0'], project);
  const pub = (release: string, comps: string[]): Promise<string> =>
    ok(['publish', ...comps.flatMap((c) => ['--component', c]), '--release-version', release], project);
  await pub('2024.01.19', ['model:1.0.0', 'config:1.0.0', 'runtime:3.10.0']);
  await writeTree(project, { 'configs/settings.yaml': 'threshold: 0.7\n' });
  await ok(['pack', './configs', '--type', 'config', '--version', '1.1.0'], project);
  await pub('2024.01.20', ['model:1.0.0', 'config:1.1.0', 'runtime:3.10.0']);
  await writeTree(project, { 'models/weights.bin': MODEL2, 'models/sub/notes.txt': 'v2 notes\n' });
  await ok(['pack', './models', '--type', 'model', '--version', '2.0.0'], project);
  await pub('2024.02.01', ['model:2.0.0', 'config:1.1.0']);
  await writeTree(project, { 'configs/settings.yaml': 'threshold: 0.9\n' });
  await ok(['pack', './configs', '--type', 'config', '--version', '1.2.0'], project);
  await ok(['publish', '--component', 'config:1.2.0'], project);
  return { project, releases: join(project, 'deployment', 'releases') };
}

/** Copies a published release folder the way the seed's "Option C" does (cp -r). */
export async function transfer(f: Fixture, release: string, to: string): Promise<void> {
  await cp(join(f.releases, release), join(to, release), { recursive: true });
}

export const CONFIG_TEXT: Record<string, string> = {
  '1.0.0': 'threshold: 0.5\n',
  '1.1.0': 'threshold: 0.7\n',
  '1.2.0': 'threshold: 0.9\n',
};

/** What a user checks: the paths the seed shows resolve to the files of one complete release. */
export async function expectRelease(
  target: string,
  release: string,
  comps: Record<string, string>,
): Promise<void> {
  expect(await readlink(join(target, 'current'))).toBe(`releases/${release}`);
  for (const [type, version] of Object.entries(comps)) {
    expect(await realpath(join(target, type))).toBe(
      await realpath(join(target, 'releases', release, type, version)),
    );
  }
  if (comps.model) {
    const w = await readFile(join(target, 'model', 'weights.bin'));
    expect(w.equals(comps.model === '1.0.0' ? MODEL1 : MODEL2)).toBe(true);
  }
  if (comps.config) {
    expect(await readFile(join(target, 'config', 'settings.yaml'), 'utf8')).toBe(CONFIG_TEXT[comps.config]);
  }
  const v = await runJson<{ ok: boolean; release: string }>(['verify', '--target', target], { cwd: target });
  expect(v.code, JSON.stringify(v.json)).toBe(0);
  expect(v.json.release).toBe(release);
}

export async function readState(target: string): Promise<any> {
  return JSON.parse(await readFile(join(target, '.deploy-tool', 'state.json'), 'utf8'));
}

export async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** Every path under a folder (for "nothing else was written" checks). */
export async function listTree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const n of await readdir(join(dir, rel)).catch(() => [] as string[])) {
    const r = rel ? `${rel}/${n}` : n;
    out.push(r);
    const st = await lstat(join(dir, r));
    if (st.isDirectory()) out.push(...(await listTree(dir, r)));
  }
  return out.sort();
}

export { writeFile };
