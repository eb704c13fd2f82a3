import { access, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployToolError, errnoCode } from '../core/errors.js';
import type { Project } from '../core/project.js';
import { componentId, type ComponentRef } from '../core/validate.js';
import { parseComponentManifestText, type ComponentManifest } from '../manifest/component.js';

export function manifestFileName(ref: ComponentRef): string {
  return `${componentId(ref)}.manifest.json`;
}

export function componentManifestPath(project: Project, ref: ComponentRef): string {
  return join(project.paths.manifests, manifestFileName(ref));
}

export async function readManifestFile(
  path: string,
  ref?: ComponentRef,
): Promise<{ manifest: ComponentManifest; text: string } | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  const manifest = parseComponentManifestText(text, path);
  if (ref && (manifest.type !== ref.type || manifest.version !== ref.version)) {
    throw new DeployToolError(
      'ERR_MANIFEST_INVALID',
      `${path} describes ${manifest.type}:${manifest.version}, not ${ref.type}:${ref.version}`,
      {
        hint: 'The manifest file was renamed or edited; pack the component again.',
      },
    );
  }
  return { manifest, text };
}

export async function loadComponentManifest(
  project: Project,
  ref: ComponentRef,
): Promise<{ manifest: ComponentManifest; text: string; path: string }> {
  const path = componentManifestPath(project, ref);
  const found = await readManifestFile(path, ref);
  if (!found) {
    throw new DeployToolError(
      'ERR_COMPONENT_NOT_FOUND',
      `Component not found: ${ref.type}:${ref.version} (no ${path})`,
      {
        hint: `Pack it first ("deploy-tool pack PATH --type ${ref.type} --version ${ref.version}"), or pull the latest manifests from git.`,
      },
    );
  }
  return { ...found, path };
}

export interface ComponentListing {
  type: string;
  version: string;
  archive: string;
  compression: string;
  files: number;
  totalSize: number;
  archiveSize: number;
  createdAt: string;
  manifestPath: string;
  archivePresent: boolean;
}

export async function listComponents(project: Project): Promise<ComponentListing[]> {
  let names: string[];
  try {
    names = await readdir(project.paths.manifests);
  } catch {
    return [];
  }
  const out: ComponentListing[] = [];
  for (const name of names.filter((n) => n.endsWith('.manifest.json')).sort()) {
    const path = join(project.paths.manifests, name);
    const found = await readManifestFile(path);
    if (!found) continue;
    const m = found.manifest;
    const archivePresent = await access(join(project.paths.dist, m.archive.name)).then(
      () => true,
      () => false,
    );
    out.push({
      type: m.type,
      version: m.version,
      archive: m.archive.name,
      compression: m.archive.compression,
      files: m.summary.files,
      totalSize: m.summary.totalSize,
      archiveSize: m.archive.size,
      createdAt: m.createdAt,
      manifestPath: path,
      archivePresent,
    });
  }
  return out;
}

/**
 * Manifests of other versions of `ref.type` in deployment/manifests/, the most recently written
 * first, at most `limit` (files that cannot be read or parsed are skipped): what publishing to a
 * bucket compares a new version with, so that the chunks it shares with them are not read again
 * (store/bucket.ts, sharedChunks).
 */
export async function earlierManifests(
  project: Project,
  ref: ComponentRef,
  limit = 4,
): Promise<ComponentManifest[]> {
  const self = manifestFileName(ref);
  let names: string[];
  try {
    names = (await readdir(project.paths.manifests)).filter(
      (n) => n.startsWith(`${ref.type}-`) && n.endsWith('.manifest.json') && n !== self,
    );
  } catch {
    return [];
  }
  const dated = await Promise.all(
    names.map(async (n) => {
      const path = join(project.paths.manifests, n);
      return { path, t: (await stat(path).catch(() => undefined))?.mtimeMs ?? -1 };
    }),
  );
  const out: ComponentManifest[] = [];
  for (const { path } of dated.filter((d) => d.t >= 0).sort((a, b) => b.t - a.t)) {
    if (out.length >= limit) break;
    const found = await readManifestFile(path).catch(() => undefined);
    if (found && found.manifest.type === ref.type && found.manifest.version !== ref.version)
      out.push(found.manifest);
  }
  return out;
}
