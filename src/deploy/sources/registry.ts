/**
 * The ReleaseSource of the registry method: release and component manifests come from the
 * registry API (exact bytes, checked against the release's manifestSha256), archives are read
 * with HTTP range requests (so the deploy engine reads only what it needs, and retries). Detached
 * signatures come with the manifests, and encrypted archives are read as stored (the ciphertext),
 * so the trust layer around this source checks and decrypts them exactly as for other methods.
 */
import type { ArchiveSource } from '../../archive/reader.js';
import { DeployToolError } from '../../core/errors.js';
import { sha256Hex } from '../../core/hash.js';
import type { ComponentRef } from '../../core/validate.js';
import { parseComponentManifestText } from '../../manifest/component.js';
import { parseReleaseManifestText, type ReleaseComponent } from '../../manifest/release.js';
import { createRegistryClient, type RegistryClient } from '../../registry/client.js';
import { storedArchive } from '../../trust/encrypt.js';
import type { LoadedComponent, LoadedRelease, ReleaseSource } from '../source.js';

export interface RegistrySourceOptions {
  /** Registry base URL (with `token`), or a client of your own. */
  url?: string;
  token?: string | undefined;
  client?: RegistryClient;
  /** The namespace (project) releases and components are read from. */
  namespace: string;
}

function isReleaseRef(ref: ReleaseComponent | ComponentRef): ref is ReleaseComponent {
  return 'manifestSha256' in ref;
}

export function createRegistryReleaseSource(
  options: RegistrySourceOptions,
): ReleaseSource & { close(): void } {
  const client =
    options.client ??
    createRegistryClient({
      url: options.url ?? '',
      token: options.token,
    });
  const ns = options.namespace;
  const description = `registry ${client.location} (namespace ${ns})`;

  return {
    description,
    async getRelease(release): Promise<LoadedRelease> {
      const text = await client.releaseManifestText(ns, release);
      if (text === undefined) {
        throw new DeployToolError('ERR_RELEASE_NOT_FOUND', `Release ${release} is not in ${description}`, {
          hint: `Publish it first, or list what is there: deploy-tool search --registry ${client.location} ${ns}`,
        });
      }
      const where = `${client.location} release ${release}`;
      const manifest = parseReleaseManifestText(text, where);
      if (manifest.release !== release) {
        throw new DeployToolError('ERR_MANIFEST_INVALID', `${where} describes release ${manifest.release}`, {
          hint: 'The registry returned another release than asked for; report it to the registry admin.',
        });
      }
      // The detached signature (release.json.minisig), checked by the trust layer (src/trust/source.ts).
      const signature = await client.releaseSignatureText(ns, release);
      return { manifest, text, signature };
    },
    async getComponent(ref, release): Promise<LoadedComponent> {
      const text = await client.componentManifestText(ns, ref.type, ref.version);
      if (text === undefined) {
        throw new DeployToolError(
          'ERR_COMPONENT_NOT_FOUND',
          `Component ${ref.type}:${ref.version} is not in ${description}${release ? ` (release ${release})` : ''}`,
          { hint: 'Publish the component to the registry first.' },
        );
      }
      const where = `${client.location} ${ns}/${ref.type}:${ref.version}`;
      if (isReleaseRef(ref) && sha256Hex(text) !== ref.manifestSha256) {
        throw new DeployToolError(
          'ERR_MANIFEST_INVALID',
          `${where}: the component manifest's sha256 is not the one release ${release ?? ''} names`,
          {
            hint: 'The registry serves other content than was released. Do not deploy; tell the registry admin.',
          },
        );
      }
      const manifest = parseComponentManifestText(text, where);
      if (manifest.type !== ref.type || manifest.version !== ref.version) {
        throw new DeployToolError(
          'ERR_MANIFEST_INVALID',
          `${where} describes ${manifest.type}:${manifest.version}, not ${ref.type}:${ref.version}`,
        );
      }
      // A release's components are covered by the release signature; a bare TYPE:VERSION needs
      // its own (the manifest's .minisig).
      const signature = isReleaseRef(ref)
        ? undefined
        : await client.componentSignatureText(ns, ref.type, ref.version);
      return { manifest, text, signature };
    },
    openArchive(component): Promise<ArchiveSource> {
      const m = component.manifest;
      // The stored archive: the ciphertext when encrypted (the trust layer decrypts it).
      const stored = storedArchive(m);
      const path = client.archivePath(ns, m.type, m.version);
      let first = true;
      const source: ArchiveSource = {
        location: `${client.location} ${ns}/${m.type}:${m.version} (${stored.name})`,
        size: () => Promise.resolve(stored.size),
        async read(offset, length) {
          const continuation = !first;
          first = false;
          const len = Math.max(0, Math.min(length, stored.size - offset));
          return client.readBlobRange(stored.sha256, offset, len, { continuation, path });
        },
        close: () => Promise.resolve(),
      };
      return Promise.resolve(source);
    },
    close() {
      if (!options.client) client.close();
    },
  };
}
