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
import { bucketSourceFromFlags } from '../deploy/sources/s3.js';
import { keys as bucketKeys } from '../store/bucket.js';
import { resolveStore, wantsStore, type StoreFlags } from '../store/resolve.js';
import type { Store } from '../store/types.js';
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
  /**
   * Sign in a store instead of the project's folders: `--store NAME` or `--method s3|bos --bucket B`
   * (resolved like publish and deploy, src/store/resolve.ts). The signature is written beside the
   * manifest in the store (`releases/R/release.json.minisig`, `components/T/V/manifest.json.minisig`).
   */
  remote?: StoreFlags | undefined;
}

export interface SignResult {
  /** Files signed (or, in a store, "LOCATION KEY"). */
  signed: string[];
  signatureFiles: string[];
  keyId: string;
  /** Set when the signature was written to a store: the key of the signature object. */
  store?: { driver: string; location: string; key: string } | undefined;
}

/** Where a signature is read and written: a local file beside the manifest, or a store key. */
interface SignatureSlot {
  /** Name of the signed file (in messages and the signature's trusted comment). */
  name: string;
  read(): Promise<string | undefined>;
  write(sig: string): Promise<void>;
}

const fileSlot = (file: string): SignatureSlot => ({
  name: file,
  read: () => readOptional(`${file}${SIGNATURE_SUFFIX}`),
  write: (sig) => writeFileAtomic(`${file}${SIGNATURE_SUFFIX}`, sig),
});

const storeSlot = (store: Store, key: string): SignatureSlot => ({
  name: key,
  read: async () => (await store.get(`${key}${SIGNATURE_SUFFIX}`))?.toString('utf8'),
  write: async (sig) => {
    await store.put(`${key}${SIGNATURE_SUFFIX}`, sig);
  },
});

/** Writes the signature of `text` into `slot`; refuses to replace another key's signature without force. */
async function signInto(
  secret: SecretKey,
  slot: SignatureSlot,
  text: string,
  subject: string,
  force: boolean,
): Promise<void> {
  const sigName = `${slot.name}${SIGNATURE_SUFFIX}`;
  const prev = await slot.read();
  if (prev !== undefined && !force) {
    let prevId: string | undefined;
    try {
      prevId = signatureKeyId(prev, sigName);
    } catch {
      prevId = undefined;
    }
    if (prevId !== keyIdHex(secret.keyId)) {
      throw new DeployToolError(
        'ERR_SIGNATURE_INVALID',
        `${sigName} already exists (signed by ${prevId ?? 'an unreadable signature'})`,
        { hint: 'Pass --force to replace it with a signature by this key.' },
      );
    }
  }
  const sig = signMessage(secret, text, { file: slot.name, subject });
  // Our own signature must verify before it is written.
  verifySignature(text, sig, [secret.publicKey], slot.name);
  await slot.write(sig);
}

async function signFile(
  secret: SecretKey,
  file: string,
  text: string,
  subject: string,
  force: boolean,
): Promise<string> {
  await signInto(secret, fileSlot(file), text, subject, force);
  return `${file}${SIGNATURE_SUFFIX}`;
}

const usage = (): DeployToolError =>
  new DeployToolError('ERR_USAGE', 'sign needs exactly one of --release R or --component TYPE:VERSION', {
    hint: 'Example: deploy-tool sign --release 2024.01.20 --key ~/.deploy-tool/deploy-tool.key',
  });

/** `sign --store NAME` / `--method s3|bos --bucket B`: signs the manifests as published in the store. */
async function signInStore(options: SignOptions, flags: StoreFlags): Promise<SignResult> {
  const project = await tryOpenProject(options);
  for (const w of project?.warnings ?? []) options.onWarning?.(w);
  const { store } = resolveStore(flags, { config: project?.config, baseDir: project?.root ?? options.cwd });
  const secret = await loadSecretKey(resolve(options.cwd, options.key));
  const force = !!options.force;
  const where = (key: string): string => `${store.location} ${key}`;
  let key: string;
  let text: string;
  let subject: string;
  if (options.release) {
    const release = validateVersion(options.release, 'Release version');
    key = bucketKeys.release(release);
    const buf = await store.get(key);
    if (!buf) {
      throw new DeployToolError('ERR_RELEASE_NOT_FOUND', `Release ${release} not found in ${where(key)}`, {
        hint: 'Publish it to this store first, or check --store/--bucket/--prefix/--endpoint.',
      });
    }
    text = buf.toString('utf8');
    const m = verifyReleaseTrust({
      policy: { requireSignatures: false, keys: [] },
      release,
      text,
      signature: undefined,
      location: where(key),
    }).manifest;
    // Sign only a release whose component manifests in the store are the ones it names.
    for (const c of m.components) {
      const ck = bucketKeys.component(c.type, c.version);
      const t = (await store.get(ck))?.toString('utf8');
      if (t === undefined) {
        throw new DeployToolError(
          'ERR_COMPONENT_NOT_FOUND',
          `The manifest of ${c.type}:${c.version} (release ${release}) is missing: no ${where(ck)}`,
          { hint: 'The store is incomplete; publish the release again before signing.' },
        );
      }
      if (sha256Hex(t) !== c.manifestSha256) {
        throw new DeployToolError(
          'ERR_MANIFEST_INVALID',
          `The manifest of ${c.type}:${c.version} in ${where(ck)} does not match release ${release} (manifestSha256)`,
          { hint: 'The store was altered; publish the release again before signing.' },
        );
      }
    }
    subject = `release ${release}`;
  } else {
    const ref = parseComponentRef(options.component ?? '');
    key = bucketKeys.component(ref.type, ref.version);
    const buf = await store.get(key);
    if (!buf) {
      throw new DeployToolError(
        'ERR_COMPONENT_NOT_FOUND',
        `Component not found: ${ref.type}:${ref.version} (no ${where(key)})`,
        { hint: 'Publish it to this store first, or check --store/--bucket/--prefix/--endpoint.' },
      );
    }
    text = buf.toString('utf8');
    parseComponentManifestText(text, where(key));
    subject = `component ${ref.type}:${ref.version}`;
  }
  await signInto(secret, storeSlot(store, key), text, subject, force);
  return {
    signed: [where(key)],
    signatureFiles: [where(`${key}${SIGNATURE_SUFFIX}`)],
    keyId: keyIdHex(secret.keyId),
    store: { driver: store.driver, location: store.location, key: `${key}${SIGNATURE_SUFFIX}` },
  };
}

/** `deploy-tool sign --release R` / `--component TYPE:VERSION`, on the project's files. */
export async function signProjectFiles(options: SignOptions): Promise<SignResult> {
  if (!options.release === !options.component) throw usage();
  if (options.remote && wantsStore(options.remote)) return signInStore(options, options.remote);
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
  /** Check the release as published in a store (`--store NAME`, `--method s3|bos --bucket B`). */
  remote?: (StoreFlags & { cacheDir?: string | undefined }) | undefined;
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
  if (options.remote && wantsStore(options.remote)) {
    if (options.releasesDir !== undefined) {
      throw new DeployToolError('ERR_USAGE', '--releases-dir cannot be combined with a store', {
        hint: 'Use --releases-dir for release folders, or --store/--method s3|bos for a bucket.',
      });
    }
    return verifyStoreRelease(options, project, release, options.remote);
  }
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
 * `verify --signature` of a release published in a store: the same chain as for a release folder
 * (release signature, component manifests by sha256, each archive's size and sha256, component
 * signatures), read through the deploy's bucket source (mirrors and the download cache included).
 */
async function verifyStoreRelease(
  options: VerifyReleaseSignatureOptions,
  project: Awaited<ReturnType<typeof tryOpenProject>>,
  release: string,
  flags: StoreFlags & { cacheDir?: string | undefined },
): Promise<VerifyReleaseSignatureResult> {
  const policy = await resolveTrustPolicy({
    config: project?.config.trust,
    configDir: project?.root,
    requireSignature: options.requireSignature ?? true,
    trustedKeys: options.trustedKeys,
    cwd: options.cwd,
  });
  const source = bucketSourceFromFlags({
    flags,
    config: project?.config,
    baseDir: project?.root ?? options.cwd,
    cwd: options.cwd,
    cacheDir: flags.cacheDir,
    onLog: options.onLog,
    onWarning: options.onWarning,
    onProgress: options.onProgress,
  });
  const location = `${source.description} ${bucketKeys.release(release)}`;
  const r = await source.getRelease(release);
  const parsed = verifyReleaseTrust({ policy, release, text: r.text, signature: r.signature, location });
  // Fetched as bare TYPE:VERSION so that a substituted manifest is reported by the trust check below.
  const loaded = [];
  for (const c of parsed.manifest.components)
    loaded.push({ entry: c, ...(await source.getComponent({ type: c.type, version: c.version })) });
  const trust = verifyReleaseTrust({
    policy,
    release,
    text: r.text,
    signature: r.signature,
    location,
    components: loaded.map((l) => ({ type: l.entry.type, version: l.entry.version, text: l.text })),
  });
  const out: VerifyReleaseSignatureResult['components'] = [];
  for (const l of loaded) {
    const c = l.entry;
    const m = l.manifest;
    const stored = m.encryption ?? m.archive;
    if (c.archiveSha256 !== stored.sha256 || c.archiveSize !== stored.size) {
      throw new DeployToolError(
        'ERR_MANIFEST_INVALID',
        `Release ${release} and the manifest of ${c.type}:${c.version} disagree about the archive (${source.description})`,
        { hint: 'The store was altered; do not deploy it.' },
      );
    }
    const src = await source.openArchive(l, c, release);
    try {
      await verifyArchiveDigest(src, {
        ...m,
        archive: { ...m.archive, size: stored.size, sha256: stored.sha256 },
      });
    } finally {
      await src.close();
    }
    if (l.signature !== undefined && policy.keys.length > 0)
      verifySignature(l.text, l.signature, policy.keys, `manifest of ${c.type}:${c.version}`);
    out.push({
      type: c.type,
      version: c.version,
      manifestSigned: l.signature !== undefined,
      archiveSha256: stored.sha256,
    });
  }
  return {
    release,
    releaseDir: location,
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
