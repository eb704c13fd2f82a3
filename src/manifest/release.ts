import * as z from 'zod';
import { DeployToolError } from '../core/errors.js';
import { checkEntryPath } from './component.js';

export const RELEASE_SCHEMA_VERSION = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

export const releaseComponentSchema = z.object({
  type: z.string().min(1).max(128),
  version: z.string().min(1).max(128),
  /** Path of the component manifest relative to the release folder. */
  manifest: z.string().min(1),
  manifestSha256: sha256,
  /** Path of the archive relative to the release folder. */
  archive: z.string().min(1),
  archiveSha256: sha256,
  archiveSize: z.number().int().min(0),
  compression: z.string(),
});
export type ReleaseComponent = z.infer<typeof releaseComponentSchema>;

export const releaseManifestSchema = z.object({
  schemaVersion: z.literal(RELEASE_SCHEMA_VERSION),
  kind: z.literal('deploy-tool/release'),
  release: z.string().min(1).max(128),
  createdAt: z.string(),
  tool: z.string(),
  notes: z.string().nullable(),
  project: z.object({ name: z.string(), type: z.string() }).nullable(),
  git: z.object({ commit: z.string(), dirty: z.boolean() }).nullable(),
  components: z.array(releaseComponentSchema).min(1).max(1000),
});
export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;

function fail(where: string, message: string): never {
  throw new DeployToolError('ERR_MANIFEST_INVALID', `${where}: ${message}`, {
    hint: 'The release manifest is damaged or was not written by deploy-tool. Publish the release again.',
  });
}

export function parseReleaseManifest(raw: unknown, where: string): ReleaseManifest {
  if (
    raw &&
    typeof raw === 'object' &&
    'schemaVersion' in raw &&
    raw.schemaVersion !== RELEASE_SCHEMA_VERSION
  ) {
    fail(
      where,
      `unknown schemaVersion ${String(raw.schemaVersion)} (this deploy-tool reads ${RELEASE_SCHEMA_VERSION})`,
    );
  }
  const parsed = releaseManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(where, `${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}`);
  }
  const m = parsed.data;
  const types = new Set<string>();
  for (const c of m.components) {
    if (types.has(c.type)) fail(where, `component type "${c.type}" appears twice`);
    types.add(c.type);
    for (const p of [c.manifest, c.archive]) {
      const bad = checkEntryPath(p);
      if (bad) fail(where, `path "${p}" ${bad}`);
    }
    if (/[/\\]|\.\./.test(c.type) || /[/\\]|\.\./.test(c.version))
      fail(where, `component "${c.type}:${c.version}" has an unsafe name`);
  }
  return m;
}

export function parseReleaseManifestText(text: string, where: string): ReleaseManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(where, `not valid JSON (${(err as Error).message})`);
  }
  return parseReleaseManifest(raw, where);
}
