/**
 * The ReleaseSource of the filesystem method: release folders written by `publish`
 * (`RELEASES_DIR/R/release.json`, `R/TYPE/VERSION/TYPE-VERSION.manifest.json` and the archive
 * beside it), plus, for selective deploys of bare TYPE:VERSION, the project's own
 * `deployment/manifests` + `dist/`, and component-only publishes in `deployment/components/`.
 * Everything is read through filesystem Store drivers.
 */
import { readdir } from 'node:fs/promises';
import type { ArchiveSource } from '../archive/reader.js';
import { DeployToolError } from '../core/errors.js';
import { sha256Hex } from '../core/hash.js';
import { componentId, validateVersion, type ComponentRef } from '../core/validate.js';
import { parseComponentManifestText, type ComponentManifest } from '../manifest/component.js';
import { parseReleaseManifestText, type ReleaseComponent } from '../manifest/release.js';
import { createFilesystemStore } from '../store/drivers/filesystem.js';
import type { Store } from '../store/types.js';
import type { LoadedComponent, LoadedRelease, ReleaseSource } from './source.js';
import { openStoreArchive } from './store-archive.js';
import { storedArchive } from '../trust/encrypt.js';

export interface FilesystemSourceOptions {
  /** Folder holding published release folders (R/release.json). */
  releasesDir?: string | undefined;
  /** The project's deployment/components folder (component-only publishes). */
  componentsDir?: string | undefined;
  /** The project root (deployment/manifests + dist/). */
  projectRoot?: string | undefined;
}

interface Origin {
  store: Store;
  archiveKey: string;
}

const RELEASE_FILE = 'release.json';

function isRelease(ref: ReleaseComponent | ComponentRef): ref is ReleaseComponent {
  return 'manifestSha256' in ref;
}

export function createFilesystemReleaseSource(options: FilesystemSourceOptions): ReleaseSource {
  const releases = options.releasesDir ? createFilesystemStore({ root: options.releasesDir }) : undefined;
  const components = options.componentsDir
    ? createFilesystemStore({ root: options.componentsDir })
    : undefined;
  const project = options.projectRoot ? createFilesystemStore({ root: options.projectRoot }) : undefined;
  const origins = new WeakMap<LoadedComponent, Origin>();
  const places = [
    releases && `releases ${options.releasesDir}`,
    components && `components ${options.componentsDir}`,
    project && `project ${options.projectRoot}`,
  ].filter(Boolean);
  const description = `filesystem (${places.join('; ') || 'nowhere'})`;

  const parseComponent = (text: string, where: string, ref: ComponentRef): ComponentManifest => {
    const manifest = parseComponentManifestText(text, where);
    if (manifest.type !== ref.type || manifest.version !== ref.version) {
      throw new DeployToolError(
        'ERR_MANIFEST_INVALID',
        `${where} describes ${manifest.type}:${manifest.version}, not ${ref.type}:${ref.version}`,
        { hint: 'The published files were renamed or mixed up. Publish again.' },
      );
    }
    return manifest;
  };

  const tryLoad = async (
    store: Store,
    manifestKey: string,
    archiveKey: (m: ComponentManifest) => string,
    ref: ComponentRef,
  ): Promise<{ loaded: LoadedComponent; archivePresent: boolean } | undefined> => {
    const buf = await store.get(manifestKey);
    if (!buf) return undefined;
    const text = buf.toString('utf8');
    const manifest = parseComponent(text, `${store.location}/${manifestKey}`, ref);
    const signature = (await store.get(`${manifestKey}.minisig`))?.toString('utf8');
    const loaded: LoadedComponent = { manifest, text, signature };
    const key = archiveKey(manifest);
    origins.set(loaded, { store, archiveKey: key });
    return { loaded, archivePresent: (await store.head(key)) !== undefined };
  };

  return {
    description,
    async getRelease(release: string): Promise<LoadedRelease> {
      validateVersion(release, 'Release');
      if (!releases) {
        throw new DeployToolError('ERR_USAGE', `No releases folder to read release ${release} from`, {
          hint: 'Pass --releases-dir DIR (the folder you transferred the published releases to), or run inside the project.',
        });
      }
      const key = `${release}/${RELEASE_FILE}`;
      const buf = await releases.get(key);
      if (!buf) {
        throw new DeployToolError(
          'ERR_RELEASE_NOT_FOUND',
          `Release ${release} not found: no ${options.releasesDir}/${key}`,
          {
            hint: `Transfer the published folder deployment/releases/${release}/ to ${options.releasesDir}/${release}/ (see the publish output), or check --releases-dir.`,
          },
        );
      }
      const text = buf.toString('utf8');
      const manifest = parseReleaseManifestText(text, `${options.releasesDir}/${key}`);
      if (manifest.release !== release) {
        throw new DeployToolError(
          'ERR_MANIFEST_INVALID',
          `${options.releasesDir}/${key} describes release ${manifest.release}, not ${release}`,
          { hint: 'The release folder was renamed. Transfer it again under its own name.' },
        );
      }
      const signature = (await releases.get(`${key}.minisig`))?.toString('utf8');
      return { manifest, text, signature };
    },

    async getComponent(ref, release) {
      if (isRelease(ref)) {
        if (!releases || !release) throw new Error('internal: a release component needs its release');
        const key = `${release}/${ref.manifest}`;
        const buf = await releases.get(key);
        const where = `${options.releasesDir}/${key}`;
        if (!buf) {
          throw new DeployToolError(
            'ERR_COMPONENT_NOT_FOUND',
            `Component ${ref.type}:${ref.version} of release ${release} not found: no ${where}`,
            { hint: `The release folder is incomplete: transfer deployment/releases/${release}/ again.` },
          );
        }
        const text = buf.toString('utf8');
        if (sha256Hex(text) !== ref.manifestSha256) {
          throw new DeployToolError(
            'ERR_MANIFEST_INVALID',
            `${where} does not match release ${release} (its sha256 differs from manifestSha256 in release.json)`,
            {
              hint: 'The component manifest was altered after publishing. Transfer the release folder again.',
            },
          );
        }
        const manifest = parseComponent(text, where, ref);
        const stored = storedArchive(manifest); // the ciphertext when encrypted
        if (stored.sha256 !== ref.archiveSha256 || stored.size !== ref.archiveSize) {
          throw new DeployToolError(
            'ERR_MANIFEST_INVALID',
            `${where}: archive size/sha256 differ from release ${release}'s release.json`,
            { hint: 'The release folder is inconsistent. Publish and transfer it again.' },
          );
        }
        const loaded: LoadedComponent = { manifest, text };
        origins.set(loaded, { store: releases, archiveKey: `${release}/${ref.archive}` });
        return loaded;
      }
      // A bare TYPE:VERSION: the project, then component-only publishes, then every release folder.
      const name = `${componentId(ref)}.manifest.json`;
      let withoutArchive: LoadedComponent | undefined;
      const consider = (
        r: { loaded: LoadedComponent; archivePresent: boolean } | undefined,
      ): LoadedComponent | undefined => {
        if (!r) return undefined;
        if (r.archivePresent) return r.loaded;
        withoutArchive ??= r.loaded;
        return undefined;
      };
      if (project) {
        const hit = consider(
          await tryLoad(project, `deployment/manifests/${name}`, (m) => `dist/${storedArchive(m).name}`, ref),
        );
        if (hit) return hit;
      }
      if (components) {
        const dir = `${ref.type}/${ref.version}`;
        const hit = consider(
          await tryLoad(components, `${dir}/${name}`, (m) => `${dir}/${storedArchive(m).name}`, ref),
        );
        if (hit) return hit;
      }
      if (releases && options.releasesDir) {
        let names: string[];
        try {
          names = (await readdir(options.releasesDir))
            .filter((n) => !n.startsWith('.'))
            .sort()
            .reverse();
        } catch {
          names = [];
        }
        for (const r of names) {
          const dir = `${r}/${ref.type}/${ref.version}`;
          let found;
          try {
            found = await tryLoad(releases, `${dir}/${name}`, (m) => `${dir}/${storedArchive(m).name}`, ref);
          } catch {
            continue; // not a release folder
          }
          const hit = consider(found);
          if (hit) return hit;
        }
      }
      if (withoutArchive) {
        throw new DeployToolError(
          'ERR_ARCHIVE_MISSING',
          `Component ${ref.type}:${ref.version} has a manifest but its archive is not here`,
          {
            hint: `Pack it again in the project (dist/ is not in git), or transfer a published folder holding ${withoutArchive.manifest.archive.name}.`,
          },
        );
      }
      throw new DeployToolError(
        'ERR_COMPONENT_NOT_FOUND',
        `Component not found: ${ref.type}:${ref.version} (looked in ${places.join('; ') || 'nothing: no project and no --releases-dir'})`,
        {
          hint: 'Check the manifest exists ("ls deployment/manifests/"), pull the latest changes, or pass --releases-dir with a folder that holds it.',
        },
      );
    },

    async openArchive(component, ref, release): Promise<ArchiveSource> {
      if (ref && release && releases) return openStoreArchive(releases, `${release}/${ref.archive}`);
      const origin = origins.get(component);
      if (!origin) throw new Error('internal: component was not loaded by this source');
      return openStoreArchive(origin.store, origin.archiveKey);
    },
  };
}
