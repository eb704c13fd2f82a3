/**
 * Trust policy: which keys are trusted and whether signatures are required, from `.deploy-tool.yaml`
 * (`trust: { keys: [...], require_signatures: true }`) and the deploy flags (`--require-signature`,
 * `--trusted-key FILE`). `verifyReleaseTrust()` is what the deploy engine calls right after it has
 * loaded the release manifest (and the component manifests), before anything is extracted.
 */
import { DeployToolError } from '../core/errors.js';
import { sha256Hex } from '../core/hash.js';
import type { ProjectConfig } from '../core/config.js';
import { parseReleaseManifestText, type ReleaseManifest } from '../manifest/release.js';
import { keyIdHex, loadPublicKey, type PublicKey } from './keys.js';
import { verifySignature } from './signature.js';

export interface TrustPolicy {
  requireSignatures: boolean;
  keys: PublicKey[];
}

export interface TrustPolicyOptions {
  /** `trust` section of the project configuration, if any. */
  config?: ProjectConfig['trust'] | undefined;
  /** Folder that relative key paths in the configuration are resolved against (the project root). */
  configDir?: string | undefined;
  /** `--require-signature`. */
  requireSignature?: boolean | undefined;
  /** `--trusted-key FILE` (repeatable), resolved against `cwd`. */
  trustedKeys?: string[] | undefined;
  cwd: string;
}

export async function resolveTrustPolicy(options: TrustPolicyOptions): Promise<TrustPolicy> {
  const keys: PublicKey[] = [];
  for (const spec of options.config?.keys ?? [])
    keys.push(await loadPublicKey(spec, options.configDir ?? options.cwd));
  for (const spec of options.trustedKeys ?? []) keys.push(await loadPublicKey(spec, options.cwd));
  const requireSignatures = !!options.requireSignature || options.config?.require_signatures === true;
  if (requireSignatures && keys.length === 0) {
    throw new DeployToolError('ERR_USAGE', 'Signatures are required but no key is trusted', {
      hint: 'Pass --trusted-key FILE.pub, or list public keys under trust.keys in .deploy-tool.yaml.',
    });
  }
  return { requireSignatures, keys };
}

export interface ReleaseTrustInput {
  policy: TrustPolicy;
  /** The release that was asked for. */
  release: string;
  /** Exact bytes of release.json as fetched. */
  text: string;
  /** Text of release.json.minisig, or undefined when there is none. */
  signature: string | undefined;
  /** Where the release was read from, for messages. */
  location: string;
  /** Component manifests already loaded (type and exact text): checked against the signed digests. */
  components?: { type: string; version: string; text: string }[];
}

export interface ReleaseTrustResult {
  /** verified: signed by a trusted key; unsigned: no signature and none required; unchecked: signed, but no key is trusted. */
  status: 'verified' | 'unsigned' | 'unchecked';
  keyId: string | undefined;
  trustedComment: string | undefined;
  manifest: ReleaseManifest;
}

/**
 * Checks the release manifest's signature against the policy, then that the signed manifest is
 * the release that was asked for and names exactly the component manifests that were loaded. The
 * rest of the chain (component manifest -> archive -> frames -> files, by sha256) is checked by the
 * normal verified read, before anything becomes visible.
 */
export function verifyReleaseTrust(input: ReleaseTrustInput): ReleaseTrustResult {
  const { policy, release } = input;
  const what = `release ${release} (${input.location})`;
  let status: ReleaseTrustResult['status'];
  let keyId: string | undefined;
  let trustedComment: string | undefined;
  if (input.signature === undefined) {
    if (policy.requireSignatures) {
      throw new DeployToolError('ERR_UNSIGNED', `Release ${release} is not signed (${input.location})`, {
        hint: 'Signatures are required. Sign it ("deploy-tool sign --release R --key KEY", or publish --sign KEY) and transfer the .minisig file with the release.',
      });
    }
    status = 'unsigned';
  } else if (policy.keys.length === 0) {
    status = 'unchecked';
  } else {
    // A signature that is present is always checked against the trusted keys, required or not.
    const v = verifySignature(input.text, input.signature, policy.keys, what);
    status = 'verified';
    keyId = v.keyId;
    trustedComment = v.trustedComment;
  }
  const manifest = parseReleaseManifestText(input.text, input.location);
  if (manifest.release !== release) {
    throw new DeployToolError(
      'ERR_SIGNATURE_INVALID',
      `${input.location} is the manifest of release ${manifest.release}, not ${release}`,
      {
        hint: 'A release manifest was moved or substituted. Do not deploy it; fetch the release again.',
      },
    );
  }
  for (const c of input.components ?? []) {
    const entry = manifest.components.find((e) => e.type === c.type);
    if (!entry || entry.version !== c.version) {
      throw new DeployToolError(
        'ERR_SIGNATURE_INVALID',
        `Component ${c.type}:${c.version} is not part of the ${status === 'verified' ? 'signed ' : ''}release ${release}`,
        { hint: 'Deploy only components named by the release manifest.' },
      );
    }
    const digest = sha256Hex(c.text);
    if (digest !== entry.manifestSha256) {
      throw new DeployToolError(
        'ERR_SIGNATURE_INVALID',
        `The manifest of ${c.type}:${c.version} changed after the release was ${status === 'verified' ? 'signed' : 'published'}: sha256 ${digest}, the release says ${entry.manifestSha256}`,
        { hint: 'Do not deploy it. Fetch the release again from a trusted source.' },
      );
    }
  }
  return { status, keyId, trustedComment, manifest };
}

/** Human summary of a trust result (for logs and command output). */
export function describeTrust(r: Pick<ReleaseTrustResult, 'status' | 'keyId'>): string {
  if (r.status === 'verified') return `signature verified (key ${r.keyId ?? '?'})`;
  if (r.status === 'unchecked') return 'signed, but no trusted key is configured: signature not checked';
  return 'not signed';
}

export { keyIdHex };
