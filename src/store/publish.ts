/**
 * The publish target for bucket stores (`--method s3|bos`, `--store NAME`): uploads what the
 * bucket lacks (content-addressed chunks), then recipes and component manifests, then the release
 * manifest last with If-None-Match, then moves the `latest` pointer by compare-and-swap. Called
 * by ops/publish.ts after the components were checked (the filesystem target stays there).
 */
import { join } from 'node:path';
import type { CommonOptions } from '../core/events.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { gitInfo } from '../core/git.js';
import type { Project } from '../core/project.js';
import type { ComponentRef } from '../core/validate.js';
import { toolName } from '../core/version.js';
import { serializeManifest, type ComponentManifest } from '../manifest/component.js';
import { RELEASE_SCHEMA_VERSION, type ReleaseComponent, type ReleaseManifest } from '../manifest/release.js';
import type { SecretKey } from '../trust/keys.js';
import { putSignature, readSignatureFile } from '../trust/sign.js';
import { keyIdHex } from '../trust/keys.js';
import { componentManifestPath, earlierManifests } from '../ops/components.js';
import {
  existingRelease,
  keys,
  movePointer,
  publishComponent,
  putRelease,
  type BucketComponentResult,
} from './bucket.js';
import { resolveStore, type StoreFlags } from './resolve.js';

export interface StorePublishInfo {
  /** The store name ("s3", "bos", or a `stores:` name) and where it is. */
  name: string;
  type: 's3' | 'bos' | 'filesystem' | 'registry';
  location: string;
  components: BucketComponentResult[];
  /** Content bytes sent / already in the bucket. */
  bytesUploaded: number;
  bytesReused: number;
  releaseKey: string | null;
  pointer: { name: string; release: string; previous: string | null } | null;
}

export interface StorePublishInput {
  options: CommonOptions & StoreFlags & { notes?: string | undefined; pointer?: string | false | undefined };
  project: Project;
  checked: { ref: ComponentRef; manifest: ComponentManifest; text: string; archivePath: string }[];
  entries: ReleaseComponent[];
  release: string | undefined;
  signer: SecretKey | undefined;
}

export interface StorePublishOutput {
  status: 'published' | 'unchanged';
  store: StorePublishInfo;
  gitReleaseFile: string | undefined;
  releaseText: string | undefined;
  signatures: string[];
  keyId: string | undefined;
}

export async function publishToStore(i: StorePublishInput): Promise<StorePublishOutput> {
  const { options: o, project, release, signer, entries } = i;
  const target = resolveStore(o, { config: project.config, baseDir: project.root });
  const store = target.store;
  o.onLog?.(`publishing to [${store.driver}] ${store.location}`);
  const signatures: string[] = [];

  // An existing release with other components is refused before anything is uploaded (the first
  // archive is hashed meanwhile: its requests wait for this answer).
  const asked = release ? existingRelease(store, release, entries) : Promise.resolve(undefined);
  asked.catch(() => undefined); // awaited below

  const results: BucketComponentResult[] = [];
  // `checked` may be a subset of the release (mixed stores: the others live in other stores).
  for (const [n, c] of i.checked.entries()) {
    const entry = entries.find((e) => e.type === c.ref.type);
    if (!entry) continue;
    const earlier = (): Promise<ComponentManifest[]> => earlierManifests(project, c.ref);
    results.push(await publishComponent(store, { entry, ...c, earlier }, { ...o, before: asked }));
    const key = keys.component(entry.type, entry.version);
    const sig = await putSignature(store, key, c.text, {
      secret: signer,
      existing: await readSignatureFile(componentManifestPath(project, c.ref)),
      subject: `component ${entry.type}:${entry.version}`,
    });
    if (sig && signer) signatures.push(`${store.location} ${key}.minisig`);
    o.onProgress?.({
      phase: 'publish',
      item: `${entry.type}:${entry.version}`,
      done: n + 1,
      total: i.checked.length,
      unit: 'items',
    });
  }

  const existing = await asked;
  let gitReleaseFile: string | undefined;
  let releaseText: string | undefined;
  let pointer: StorePublishInfo['pointer'] = null;
  if (release) {
    if (existing) {
      releaseText = existing;
    } else {
      const manifest: ReleaseManifest = {
        schemaVersion: RELEASE_SCHEMA_VERSION,
        kind: 'deploy-tool/release',
        release,
        createdAt: new Date().toISOString(),
        tool: toolName(),
        notes: o.notes ?? null,
        project: { name: project.config.project.name, type: project.config.project.type },
        git: await gitInfo(project.root),
        components: entries,
      };
      releaseText = serializeManifest(manifest);
      // Last, and exclusive: the release exists once everything it names is in the bucket.
      await putRelease(store, release, releaseText);
    }
    gitReleaseFile = join(project.paths.releases, `${release}.release.json`);
    await writeFileAtomic(gitReleaseFile, releaseText);
    if (signer) {
      const sig = await putSignature(store, keys.release(release), releaseText, {
        secret: signer,
        subject: `release ${release}`,
      });
      await writeFileAtomic(`${gitReleaseFile}.minisig`, sig ?? '');
      signatures.push(`${store.location} ${keys.release(release)}.minisig`, `${gitReleaseFile}.minisig`);
    }
    if (!existing && o.pointer !== false)
      pointer = await movePointer(store, o.pointer ?? 'latest', release, releaseText);
  }
  return {
    status: release && existing ? 'unchanged' : 'published',
    store: {
      name: target.name,
      type: target.type,
      location: store.location,
      components: results,
      bytesUploaded: results.reduce((s, c) => s + c.bytesUploaded, 0),
      bytesReused: results.reduce((s, c) => s + c.bytesReused, 0),
      releaseKey: release ? keys.release(release) : null,
      pointer,
    },
    gitReleaseFile,
    releaseText,
    signatures,
    keyId: signer ? keyIdHex(signer.keyId) : undefined,
  };
}
