import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Project } from '../core/project.js';
import { parseReleaseManifestText } from '../manifest/release.js';
import { RELEASE_FILE } from './publish.js';

export interface ReleaseListing {
  release: string;
  createdAt: string;
  notes: string | null;
  components: string[];
  payloadPresent: boolean;
  file: string;
}

/** Releases recorded in deployment/releases/*.release.json (the git-tracked copies). */
export async function listReleases(project: Project): Promise<ReleaseListing[]> {
  let names: string[];
  try {
    names = await readdir(project.paths.releases);
  } catch {
    return [];
  }
  const out: ReleaseListing[] = [];
  for (const name of names.filter((n) => n.endsWith('.release.json')).sort()) {
    const file = join(project.paths.releases, name);
    const m = parseReleaseManifestText(await readFile(file, 'utf8'), file);
    const payloadPresent = await readFile(join(project.paths.releases, m.release, RELEASE_FILE)).then(
      () => true,
      () => false,
    );
    out.push({
      release: m.release,
      createdAt: m.createdAt,
      notes: m.notes,
      components: m.components.map((c) => `${c.type}:${c.version}`),
      payloadPresent,
      file,
    });
  }
  return out;
}
