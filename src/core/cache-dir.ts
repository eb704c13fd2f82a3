import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * deploy-tool's folder in the user's cache: $DEPLOY_TOOL_CACHE_DIR, else $XDG_CACHE_HOME/deploy-tool
 * (~/.cache/deploy-tool). The download cache (src/store/cache.ts) lives here unless --cache-dir or
 * cache.dir moves it; the parsed-config cache (src/core/config.ts, `parsed/`) always does.
 */
export function userCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DEPLOY_TOOL_CACHE_DIR) return env.DEPLOY_TOOL_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'deploy-tool');
}
