/**
 * Turns `--method s3|bos --bucket B [--endpoint] [--region] [--prefix]`, `--method registry
 * --registry URL [--namespace NS]` or `--store NAME` (a `stores:` entry of .deploy-tool.yaml)
 * into Store drivers: the store itself and its mirrors, in the order they are tried. Credentials
 * are never read from the config (see core/config.ts). The S3 endpoint defaults to the standard
 * AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL environment variables when neither flag nor config sets it.
 */
import { isAbsolute, resolve } from 'node:path';
import type { ProjectConfig, StoreConfig } from '../core/config.js';
import { DeployToolError } from '../core/errors.js';
import { createFilesystemStore } from './drivers/filesystem.js';
import { createBosStore, createS3Store } from './drivers/s3.js';
import { createRegistryLayoutStore } from './registry-layout.js';
import type { Store } from './types.js';

export interface StoreFlags {
  method?: string | undefined;
  store?: string | undefined;
  bucket?: string | undefined;
  endpoint?: string | undefined;
  region?: string | undefined;
  prefix?: string | undefined;
  /** registry: the server URL, and the namespace (default: the project's name). */
  registry?: string | undefined;
  namespace?: string | undefined;
}

export interface NamedStore {
  /** The `stores:` name, or "s3"/"bos"/"registry" for a store given by flags. */
  name: string;
  type: StoreConfig['type'];
  store: Store;
}

export interface ResolvedStore extends NamedStore {
  /** Fallbacks in priority order (the store's `mirrors:`). */
  mirrors: NamedStore[];
}

export const REMOTE_METHODS = ['s3', 'bos', 'registry'] as const;

/** `--registry URL` alone (or with the default `--method filesystem`) means the registry method. */
export function effectiveMethod(flags: StoreFlags): string | undefined {
  if (flags.registry === undefined) return flags.method;
  if (flags.method === undefined || flags.method === 'filesystem' || flags.method === 'registry')
    return 'registry';
  throw new DeployToolError('ERR_USAGE', `--registry does not go with --method ${flags.method}`, {
    hint: 'Use --method registry --registry URL, or drop --registry.',
  });
}

/** True when the flags ask for a store (bucket or registry) rather than the filesystem method. */
export function wantsStore(flags: StoreFlags): boolean {
  const m = effectiveMethod(flags);
  return flags.store !== undefined || m === 's3' || m === 'bos' || m === 'registry';
}

/** The registry URL and namespace a resolved registry store stands for. */
export function registryOf(
  flags: StoreFlags,
  o: ResolveStoreOptions,
): { name: string; url: string | undefined; namespace: string } | undefined {
  const cfg = flags.store !== undefined ? o.config?.stores?.[flags.store] : undefined;
  if (flags.store !== undefined && cfg?.type !== 'registry') return undefined;
  if (flags.store === undefined && effectiveMethod(flags) !== 'registry') return undefined;
  const name = flags.store ?? 'registry';
  return {
    name,
    url: flags.registry ?? cfg?.url,
    namespace: registryNamespace(name, flags.namespace ?? cfg?.namespace, o),
  };
}

function registryNamespace(name: string, given: string | undefined, o: ResolveStoreOptions): string {
  const ns = given ?? o.config?.project.name;
  if (!ns) {
    throw new DeployToolError('ERR_USAGE', `The registry store "${name}" needs a namespace`, {
      hint: 'Pass --namespace NS (the project the release was published under), or run inside the project (its name is the default).',
    });
  }
  return ns;
}

const envInt = (name: string): number | undefined => {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
};

function makeStore(name: string, cfg: StoreConfig, o: ResolveStoreOptions): Store {
  const baseDir = o.baseDir;
  if (cfg.type === 'registry') {
    return createRegistryLayoutStore({
      url: cfg.url,
      namespace: registryNamespace(name, cfg.namespace, o),
    });
  }
  if (cfg.type === 'filesystem') {
    if (!cfg.path) {
      throw new DeployToolError('ERR_CONFIG_INVALID', `stores.${name}: a filesystem store needs "path"`, {
        hint: 'Give the folder that holds the bucket layout (see docs/formats.md, "S3 bucket layout").',
      });
    }
    return createFilesystemStore({ root: isAbsolute(cfg.path) ? cfg.path : resolve(baseDir, cfg.path) });
  }
  if (!cfg.bucket) {
    throw new DeployToolError('ERR_USAGE', `The ${cfg.type} store "${name}" needs a bucket`, {
      hint: `Pass --bucket BUCKET (example: deploy-tool publish ... --method ${cfg.type} --bucket my-ml-releases), or set stores.${name}.bucket in .deploy-tool.yaml.`,
    });
  }
  const envEndpoint =
    cfg.type === 's3'
      ? process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined
      : undefined;
  const common = {
    bucket: cfg.bucket,
    endpoint: cfg.endpoint ?? envEndpoint,
    region: cfg.region,
    prefix: cfg.prefix,
    forcePathStyle: cfg.path_style,
    maxAttempts: envInt('DEPLOY_TOOL_S3_MAX_ATTEMPTS'),
    retryBaseMs: envInt('DEPLOY_TOOL_S3_RETRY_BASE_MS'),
    requestTimeoutMs: envInt('DEPLOY_TOOL_S3_TIMEOUT_MS'),
  };
  return cfg.type === 'bos' ? createBosStore(common) : createS3Store(common);
}

export interface ResolveStoreOptions {
  config?: ProjectConfig | undefined;
  /** Folder relative filesystem store paths are resolved against (the project root, else cwd). */
  baseDir: string;
}

export function resolveStore(flags: StoreFlags, o: ResolveStoreOptions): ResolvedStore {
  const stores = o.config?.stores ?? {};
  const override = (cfg: StoreConfig): StoreConfig => ({
    ...cfg,
    ...(flags.bucket !== undefined && { bucket: flags.bucket }),
    ...(flags.endpoint !== undefined && { endpoint: flags.endpoint }),
    ...(flags.region !== undefined && { region: flags.region }),
    ...(flags.prefix !== undefined && { prefix: flags.prefix }),
    ...(flags.registry !== undefined && { url: flags.registry }),
    ...(flags.namespace !== undefined && { namespace: flags.namespace }),
  });
  const named = (name: string, seen: Set<string>): StoreConfig => {
    const cfg = stores[name];
    if (!cfg) {
      const known = Object.keys(stores);
      throw new DeployToolError('ERR_USAGE', `No store named "${name}" in .deploy-tool.yaml`, {
        hint: known.length
          ? `Known stores: ${known.join(', ')}.`
          : 'Add it under "stores:" (type, bucket, endpoint, region, prefix; or type registry with url), or use --method s3|bos --bucket B.',
      });
    }
    if (seen.has(name)) {
      throw new DeployToolError('ERR_CONFIG_INVALID', `stores.${name}: mirrors form a cycle`, {
        hint: 'A store cannot be its own mirror.',
      });
    }
    return cfg;
  };

  let name: string;
  let cfg: StoreConfig;
  if (flags.store !== undefined) {
    name = flags.store;
    cfg = override(named(name, new Set()));
    const method = effectiveMethod(flags);
    if (method && method !== cfg.type && method !== 'filesystem') {
      throw new DeployToolError(
        'ERR_USAGE',
        `--method ${method} does not match store "${name}" (type ${cfg.type})`,
        { hint: 'Drop --method when you use --store.' },
      );
    }
  } else if (effectiveMethod(flags) === 'registry') {
    name = 'registry';
    cfg = override({ type: 'registry' });
  } else if (flags.method === 's3' || flags.method === 'bos') {
    name = flags.method;
    cfg = override({ type: flags.method });
  } else {
    throw new Error('internal: resolveStore without --store or --method s3|bos|registry');
  }
  const store = makeStore(name, cfg, o);
  const mirrors: NamedStore[] = [];
  const seen = new Set([name]);
  for (const m of cfg.mirrors ?? []) {
    const mc = named(m, seen);
    seen.add(m);
    mirrors.push({ name: m, type: mc.type, store: makeStore(m, mc, o) });
  }
  return { name, type: cfg.type, store, mirrors };
}
