import { mkdir, rm, rename, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { scanSource } from '../archive/scan.js';
import { createCodecPool } from '../archive/pool.js';
import { writeArchive } from '../archive/writer.js';
import { DEFAULT_LEVELS, LEVEL_RANGES } from '../archive/codecs.js';
import { COMPRESSIONS, type Compression } from '../core/config.js';
import { DeployToolError } from '../core/errors.js';
import type { CommonOptions } from '../core/events.js';
import { fsyncDir, tempPathFor, writeFileAtomic } from '../core/fs-atomic.js';
import { gitInfo } from '../core/git.js';
import { hashFile } from '../core/hash.js';
import { openProject } from '../core/project.js';
import { toolName } from '../core/version.js';
import { componentId, validateType, validateVersion } from '../core/validate.js';
import {
  ARCHIVE_FORMAT,
  COMPONENT_SCHEMA_VERSION,
  ENCRYPTED_COMPONENT_SCHEMA_VERSION,
  archiveExtension,
  parseComponentManifest,
  serializeManifest,
  type ComponentManifest,
} from '../manifest/component.js';
import {
  AGE_SUFFIX,
  checkEncryptSettings,
  encryptFile,
  storedArchive,
  type EncryptSettings,
} from '../trust/encrypt.js';
import { componentManifestPath, readManifestFile } from './components.js';
import {
  DEFAULT_EXCLUDES,
  analyseSource,
  packageConfigPath,
  readPackageConfig,
  writePackageConfig,
  type PackageConfig,
} from './package-config.js';

export interface PackOptions extends CommonOptions {
  path: string;
  type: string;
  version: string;
  auto?: boolean;
  compression?: string | undefined;
  level?: number | undefined;
  exclude?: string[] | undefined;
  include?: string[] | undefined;
  force?: boolean;
  /** Encrypt the archive with age (src/trust/encrypt.ts): recipients or a passphrase. */
  encrypt?: EncryptSettings | undefined;
}

export interface PackResult {
  status: 'packed' | 'unchanged' | 'replaced';
  type: string;
  version: string;
  source: string;
  archivePath: string;
  manifestPath: string;
  packageConfigPath: string | undefined;
  packageConfigWritten: boolean;
  compression: Compression;
  level: number;
  files: number;
  directories: number;
  symlinks: number;
  excluded: number;
  totalSize: number;
  archiveSize: number;
  archiveSha256: string;
  frames: number;
  git: { commit: string; dirty: boolean } | null;
  /** Set when the archive is encrypted: archivePath, archiveSize and archiveSha256 are the ciphertext's. */
  encryption: { recipients: string[]; passphrase: boolean } | null;
  seconds: number;
}

function checkCompression(value: string): Compression {
  if (!(COMPRESSIONS as readonly string[]).includes(value)) {
    throw new DeployToolError('ERR_USAGE', `Unknown compression "${value}"`, {
      hint: `Use one of: ${COMPRESSIONS.join(', ')}.`,
    });
  }
  return value as Compression;
}

export async function pack(options: PackOptions): Promise<PackResult> {
  const t0 = performance.now();
  const project = await openProject(options);
  for (const w of project.warnings) options.onWarning?.(w);
  const type = validateType(options.type);
  const version = validateVersion(options.version);
  if (!options.path) {
    throw new DeployToolError('ERR_USAGE', 'pack needs a PATH to the folder to package', {
      hint: 'Example: deploy-tool pack ./models --type model --version 1.0.0',
    });
  }
  const source = isAbsolute(options.path) ? options.path : resolve(options.cwd, options.path);
  const encrypt = options.encrypt ? await checkEncryptSettings(options.encrypt) : undefined;

  // Settings: CLI flags > package configuration (unless --auto) > analysis (--auto) > project defaults.
  const existingConfig = options.auto
    ? undefined
    : await readPackageConfig(project.paths.packageConfigs, type);
  let compression: Compression = checkCompression(
    options.compression ?? existingConfig?.compression ?? project.config.defaults?.compression ?? 'zstd',
  );
  let level =
    options.level ??
    // A saved level belongs to the saved compression: `--compression xz` must not inherit zstd's level.
    (existingConfig?.compression === compression ? existingConfig.level : undefined) ??
    (compression === (project.config.defaults?.compression ?? 'zstd')
      ? project.config.defaults?.level
      : undefined) ??
    DEFAULT_LEVELS[compression];
  let autoReason: string | undefined;
  if (options.auto) {
    await scanSource(source, { exclude: DEFAULT_EXCLUDES }); // fails early with a clear error on bad input
    const analysis = await analyseSource(source);
    if (!options.compression) {
      compression = analysis.compression;
      if (options.level === undefined) level = analysis.level;
    }
    autoReason = analysis.reason;
    options.onLog?.(`auto: ${analysis.files} files, ${analysis.totalSize} bytes; ${analysis.reason}`);
  }
  const [lo, hi] = LEVEL_RANGES[compression];
  if (level < lo || level > hi) {
    if (options.level !== undefined) {
      throw new DeployToolError(
        'ERR_USAGE',
        `--level ${level} is out of range for ${compression} (${lo}-${hi})`,
        {
          hint: `Pick a level from ${lo} to ${hi}, or leave --level out to use ${DEFAULT_LEVELS[compression]}.`,
        },
      );
    }
    level = DEFAULT_LEVELS[compression];
  }
  const exclude = [...(existingConfig?.exclude ?? DEFAULT_EXCLUDES), ...(options.exclude ?? [])];
  const include = [...(existingConfig?.include ?? []), ...(options.include ?? [])];

  options.onLog?.(`scanning ${source}`);
  // The codec workers start now: they boot while the tree is scanned (closed below, whatever happens).
  const pool = createCodecPool(undefined, { prestart: true });
  const scan = await scanSource(source, { include, exclude }).catch(async (err: unknown) => {
    await pool.close();
    throw err;
  });
  const files = scan.entries.filter((e) => e.type === 'file');
  const totalSize = files.reduce((s, e) => s + e.size, 0);
  options.onLog?.(`found ${files.length} files (${totalSize} bytes), ${scan.excluded} excluded`);

  const id = componentId({ type, version });
  const archiveName = `${id}.${archiveExtension(compression)}`;
  const archivePath = join(project.paths.dist, archiveName);
  const manifestPath = componentManifestPath(project, { type, version });
  const tmpArchive = tempPathFor(archivePath);
  let existing;
  let written;
  // The commit and dirty flag are read while the archive is written (git runs in its own process).
  const gitRead = gitInfo(project.root);
  try {
    existing = await readManifestFile(manifestPath, { type, version });
    await mkdir(project.paths.dist, { recursive: true });
    written = await writeArchive({
      entries: scan.entries,
      outPath: tmpArchive,
      compression,
      level,
      pool,
      onProgress: (done, total) =>
        options.onProgress?.({ phase: 'pack', item: id, done, total, unit: 'bytes' }),
    });
  } catch (err) {
    await rm(tmpArchive, { force: true });
    throw err;
  } finally {
    await pool.close();
  }
  // Encrypted: the stored file is the age ciphertext; the plaintext temp file is removed at once.
  let stored = { tmp: tmpArchive, path: archivePath, size: written.size, sha256: written.sha256 };
  if (encrypt) {
    const path = `${archivePath}${AGE_SUFFIX}`;
    const tmp = tempPathFor(path);
    try {
      options.onLog?.(
        `encrypting with age (${encrypt.passphrase ? 'passphrase' : `${encrypt.recipients.length} recipient(s)`})`,
      );
      stored = { tmp, path, ...(await encryptFile(tmpArchive, tmp, encrypt)) };
    } finally {
      await rm(tmpArchive, { force: true });
    }
  }
  const sameEncryption = (e: ComponentManifest['encryption']): boolean =>
    encrypt
      ? !!e &&
        e.passphrase === !!encrypt.passphrase &&
        [...e.recipients].sort().join() === [...encrypt.recipients].sort().join()
      : !e;

  const git = await gitRead;
  let status: PackResult['status'] = 'packed';
  if (existing) {
    const same =
      existing.manifest.archive.sha256 === written.sha256 &&
      existing.manifest.archive.name === archiveName &&
      sameEncryption(existing.manifest.encryption);
    if (same) {
      status = 'unchanged';
    } else if (!options.force) {
      await rm(stored.tmp, { force: true });
      throw new DeployToolError(
        'ERR_COMPONENT_EXISTS',
        `Component ${type}:${version} already exists with different content (${manifestPath})`,
        {
          hint: 'Published versions are immutable: bump --version, or pass --force to replace this unpublished one.',
          details: { existingSha256: existing.manifest.archive.sha256, newSha256: written.sha256 },
        },
      );
    } else {
      status = 'replaced';
    }
  }

  let configPath: string | undefined = existingConfig
    ? packageConfigPath(project.paths.packageConfigs, type)
    : undefined;
  let configWritten = false;
  if (options.auto) {
    const cfg: PackageConfig = {
      schema_version: 1,
      type,
      source: relative(project.root, source) || '.',
      compression,
      level,
      include: options.include ?? [],
      exclude: [...DEFAULT_EXCLUDES, ...(options.exclude ?? [])],
    };
    configPath = await writePackageConfig(project.paths.packageConfigs, cfg);
    configWritten = true;
    void autoReason;
  }

  if (status === 'unchanged' && existing?.manifest.encryption) {
    // age ciphertexts differ on every run: keep the existing one if it is intact, else write a new manifest.
    const e = existing.manifest.encryption;
    const intact = await stat(stored.path).then(
      async (s) => s.size === e.size && (await hashFile(stored.path)).sha256 === e.sha256,
      () => false,
    );
    if (intact) {
      await rm(stored.tmp, { force: true });
      stored = { ...stored, size: e.size, sha256: e.sha256 };
    } else status = 'packed';
  }
  if (status === 'unchanged') {
    // Identical content: keep the existing manifest (and its creation time); restore the archive if it was deleted.
    const present = await stat(stored.path).then(
      async (s) => s.size === stored.size && (await hashFile(stored.path)).sha256 === stored.sha256,
      () => false,
    );
    if (present) await rm(stored.tmp, { force: true });
    else {
      await rename(stored.tmp, stored.path);
      await fsyncDir(project.paths.dist);
    }
  } else {
    const manifest: ComponentManifest = {
      schemaVersion: encrypt ? ENCRYPTED_COMPONENT_SCHEMA_VERSION : COMPONENT_SCHEMA_VERSION,
      kind: 'deploy-tool/component',
      type,
      version,
      createdAt: new Date().toISOString(),
      tool: toolName(),
      source: { path: relative(project.root, source).split('\\').join('/') || '.', git },
      archive: {
        name: archiveName,
        format: ARCHIVE_FORMAT,
        compression,
        level,
        size: written.size,
        sha256: written.sha256,
        tarSize: written.tarSize,
        tarSha256: written.tarSha256,
      },
      frames: written.frames,
      files: written.entries,
      summary: {
        files: files.length,
        directories: scan.entries.filter((e) => e.type === 'directory').length,
        symlinks: scan.entries.filter((e) => e.type === 'symlink').length,
        totalSize,
      },
      ...(encrypt && {
        encryption: {
          format: 'age' as const,
          name: `${archiveName}${AGE_SUFFIX}`,
          size: stored.size,
          sha256: stored.sha256,
          recipients: encrypt.recipients,
          passphrase: !!encrypt.passphrase,
        },
      }),
    };
    parseComponentManifest(manifest, 'packed manifest'); // the index we write must pass our own reader
    // Archive first, manifest last: a manifest never names an archive that is not in place.
    await rename(stored.tmp, stored.path);
    await fsyncDir(project.paths.dist);
    const previous = existing && storedArchive(existing.manifest).name;
    if (previous && join(project.paths.dist, previous) !== stored.path) {
      await rm(join(project.paths.dist, previous), { force: true });
    }
    await writeFileAtomic(manifestPath, serializeManifest(manifest));
  }

  return {
    status,
    type,
    version,
    source,
    archivePath: stored.path,
    manifestPath,
    packageConfigPath: configPath,
    packageConfigWritten: configWritten,
    compression,
    level,
    files: files.length,
    directories: scan.entries.filter((e) => e.type === 'directory').length,
    symlinks: scan.entries.filter((e) => e.type === 'symlink').length,
    excluded: scan.excluded,
    totalSize,
    archiveSize: stored.size,
    archiveSha256: stored.sha256,
    frames: written.frames.length,
    git,
    encryption: encrypt ? { recipients: encrypt.recipients, passphrase: !!encrypt.passphrase } : null,
    seconds: (performance.now() - t0) / 1000,
  };
}
