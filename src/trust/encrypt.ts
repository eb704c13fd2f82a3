/**
 * Encryption of finished archives with age (https://age-encryption.org/v1, the `age-encryption`
 * package): to X25519 recipients (`age1...`) or with a passphrase (scrypt). The component manifest
 * keeps every plaintext sha256 (archive, frames, tar, files) and records the ciphertext in
 * `encryption` (name, size, sha256, recipients). Deploy checks the ciphertext's size and sha256,
 * decrypts it into a private temporary file, and then reads that file through the normal verified
 * path (archive sha256, frame sha256s, TarChecker), so nothing is extracted from bytes that were
 * not proven.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { openLocalArchive, type ArchiveSource } from '../archive/reader.js';
import { DeployToolError, errnoCode, fsError } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';
import type { ComponentManifest, Encryption } from '../manifest/component.js';

export const AGE_SUFFIX = '.age';

export interface EncryptSettings {
  recipients: string[];
  passphrase?: string | undefined;
  /** scrypt work factor (log2 N) for passphrases; age's default is 18. */
  scryptLogN?: number | undefined;
}

export interface DecryptionKeys {
  /** age identities (AGE-SECRET-KEY-1...). Never printed. */
  identities: string[];
  passphrases: string[];
  /** Where they came from, for messages ("identity file X", "variable Y"). */
  sources: string[];
}

const RECIPIENT_RE = /^age1[0-9a-z]{10,2000}$/;

function usage(message: string, hint: string): DeployToolError {
  return new DeployToolError('ERR_USAGE', message, { hint });
}

/** Reads a passphrase from an environment variable (never from a flag: flags show up in `ps`). */
export function passphraseFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw usage(
      `Invalid variable name "${name}"`,
      'Pass the NAME of an environment variable, e.g. --passphrase-env MODEL_PASSPHRASE.',
    );
  const value = env[name];
  if (value === undefined || value === '') {
    throw new DeployToolError('ERR_DECRYPT_NO_KEY', `Environment variable ${name} is not set (or empty)`, {
      hint: `Export the passphrase in ${name} before running the command; never put it on the command line.`,
    });
  }
  registerSecret(value);
  return value;
}

/**
 * age and its curves, loaded on first use: importing them costs about 50 ms of start-up that every
 * command without encryption would otherwise pay.
 */
const age = async (): Promise<typeof import('age-encryption')> => import('age-encryption');

/** Validates encryption settings from the command line. */
export async function checkEncryptSettings(s: EncryptSettings): Promise<EncryptSettings> {
  const { Encrypter } = await age();
  if (s.recipients.length === 0 && !s.passphrase)
    throw usage(
      '--encrypt needs --recipient AGE_PUBLIC_KEY (repeatable) or --passphrase-env VAR',
      'Example: pack ./models --type model --version 1.0.0 --encrypt --recipient age1...',
    );
  if (s.recipients.length > 0 && s.passphrase)
    throw usage(
      'Use either --recipient or --passphrase-env, not both',
      'age encrypts a file to recipients or with one passphrase.',
    );
  const seen = new Set<string>();
  for (const r of s.recipients) {
    if (r.startsWith('AGE-SECRET-KEY')) {
      throw usage(
        '--recipient was given a secret key (AGE-SECRET-KEY-...)',
        'Pass the public key (age1...), which "age-keygen -y KEYFILE" prints. Treat the secret key as exposed.',
      );
    }
    if (!RECIPIENT_RE.test(r))
      throw usage(
        `"${r}" is not an age recipient`,
        'Recipients look like age1... ("age-keygen" prints one).',
      );
    try {
      new Encrypter().addRecipient(r);
    } catch (err) {
      throw usage(
        `"${r}" is not a valid age recipient (${(err as Error).message})`,
        'Copy the public key again from "age-keygen -y KEYFILE".',
      );
    }
    if (seen.has(r)) throw usage(`Recipient ${r} is given twice`, 'List each recipient once.');
    seen.add(r);
  }
  if (s.passphrase) registerSecret(s.passphrase);
  return s;
}

/** Encrypts `inPath` into `outPath` (created exclusively, 0644); returns the ciphertext's size and sha256. */
export async function encryptFile(
  inPath: string,
  outPath: string,
  settings: EncryptSettings,
): Promise<{ size: number; sha256: string }> {
  const { Encrypter } = await age();
  const enc = new Encrypter();
  if (settings.passphrase) {
    enc.setPassphrase(settings.passphrase);
    if (settings.scryptLogN) enc.setScryptWorkFactor(settings.scryptLogN);
  }
  for (const r of settings.recipients) enc.addRecipient(r);
  const input = Readable.toWeb(createReadStream(inPath)) as ReadableStream<Uint8Array>;
  const out = await enc.encrypt(input);
  return writeStream(out, outPath, 0o644); // ciphertext: not secret
}

async function writeStream(
  stream: ReadableStream<Uint8Array>,
  outPath: string,
  mode = 0o600,
): Promise<{ size: number; sha256: string }> {
  const fh = await open(outPath, 'wx', mode).catch((err: unknown) => {
    throw fsError(err, outPath, 'create');
  });
  const hash = createHash('sha256');
  let size = 0;
  try {
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      let off = 0;
      while (off < value.length) {
        const { bytesWritten } = await fh.write(value, off, value.length - off, size + off);
        off += bytesWritten;
      }
      size += value.length;
    }
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(outPath, { force: true });
    throw err;
  }
  await fh.close();
  return { size, sha256: hash.digest('hex') };
}

/**
 * Loads decryption keys: age identity files (lines "AGE-SECRET-KEY-1...", "#" comments) and
 * passphrases from environment variables. Every value is registered for redaction.
 */
export async function loadDecryptionKeys(options: {
  identityFiles?: string[] | undefined;
  passphraseEnv?: string | undefined;
  cwd: string;
  env?: NodeJS.ProcessEnv;
}): Promise<DecryptionKeys> {
  const keys: DecryptionKeys = { identities: [], passphrases: [], sources: [] };
  for (const f of options.identityFiles ?? []) {
    const path = resolve(options.cwd, f);
    let text: string;
    try {
      const st = await stat(path);
      if ((st.mode & 0o077) !== 0) {
        throw new DeployToolError(
          'ERR_KEY_INVALID',
          `Identity file ${path} is readable by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`,
          {
            hint: `Restrict it to its owner: chmod 600 ${path}`,
          },
        );
      }
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (err instanceof DeployToolError) throw err;
      if (errnoCode(err) === 'ENOENT') {
        throw new DeployToolError('ERR_DECRYPT_NO_KEY', `Identity file not found: ${path}`, {
          hint: 'Pass the age identity file (made by "age-keygen -o FILE") that matches a recipient of the archive.',
        });
      }
      throw fsError(err, path, 'read');
    }
    const ids = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const id of ids) registerSecret(id);
    const bad = ids.find((l) => !/^AGE-SECRET-KEY-(PQ-)?1[0-9A-Z]+$/.test(l));
    if (bad !== undefined || ids.length === 0) {
      throw new DeployToolError('ERR_KEY_INVALID', `${path} is not an age identity file`, {
        hint: 'Identity files hold lines starting with AGE-SECRET-KEY-1 (see "age-keygen"); plugin and SSH identities are not supported.',
      });
    }
    keys.identities.push(...ids);
    keys.sources.push(`identity file ${path}`);
  }
  if (options.passphraseEnv) {
    keys.passphrases.push(passphraseFromEnv(options.passphraseEnv, options.env));
    keys.sources.push(`passphrase from $${options.passphraseEnv}`);
  }
  return keys;
}

function decryptError(what: string, e: Encryption, keys: DecryptionKeys, err: unknown): DeployToolError {
  const msg = (err as Error).message ?? String(err);
  if (/no identity matched/.test(msg)) {
    if (e.passphrase) {
      return new DeployToolError('ERR_DECRYPT_FAILED', `Cannot decrypt ${what}: wrong passphrase`, {
        hint: 'The archive is encrypted with a passphrase; check the variable given to --passphrase-env.',
      });
    }
    return new DeployToolError(
      'ERR_DECRYPT_FAILED',
      `Cannot decrypt ${what}: none of the given identities (${keys.sources.join(', ')}) matches its recipients (${e.recipients.join(', ')})`,
      { hint: 'Pass --identity with the age secret key of one of these recipients.' },
    );
  }
  return new DeployToolError(
    'ERR_DECRYPT_FAILED',
    `Cannot decrypt ${what}: the ciphertext is damaged (${msg})`,
    {
      hint: 'The encrypted archive was altered or truncated. Transfer or publish it again.',
    },
  );
}

/**
 * Checks the ciphertext (size and sha256, against the manifest), decrypts it into `outPath`
 * (0600), and returns. The plaintext is verified afterwards by the normal archive reader.
 */
export async function decryptArchive(
  source: ArchiveSource,
  manifest: ComponentManifest,
  keys: DecryptionKeys,
  outPath: string,
): Promise<void> {
  const e = manifest.encryption;
  if (!e) throw new Error('internal: archive is not encrypted');
  const what = `${manifest.type}:${manifest.version} (${source.location})`;
  if (e.passphrase && keys.passphrases.length === 0) {
    throw new DeployToolError(
      'ERR_DECRYPT_NO_KEY',
      `${manifest.type}:${manifest.version} is encrypted with a passphrase, and none was given`,
      {
        hint: 'Pass --passphrase-env VAR, naming the environment variable that holds the passphrase.',
      },
    );
  }
  if (!e.passphrase && keys.identities.length === 0) {
    throw new DeployToolError(
      'ERR_DECRYPT_NO_KEY',
      `${manifest.type}:${manifest.version} is encrypted to age recipients, and no identity was given`,
      {
        hint: `Pass --identity FILE with the age secret key of one of: ${e.recipients.join(', ')}.`,
      },
    );
  }
  const size = await source.size();
  if (size !== e.size) {
    throw new DeployToolError(
      'ERR_ARCHIVE_CORRUPT',
      `${source.location}: encrypted archive has ${size} bytes, the manifest says ${e.size}`,
      {
        hint:
          size < e.size
            ? 'The archive is truncated: transfer it again.'
            : 'The archive does not belong to this manifest. Transfer or publish it again.',
      },
    );
  }
  // First pass: the ciphertext must be exactly the one the (signed) manifest names. A changed byte
  // is reported as such, before any decryption (sha256 is ~40x faster than the decryption).
  const chunk = 4 * 1024 * 1024;
  const hash = createHash('sha256');
  for (let off = 0; off < size; off += chunk)
    hash.update(await source.read(off, Math.min(chunk, size - off)));
  const digest = hash.digest('hex');
  if (digest !== e.sha256) {
    throw new DeployToolError(
      'ERR_ARCHIVE_CORRUPT',
      `${source.location}: encrypted archive sha256 is ${digest}, the manifest says ${e.sha256}`,
      { hint: 'The encrypted archive was altered. Do not deploy it; transfer or publish it again.' },
    );
  }
  let offset = 0;
  const cipher = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (offset >= size) {
        controller.close();
        return;
      }
      const n = Math.min(chunk, size - offset);
      const buf = await source.read(offset, n);
      if (buf.length !== n) {
        controller.error(new Error('the archive became shorter while it was read'));
        return;
      }
      offset += n;
      controller.enqueue(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    },
  });
  const { Decrypter } = await age();
  const dec = new Decrypter();
  for (const id of keys.identities) dec.addIdentity(id);
  for (const p of keys.passphrases) dec.addPassphrase(p);
  try {
    const plain = await dec.decrypt(cipher);
    await writeStream(plain, outPath);
  } catch (err) {
    await rm(outPath, { force: true });
    if (err instanceof DeployToolError) throw err;
    throw decryptError(what, e, keys, err);
  }
}

/**
 * An ArchiveSource of the plaintext of an encrypted archive. `size()` is answered from the
 * manifest after checking the ciphertext's size (cheap, for dry runs); the first `read()`
 * decrypts into a private temporary folder (0700; removed by `close()`).
 */
export function openDecryptedArchive(
  cipher: ArchiveSource,
  manifest: ComponentManifest,
  keys: DecryptionKeys,
  options: { tmpDir?: string | undefined } = {},
): ArchiveSource {
  const e = manifest.encryption;
  if (!e) return cipher;
  let plain: Promise<{ dir: string; source: ArchiveSource }> | undefined;
  const decrypt = (): Promise<{ dir: string; source: ArchiveSource }> =>
    (plain ??= (async () => {
      const base = options.tmpDir ?? tmpdir();
      await mkdir(base, { recursive: true, mode: 0o700 });
      const dir = await mkdtemp(join(base, 'deploy-tool-decrypt-'));
      try {
        const file = join(dir, manifest.archive.name);
        await decryptArchive(cipher, manifest, keys, file);
        return { dir, source: await openLocalArchive(file) };
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    })());
  return {
    location: `${cipher.location} (decrypted)`,
    async size() {
      if (plain) return (await plain).source.size();
      const n = await cipher.size();
      if (n !== e.size) {
        throw new DeployToolError(
          'ERR_ARCHIVE_CORRUPT',
          `${cipher.location}: encrypted archive has ${n} bytes, the manifest says ${e.size}`,
          {
            hint: 'Transfer or publish it again.',
          },
        );
      }
      return manifest.archive.size;
    },
    async read(offset, length) {
      return (await decrypt()).source.read(offset, length);
    },
    async close() {
      const p = plain;
      plain = undefined;
      if (p) {
        const r = await p.catch(() => undefined);
        if (r) {
          await r.source.close().catch(() => undefined);
          await rm(r.dir, { recursive: true, force: true });
        }
      }
      await cipher.close();
    },
  };
}

/** The file that is stored and published for a component: the ciphertext when encrypted. */
export function storedArchive(m: ComponentManifest): { name: string; size: number; sha256: string } {
  return m.encryption
    ? { name: m.encryption.name, size: m.encryption.size, sha256: m.encryption.sha256 }
    : { name: m.archive.name, size: m.archive.size, sha256: m.archive.sha256 };
}

/** The manifest as seen by a digest check of the stored file (the ciphertext when encrypted). */
export function storedDigestView(m: ComponentManifest): ComponentManifest {
  const s = storedArchive(m);
  return m.encryption ? { ...m, archive: { ...m.archive, size: s.size, sha256: s.sha256 } } : m;
}
