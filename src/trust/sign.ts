/**
 * Signing operations on the project's filesystem releases and component manifests, and the check
 * of a published release's whole chain (`verify --signature`). Like every operation: options in,
 * result out, no printing.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { openLocalArchive, verifyArchiveDigest } from '../archive/reader.js';
import { DeployToolError, errnoCode, fsError } from '../core/errors.js';
import type { CommonOptions } from '../core/events.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { sha256Hex } from '../core/hash.js';
import { openProject, tryOpenProject } from '../core/project.js';
import { parseComponentRef, validateVersion } from '../core/validate.js';
import { parseComponentManifestText } from '../manifest/component.js';
import { componentManifestPath } from '../ops/components.js';
import { keyIdHex, loadSecretKey, type SecretKey } from './keys.js';
import { describeTrust, resolveTrustPolicy, verifyReleaseTrust, type ReleaseTrustResult } from './policy.js';
import { SIGNATURE_SUFFIX, signMessage, signatureKeyId, verifySignature } from './signature.js';

const RELEASE_FILE = 'release.json';

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw fsError(err, path, 'read');
  }
}

export interface SignOptions extends CommonOptions {
  /** Path of the private key (PKCS#8 PEM, 0600). */
  key: string;
  release?: string | undefined;
  component?: string | undefined;
  /** Replace a signature made by another key. */
  force?: boolean | undefined;
}

export interface SignResult {
  signed: string[];
  signatureFiles: string[];
  keyId: string;
}

/** Writes `<file>.minisig` next to `file`; refuses to replace another key's signature without force. */
async function signFile(
  secret: SecretKey,
  file: string,
  text: string,
  subject: string,
  force: boolean,
): Promise<string> {
  const sigPath = `${file}${SIGNATURE_SUFFIX}`;
  const prev = await readOptional(sigPath);
  if (prev !== undefined && !force) {
    let prevId: string | undefined;
    try {
      prevId = signatureKeyId(prev, sigPath);
    } catch {
      prevId = undefined;
    }
    if (prevId !== keyIdHex(secret.keyId)) {
      throw new DeployToolError(
        'ERR_SIGNATURE_INVALID',
        `${sigPath} already exists (signed by ${prevId ?? 'an unreadable signature'})`,
        { hint: 'Pass --force to replace it with a signature by this key.' },
      );
    }
  }
  const sig = signMessage(secret, text, { file, subject });
  // Our own signature must verify before it is written.
  verifySignature(text, sig, [secret.publicKey], file);
  await writeFileAtomic(sigPath, sig);
  return sigPath;
}

/** `deploy-tool sign --release R` / `--component TYPE:VERSION`, on the project's files. */
export async function signProjectFiles(options: SignOptions): Promise<SignResult> {
  if (!options.release === !options.component) {
    throw new DeployToolError(
      'ERR_USAGE',
      'sign needs exactly one of --release R or --component TYPE:VERSION',
      {
        hint: 'Example: deploy-tool sign --release 2024.01.20 --key ~/.deploy-tool/deploy-tool.key',
      },
    );
  }
  const project = await openProject(options);
  for (const w of project.warnings) options.onWarning?.(w);
  const secret = await loadSecretKey(resolve(options.cwd, options.key));
  const force = !!options.force;
  const signed: string[] = [];
  const signatureFiles: string[] = [];
  if (options.release) {
    const release = validateVersion(options.release, 'Release version');
    const payload = join(project.paths.releases, release, RELEASE_FILE);
    const gitCopy = join(project.paths.releases, `${release}.release.json`);
    const [payloadText, gitText] = [await readOptional(payload), await readOptional(gitCopy)];
    const text = payloadText ?? gitText;
    if (text === undefined) {
      throw new DeployToolError('ERR_RELEASE_NOT_FOUND', `Release ${release} not found (no ${payload})`, {
        hint: 'Publish it first ("deploy-tool publish ... --release-version R"), or check the name with "deploy-tool list releases".',
      });
    }
    if (payloadText !== undefined && gitText !== undefined && payloadText !== gitText) {
      throw new DeployToolError(
        'ERR_MANIFEST_INVALID',
        `${payload} and ${gitCopy} differ; refusing to sign either`,
        {
          hint: 'One of them was edited after publishing. Restore it from git or publish the release again.',
        },
      );
    }
    const m = verifyReleaseTrust({
      policy: { requireSignatures: false, keys: [] },
      release,
      text,
      signature: undefined,
      location: payloadText !== undefined ? payload : gitCopy,
    }).manifest;
    // Sign only a release whose component manifests are the ones it names (when they are here).
    if (payloadText !== undefined) {
      for (const c of m.components) {
        const t = await readOptional(join(project.paths.releases, release, ...c.manifest.split('/')));
        if (t !== undefined && sha256Hex(t) !== c.manifestSha256) {
          throw new DeployToolError(
            'ERR_MANIFEST_INVALID',
            `The published manifest of ${c.type}:${c.version} does not match release ${release}`,
            { hint: 'The release folder was altered; publish it again before signing.' },
          );
        }
      }
    }
    for (const file of [
      payloadText !== undefined ? payload : undefined,
      gitText !== undefined ? gitCopy : undefined,
    ]) {
      if (!file) continue;
      signatureFiles.push(await signFile(secret, file, text, `release ${release}`, force));
      signed.push(file);
    }
  } else if (options.component) {
    const ref = parseComponentRef(options.component);
    const path = componentManifestPath(project, ref);
    const text = await readOptional(path);
    if (text === undefined) {
      throw new DeployToolError(
        'ERR_COMPONENT_NOT_FOUND',
        `Component not found: ${options.component} (no ${path})`,
        {
          hint: 'Pack it first, or pull the latest manifests from git.',
        },
      );
    }
    parseComponentManifestText(text, path);
    signatureFiles.push(await signFile(secret, path, text, `component ${ref.type}:${ref.version}`, force));
    signed.push(path);
  }
  return { signed, signatureFiles, keyId: keyIdHex(secret.keyId) };
}

export interface VerifyReleaseSignatureOptions extends CommonOptions {
  release: string;
  /** Folder holding release folders (default: the project's deployment/releases). */
  releasesDir?: string | undefined;
  trustedKeys?: string[] | undefined;
  /** Fail when the release is unsigned (default true for `verify --signature`). */
  requireSignature?: boolean | undefined;
}

export interface VerifyReleaseSignatureResult {
  release: string;
  releaseDir: string;
  status: ReleaseTrustResult['status'];
  keyId: string | undefined;
  trustedComment: string | undefined;
  summary: string;
  components: { type: string; version: string; manifestSigned: boolean; archiveSha256: string }[];
}

/**
 * Checks a published filesystem release end to end: the signature of release.json by a trusted
 * key, each component manifest's sha256 against the signed release, each archive's size and sha256
 * against the release and its manifest, and the signatures of component manifests that have one.
 */
export async function verifyReleaseSignature(
  options: VerifyReleaseSignatureOptions,
): Promise<VerifyReleaseSignatureResult> {
  const project = await tryOpenProject(options);
  for (const w of project?.warnings ?? []) options.onWarning?.(w);
  const release = validateVersion(options.release, 'Release version');
  const releasesDir = options.releasesDir
    ? resolve(options.cwd, options.releasesDir)
    : project?.paths.releases;
  if (!releasesDir) {
    throw new DeployToolError('ERR_USAGE', 'verify --signature needs --releases-dir outside a project', {
      hint: 'Pass the folder that holds the release folders, e.g. --releases-dir /opt/deployments/releases.',
    });
  }
  const policy = await resolveTrustPolicy({
    config: project?.config.trust,
    configDir: project?.root,
    requireSignature: options.requireSignature ?? true,
    trustedKeys: options.trustedKeys,
    cwd: options.cwd,
  });
  const releaseDir = join(releasesDir, release);
  const releasePath = join(releaseDir, RELEASE_FILE);
  const text = await readOptional(releasePath);
  if (text === undefined) {
    const names = await readdir(releasesDir).catch(() => [] as string[]);
    throw new DeployToolError('ERR_RELEASE_NOT_FOUND', `Release ${release} not found: no ${releasePath}`, {
      hint: names.length ? `Releases there: ${names.slice(0, 10).join(', ')}` : 'Check --releases-dir.',
    });
  }
  const signature = await readOptional(`${releasePath}${SIGNATURE_SUFFIX}`);
  const components: { type: string; version: string; text: string; path: string }[] = [];
  const parsed = verifyReleaseTrust({ policy, release, text, signature, location: releasePath });
  for (const c of parsed.manifest.components) {
    const path = join(releaseDir, ...c.manifest.split('/'));
    const t = await readOptional(path);
    if (t === undefined) {
      throw new DeployToolError(
        'ERR_COMPONENT_NOT_FOUND',
        `Manifest of ${c.type}:${c.version} not found: ${path}`,
        {
          hint: 'The release folder is incomplete; transfer it again.',
        },
      );
    }
    components.push({ type: c.type, version: c.version, text: t, path });
  }
  const trust = verifyReleaseTrust({ policy, release, text, signature, location: releasePath, components });
  const out: VerifyReleaseSignatureResult['components'] = [];
  for (const c of trust.manifest.components) {
    const loaded = components.find((x) => x.type === c.type);
    if (!loaded) continue;
    const m = parseComponentManifestText(loaded.text, loaded.path);
    if (m.type !== c.type || m.version !== c.version) {
      throw new DeployToolError(
        'ERR_MANIFEST_INVALID',
        `${loaded.path} describes ${m.type}:${m.version}, not ${c.type}:${c.version}`,
        {
          hint: 'The release folder was altered; do not deploy it.',
        },
      );
    }
    const stored = m.encryption ?? m.archive;
    if (c.archiveSha256 !== stored.sha256 || c.archiveSize !== stored.size) {
      throw new DeployToolError(
        'ERR_MANIFEST_INVALID',
        `Release ${release} and the manifest of ${c.type}:${c.version} disagree about the archive`,
        { hint: 'The release folder was altered; do not deploy it.' },
      );
    }
    const archivePath = join(releaseDir, ...c.archive.split('/'));
    options.onLog?.(`verifying ${archivePath}`);
    const src = await openLocalArchive(archivePath);
    try {
      await verifyArchiveDigest(src, {
        ...m,
        archive: { ...m.archive, size: stored.size, sha256: stored.sha256 },
      });
    } finally {
      await src.close();
    }
    const compSig = await readOptional(`${loaded.path}${SIGNATURE_SUFFIX}`);
    if (compSig !== undefined && policy.keys.length > 0)
      verifySignature(loaded.text, compSig, policy.keys, `manifest of ${c.type}:${c.version}`);
    out.push({
      type: c.type,
      version: c.version,
      manifestSigned: compSig !== undefined,
      archiveSha256: stored.sha256,
    });
  }
  return {
    release,
    releaseDir,
    status: trust.status,
    keyId: trust.keyId,
    trustedComment: trust.trustedComment,
    summary: describeTrust(trust),
    components: out,
  };
}

/**
 * Publishing: writes `<key>.minisig` beside a manifest in a store (any driver). With a signing key
 * the text is signed now; without one, an existing detached signature (from `sign --component`)
 * is carried along. Returns the signature text written, if any.
 */
export async function putSignature(
  store: { put(key: string, data: string): Promise<unknown> },
  key: string,
  text: string,
  options: { secret?: SecretKey | undefined; existing?: string | undefined; subject: string },
): Promise<string | undefined> {
  let sig = options.existing;
  if (options.secret) {
    sig = signMessage(options.secret, text, { file: key, subject: options.subject });
    verifySignature(text, sig, [options.secret.publicKey], key);
  }
  if (sig === undefined) return undefined;
  await store.put(`${key}${SIGNATURE_SUFFIX}`, sig);
  return sig;
}

/** Reads a detached signature next to a local file, if there is one. */
export function readSignatureFile(path: string): Promise<string | undefined> {
  return readOptional(`${path}${SIGNATURE_SUFFIX}`);
}

export { loadSecretKey };
