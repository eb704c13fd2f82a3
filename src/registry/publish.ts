/**
 * Publishing to a registry: for each component, upload the archive's chunks the registry lacks
 * (content-addressed: nothing is sent twice; the chunking of the bucket layout, so a new version
 * sends only what changed), then its recipe, then the component manifest with
 * its metadata, then the release manifest last (it is what makes the release exist), then
 * optionally move a pointer (`latest`, ...) by compare-and-swap.
 */
import { join, resolve } from 'node:path';
import { DeployToolError } from '../core/errors.js';
import type { CommonOptions } from '../core/events.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { gitInfo } from '../core/git.js';
import { sha256Hex } from '../core/hash.js';
import { openProject } from '../core/project.js';
import { parseComponentRef, validateVersion } from '../core/validate.js';
import { toolName } from '../core/version.js';
import { serializeManifest } from '../manifest/component.js';
import { RELEASE_SCHEMA_VERSION, type ReleaseComponent, type ReleaseManifest } from '../manifest/release.js';
import { checkComponents, releaseComponentPaths } from '../ops/publish.js';
import { componentManifestPath, earlierManifests, manifestFileName } from '../ops/components.js';
import { storedArchive } from '../trust/encrypt.js';
import { keyIdHex, loadSecretKey } from '../trust/keys.js';
import { readSignatureFile } from '../trust/sign.js';
import { signatureKeyId, signMessage, verifySignature } from '../trust/signature.js';
import { uploadArchive } from '../store/bucket.js';
import { createRegistryLayoutStore } from '../store/registry-layout.js';
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
  /**
   * Private key (publish --sign KEY): signs each component manifest and the release manifest and
   * uploads the detached signatures. Without it, a component signature made by
   * `sign --component` (deployment/manifests/...manifest.json.minisig) is uploaded as it is.
   */
  sign?: string | undefined;
}

export interface RegistrySignatureResult {
  /** "component TYPE:VERSION" or "release R". */
  subject: string;
  keyId: string;
  /** created: uploaded now; unchanged: the registry already had a signature by this key. */
  status: 'created' | 'unchanged';
  /** The registry checked it against a key it trusts (serve --trusted-key). */
  verified: boolean;
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
    /** Some content was sent (chunks the registry lacked). */
    uploaded: boolean;
    /** Chunks of the archive (0 when the registry already had it), and how many were sent. */
    chunks: number;
    chunksUploaded: number;
    bytesUploaded: number;
    bytesReused: number;
    /** Archive bytes read from dist/ (only the chunks the registry lacks when an earlier version names the rest). */
    bytesRead: number;
    status: 'created' | 'unchanged';
  }[];
  bytesUploaded: number;
  pointers: { name: string; revision: number }[];
  /** Signatures uploaded (or already there); keyId of the signing key when --sign was given. */
  signatures: RegistrySignatureResult[];
  signedBy: string | null;
  /**
   * deployment/releases/R.release.json (+ .minisig when signed): the release manifest as the
   * registry holds it, written for git as the other methods do. Undefined without a release.
   */
  gitReleaseFile: string | undefined;
}

/**
 * Uploads one signature unless the registry already has one by the same key (signatures are
 * immutable there). Another key's signature is an error when signing now (`explicit`), a warning
 * when only carrying a local signature along.
 */
async function uploadSignature(
  o: {
    subject: string;
    signature: string;
    explicit: boolean;
    existing: () => Promise<string | undefined>;
    put: (sig: string) => Promise<{ status: 'created' | 'unchanged'; keyId: string; verified: boolean }>;
  },
  onWarning: ((m: string) => void) | undefined,
): Promise<RegistrySignatureResult | undefined> {
  const keyId = signatureKeyId(o.signature, `the signature of ${o.subject}`);
  const cur = await o.existing();
  if (cur !== undefined) {
    let curId: string | undefined;
    try {
      curId = signatureKeyId(cur, `the registry's signature of ${o.subject}`);
    } catch {
      curId = undefined;
    }
    if (curId === keyId) return { subject: o.subject, keyId, status: 'unchanged', verified: false };
    const message = `${o.subject} is already signed on the registry by ${curId ? `key ${curId}` : 'an unreadable signature'}, not by key ${keyId}`;
    if (!o.explicit) {
      onWarning?.(`${message}; the local signature was not uploaded`);
      return undefined;
    }
    throw new DeployToolError('ERR_SIGNATURE_INVALID', message, {
      hint: 'Signatures on the registry are immutable. Keep the existing one, or ask a registry admin to delete it (DELETE .../signature) and publish again.',
    });
  }
  const r = await o.put(o.signature);
  return { subject: o.subject, keyId: r.keyId, status: r.status, verified: r.verified };
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
  const signer = options.sign ? await loadSecretKey(resolve(options.cwd, options.sign)) : undefined;
  const signatures: RegistrySignatureResult[] = [];
  const sigFor = (text: string, file: string, subject: string): string | undefined => {
    if (!signer) return undefined;
    const sig = signMessage(signer, text, { file, subject });
    verifySignature(text, sig, [signer.publicKey], file);
    return sig;
  };
  const client = options.client ?? createRegistryClient({ url: options.registry, token: options.token });
  const content = createRegistryLayoutStore({ namespace, client });
  try {
    const out: RegistryPublishResult['components'] = [];
    let bytesUploaded = 0;
    const entries: ReleaseComponent[] = [];
    for (const c of checked) {
      const m = c.manifest;
      // What is stored and transferred: the ciphertext when the component is encrypted.
      const stored = storedArchive(m);
      // The same chunks as in a bucket: only those the registry lacks are sent, then the recipe
      // (which the server checks concatenates to the archive). Already there: nothing is sent.
      const up = await uploadArchive(content, m, c.archivePath, {
        onLog: options.onLog,
        onProgress: options.onProgress,
        item: `${c.ref.type}:${c.ref.version}`,
        earlier: () => earlierManifests(project, c.ref),
      });
      const uploaded = up.bytesUploaded > 0;
      bytesUploaded += up.bytesUploaded;
      const r = await client.putComponent(namespace, c.ref.type, c.ref.version, c.text, options.metadata);
      out.push({
        type: c.ref.type,
        version: c.ref.version,
        archiveSha256: stored.sha256,
        archiveSize: stored.size,
        uploaded,
        chunks: up.chunks,
        chunksUploaded: up.chunksUploaded,
        bytesUploaded: up.bytesUploaded,
        bytesReused: up.bytesReused,
        bytesRead: up.bytesRead,
        status: r.status === 'unchanged' ? 'unchanged' : 'created',
      });
      const p = releaseComponentPaths(c.ref, stored.name);
      const subject = `component ${c.ref.type}:${c.ref.version}`;
      const sig =
        sigFor(c.text, manifestFileName(c.ref), subject) ??
        (await readSignatureFile(componentManifestPath(project, c.ref)));
      if (sig !== undefined) {
        const done = await uploadSignature(
          {
            subject,
            signature: sig,
            explicit: !!signer,
            existing: () => client.componentSignatureText(namespace, c.ref.type, c.ref.version),
            put: (x) => client.putComponentSignature(namespace, c.ref.type, c.ref.version, x),
          },
          options.onWarning,
        );
        if (done) signatures.push(done);
      }
      entries.push({
        type: c.ref.type,
        version: c.ref.version,
        manifest: p.manifest,
        manifestSha256: sha256Hex(c.text),
        archive: p.archive,
        archiveSha256: stored.sha256,
        archiveSize: stored.size,
        compression: m.archive.compression,
      });
    }
    let releaseStatus: 'created' | 'unchanged' | undefined;
    let gitReleaseFile: string | undefined;
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
      // Signed once the release exists (a reader meanwhile sees it unsigned, and refuses it if it
      // requires signatures).
      const sig = sigFor(text, 'release.json', `release ${release}`);
      if (sig !== undefined) {
        const done = await uploadSignature(
          {
            subject: `release ${release}`,
            signature: sig,
            explicit: true,
            existing: () => client.releaseSignatureText(namespace, release),
            put: (x) => client.putReleaseSignature(namespace, release, x),
          },
          options.onWarning,
        );
        if (done) signatures.push(done);
      }
      // The release manifest for git, byte for byte the registry's (as publish to a bucket does).
      gitReleaseFile = join(project.paths.releases, `${release}.release.json`);
      await writeFileAtomic(gitReleaseFile, text);
      if (sig !== undefined) await writeFileAtomic(`${gitReleaseFile}.minisig`, sig);
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
    const unchanged =
      out.every((c) => c.status === 'unchanged') &&
      releaseStatus !== 'created' &&
      signatures.every((x) => x.status === 'unchanged');
    return {
      status: unchanged ? 'unchanged' : 'published',
      method: 'registry',
      registry: client.location,
      namespace,
      release,
      components: out,
      bytesUploaded,
      pointers,
      signatures,
      signedBy: signer ? keyIdHex(signer.keyId) : null,
      gitReleaseFile,
    };
  } finally {
    if (!options.client) client.close();
  }
}
