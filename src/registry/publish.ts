/**
 * Publishing to a registry: for each component, upload the archive unless the registry already
 * has that content (content-addressed: nothing is sent twice), then the component manifest with
 * its metadata, then the release manifest last (it is what makes the release exist), then
 * optionally move a pointer (`latest`, ...) by compare-and-swap.
 */
import { DeployToolError } from '../core/errors.js';
import type { CommonOptions } from '../core/events.js';
import { gitInfo } from '../core/git.js';
import { sha256Hex } from '../core/hash.js';
import { openProject } from '../core/project.js';
import { parseComponentRef, validateVersion } from '../core/validate.js';
import { toolName } from '../core/version.js';
import { serializeManifest } from '../manifest/component.js';
import { RELEASE_SCHEMA_VERSION, type ReleaseComponent, type ReleaseManifest } from '../manifest/release.js';
import { checkComponents, releaseComponentPaths } from '../ops/publish.js';
import { createRegistryClient, type ComponentInfo, type RegistryClient } from './client.js';

export interface RegistryPublishOptions extends CommonOptions {
  registry: string;
  token?: string | undefined;
  client?: RegistryClient;
  /** Default: the project's name. */
  namespace?: string | undefined;
  components: string[];
  releaseVersion?: string | undefined;
  notes?: string | undefined;
  metadata?: Partial<ComponentInfo['metadata']> | undefined;
  /** Move these pointers to the new release (admin tokens only). */
  pointers?: string[] | undefined;
}

export interface RegistryPublishResult {
  status: 'published' | 'unchanged';
  method: 'registry';
  registry: string;
  namespace: string;
  release: string | undefined;
  components: {
    type: string;
    version: string;
    archiveSha256: string;
    archiveSize: number;
    uploaded: boolean;
    status: 'created' | 'unchanged';
  }[];
  bytesUploaded: number;
  pointers: { name: string; revision: number }[];
}

export async function publishToRegistry(options: RegistryPublishOptions): Promise<RegistryPublishResult> {
  if (options.components.length === 0) {
    throw new DeployToolError('ERR_USAGE', 'publish needs at least one --component TYPE:VERSION');
  }
  const project = await openProject(options);
  for (const w of project.warnings) options.onWarning?.(w);
  const namespace = options.namespace ?? project.config.project.name;
  const refs = options.components.map(parseComponentRef);
  const release =
    options.releaseVersion === undefined
      ? undefined
      : validateVersion(options.releaseVersion, 'Release version');
  const checked = await checkComponents(project, refs, options);
  const client = options.client ?? createRegistryClient({ url: options.registry, token: options.token });
  try {
    const out: RegistryPublishResult['components'] = [];
    let bytesUploaded = 0;
    const entries: ReleaseComponent[] = [];
    for (const c of checked) {
      const m = c.manifest;
      const have = await client.headBlob(m.archive.sha256);
      let uploaded = false;
      if (!have) {
        options.onLog?.(`uploading ${m.archive.name} (${m.archive.size} bytes)`);
        await client.uploadBlobFile(m.archive.sha256, c.archivePath, (done, total) =>
          options.onProgress?.({
            phase: 'upload',
            item: `${c.ref.type}:${c.ref.version}`,
            done,
            total,
            unit: 'bytes',
          }),
        );
        uploaded = true;
        bytesUploaded += m.archive.size;
      }
      const r = await client.putComponent(namespace, c.ref.type, c.ref.version, c.text, options.metadata);
      out.push({
        type: c.ref.type,
        version: c.ref.version,
        archiveSha256: m.archive.sha256,
        archiveSize: m.archive.size,
        uploaded,
        status: r.status === 'unchanged' ? 'unchanged' : 'created',
      });
      const p = releaseComponentPaths(c.ref, m.archive.name);
      entries.push({
        type: c.ref.type,
        version: c.ref.version,
        manifest: p.manifest,
        manifestSha256: sha256Hex(c.text),
        archive: p.archive,
        archiveSha256: m.archive.sha256,
        archiveSize: m.archive.size,
        compression: m.archive.compression,
      });
    }
    let releaseStatus: 'created' | 'unchanged' | undefined;
    if (release) {
      const existing = await client.releaseManifestText(namespace, release);
      let text: string;
      if (existing !== undefined) {
        text = existing;
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
      }
      const r = await client.putRelease(namespace, release, text);
      releaseStatus = r.status === 'unchanged' ? 'unchanged' : 'created';
    }
    const pointers: RegistryPublishResult['pointers'] = [];
    if (release) {
      for (const name of options.pointers ?? []) {
        for (let attempt = 0; ; attempt++) {
          const cur = await client.getPointer(namespace, name);
          try {
            const p = await client.setPointer(namespace, name, release, cur ? cur.revision : null);
            pointers.push({ name, revision: p.revision });
            break;
          } catch (err) {
            if (!(err instanceof DeployToolError && err.code === 'ERR_CONFLICT') || attempt >= 4) throw err;
          }
        }
      }
    }
    const unchanged = out.every((c) => c.status === 'unchanged') && releaseStatus !== 'created';
    return {
      status: unchanged ? 'unchanged' : 'published',
      method: 'registry',
      registry: client.location,
      namespace,
      release,
      components: out,
      bytesUploaded,
      pointers,
    };
  } finally {
    if (!options.client) client.close();
  }
}
