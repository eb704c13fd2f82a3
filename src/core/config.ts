import { statSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import * as z from 'zod';
import { userCacheDir } from './cache-dir.js';
import { DeployToolError, errnoCode } from './errors.js';
import { writeFileAtomic } from './fs-atomic.js';
import { sha256Hex } from './hash.js';
import { toolVersion } from './version.js';

export const CONFIG_FILE = '.deploy-tool.yaml';
export const CONFIG_SCHEMA_VERSION = 1;

export const COMPRESSIONS = ['zstd', 'gzip', 'bzip2', 'xz', 'lz4', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

const hookSchema = z.string().min(1);

/** One entry of `stores:`: an S3 bucket, a BOS bucket, a folder with the same layout, or a registry. */
export const storeSchema = z.object({
  type: z.enum(['s3', 'bos', 'filesystem', 'registry']),
  /** registry stores: the server's URL (the token comes from `deploy-tool login` or DEPLOY_TOOL_TOKEN). */
  url: z.string().url().optional(),
  /** registry stores: the namespace (default: the project's name). */
  namespace: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/)
    .optional(),
  bucket: z.string().min(3).max(63).optional(),
  endpoint: z.string().url().optional(),
  region: z.string().min(1).max(64).optional(),
  prefix: z.string().max(512).optional(),
  /** filesystem stores: the folder (relative to the project root, or absolute). */
  path: z.string().min(1).optional(),
  /** Path-style URLs (default: on with a custom endpoint). */
  path_style: z.boolean().optional(),
  /** Other store names tried in order when this one fails (error, timeout, checksum mismatch). */
  mirrors: z.array(z.string().min(1)).max(16).optional(),
});
export type StoreConfig = z.infer<typeof storeSchema>;

const configSchema = z.object({
  schema_version: z.literal(CONFIG_SCHEMA_VERSION),
  project: z.object({
    name: z.string().min(1),
    type: z.string().min(1),
  }),
  defaults: z
    .object({
      compression: z.enum(COMPRESSIONS).optional(),
      level: z.number().int().min(0).max(22).optional(),
      keep: z.number().int().min(1).max(1000).optional(),
    })
    .optional(),
  health_check: z.string().min(1).optional(),
  health_check_timeout: z.number().positive().optional(),
  /** Signature policy (src/trust): trusted public keys (.pub paths relative to the project root, or base64 lines). */
  trust: z
    .object({
      keys: z.array(z.string().min(1)).max(100).optional(),
      require_signatures: z.boolean().optional(),
    })
    .optional(),
  hooks: z
    .object({
      pre_deploy: hookSchema.optional(),
      post_deploy: hookSchema.optional(),
      post_rollback: hookSchema.optional(),
      timeout: z.number().positive().optional(),
    })
    .optional(),
  /**
   * Named stores (src/store/resolve.ts): `--store NAME`, `publish.store`/`deploy.store` defaults,
   * and mirrors tried in order when the store fails. Credentials never live here.
   */
  stores: z.record(z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/), storeSchema).optional(),
  /** Download cache for remote stores: folder (default: XDG cache) and size cap (default 10 GB). */
  cache: z
    .object({
      dir: z.string().min(1).optional(),
      max_size: z
        .union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*[kKmMgGtT]?i?[bB]?$/)])
        .optional(),
    })
    .optional(),
  /** Deploy targets: `target` is the default (a name or a path), `targets` maps names to folders. */
  deploy: z
    .object({
      target: z.string().min(1).optional(),
      targets: z.record(z.string(), z.string().min(1)).optional(),
      /**
       * Mixed stores: component type -> `stores:` name that component is published to (with a
       * release) and deployed from; other components use the command's method or store.
       */
      components: z.record(z.string().min(1), z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/)).optional(),
    })
    .optional(),
});

export type ProjectConfig = z.infer<typeof configSchema>;

/**
 * Key names that mean someone put a credential in a committed file: any key whose words (split at
 * `_`, `-`, `.` and camelCase) include one of SECRET_WORDS, or one of SECRET_PAIRS in a row, in any
 * case and with any prefix (`aws_secret_access_key`, `bos_secret_access_key`, `session_token`,
 * `secretKey`, `credentials`, ...). A key whose last word is one of REFERENCE_WORDS names where a
 * secret lives (`passphrase_env`, `token_env`, `credentials_file`), not the secret: it is allowed.
 */
const SECRET_WORDS = new Set([
  'secret',
  'secrets',
  'password',
  'passwd',
  'passphrase',
  'token',
  'credential',
  'credentials',
  'apikey',
  'privatekey',
  'accesskey',
  'secretkey',
]);
const SECRET_PAIRS = new Set(['private key', 'api key', 'access key', 'secret key', 'signing key']);
const REFERENCE_WORDS = new Set(['env', 'var', 'variable', 'file', 'path', 'command', 'cmd']);
/** Maps whose keys are the user's own names (a store called "tokens" is not a secret). */
const NAME_MAPS = new Set(['stores', 'deploy.targets']);
/** A URL with a password in it (`https://user:pass@host`). */
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:[^/@\s]+@/i;

export function isSecretKey(key: string): boolean {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  if (words.length === 0 || REFERENCE_WORDS.has(words[words.length - 1]!)) return false;
  return words.some((w, i) => SECRET_WORDS.has(w) || SECRET_PAIRS.has(`${w} ${words[i + 1] ?? ''}`));
}

function findSecretKeys(value: unknown, path: string[] = []): string[] {
  if (!value || typeof value !== 'object') return [];
  const found: string[] = [];
  const names = NAME_MAPS.has(path.join('.'));
  for (const [k, v] of Object.entries(value)) {
    const at = [...path, k].join('.');
    if (!names && !Array.isArray(value) && isSecretKey(k) && v !== null && v !== '') found.push(at);
    else if (typeof v === 'string' && URL_WITH_PASSWORD.test(v.trim()))
      found.push(`${at} (a URL with a password)`);
    found.push(...findSecretKeys(v, [...path, k]));
  }
  return found;
}

function unknownKeys(value: unknown, schema: z.ZodType, path: string[] = []): string[] {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return [];
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault) inner = inner.unwrap() as z.ZodType;
  if (!(inner instanceof z.ZodObject)) return [];
  const shape = inner.shape as Record<string, z.ZodType>;
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const child = shape[k];
    if (!child) out.push([...path, k].join('.'));
    else out.push(...unknownKeys(v, child, [...path, k]));
  }
  return out;
}

export interface LoadedConfig {
  config: ProjectConfig;
  warnings: string[];
}

/** Parses and validates the text of a `.deploy-tool.yaml`. `where` names the file in errors. */
export function parseConfig(text: string, where: string): LoadedConfig {
  const { config, unknown } = parseConfigText(text, where);
  return { config, warnings: unknownKeyWarnings(unknown, where) };
}

const unknownKeyWarnings = (keys: string[], where: string): string[] =>
  keys.map((k) => `${where}: unknown key "${k}" ignored`);

function parseConfigText(text: string, where: string): { config: ProjectConfig; unknown: string[] } {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    throw new DeployToolError(
      'ERR_CONFIG_INVALID',
      `${where} is not valid YAML: ${first?.message ?? 'parse error'}`,
      {
        hint: 'Fix the YAML syntax at the line shown.',
      },
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 50 });
  } catch (err) {
    throw new DeployToolError('ERR_CONFIG_INVALID', `${where} could not be read: ${(err as Error).message}`, {
      hint: 'Remove excessive YAML aliases or anchors from the file.',
    });
  }
  const secrets = findSecretKeys(raw);
  if (secrets.length > 0) {
    throw new DeployToolError('ERR_CONFIG_SECRET', `${where} contains a credential (${secrets.join(', ')})`, {
      hint:
        'Never commit secrets. Remove the key and provide credentials through the environment ' +
        '(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, BOS_ACCESS_KEY_ID/BOS_SECRET_ACCESS_KEY, DEPLOY_TOOL_TOKEN) ' +
        'or a standard credentials file (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials). ' +
        'Where an option names the variable that holds a secret, use its *_env form (for example --passphrase-env).',
    });
  }
  const version = (raw as { schema_version?: unknown } | null)?.schema_version;
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw) && version !== CONFIG_SCHEMA_VERSION) {
    const newer = typeof version === 'number' && version > CONFIG_SCHEMA_VERSION;
    throw new DeployToolError(
      'ERR_CONFIG_INVALID',
      version === undefined
        ? `${where}: schema_version is missing (this deploy-tool reads schema_version ${CONFIG_SCHEMA_VERSION})`
        : `${where}: schema_version ${JSON.stringify(version)} is not one this deploy-tool reads (it reads ${CONFIG_SCHEMA_VERSION})`,
      {
        hint: newer
          ? `The file was written by a newer deploy-tool: upgrade deploy-tool (this is ${toolVersion()}).`
          : `Set "schema_version: ${CONFIG_SCHEMA_VERSION}" at the top of ${CONFIG_FILE}; docs/formats.md lists its fields.`,
      },
    );
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue?.path.length ? issue.path.join('.') : '(top level)';
    throw new DeployToolError('ERR_CONFIG_INVALID', `${where}: ${at}: ${issue?.message ?? 'invalid'}`, {
      hint: `See docs/formats.md for the fields of ${CONFIG_FILE} (schema_version ${CONFIG_SCHEMA_VERSION}).`,
    });
  }
  return { config: result.data, unknown: unknownKeys(raw, configSchema) };
}

/**
 * The parsed-config cache: every command starts by reading `.deploy-tool.yaml`, and parsing YAML
 * and checking the schema in a fresh process costs about 10 ms, a fifth of a config-only
 * redeploy. A config that parsed and validated is kept as JSON under
 * `<user cache>/parsed/config-<sha256 of the text>.json` with the build of deploy-tool that
 * checked it (codeStamp); the next run with the same text and the same build reads that instead.
 * Any other text, build or an unreadable entry means a full parse (and a new entry); files that fail are never
 * kept, so their errors show on every run. The cache is only ever an optimization: a failure to
 * read or write it is ignored. DEPLOY_TOOL_CONFIG_CACHE=0 turns it off. Format: docs/formats.md.
 */
export const PARSED_CONFIG_KIND = 'deploy-tool/parsed-config';
export const PARSED_CONFIG_SCHEMA_VERSION = 1;
/** Entries kept in `parsed/` (each a few hundred bytes); past it, the oldest are removed. */
export const PARSED_CONFIG_MAX_ENTRIES = 64;

interface ParsedConfigEntry {
  schemaVersion: number;
  kind: string;
  tool: string;
  configSchemaVersion: number;
  sha256: string;
  config: ProjectConfig;
  unknownKeys: string[];
}

export interface LoadConfigOptions {
  /** Folder of the parsed-config cache (default: `parsed` in userCacheDir()); false: no cache. */
  cacheDir?: string | false | undefined;
  env?: NodeJS.ProcessEnv | undefined;
}

let stamp: string | undefined;
/**
 * The build that parses: the tool's version and the size and modification time of the code file
 * this function runs from (the CLI bundle, dist/core/config.js, or this source under tests), so a
 * rebuilt or edited deploy-tool never trusts what an older one checked.
 */
export function codeStamp(): string {
  if (stamp) return stamp;
  let code = 'unknown';
  try {
    const st = statSync(fileURLToPath(import.meta.url));
    code = `${st.size}-${Math.trunc(st.mtimeMs)}`;
  } catch {
    // No file to stat (an unusual loader): the version alone.
  }
  stamp = `${toolVersion()}+${code}`;
  return stamp;
}

export function parsedConfigCacheDir(o: LoadConfigOptions = {}): string | undefined {
  const env = o.env ?? process.env;
  if (o.cacheDir === false || env.DEPLOY_TOOL_CONFIG_CACHE === '0') return undefined;
  return o.cacheDir ?? join(userCacheDir(env), 'parsed');
}

async function readParsedConfig(file: string, sha256: string): Promise<ParsedConfigEntry | undefined> {
  try {
    const e = JSON.parse(await readFile(file, 'utf8')) as Partial<ParsedConfigEntry> | null;
    const ok =
      e?.schemaVersion === PARSED_CONFIG_SCHEMA_VERSION &&
      e.kind === PARSED_CONFIG_KIND &&
      e.tool === codeStamp() &&
      e.configSchemaVersion === CONFIG_SCHEMA_VERSION &&
      e.sha256 === sha256 &&
      typeof e.config === 'object' &&
      e.config !== null &&
      Array.isArray(e.unknownKeys);
    return ok ? (e as ParsedConfigEntry) : undefined;
  } catch {
    return undefined;
  }
}

async function writeParsedConfig(dir: string, file: string, entry: ParsedConfigEntry): Promise<void> {
  try {
    await writeFileAtomic(file, `${JSON.stringify(entry)}\n`);
    const names = (await readdir(dir)).filter((n) => /^config-[0-9a-f]{64}\.json$/.test(n));
    if (names.length <= PARSED_CONFIG_MAX_ENTRIES) return;
    const aged = await Promise.all(
      names.map(async (n) => ({ n, t: (await stat(join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })),
    );
    aged.sort((a, b) => a.t - b.t);
    for (const { n } of aged.slice(0, names.length - PARSED_CONFIG_MAX_ENTRIES))
      await rm(join(dir, n), { force: true });
  } catch {
    // Only an optimization: a read-only or full cache folder means parsing next time too.
  }
}

export async function loadConfig(path: string, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new DeployToolError('ERR_PROJECT_NOT_FOUND', `Project root not found: ${path} does not exist`, {
        hint: 'Run "deploy-tool init" to create a project, or pass --project-root.',
      });
    }
    throw err;
  }
  const dir = parsedConfigCacheDir(options);
  if (dir === undefined) return parseConfig(text, path);
  const sha256 = sha256Hex(text);
  const file = join(dir, `config-${sha256}.json`);
  const hit = await readParsedConfig(file, sha256);
  if (hit) return { config: hit.config, warnings: unknownKeyWarnings(hit.unknownKeys, path) };
  const { config, unknown } = parseConfigText(text, path);
  await writeParsedConfig(dir, file, {
    schemaVersion: PARSED_CONFIG_SCHEMA_VERSION,
    kind: PARSED_CONFIG_KIND,
    tool: codeStamp(),
    configSchemaVersion: CONFIG_SCHEMA_VERSION,
    sha256,
    config,
    unknownKeys: unknown,
  });
  return { config, warnings: unknownKeyWarnings(unknown, path) };
}

export function renderInitialConfig(name: string, type: string): string {
  return `# deploy-tool project configuration (marks the project root). See docs/formats.md.
schema_version: ${CONFIG_SCHEMA_VERSION}
project:
  name: ${JSON.stringify(name)}
  type: ${JSON.stringify(type)}
defaults:
  compression: zstd
  level: 3
  keep: 5
# health_check: "python -c 'import model'"   # run in the target after each switch
# hooks:
#   pre_deploy: "echo about to deploy"
#   post_deploy: "systemctl restart my-model"
#   post_rollback: "systemctl restart my-model"
#   timeout: 300
`;
}
