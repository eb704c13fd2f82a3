/**
 * User-facing errors carry a stable code, a message that says what went wrong and where,
 * and a hint that says what to do. Programmer errors stay plain `Error`.
 */
export type ErrorCode =
  | 'ERR_USAGE'
  | 'ERR_PROJECT_NOT_FOUND'
  | 'ERR_PROJECT_EXISTS'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_CONFIG_SECRET'
  | 'ERR_INVALID_NAME'
  | 'ERR_INVALID_VERSION'
  | 'ERR_SOURCE_NOT_FOUND'
  | 'ERR_SOURCE_EMPTY'
  | 'ERR_SOURCE_UNREADABLE'
  | 'ERR_SOURCE_SPECIAL_FILE'
  | 'ERR_SOURCE_SYMLINK_OUTSIDE'
  | 'ERR_SOURCE_CHANGED'
  | 'ERR_COMPRESSION'
  | 'ERR_COMPONENT_EXISTS'
  | 'ERR_COMPONENT_NOT_FOUND'
  | 'ERR_RELEASE_EXISTS'
  | 'ERR_RELEASE_NOT_FOUND'
  | 'ERR_MANIFEST_INVALID'
  | 'ERR_ARCHIVE_MISSING'
  | 'ERR_ARCHIVE_CORRUPT'
  | 'ERR_ARCHIVE_UNSAFE'
  | 'ERR_INDEX_MISMATCH'
  | 'ERR_TARGET_INVALID'
  | 'ERR_TARGET_NOT_WRITABLE'
  | 'ERR_NO_SPACE'
  | 'ERR_LOCKED'
  | 'ERR_NOT_DEPLOYED'
  | 'ERR_HEALTH_CHECK_FAILED'
  | 'ERR_HOOK_FAILED'
  | 'ERR_VERIFY_FAILED'
  | 'ERR_STORE'
  | 'ERR_IO'
  // trust (src/trust): keys, signatures, encryption
  | 'ERR_KEY_INVALID'
  | 'ERR_KEY_EXISTS'
  | 'ERR_UNSIGNED'
  | 'ERR_SIGNATURE_INVALID'
  | 'ERR_UNTRUSTED_KEY'
  | 'ERR_DECRYPT_FAILED'
  | 'ERR_DECRYPT_NO_KEY'
  // registry (src/registry): server and client
  | 'ERR_REGISTRY'
  | 'ERR_REGISTRY_AUTH'
  | 'ERR_CONFLICT';

export interface DeployToolErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Extra structured data for --json output. */
  details?: Record<string, unknown>;
}

export class DeployToolError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: DeployToolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeployToolError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }
}

export function isDeployToolError(err: unknown): err is DeployToolError {
  return err instanceof DeployToolError;
}

/** Node's errno code of an error, if any. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/**
 * Turns common filesystem errors into user errors naming the path; returns the original error otherwise.
 */
export function fsError(err: unknown, path: string, action: string): unknown {
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new DeployToolError('ERR_NO_SPACE', `No space left on device while trying to ${action} ${path}`, {
      hint: 'Free some disk space (or lower --keep to retain fewer releases) and run the command again.',
      cause: err,
    });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new DeployToolError('ERR_TARGET_NOT_WRITABLE', `Permission denied: cannot ${action} ${path}`, {
      hint: 'Check the ownership and permissions of that path, or run as a user who may write there.',
      cause: err,
    });
  }
  return err;
}
