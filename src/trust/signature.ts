/**
 * Detached Ed25519 signatures in minisign's format (https://jedisct1.github.io/minisign/), so that
 * `minisign -V -H -p KEY.pub -m release.json` checks what deploy-tool signs. See docs/formats.md,
 * "Signatures".
 *
 *   untrusted comment: <free text, not covered by any signature>
 *   base64( "ED" || key id (8 bytes) || Ed25519(secret key, BLAKE2b-512(message)) )
 *   trusted comment: <one line, covered by the global signature>
 *   base64( Ed25519(secret key, signature (64 bytes) || trusted comment bytes) )
 *
 * We sign "prehashed" ("ED": the message is BLAKE2b-512 hashed first), the default of minisign
 * since 0.10; we verify legacy signatures ("Ed": the message itself is signed) too, so that files
 * signed with `minisign -S -l` can be checked.
 *
 * The message is the exact bytes of the signed file (release.json, or a component manifest): the
 * canonical bytes that publish wrote and whose sha256 the release chain is built on. Any byte
 * changed, whitespace included, breaks the signature.
 */
import { createHash, sign as edSign, verify as edVerify } from 'node:crypto';
import { basename } from 'node:path';
import { DeployToolError } from '../core/errors.js';
import { keyIdHex, type PublicKey, type SecretKey } from './keys.js';

/** Suffix of a detached signature file: `release.json` is signed by `release.json.minisig`. */
export const SIGNATURE_SUFFIX = '.minisig';

const ALG_HASHED = Buffer.from('ED', 'latin1');
const ALG_LEGACY = Buffer.from('Ed', 'latin1');
const UNTRUSTED = 'untrusted comment: ';
const TRUSTED = 'trusted comment: ';

export interface ParsedSignature {
  algorithm: 'ED' | 'Ed';
  keyId: Buffer;
  signature: Buffer;
  trustedComment: string;
  globalSignature: Buffer;
}

export interface VerifiedSignature {
  keyId: string;
  key: PublicKey;
  algorithm: 'ED' | 'Ed';
  trustedComment: string;
}

const blake2b512 = (data: Buffer): Buffer => createHash('blake2b512').update(data).digest();
const toBuffer = (m: Buffer | string): Buffer => (typeof m === 'string' ? Buffer.from(m, 'utf8') : m);

/** Signs `message`; returns the text of the `.minisig` file. */
export function signMessage(
  secret: SecretKey,
  message: Buffer | string,
  options: { file: string; subject?: string; timestamp?: number },
): string {
  const msg = toBuffer(message);
  const signature = edSign(null, blake2b512(msg), secret.key);
  const ts = options.timestamp ?? Math.floor(Date.now() / 1000);
  const clean = (s: string): string => s.replace(/[\r\n\t]/g, ' ');
  let trusted = `timestamp:${ts}\tfile:${clean(basename(options.file))}\thashed`;
  if (options.subject) trusted += `\t${clean(options.subject)}`;
  const global = edSign(null, Buffer.concat([signature, Buffer.from(trusted, 'utf8')]), secret.key);
  const sigLine = Buffer.concat([ALG_HASHED, secret.keyId, signature]).toString('base64');
  return (
    `${UNTRUSTED}signature from deploy-tool secret key ${keyIdHex(secret.keyId)}\n` +
    `${sigLine}\n${TRUSTED}${trusted}\n${global.toString('base64')}\n`
  );
}

function malformed(what: string, why: string): DeployToolError {
  return new DeployToolError('ERR_SIGNATURE_INVALID', `The signature of ${what} is malformed: ${why}`, {
    hint: 'The .minisig file was damaged or replaced. Sign again ("deploy-tool sign") or fetch the release again.',
  });
}

const STRICT_B64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function parseSignature(text: string, what: string): ParsedSignature {
  if (text.length > 4096) throw malformed(what, 'the file is too large');
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  while (lines.length > 4 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== 4) throw malformed(what, `expected 4 lines, found ${lines.length}`);
  const [untrusted, sigLine, trustedLine, globalLine] = lines as [string, string, string, string];
  if (!untrusted.startsWith(UNTRUSTED)) throw malformed(what, 'line 1 is not an untrusted comment');
  if (!trustedLine.startsWith(TRUSTED)) throw malformed(what, 'line 3 is not a trusted comment');
  if (!STRICT_B64.test(sigLine) || !STRICT_B64.test(globalLine))
    throw malformed(what, 'the signature lines are not base64');
  const sig = Buffer.from(sigLine, 'base64');
  const global = Buffer.from(globalLine, 'base64');
  if (sig.length !== 74) throw malformed(what, `the signature has ${sig.length} bytes, not 74`);
  if (global.length !== 64) throw malformed(what, `the global signature has ${global.length} bytes, not 64`);
  const alg = sig.subarray(0, 2);
  if (!alg.equals(ALG_HASHED) && !alg.equals(ALG_LEGACY))
    throw malformed(what, `unknown signature algorithm "${alg.toString('latin1')}" (expected Ed25519)`);
  return {
    algorithm: alg.equals(ALG_HASHED) ? 'ED' : 'Ed',
    keyId: sig.subarray(2, 10),
    signature: sig.subarray(10, 74),
    trustedComment: trustedLine.slice(TRUSTED.length),
    globalSignature: global,
  };
}

/** Key id (minisign hex form) of a signature file, without verifying it. */
export function signatureKeyId(text: string, what: string): string {
  return keyIdHex(parseSignature(text, what).keyId);
}

/**
 * Verifies `message` against a `.minisig` text with one of the trusted keys. Throws
 * ERR_SIGNATURE_INVALID (malformed, or the message or trusted comment changed) or ERR_UNTRUSTED_KEY
 * (signed by a key that is not trusted). `what` names the signed file in messages.
 */
export function verifySignature(
  message: Buffer | string,
  signatureText: string,
  trusted: readonly PublicKey[],
  what: string,
): VerifiedSignature {
  const p = parseSignature(signatureText, what);
  const id = keyIdHex(p.keyId);
  const candidates = trusted.filter((k) => k.keyId.equals(p.keyId));
  if (candidates.length === 0) {
    const known = trusted.map((k) => keyIdHex(k.keyId)).join(', ') || 'none';
    throw new DeployToolError(
      'ERR_UNTRUSTED_KEY',
      `${what} is signed by key ${id}, which is not a trusted key (trusted: ${known})`,
      {
        hint: 'Deploy only releases signed by your keys. If this key is yours, add its .pub file to trust.keys in .deploy-tool.yaml or pass --trusted-key.',
        details: { keyId: id, trusted: trusted.map((k) => keyIdHex(k.keyId)) },
      },
    );
  }
  const msg = toBuffer(message);
  const signed = p.algorithm === 'ED' ? blake2b512(msg) : msg;
  const key = candidates.find((k) => edVerify(null, signed, k.key, p.signature));
  if (!key) {
    throw new DeployToolError(
      'ERR_SIGNATURE_INVALID',
      `${what} does not match its signature by key ${id}: its bytes were changed after signing (or the signature belongs to another file)`,
      {
        hint: 'Do not deploy it. Fetch or publish the release again from a trusted source; if you changed it on purpose, sign it again.',
        details: { keyId: id },
      },
    );
  }
  const globalOk = edVerify(
    null,
    Buffer.concat([p.signature, Buffer.from(p.trustedComment, 'utf8')]),
    key.key,
    p.globalSignature,
  );
  if (!globalOk) {
    throw new DeployToolError(
      'ERR_SIGNATURE_INVALID',
      `The trusted comment of the signature of ${what} was altered after signing`,
      { hint: 'The .minisig file was tampered with. Do not deploy it.', details: { keyId: id } },
    );
  }
  return { keyId: id, key, algorithm: p.algorithm, trustedComment: p.trustedComment };
}
