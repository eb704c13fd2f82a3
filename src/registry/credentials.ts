/**
 * Where the client finds the registry and its token: `--registry URL` (or DEPLOY_TOOL_REGISTRY,
 * or the last URL logged in to), and DEPLOY_TOOL_TOKEN (or the token saved by `deploy-tool
 * login` in a user-only file: $XDG_CONFIG_HOME/deploy-tool/credentials.json, mode 0600).
 */
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DeployToolError, errnoCode } from '../core/errors.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { registerSecret } from '../core/redact.js';

interface CredentialsFile {
  version: 1;
  default: string | null;
  registries: Record<string, { token: string; savedAt: string }>;
}

export function credentialsPath(): string {
  if (process.env.DEPLOY_TOOL_CREDENTIALS) return process.env.DEPLOY_TOOL_CREDENTIALS;
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'deploy-tool', 'credentials.json');
}

/** A registry URL in one canonical form (origin + path, no trailing slash). */
export function normalizeRegistryUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DeployToolError('ERR_USAGE', `"${url}" is not a URL`, {
      hint: 'Example: https://registry.example.com',
    });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new DeployToolError('ERR_USAGE', `Registry URL "${url}" is not http(s)://`);
  if (u.username || u.password)
    throw new DeployToolError('ERR_USAGE', 'Put no credentials in the registry URL', {
      hint: 'Use deploy-tool login URL, or DEPLOY_TOOL_TOKEN.',
    });
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

async function load(): Promise<CredentialsFile> {
  try {
    const raw = JSON.parse(await readFile(credentialsPath(), 'utf8')) as Partial<CredentialsFile>;
    return { version: 1, default: raw.default ?? null, registries: raw.registries ?? {} };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { version: 1, default: null, registries: {} };
    throw new DeployToolError(
      'ERR_CONFIG_INVALID',
      `Cannot read ${credentialsPath()}: ${(err as Error).message}`,
      {
        hint: 'Delete the file and log in again.',
      },
    );
  }
}

export async function saveCredentials(url: string, token: string): Promise<string> {
  const path = credentialsPath();
  const file = await load();
  file.registries[url] = { token, savedAt: new Date().toISOString() };
  file.default = url;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
  await chmod(path, 0o600);
  return path;
}

export async function removeCredentials(url: string): Promise<boolean> {
  const file = await load();
  if (!file.registries[url]) return false;
  delete file.registries[url];
  if (file.default === url) file.default = null;
  await writeFileAtomic(credentialsPath(), `${JSON.stringify(file, null, 2)}\n`, 0o600);
  return true;
}

export interface ResolvedRegistry {
  url: string;
  token: string | undefined;
}

export async function resolveRegistry(flag: string | undefined): Promise<ResolvedRegistry> {
  const file = await load();
  const given = flag ?? process.env.DEPLOY_TOOL_REGISTRY ?? file.default ?? undefined;
  if (!given) {
    throw new DeployToolError('ERR_USAGE', 'No registry given', {
      hint: 'Pass --registry URL, set DEPLOY_TOOL_REGISTRY, or run deploy-tool login URL once.',
    });
  }
  const url = normalizeRegistryUrl(given);
  const token = process.env.DEPLOY_TOOL_TOKEN || file.registries[url]?.token;
  registerSecret(token);
  return { url, token };
}
