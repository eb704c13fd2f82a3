/**
 * Ed25519 signing keys.
 *
 * - Public keys are written in minisign's text form (two lines: an untrusted comment, then
 *   base64("Ed" || key id (8 bytes) || public key (32 bytes))), so that `minisign -V -p FILE` reads
 *   them as they are. PEM (SPKI) public keys and the bare base64 line are accepted too.
 * - Private keys are PKCS#8 PEM (what `openssl genpkey -algorithm ed25519` writes), in a file only
 *   its owner may read (0600); a key file that others can read is refused.
 * - The key id of a key we generate is the first 8 bytes of sha256(public key), so a PEM public key
 *   and the minisign form of the same key have the same id. minisign shows key ids as 16 hex digits
 *   of the little-endian number, i.e. the 8 bytes reversed; we show them the same way.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DeployToolError, errnoCode, fsError } from '../core/errors.js';

export interface PublicKey {
  /** 8 bytes, as stored in minisign files. */
  keyId: Buffer;
  /** 32 raw Ed25519 public key bytes. */
  raw: Buffer;
  key: KeyObject;
  /** Where the key came from, for messages. */
  source: string;
}

export interface SecretKey {
  keyId: Buffer;
  key: KeyObject;
  publicKey: PublicKey;
  source: string;
}

const ED = Buffer.from('Ed', 'latin1');

function invalidKey(message: string, hint?: string): DeployToolError {
  return new DeployToolError('ERR_KEY_INVALID', message, {
    hint:
      hint ??
      'Use a key made by "deploy-tool keys generate": the .pub file (or its base64 line) to verify, the .key file to sign.',
  });
}

/** How minisign prints a key id: the 8 bytes read as a little-endian number, 16 uppercase hex digits. */
export function keyIdHex(keyId: Buffer): string {
  return Buffer.from(keyId).reverse().toString('hex').toUpperCase();
}

export function keyIdFor(raw: Buffer): Buffer {
  return createHash('sha256').update(raw).digest().subarray(0, 8);
}

function rawPublic(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw invalidKey('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

export function publicKeyFromRaw(raw: Buffer, keyId: Buffer, source: string): PublicKey {
  if (raw.length !== 32) throw invalidKey(`${source}: an Ed25519 public key has 32 bytes, not ${raw.length}`);
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
  return { keyId: Buffer.from(keyId), raw: Buffer.from(raw), key, source };
}

/** The minisign public key text: comment line, base64 line, newline. */
export function formatPublicKey(pk: PublicKey): string {
  const line = Buffer.concat([ED, pk.keyId, pk.raw]).toString('base64');
  return `untrusted comment: minisign public key ${keyIdHex(pk.keyId)}\n${line}\n`;
}

/** The one-line form of a public key (what `minisign -P` takes and what `trust.keys` may hold). */
export function publicKeyLine(pk: PublicKey): string {
  return Buffer.concat([ED, pk.keyId, pk.raw]).toString('base64');
}

const B64_LINE = /^[A-Za-z0-9+/]{54,60}={0,2}$/;

/** Parses a public key: minisign file text, its bare base64 line, or a PEM SPKI block. */
export function parsePublicKey(text: string, source: string): PublicKey {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN PUBLIC KEY-----')) {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: trimmed, format: 'pem' });
    } catch (err) {
      throw invalidKey(`${source}: not a valid PEM public key (${(err as Error).message})`);
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw invalidKey(`${source}: a ${String(key.asymmetricKeyType)} key, not Ed25519`);
    const raw = rawPublic(key);
    return { keyId: keyIdFor(raw), raw, key, source };
  }
  const lines = trimmed.split(/\r?\n/).map((l) => l.trim());
  let line: string | undefined;
  if (lines.length === 1) line = lines[0];
  else if (lines.length === 2 && lines[0]?.startsWith('untrusted comment:')) line = lines[1];
  if (!line || !B64_LINE.test(line)) {
    throw invalidKey(`${source}: not a public key (expected the minisign public key format or PEM)`);
  }
  const bin = Buffer.from(line, 'base64');
  if (bin.length !== 42 || !bin.subarray(0, 2).equals(ED)) {
    throw invalidKey(`${source}: not an Ed25519 minisign public key`);
  }
  return publicKeyFromRaw(bin.subarray(10, 42), bin.subarray(2, 10), source);
}

/**
 * Loads a trusted key given as a file path (relative to `baseDir`) or inline as the base64 line.
 */
export async function loadPublicKey(spec: string, baseDir: string): Promise<PublicKey> {
  const inline = spec.trim();
  if (B64_LINE.test(inline) && Buffer.from(inline, 'base64').subarray(0, 2).equals(ED))
    return parsePublicKey(inline, 'inline key');
  const path = resolve(baseDir, spec);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw invalidKey(
        `Public key file not found: ${path}`,
        'Give the path of a .pub file made by "deploy-tool keys generate", or the key\'s base64 line.',
      );
    }
    throw fsError(err, path, 'read');
  }
  return parsePublicKey(text, path);
}

/** Loads a private (signing) key: PKCS#8 PEM, Ed25519, not readable by group or others. */
export async function loadSecretKey(path: string): Promise<SecretKey> {
  let text: string;
  try {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) {
      throw invalidKey(
        `Private key ${path} is readable by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`,
        `Restrict it to its owner ("chmod 600 ${path}") and consider the key compromised if others could read it.`,
      );
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof DeployToolError) throw err;
    if (errnoCode(err) === 'ENOENT') {
      throw invalidKey(
        `Private key not found: ${path}`,
        'Create one with "deploy-tool keys generate --out DIR", then pass --key DIR/deploy-tool.key.',
      );
    }
    throw fsError(err, path, 'read');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    // Never echo the file's content or the parser's message: it may quote key material.
    throw invalidKey(`${path} is not a PEM private key (PKCS#8, unencrypted)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw invalidKey(`${path} holds a ${String(key.asymmetricKeyType)} key; signatures need Ed25519`);
  }
  const raw = rawPublic(createPublicKey(key));
  const keyId = keyIdFor(raw);
  return { keyId, key, publicKey: publicKeyFromRaw(raw, keyId, path), source: path };
}

export interface GeneratedKeys {
  privateKeyPath: string;
  publicKeyPath: string;
  keyId: string;
  /** The one-line public key (for `trust.keys` or `minisign -P`). */
  publicKey: string;
}

/** Writes a new Ed25519 key pair: NAME.key (0600, PKCS#8 PEM) and NAME.pub (minisign format). */
export async function generateKeys(options: {
  outDir: string;
  name?: string;
  force?: boolean;
}): Promise<GeneratedKeys> {
  const name = options.name ?? 'deploy-tool';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw new DeployToolError('ERR_USAGE', `Invalid key name "${name}"`, {
      hint: 'Use letters, digits, ".", "_" and "-".',
    });
  }
  const dir = resolve(options.outDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKeyPath = join(dir, `${name}.key`);
  const publicKeyPath = join(dir, `${name}.pub`);
  if (!options.force) {
    for (const p of [privateKeyPath, publicKeyPath]) {
      const exists = await stat(p).then(
        () => true,
        () => false,
      );
      if (exists) {
        throw new DeployToolError('ERR_KEY_EXISTS', `Key file already exists: ${p}`, {
          hint: 'Choose another --out or --name, or pass --force to replace it (signatures made with the old key will no longer match it).',
        });
      }
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawPublic(publicKey);
  const pk: PublicKey = { keyId: keyIdFor(raw), raw, key: publicKey, source: publicKeyPath };
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  // The private key is created 0600 from the start (never briefly readable by others).
  await rm(privateKeyPath, { force: true });
  const fh = await open(
    privateKeyPath,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  ).catch((err: unknown) => {
    throw fsError(err, privateKeyPath, 'create');
  });
  try {
    await fh.chmod(0o600);
    await fh.writeFile(pem);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rm(publicKeyPath, { force: true });
  const pub = await open(publicKeyPath, 'wx', 0o644);
  try {
    await pub.writeFile(formatPublicKey(pk));
    await pub.sync();
  } finally {
    await pub.close();
  }
  return { privateKeyPath, publicKeyPath, keyId: keyIdHex(pk.keyId), publicKey: publicKeyLine(pk) };
}
