import { join } from 'node:path';
import { verifyArchiveDigest, openLocalArchive } from '../archive/reader.js';
import { DeployToolError } from '../core/errors.js';
import type { CommonOptions } from '../core/events.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { gitInfo } from '../core/git.js';
import { openProject, type Project } from '../core/project.js';
import { hashFile, sha256Hex } from '../core/hash.js';
import { toolName } from '../core/version.js';
import { parseComponentRef, validateVersion, type ComponentRef } from '../core/validate.js';
import type { ComponentManifest } from '../manifest/component.js';
import { serializeManifest } from '../manifest/component.js';
import {
  RELEASE_SCHEMA_VERSION,
  parseReleaseManifestText,
  type ReleaseComponent,
  type ReleaseManifest,
} from '../manifest/release.js';
import { createFilesystemStore } from '../store/drivers/filesystem.js';
import {
  componentManifestPath,
  earlierManifests,
  loadComponentManifest,
  manifestFileName,
} from './components.js';
import { storedArchive, storedDigestView } from '../trust/encrypt.js';
import { loadSecretKey, putSignature, readSignatureFile } from '../trust/sign.js';
import { keyIdHex } from '../trust/keys.js';
import { resolve } from 'node:path';
import { effectiveMethod, registryOf, wantsStore } from '../store/resolve.js';
import { publishToStore, type StorePublishInfo } from '../store/publish.js';
import { componentRoutes, publishRoutedComponents, type RoutedComponent } from '../store/routes.js';
import { resolveRegistry } from '../registry/credentials.js';
import type { SecretKey } from '../trust/keys.js';
import { publishToRegistry } from '../registry/publish.js';

export interface PublishOptions extends CommonOptions {
  components: string[];
  releaseVersion?: string | undefined;
  method?: string | undefined;
  notes?: string | undefined;
  /** Private key to sign the release manifest and the component manifests with (src/trust). */
  sign?: string | undefined;
  /** Bucket stores (src/store/publish.ts): --store NAME, or --method s3|bos with --bucket etc. */
  store?: string | undefined;
  bucket?: string | undefined;
  endpoint?: string | undefined;
  region?: string | undefined;
  prefix?: string | undefined;
  /** Pointer moved to a new release in a bucket store (default "latest"; false: none). Registry: only when given. */
  pointer?: string | false | undefined;
  /** Registry (--method registry): the server URL (default: the last one logged in to) and namespace. */
  registry?: string | undefined;
  namespace?: string | undefined;
}

export interface PublishedComponent {
  type: string;
  version: string;
  archive: string;
  archiveSize: number;
  archiveSha256: string;
  placedBy: 'link' | 'copy' | 'existing';
}

export interface PublishResult {
  status: 'published' | 'unchanged';
  method: 'filesystem' | 's3' | 'bos' | 'registry';
  release: string | undefined;
  /** Folder that holds everything the server needs. */
  publishedDir: string;
  releaseManifestPath: string | undefined;
  gitReleaseFile: string | undefined;
  components: PublishedComponent[];
  totalBytes: number;
  /** Key id and signature files written by --sign. */
  signed?: { keyId: string; files: string[] } | null;
  /** Bucket stores and registries: what was uploaded where (bytes sent and reused, pointer moved). */
  store?: StorePublishInfo | null;
  /** Mixed stores (deploy.components): release components published to (or found in) their own stores. */
  routed?: RoutedComponent[];
}

export const RELEASE_FILE = 'release.json';

export function releaseComponentPaths(
  ref: ComponentRef,
  archiveName: string,
): { dir: string; manifest: string; archive: string } {
  const dir = `${ref.type}/${ref.version}`;
  return { dir, manifest: `${dir}/${manifestFileName(ref)}`, archive: `${dir}/${archiveName}` };
}

interface Checked {
  ref: ComponentRef;
  manifest: ComponentManifest;
  text: string;
  archivePath: string;
}

/**
 * Loads and checks every component (manifest valid, archive present with the right size and sha256).
 * `digest: false` checks the size only: for callers that check the sha256 in their own single pass
 * over the archive before they write anything naming it (bucket stores: store/bucket.ts uploadArchive).
 */
export async function checkComponents(
  project: Project,
  refs: ComponentRef[],
  options: CommonOptions,
  check: { digest?: boolean } = {},
): Promise<Checked[]> {
  const seen = new Set<string>();
  const out: Checked[] = [];
  for (const ref of refs) {
    if (seen.has(ref.type)) {
      throw new DeployToolError('ERR_USAGE', `Component type "${ref.type}" is given twice`, {
        hint: 'A release holds one version of each component type.',
      });
    }
    seen.add(ref.type);
    const { manifest, text } = await loadComponentManifest(project, ref);
    const archivePath = join(project.paths.dist, storedArchive(manifest).name);
    const source = await openLocalArchive(archivePath).catch((err: unknown) => {
      if (err instanceof DeployToolError && err.code === 'ERR_ARCHIVE_MISSING') {
        throw new DeployToolError(
          'ERR_ARCHIVE_MISSING',
          `Archive of ${ref.type}:${ref.version} not found: ${archivePath}`,
          {
            hint: `dist/ is not in git: pack it again on this machine ("deploy-tool pack PATH --type ${ref.type} --version ${ref.version}").`,
          },
        );
      }
      throw err;
    });
    try {
      if (check.digest === false) {
        const size = await source.size();
        const want = storedArchive(manifest).size;
        if (size !== want) {
          throw new DeployToolError(
            'ERR_ARCHIVE_CORRUPT',
            `${archivePath}: archive has ${size} bytes, the manifest says ${want}`,
          );
        }
      } else {
        options.onLog?.(`verifying ${archivePath}`);
        await verifyArchiveDigest(source, storedDigestView(manifest));
      }
    } catch (err) {
      if (err instanceof DeployToolError && err.code === 'ERR_ARCHIVE_CORRUPT') {
        throw new DeployToolError('ERR_ARCHIVE_CORRUPT', `${ref.type}:${ref.version}: ${err.message}`, {
          hint: `The archive in dist/ no longer matches its manifest; nothing was published. Pack it again ("deploy-tool pack PATH --type ${ref.type} --version ${ref.version} --force").`,
          cause: err,
        });
      }
      throw err;
    } finally {
      await source.close();
    }
    out.push({ ref, manifest, text, archivePath });
  }
  return out;
}

export async function publish(options: PublishOptions): Promise<PublishResult> {
  const method = effectiveMethod(options) ?? 'filesystem';
  if (method !== 'filesystem' && !wantsStore(options)) {
    throw new DeployToolError('ERR_USAGE', `Publishing method "${method}" is not available`, {
      hint: 'Use --method filesystem, s3 or bos (with --bucket), registry (with --registry URL), or --store NAME.',
    });
  }
  if (options.components.length === 0) {
    throw new DeployToolError('ERR_USAGE', 'publish needs at least one --component TYPE:VERSION', {
      hint: 'Example: deploy-tool publish --component model:1.0.0 --component config:1.0.0 --release-version 2024.01.20',
    });
  }
  const project = await openProject(options);
  for (const w of project.warnings) options.onWarning?.(w);
  const refs = options.components.map(parseComponentRef);
  const release =
    options.releaseVersion === undefined
      ? undefined
      : validateVersion(options.releaseVersion, 'Release version');
  const reg = wantsStore(options)
    ? registryOf(options, { config: project.config, baseDir: project.root })
    : undefined;
  if (reg) return publishRegistry(options, project, reg, release);
  const signer = options.sign ? await loadSecretKey(resolve(options.cwd, options.sign)) : undefined;
  const signatures: string[] = [];
  // Bucket stores check each archive's sha256 in the pass that hashes its chunks (uploadArchive),
  // before its recipe and manifest are written; components routed elsewhere are checked here.
  const routes = release
    ? componentRoutes(project.config, wantsStore(options) ? options.store : undefined)
    : new Map<string, string>();
  const checked = await checkComponents(project, refs, options, {
    digest: !(wantsStore(options) && routes.size === 0),
  });

  const storeRoot = release
    ? join(project.paths.releases, release)
    : join(project.paths.deployment, 'components');
  const store = createFilesystemStore({ root: storeRoot });
  const entries: ReleaseComponent[] = checked.map((c) => {
    const p = releaseComponentPaths(c.ref, storedArchive(c.manifest).name);
    return {
      type: c.ref.type,
      version: c.ref.version,
      manifest: p.manifest,
      manifestSha256: sha256Hex(c.text),
      archive: p.archive,
      archiveSha256: storedArchive(c.manifest).sha256,
      archiveSize: storedArchive(c.manifest).size,
      compression: c.manifest.archive.compression,
    };
  });
  // Mixed stores: with a release, components routed by deploy.components go to their own store.
  const routed = routes.size
    ? await publishRoutedComponents(
        checked.flatMap((c) => {
          const entry = entries.find((e) => e.type === c.ref.type);
          return entry ? [{ ...c, entry, earlier: () => earlierManifests(project, c.ref) }] : [];
        }),
        routes,
        { config: project.config, baseDir: project.root },
        options,
      )
    : [];
  const here = checked.filter((c) => !routes.has(c.ref.type));
  if (wantsStore(options)) {
    const r = await publishRemote(options, project, here, entries, release, signer);
    return routed.length ? { ...r, routed } : r;
  }

  let existingRelease: ReleaseManifest | undefined;
  if (release) {
    const existing = await store.get(RELEASE_FILE);
    if (existing) {
      existingRelease = parseReleaseManifestText(existing.toString('utf8'), join(storeRoot, RELEASE_FILE));
      const key = (cs: ReleaseComponent[]): string =>
        cs
          .map((c) => `${c.type}:${c.version}:${c.archiveSha256}:${c.manifestSha256}`)
          .sort()
          .join('|');
      if (key(existingRelease.components) !== key(entries)) {
        throw new DeployToolError(
          'ERR_RELEASE_EXISTS',
          `Release ${release} is already published with different components`,
          {
            hint: 'Published releases are immutable: choose a new --release-version.',
            details: { existing: existingRelease.components.map((c) => `${c.type}:${c.version}`) },
          },
        );
      }
    }
  }

  if (!release) {
    // Published components are immutable too: the same TYPE:VERSION with other content is refused.
    for (const [i, c] of checked.entries()) {
      const e = entries[i];
      const prev = e && (await store.get(e.manifest));
      if (!e || !prev) continue;
      let prevSha: string | undefined;
      try {
        prevSha = (JSON.parse(prev.toString('utf8')) as { archive?: { sha256?: string } }).archive?.sha256;
      } catch {
        prevSha = undefined;
      }
      if (prevSha !== c.manifest.archive.sha256) {
        throw new DeployToolError(
          'ERR_COMPONENT_EXISTS',
          `Component ${e.type}:${e.version} is already published in ${storeRoot} with different content`,
          { hint: 'Published components are immutable: pack a new --version and publish that.' },
        );
      }
    }
  }

  const published: PublishedComponent[] = [];
  for (const [i, c] of here.entries()) {
    const e = entries.find((x) => x.type === c.ref.type);
    if (!e) continue;
    const cur = await store.head(e.archive);
    let placedBy: PublishedComponent['placedBy'] = 'existing';
    const local = store.localPath?.(e.archive);
    // An archive left by an interrupted publish is kept only if it is exactly this one (not merely the same size).
    if (!cur || !local || !(await sameContent(local, c.archivePath, storedArchive(c.manifest).sha256))) {
      options.onLog?.(`placing ${e.archive}`);
      await store.putFile(e.archive, c.archivePath);
      placedBy = local ? await sameInode(local, c.archivePath) : 'copy';
    }
    await store.put(e.manifest, c.text);
    const compSig = await putSignature(store, e.manifest, c.text, {
      secret: signer,
      existing: await readSignatureFile(componentManifestPath(project, c.ref)),
      subject: `component ${e.type}:${e.version}`,
    });
    if (compSig && signer) signatures.push(`${join(storeRoot, e.manifest)}.minisig`);
    published.push({
      type: e.type,
      version: e.version,
      archive: join(storeRoot, e.archive),
      archiveSize: e.archiveSize,
      archiveSha256: e.archiveSha256,
      placedBy,
    });
    options.onProgress?.({
      phase: 'publish',
      item: `${e.type}:${e.version}`,
      done: i + 1,
      total: here.length,
      unit: 'items',
    });
  }

  let releaseManifestPath: string | undefined;
  let gitReleaseFile: string | undefined;
  if (release) {
    releaseManifestPath = join(storeRoot, RELEASE_FILE);
    gitReleaseFile = join(project.paths.releases, `${release}.release.json`);
    let text: string;
    if (existingRelease) {
      text = (await store.get(RELEASE_FILE))?.toString('utf8') ?? '';
    } else {
      const manifest: ReleaseManifest = {
        schemaVersion: RELEASE_SCHEMA_VERSION,
        kind: 'deploy-tool/release',
        release,
        createdAt: new Date().toISOString(),
        tool: toolName(),
        notes: options.notes ?? null,
        project: { name: project.config.project.name, type: project.config.project.type },
        git: await gitInfo(project.root),
        components: entries,
      };
      text = serializeManifest(manifest);
      // The release manifest is written last and exclusively: it is what makes the release exist.
      const r = await store.put(RELEASE_FILE, text, { ifNoneMatch: true });
      if (r.status === 'exists') {
        throw new DeployToolError(
          'ERR_RELEASE_EXISTS',
          `Release ${release} was published by someone else meanwhile`,
          {
            hint: 'Run publish again to compare, or choose a new --release-version.',
          },
        );
      }
    }
    await writeFileAtomic(gitReleaseFile, text);
    if (signer) {
      // Signed after release.json is in place (a reader meanwhile sees an unsigned release, and refuses it if it requires signatures).
      const sig = await putSignature(store, RELEASE_FILE, text, {
        secret: signer,
        subject: `release ${release}`,
      });
      await writeFileAtomic(`${gitReleaseFile}.minisig`, sig ?? '');
      signatures.push(`${releaseManifestPath}.minisig`, `${gitReleaseFile}.minisig`);
    }
  }
  return {
    status: existingRelease ? 'unchanged' : 'published',
    method: 'filesystem',
    release,
    publishedDir: storeRoot,
    releaseManifestPath,
    gitReleaseFile,
    components: published,
    totalBytes: published.reduce((s, c) => s + c.archiveSize, 0),
    signed: signer ? { keyId: keyIdHex(signer.keyId), files: signatures } : null,
    ...(routed.length ? { routed } : {}),
  };
}

async function sameContent(published: string, packed: string, sha256: string): Promise<boolean> {
  if ((await sameInode(published, packed)) === 'link') return true;
  return (await hashFile(published)).sha256 === sha256;
}

async function sameInode(a: string, b: string): Promise<'link' | 'copy'> {
  const { stat } = await import('node:fs/promises');
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  return sa.ino === sb.ino && sa.dev === sb.dev ? 'link' : 'copy';
}

/** Bucket stores (s3, bos, --store): the upload itself lives in src/store/publish.ts. */
async function publishRemote(
  options: PublishOptions,
  project: Project,
  checked: Checked[],
  entries: ReleaseComponent[],
  release: string | undefined,
  signer: SecretKey | undefined,
): Promise<PublishResult> {
  const r = await publishToStore({ options, project, checked, entries, release, signer });
  const s = r.store;
  return {
    status: r.status,
    method: s.type === 'filesystem' ? 'filesystem' : s.type,
    release,
    publishedDir: s.location,
    releaseManifestPath: s.releaseKey ?? undefined,
    gitReleaseFile: r.gitReleaseFile,
    components: s.components.map((c) => ({
      type: c.type,
      version: c.version,
      archive: `${s.location} ${c.archiveSha256}`,
      archiveSize: c.archiveSize,
      archiveSha256: c.archiveSha256,
      placedBy: c.bytesUploaded > 0 ? 'copy' : 'existing',
    })),
    totalBytes: s.components.reduce((n, c) => n + c.archiveSize, 0),
    signed: r.keyId ? { keyId: r.keyId, files: r.signatures } : null,
    store: s,
  };
}

/** The registry method (--method registry, or a `stores:` entry of type registry): src/registry/publish.ts. */
async function publishRegistry(
  options: PublishOptions,
  project: Project,
  reg: { name: string; url: string | undefined; namespace: string },
  release: string | undefined,
): Promise<PublishResult> {
  if (release && componentRoutes(project.config, reg.name).size) {
    throw new DeployToolError(
      'ERR_USAGE',
      'A registry release holds all of its components: deploy.components routes some elsewhere',
      {
        hint: 'Publish the release with another method, or remove those components from deploy.components.',
      },
    );
  }
  const target = await resolveRegistry(reg.url);
  const r = await publishToRegistry({
    cwd: options.cwd,
    projectRoot: options.projectRoot,
    onLog: options.onLog,
    onWarning: options.onWarning,
    onProgress: options.onProgress,
    registry: target.url,
    token: target.token,
    namespace: reg.namespace,
    components: options.components,
    releaseVersion: release,
    notes: options.notes,
    pointers: typeof options.pointer === 'string' ? [options.pointer] : [],
    sign: options.sign,
  });
  const location = `${r.registry} namespace ${r.namespace}`;
  const bytesReused = r.components.reduce((n, c) => n + c.bytesReused, 0);
  return {
    status: r.status,
    method: 'registry',
    release,
    publishedDir: location,
    releaseManifestPath: release ? `${location} release ${release}` : undefined,
    gitReleaseFile: r.gitReleaseFile,
    components: r.components.map((c) => ({
      type: c.type,
      version: c.version,
      archive: `${location} ${c.archiveSha256}`,
      archiveSize: c.archiveSize,
      archiveSha256: c.archiveSha256,
      placedBy: c.uploaded ? 'copy' : 'existing',
    })),
    totalBytes: r.components.reduce((n, c) => n + c.archiveSize, 0),
    signed: r.signedBy
      ? {
          keyId: r.signedBy,
          files: [
            ...r.signatures.map((x) => `${location} ${x.subject}.minisig`),
            ...(r.gitReleaseFile ? [`${r.gitReleaseFile}.minisig`] : []),
          ],
        }
      : null,
    store: {
      name: reg.name,
      type: 'registry',
      location,
      components: r.components.map((c) => ({
        type: c.type,
        version: c.version,
        archiveSha256: c.archiveSha256,
        archiveSize: c.archiveSize,
        manifest: c.status === 'created' ? 'created' : 'existing',
        chunks: c.chunks,
        chunksUploaded: c.chunksUploaded,
        bytesUploaded: c.bytesUploaded,
        bytesReused: c.bytesReused,
        bytesRead: c.bytesRead,
      })),
      bytesUploaded: r.bytesUploaded,
      bytesReused,
      releaseKey: release ? `releases/${release}` : null,
      pointer: r.pointers[0] ? { name: r.pointers[0].name, release: release ?? '', previous: null } : null,
    },
  };
}
