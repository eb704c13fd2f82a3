/**
 * Package configurations (deployment/package-configs/TYPE.yaml): the settings pack used for a
 * component type, written by --auto and reused (and editable) afterwards.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import * as z from 'zod';
import { COMPRESSIONS, type Compression } from '../core/config.js';
import { DeployToolError, errnoCode } from '../core/errors.js';
import { writeFileAtomic } from '../core/fs-atomic.js';

export const PACKAGE_CONFIG_SCHEMA_VERSION = 1;

const schema = z.object({
  schema_version: z.literal(PACKAGE_CONFIG_SCHEMA_VERSION),
  type: z.string(),
  source: z.string().optional(),
  compression: z.enum(COMPRESSIONS),
  level: z.number().int().min(0).max(22),
  include: z.array(z.string()).default([]),
  exclude: z.array(z.string()).default([]),
});
export type PackageConfig = z.infer<typeof schema>;

export const DEFAULT_EXCLUDES = [
  '.git',
  '.git/**',
  '__pycache__',
  '**/__pycache__',
  '*.pyc',
  '.DS_Store',
  '*.swp',
  '*~',
];

export function packageConfigPath(dir: string, type: string): string {
  return join(dir, `${type}.yaml`);
}

export async function readPackageConfig(dir: string, type: string): Promise<PackageConfig | undefined> {
  const path = packageConfigPath(dir, type);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  const doc = parseDocument(text);
  if (doc.errors.length) {
    throw new DeployToolError(
      'ERR_CONFIG_INVALID',
      `${path} is not valid YAML: ${doc.errors[0]?.message ?? ''}`,
      {
        hint: 'Fix the file, or delete it and run pack with --auto to write a new one.',
      },
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 50 });
  } catch (err) {
    throw new DeployToolError('ERR_CONFIG_INVALID', `${path} could not be read: ${(err as Error).message}`, {
      hint: 'Remove excessive YAML aliases or anchors from the file, or delete it and pack with --auto.',
    });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DeployToolError(
      'ERR_CONFIG_INVALID',
      `${path}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
      {
        hint: 'See docs/formats.md (package configuration), or delete the file and pack with --auto.',
      },
    );
  }
  return parsed.data;
}

export async function writePackageConfig(dir: string, config: PackageConfig): Promise<string> {
  const path = packageConfigPath(dir, config.type);
  const body = `# Written by "deploy-tool pack --auto"; edit freely, pack reuses it for type "${config.type}".\n${stringify(config)}`;
  await writeFileAtomic(path, body);
  return path;
}

const COMPRESSED_EXT = new Set([
  '.gz',
  '.tgz',
  '.zst',
  '.xz',
  '.bz2',
  '.lz4',
  '.zip',
  '.7z',
  '.rar',
  '.jpg',
  '.jpeg',
  '.png',
  '.gif',
  '.webp',
  '.mp4',
  '.mp3',
  '.ogg',
  '.webm',
  '.avif',
]);

export interface AutoAnalysis {
  files: number;
  totalSize: number;
  compressedShare: number;
  compression: Compression;
  level: number;
  reason: string;
}

/** Looks at a folder and picks settings: zstd 3, or zstd 1 when most bytes are already compressed. */
export async function analyseSource(root: string): Promise<AutoAnalysis> {
  let files = 0;
  let totalSize = 0;
  let compressedBytes = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      if (name === '.git' || name === '__pycache__') continue;
      const abs = join(dir, name);
      const st = await stat(abs).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) await walk(abs);
      else if (st.isFile()) {
        files++;
        totalSize += st.size;
        if (COMPRESSED_EXT.has(extname(name).toLowerCase())) compressedBytes += st.size;
      }
    }
  };
  await walk(root);
  void relative;
  const share = totalSize ? compressedBytes / totalSize : 0;
  if (share > 0.8) {
    return {
      files,
      totalSize,
      compressedShare: share,
      compression: 'zstd',
      level: 1,
      reason: 'most bytes are already compressed',
    };
  }
  return {
    files,
    totalSize,
    compressedShare: share,
    compression: 'zstd',
    level: 3,
    reason: 'zstd level 3: fast, with gzip-level ratio',
  };
}
