import * as z from 'zod';
import { COMPRESSIONS } from '../core/config.js';
import { DeployToolError } from '../core/errors.js';

export const COMPONENT_SCHEMA_VERSION = 1;
/** Schema version of manifests of encrypted components (version 1 plus `encryption`). */
export const ENCRYPTED_COMPONENT_SCHEMA_VERSION = 2;
export const ARCHIVE_FORMAT = 'deploy-tool-framed-tar/1';

/** Limits that keep a hostile manifest from making us allocate or loop without bound. */
export const LIMITS = {
  maxFrameTarSize: 16 * 1024 * 1024,
  maxFrameSize: 32 * 1024 * 1024,
  maxFiles: 5_000_000,
  maxPathBytes: 4096,
  maxSize: 2 ** 50,
};

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
const uint = z.number().int().min(0).max(LIMITS.maxSize);
// Four octal digits; the first (setuid 4, setgid 2, sticky 1) may be set by a foreign packer and is
// accepted so that the header check still proves the tar matches, but it is stripped on extraction.
const mode = z.string().regex(/^[0-7]{4}$/, 'must be four octal digits like 0644');

export const frameSchema = z.object({
  offset: uint,
  size: z.number().int().min(1).max(LIMITS.maxFrameSize),
  tarOffset: uint,
  tarSize: z.number().int().min(1).max(LIMITS.maxFrameTarSize),
  sha256,
});
export type Frame = z.infer<typeof frameSchema>;

const entryBase = {
  path: z.string().min(1).max(LIMITS.maxPathBytes, `is longer than ${LIMITS.maxPathBytes} characters`),
  mode,
  /** Offset in the uncompressed tar stream of the entry's first header block (PAX header if any). */
  header: uint,
};

export const fileEntrySchema = z.object({
  ...entryBase,
  type: z.literal('file'),
  size: uint,
  sha256,
  /** Offset in the uncompressed tar stream where the file's data starts. */
  offset: uint,
});
export const dirEntrySchema = z.object({ ...entryBase, type: z.literal('directory') });
export const symlinkEntrySchema = z.object({
  ...entryBase,
  type: z.literal('symlink'),
  target: z.string().min(1).max(LIMITS.maxPathBytes),
});
export const entrySchema = z.discriminatedUnion('type', [
  fileEntrySchema,
  dirEntrySchema,
  symlinkEntrySchema,
]);
export type FileEntry = z.infer<typeof fileEntrySchema>;
export type DirEntry = z.infer<typeof dirEntrySchema>;
export type SymlinkEntry = z.infer<typeof symlinkEntrySchema>;
export type Entry = z.infer<typeof entrySchema>;

/** The stored archive is the plaintext archive encrypted with age (src/trust/encrypt.ts). */
export const encryptionSchema = z.object({
  format: z.literal('age'),
  /** File name of the ciphertext: the archive's name plus ".age". */
  name: z.string().min(1).max(255),
  size: uint,
  sha256,
  /** Public keys (age1...) it was encrypted to; empty when a passphrase was used. */
  recipients: z.array(z.string().regex(/^age1[0-9a-z]{10,2000}$/, 'must be an age recipient')).max(100),
  passphrase: z.boolean(),
});
export type Encryption = z.infer<typeof encryptionSchema>;

export const componentManifestSchema = z.object({
  schemaVersion: z.union([
    z.literal(COMPONENT_SCHEMA_VERSION),
    z.literal(ENCRYPTED_COMPONENT_SCHEMA_VERSION),
  ]),
  kind: z.literal('deploy-tool/component'),
  type: z.string().min(1),
  version: z.string().min(1),
  createdAt: z.string(),
  tool: z.string(),
  source: z.object({
    path: z.string(),
    git: z.object({ commit: z.string(), dirty: z.boolean() }).nullable(),
  }),
  archive: z.object({
    name: z.string().min(1),
    format: z.literal(ARCHIVE_FORMAT),
    compression: z.enum(COMPRESSIONS),
    level: z.number().int().min(0).max(22),
    size: uint,
    sha256,
    tarSize: uint,
    tarSha256: sha256,
  }),
  frames: z.array(frameSchema).min(1).max(LIMITS.maxFiles),
  files: z.array(entrySchema).max(LIMITS.maxFiles),
  summary: z.object({
    files: uint,
    directories: uint,
    symlinks: uint,
    totalSize: uint,
  }),
  encryption: encryptionSchema.optional(),
});
export type ComponentManifest = z.infer<typeof componentManifestSchema>;

export function archiveExtension(compression: ComponentManifest['archive']['compression']): string {
  switch (compression) {
    case 'zstd':
      return 'tar.zst';
    case 'gzip':
      return 'tar.gz';
    case 'bzip2':
      return 'tar.bz2';
    case 'xz':
      return 'tar.xz';
    case 'lz4':
      return 'tar.lz4';
    case 'none':
      return 'tar';
  }
}

function fail(where: string, message: string): never {
  throw new DeployToolError('ERR_MANIFEST_INVALID', `${where}: ${message}`, {
    hint: 'The manifest does not describe a valid archive. Re-pack the component, or fetch the manifest again.',
  });
}

/** Checks a path inside an archive: relative, normalized, no `..`, no NUL, no empty segments. */
export function checkEntryPath(path: string): string | undefined {
  if (path.includes('\0')) return 'contains a NUL byte';
  if (path.startsWith('/')) return 'is absolute';
  if (path.includes('\\')) return 'contains a backslash';
  const parts = path.split('/');
  for (const part of parts) {
    if (part === '' || part === '.') return 'has an empty or "." segment';
    if (part === '..') return 'contains ".."';
  }
  if (Buffer.byteLength(path) > LIMITS.maxPathBytes) return 'is too long';
  // Lone surrogates are not Unicode: the filesystem would store U+FFFD, not this name.
  if (/\p{Cs}/u.test(path)) return 'is not valid Unicode';
  if (parts.some((p) => Buffer.byteLength(p) > 255)) return 'has a name longer than 255 bytes';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) return 'contains a control character';
  return undefined;
}

/** Key under which two paths collide on a case-insensitive or normalizing filesystem. */
export function pathCollisionKey(path: string): string {
  return path.normalize('NFC').toLowerCase();
}

const roundUp512 = (n: number): number => Math.ceil(n / 512) * 512;

/**
 * Validates the structure and internal consistency of a component manifest: schema, frame tiling,
 * entry ordering and ranges, unique paths. It does not read the archive (see archive/reader).
 */
export function parseComponentManifest(raw: unknown, where: string): ComponentManifest {
  if (
    raw &&
    typeof raw === 'object' &&
    'schemaVersion' in raw &&
    raw.schemaVersion !== COMPONENT_SCHEMA_VERSION &&
    raw.schemaVersion !== ENCRYPTED_COMPONENT_SCHEMA_VERSION
  ) {
    fail(
      where,
      `unknown schemaVersion ${String(raw.schemaVersion)} (this deploy-tool reads ${COMPONENT_SCHEMA_VERSION} and ${ENCRYPTED_COMPONENT_SCHEMA_VERSION})`,
    );
  }
  const parsed = componentManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(where, `${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}`);
  }
  const m = parsed.data;
  // The archive name becomes a file name in dist/ and in release folders: one safe path segment.
  if (checkEntryPath(m.archive.name) || m.archive.name.includes('/'))
    fail(where, `archive.name "${m.archive.name}" is not a plain file name`);
  if ((m.schemaVersion === ENCRYPTED_COMPONENT_SCHEMA_VERSION) !== (m.encryption !== undefined))
    fail(
      where,
      `schemaVersion ${m.schemaVersion} ${m.encryption ? 'cannot' : 'must'} describe an encrypted archive`,
    );
  if (m.encryption) {
    const e = m.encryption;
    if (e.name !== `${m.archive.name}.age` || checkEntryPath(e.name) || e.name.includes('/'))
      fail(where, `encryption.name must be "${m.archive.name}.age"`);
    if (e.recipients.length > 0 === e.passphrase)
      fail(where, 'encryption must name recipients or a passphrase, not both');
  }
  // Frames tile the archive and the tar stream exactly.
  let off = 0;
  let tarOff = 0;
  m.frames.forEach((f, i) => {
    if (f.offset !== off) fail(where, `frame ${i} starts at ${f.offset}, expected ${off} (gap or overlap)`);
    if (f.tarOffset !== tarOff)
      fail(where, `frame ${i} covers tar offset ${f.tarOffset}, expected ${tarOff}`);
    off += f.size;
    tarOff += f.tarSize;
  });
  if (off !== m.archive.size) fail(where, `frames cover ${off} bytes but the archive has ${m.archive.size}`);
  if (tarOff !== m.archive.tarSize)
    fail(where, `frames cover ${tarOff} tar bytes but the tar has ${m.archive.tarSize}`);
  if (m.archive.tarSize % 512 !== 0 || m.archive.tarSize < 1024)
    fail(where, 'tar size is not a whole number of blocks');
  // Entries are in stream order, non-overlapping, inside the tar, with unique paths.
  const seen = new Map<string, string>();
  const dirs = new Set<string>();
  const kinds = new Map<string, Entry['type']>();
  let next = 0;
  let files = 0;
  let directories = 0;
  let symlinks = 0;
  let totalSize = 0;
  for (const e of m.files) {
    const bad = checkEntryPath(e.path);
    if (bad) fail(where, `entry "${e.path}" ${bad}`);
    const key = pathCollisionKey(e.path);
    const prev = seen.get(key);
    if (prev !== undefined) fail(where, `entries "${prev}" and "${e.path}" name the same file`);
    seen.set(key, e.path);
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    if (parent && !dirs.has(parent)) {
      const kind = kinds.get(parent);
      if (kind === 'symlink')
        fail(
          where,
          `entry "${e.path}" lies below the symlink "${parent}" (a path through a symlink can leave the folder)`,
        );
      if (kind === 'file') fail(where, `entry "${e.path}" lies below the file "${parent}"`);
      fail(where, `entry "${e.path}" comes before its folder "${parent}"`);
    }
    kinds.set(e.path, e.type);
    if (e.header < next) fail(where, `entry "${e.path}" overlaps the previous entry`);
    if (e.header % 512 !== 0) fail(where, `entry "${e.path}" header is not block aligned`);
    if (e.type === 'file') {
      if (e.offset <= e.header || e.offset % 512 !== 0)
        fail(where, `entry "${e.path}" data offset is invalid`);
      next = e.offset + roundUp512(e.size);
      files++;
      totalSize += e.size;
    } else {
      next = e.header + 512;
      if (e.type === 'directory') {
        dirs.add(e.path);
        directories++;
      } else {
        symlinks++;
      }
    }
    if (next > m.archive.tarSize - 1024) fail(where, `entry "${e.path}" lies past the end of the tar stream`);
  }
  const s = m.summary;
  if (
    s.files !== files ||
    s.directories !== directories ||
    s.symlinks !== symlinks ||
    s.totalSize !== totalSize
  ) {
    fail(where, 'summary does not match the file list');
  }
  return m;
}

export function parseComponentManifestText(text: string, where: string): ComponentManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(where, `not valid JSON (${(err as Error).message})`);
  }
  return parseComponentManifest(raw, where);
}

/** Canonical JSON: sorted keys, no whitespace; what digests and signatures are computed over. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

/** The bytes we write for a manifest: pretty JSON (diff-friendly in git) with a trailing newline. */
export function serializeManifest(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
