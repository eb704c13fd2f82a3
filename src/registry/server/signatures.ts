/**
 * Detached signatures (`.minisig`, minisign format, see docs/formats.md "Signatures") of component
 * and release manifests. A signature is stored in the content store beside nothing else, under a
 * key that names the namespace, the version and the sha256 of the manifest it signs:
 *
 *   signatures/NS/components/TYPE/VERSION/MANIFEST_SHA256.minisig
 *   signatures/NS/releases/RELEASE/MANIFEST_SHA256.minisig
 *
 * so a signature can never attach to other bytes than the ones it was published for (a version
 * deleted and published again with other content starts unsigned). Writes are exclusive creates
 * (If-None-Match), which makes them immutable across any number of instances. The registry only
 * accepts well-formed minisign signatures; when it is started with trusted keys
 * (`serve --trusted-key`), only signatures that verify with one of them. The status it reports is
 * computed when asked, against the manifest bytes and the keys it trusts now.
 */
import { createHash } from 'node:crypto';
import { isDeployToolError } from '../../core/errors.js';
import type { PublicKey } from '../../trust/keys.js';
import { parseSignature, signatureKeyId, verifySignature } from '../../trust/signature.js';
import { keyIdHex } from '../../trust/keys.js';
import type { RegistryApp, RouteContext } from './app.js';
import { blobKey } from './content.js';
import { HttpError, readBody, sendJson, sendText } from './http.js';

/** Largest signature file accepted (minisign files are about 300 bytes). */
export const MAX_SIGNATURE_BYTES = 4096;

export type SignedSubject =
  | { kind: 'component'; ns: string; type: string; version: string; manifestSha256: string }
  | { kind: 'release'; ns: string; release: string; manifestSha256: string };

function keyIdOrNull(text: string): string | null {
  try {
    return signatureKeyId(text, 'the stored signature');
  } catch {
    return null;
  }
}

export function signatureKey(s: SignedSubject): string {
  return s.kind === 'component'
    ? `signatures/${s.ns}/components/${s.type}/${s.version}/${s.manifestSha256}.minisig`
    : `signatures/${s.ns}/releases/${s.release}/${s.manifestSha256}.minisig`;
}

function label(s: SignedSubject): string {
  return s.kind === 'component' ? `component ${s.type}:${s.version}` : `release ${s.release}`;
}

/**
 * What the API and the web UI report:
 * - `unsigned`: no signature is stored;
 * - `signed`: a well-formed signature by `keyId`; `verified` is true when it was checked against a
 *   key this registry trusts (false: the registry does not know the key, clients must check it);
 * - `invalid`: malformed, or made by a trusted key but not matching the manifest bytes.
 */
export type SignatureStatus =
  | { status: 'unsigned' }
  | { status: 'signed'; keyId: string; verified: boolean; trustedComment: string }
  | { status: 'invalid'; keyId: string | null; reason: string };

export function signatureStatus(
  manifestText: Buffer | string | undefined,
  signature: string | undefined,
  trusted: readonly PublicKey[],
): SignatureStatus {
  if (signature === undefined) return { status: 'unsigned' };
  let keyId: string | null = null;
  try {
    const p = parseSignature(signature, 'the stored signature');
    keyId = keyIdHex(p.keyId);
    if (!trusted.some((k) => k.keyId.equals(p.keyId)))
      return { status: 'signed', keyId, verified: false, trustedComment: p.trustedComment };
    if (manifestText === undefined)
      return { status: 'invalid', keyId, reason: 'the signed manifest is missing from the store' };
    const v = verifySignature(manifestText, signature, trusted, 'the manifest');
    return { status: 'signed', keyId: v.keyId, verified: true, trustedComment: v.trustedComment };
  } catch (err) {
    return { status: 'invalid', keyId, reason: isDeployToolError(err) ? err.message : String(err) };
  }
}

export async function loadSignature(app: RegistryApp, s: SignedSubject): Promise<string | undefined> {
  return (await app.store.get(signatureKey(s)))?.toString('utf8');
}

/** Signature status of a stored manifest (reads the manifest only when a signature is there). */
export async function statusOf(
  app: RegistryApp,
  s: SignedSubject,
  manifestText?: Buffer | string,
): Promise<SignatureStatus> {
  const sig = await loadSignature(app, s);
  if (sig === undefined) return { status: 'unsigned' };
  const text = manifestText ?? (await app.store.get(blobKey(s.manifestSha256)));
  return signatureStatus(text, sig, app.options.trustedKeys ?? []);
}

/** GET .../signature: the exact `.minisig` bytes. */
export async function sendSignature(ctx: RouteContext, app: RegistryApp, s: SignedSubject): Promise<void> {
  const sig = await loadSignature(app, s);
  if (sig === undefined) throw new HttpError('ERR_NOT_FOUND', `${label(s)} in "${s.ns}" is not signed`);
  const etag = `"${createHash('sha256').update(sig).digest('hex')}"`;
  if (ctx.req.headers['if-none-match'] === etag) {
    ctx.res.writeHead(304, { etag });
    ctx.res.end();
    return;
  }
  // Not immutable: an admin may delete a signature (and another may be published then).
  sendText(ctx.res, 200, ctx.method === 'HEAD' ? '' : sig, 'text/plain; charset=utf-8', {
    etag,
    'cache-control': 'private, no-cache',
    ...(ctx.method === 'HEAD' ? { 'content-length': String(Buffer.byteLength(sig)) } : {}),
  });
}

/**
 * PUT .../signature: body is the `.minisig` text. Checked (well-formed; verifies with a trusted
 * key when the registry has any), then created exclusively. The same bytes again: 200 unchanged;
 * another signature when one exists: 409.
 */
export async function receiveSignature(
  ctx: RouteContext,
  app: RegistryApp,
  s: SignedSubject,
  manifestText: Buffer,
): Promise<void> {
  const type = String(ctx.req.headers['content-type'] ?? 'text/plain');
  if (!/^(text\/plain|application\/octet-stream)\b/i.test(type)) {
    ctx.req.resume();
    throw new HttpError(
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      'the body is the .minisig file (text/plain or application/octet-stream)',
    );
  }
  const text = (await readBody(ctx.req, MAX_SIGNATURE_BYTES)).toString('utf8');
  const what = `the signature of ${label(s)}`;
  let keyId: string;
  try {
    keyId = signatureKeyId(text, what);
  } catch (err) {
    throw new HttpError(
      'ERR_SIGNATURE_INVALID',
      isDeployToolError(err) ? err.message : 'malformed signature',
    );
  }
  const trusted = app.options.trustedKeys ?? [];
  let verified = false;
  if (trusted.length > 0) {
    try {
      verifySignature(manifestText, text, trusted, `${label(s)} in "${s.ns}"`);
      verified = true;
    } catch (err) {
      throw new HttpError(
        isDeployToolError(err) && err.code === 'ERR_UNTRUSTED_KEY'
          ? 'ERR_UNTRUSTED_KEY'
          : 'ERR_SIGNATURE_INVALID',
        isDeployToolError(err) ? err.message : 'the signature does not verify',
      );
    }
  }
  const key = signatureKey(s);
  const r = await app.store.put(key, text, { ifNoneMatch: true });
  if (r.status === 'exists') {
    const cur = await loadSignature(app, s);
    if (cur === text) {
      sendJson(ctx.res, 200, { status: 'unchanged', keyId, verified });
      return;
    }
    const curId = cur === undefined ? null : keyIdOrNull(cur);
    throw new HttpError(
      'ERR_SIGNATURE_EXISTS',
      `${label(s)} in "${s.ns}" is already signed${curId ? ` (by key ${curId})` : ''}; signatures are immutable (an admin may delete it)`,
    );
  }
  await app.audit(
    ctx,
    'signature.publish',
    s.ns,
    s.kind === 'component' ? `${s.type}:${s.version}` : s.release,
    {
      subject: s.kind,
      manifestSha256: s.manifestSha256,
      keyId,
      verified,
    },
  );
  sendJson(ctx.res, 201, { status: 'created', keyId, verified });
}

/** DELETE .../signature (admin): removes a signature, e.g. one made with a compromised key. */
export async function deleteSignature(ctx: RouteContext, app: RegistryApp, s: SignedSubject): Promise<void> {
  const cur = await loadSignature(app, s);
  if (cur === undefined) throw new HttpError('ERR_NOT_FOUND', `${label(s)} in "${s.ns}" is not signed`);
  await app.store.delete(signatureKey(s));
  const keyId = keyIdOrNull(cur);
  await app.audit(
    ctx,
    'signature.delete',
    s.ns,
    s.kind === 'component' ? `${s.type}:${s.version}` : s.release,
    {
      subject: s.kind,
      manifestSha256: s.manifestSha256,
      keyId,
    },
  );
  sendJson(ctx.res, 200, { status: 'deleted' });
}
