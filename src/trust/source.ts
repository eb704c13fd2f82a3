/**
 * The trust layer of a deploy, as a ReleaseSource around the real one (any method: filesystem, S3,
 * registry). The deploy engine calls getRelease() and getComponent() while planning, before it
 * takes the lock or creates anything, so every refusal here happens before a single file is
 * extracted:
 *
 * - getRelease(): the release manifest's signature is checked against the trust policy
 *   (`verifyReleaseTrust`): unsigned, bad signature, unknown key, or a substituted manifest.
 * - getComponent(): a release's component manifest must have the sha256 the (signed) release names;
 *   a bare TYPE:VERSION needs its own valid signature when signatures are required. An encrypted
 *   component without a usable key is refused here too.
 * - openArchive(): an encrypted archive is checked (size, sha256) and decrypted into a private
 *   temporary folder, then read through the normal verified path.
 */
import { DeployToolError } from '../core/errors.js';
import { sha256Hex } from '../core/hash.js';
import type { ProjectConfig } from '../core/config.js';
import type { LoadedComponent, LoadedRelease, ReleaseSource } from '../deploy/source.js';
import type { ReleaseManifest } from '../manifest/release.js';
import { loadDecryptionKeys, openDecryptedArchive, type DecryptionKeys } from './encrypt.js';
import { describeTrust, resolveTrustPolicy, verifyReleaseTrust, type TrustPolicy } from './policy.js';
import { verifySignature } from './signature.js';

export interface DeployTrustOptions {
  /** --require-signature */
  requireSignature?: boolean | undefined;
  /** --trusted-key FILE (repeatable) */
  trustedKeys?: string[] | undefined;
  /** --identity FILE (repeatable): age identities for encrypted components. */
  identities?: string[] | undefined;
  /** --passphrase-env VAR: passphrase of encrypted components. */
  passphraseEnv?: string | undefined;
}

export interface TrustedSourceOptions extends DeployTrustOptions {
  cwd: string;
  config?: ProjectConfig['trust'] | undefined;
  configDir?: string | undefined;
  /** Folder for decrypted temporary archives (default: the system's temporary folder). */
  tmpDir?: string | undefined;
  onLog?: ((m: string) => void) | undefined;
  env?: NodeJS.ProcessEnv | undefined;
}

export interface TrustedSource extends ReleaseSource {
  readonly policy: TrustPolicy;
}

export async function createTrustedSource(
  inner: ReleaseSource,
  o: TrustedSourceOptions,
): Promise<TrustedSource> {
  const policy = await resolveTrustPolicy({
    config: o.config,
    configDir: o.configDir,
    requireSignature: o.requireSignature,
    trustedKeys: o.trustedKeys,
    cwd: o.cwd,
  });
  const keys: DecryptionKeys = await loadDecryptionKeys({
    identityFiles: o.identities,
    passphraseEnv: o.passphraseEnv,
    cwd: o.cwd,
    env: o.env,
  });
  const verified = new Map<string, ReleaseManifest>();

  const checkDecryptable = (c: LoadedComponent): void => {
    const e = c.manifest.encryption;
    if (!e) return;
    const id = `${c.manifest.type}:${c.manifest.version}`;
    if (e.passphrase && keys.passphrases.length === 0) {
      throw new DeployToolError(
        'ERR_DECRYPT_NO_KEY',
        `${id} is encrypted with a passphrase, and none was given`,
        {
          hint: 'Pass --passphrase-env VAR, naming the environment variable that holds the passphrase.',
        },
      );
    }
    if (!e.passphrase && keys.identities.length === 0) {
      throw new DeployToolError(
        'ERR_DECRYPT_NO_KEY',
        `${id} is encrypted to age recipients, and no identity was given`,
        {
          hint: `Pass --identity FILE with the age secret key of one of: ${e.recipients.join(', ')}.`,
        },
      );
    }
  };

  return {
    policy,
    description: inner.description,
    async getRelease(release: string): Promise<LoadedRelease> {
      const r = await inner.getRelease(release);
      const t = verifyReleaseTrust({
        policy,
        release,
        text: r.text,
        signature: r.signature,
        location: `${inner.description}: release ${release}`,
      });
      o.onLog?.(`release ${release}: ${describeTrust(t)}`);
      verified.set(release, t.manifest);
      return { ...r, manifest: t.manifest };
    },
    async getComponent(ref, release) {
      const c = await inner.getComponent(ref, release);
      const id = `${ref.type}:${ref.version}`;
      if ('manifestSha256' in ref && release !== undefined) {
        const m = verified.get(release);
        const entry = m?.components.find((e) => e.type === ref.type && e.version === ref.version);
        if (!m || !entry) throw new Error(`internal: ${id} requested before release ${release} was checked`);
        const digest = sha256Hex(c.text);
        if (digest !== entry.manifestSha256) {
          throw new DeployToolError(
            'ERR_SIGNATURE_INVALID',
            `The manifest of ${id} does not match release ${release}: sha256 ${digest}, the release says ${entry.manifestSha256}`,
            {
              hint: 'It was changed after the release was published. Do not deploy it; fetch the release again.',
            },
          );
        }
      } else if (c.signature !== undefined && policy.keys.length > 0) {
        verifySignature(c.text, c.signature, policy.keys, `the manifest of ${id}`);
        o.onLog?.(`component ${id}: signature verified`);
      } else if (policy.requireSignatures) {
        throw new DeployToolError('ERR_UNSIGNED', `The manifest of ${id} is not signed`, {
          hint: `Signatures are required. Sign it ("deploy-tool sign --component ${id} --key KEY") and publish it again, or deploy a signed release.`,
        });
      }
      checkDecryptable(c);
      return c;
    },
    async openArchive(component, ref, release, options) {
      // A subset of frames only for plain archives: an encrypted one is decrypted whole.
      const encrypted = !!component.manifest.encryption;
      const a = await inner.openArchive(component, ref, release, encrypted ? undefined : options);
      if (!encrypted) return a;
      checkDecryptable(component);
      return openDecryptedArchive(a, component.manifest, keys, { tmpDir: o.tmpDir });
    },
  };
}
