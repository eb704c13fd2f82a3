/**
 * Tokens and roles. A token is 32 random bytes (base64url) with a `dtr_` prefix, shown once; the
 * server stores only its sha256. The public id is the first 16 hex digits of that hash (used to
 * find the row); the full hash is then compared in constant time. Roles are ordered
 * reader < publisher < admin, each scoped to namespaces or to all ('*').
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { MetadataRepo, Role, TokenRow } from './repo/types.js';

export const TOKEN_PREFIX = 'dtr_';

export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): { id: string; hash: string } {
  const hash = createHash('sha256').update(token, 'utf8').digest('hex');
  return { id: hash.slice(0, 16), hash };
}

const RANK: Record<Role, number> = { reader: 1, publisher: 2, admin: 3 };

export type Action = 'read' | 'write' | 'admin';
const NEED: Record<Action, number> = { read: 1, write: 2, admin: 3 };

export type Principal =
  { kind: 'token'; token: TokenRow; label: string } | { kind: 'anonymous'; label: 'anonymous' };

export function roleOf(p: Principal): Role {
  return p.kind === 'anonymous' ? 'reader' : p.token.role;
}

export function namespacesOf(p: Principal): string[] {
  return p.kind === 'anonymous' ? ['*'] : p.token.namespaces;
}

/** Namespaces the principal may do `action` in: null = all, [] = none. */
export function allowedNamespaces(p: Principal, action: Action): string[] | null {
  if (RANK[roleOf(p)] < NEED[action]) return [];
  const ns = namespacesOf(p);
  return ns.includes('*') ? null : ns;
}

/**
 * The default authorization rule. `namespace` is a namespace name, '*' (every namespace, for
 * server-wide operations) or 'any' (at least one; results are then filtered).
 */
export function can(p: Principal, action: Action, namespace: string): boolean {
  const allowed = allowedNamespaces(p, action);
  if (allowed === null) return true;
  if (namespace === 'any') return allowed.length > 0;
  if (namespace === '*') return false;
  return allowed.includes(namespace);
}

/** Whether `inner` scope is within `outer` scope. */
export function scopeWithin(inner: string[], outer: string[]): boolean {
  if (outer.includes('*')) return true;
  if (inner.includes('*')) return false;
  return inner.every((n) => outer.includes(n));
}

export function rankOf(role: Role): number {
  return RANK[role];
}

export type TokenCheck =
  { ok: true; token: TokenRow } | { ok: false; reason: 'unknown' | 'revoked' | 'expired' | 'malformed' };

export async function checkToken(repo: MetadataRepo, token: string, now: Date): Promise<TokenCheck> {
  if (token.length < 16 || token.length > 512) return { ok: false, reason: 'malformed' };
  const { id, hash } = hashToken(token);
  const row = await repo.getToken(id);
  // Compare even when there is no row, so that both paths cost the same.
  const stored = Buffer.from(row?.hash ?? '0'.repeat(64), 'hex');
  const given = Buffer.from(hash, 'hex');
  const equal = stored.length === given.length && timingSafeEqual(stored, given);
  if (!row || !equal) return { ok: false, reason: 'unknown' };
  if (row.revokedAt) return { ok: false, reason: 'revoked' };
  if (row.expiresAt && Date.parse(row.expiresAt) <= now.getTime()) return { ok: false, reason: 'expired' };
  return { ok: true, token: row };
}

/** Token rows as the API shows them: never the hash. */
export function publicToken(t: TokenRow): Omit<TokenRow, 'hash'> & { status: string } {
  const { hash: _hash, ...rest } = t;
  const status = t.revokedAt
    ? 'revoked'
    : t.expiresAt && Date.parse(t.expiresAt) <= Date.now()
      ? 'expired'
      : 'active';
  return { ...rest, status };
}

/**
 * Slows down repeated authentication failures from one address: after `threshold` failures in
 * `windowMs`, each further attempt waits `baseDelayMs * 2^(n - threshold)` (capped at
 * `maxDelayMs`) before it is answered; past `blockAfter` failures the address gets 429 until the
 * window ends. A success from the address clears its count.
 */
export interface FailureLimiterOptions {
  threshold: number;
  windowMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  blockAfter: number;
}

export function createFailureLimiter(options: FailureLimiterOptions) {
  const entries = new Map<string, { count: number; first: number }>();
  const current = (address: string, now: number): { count: number; first: number } | undefined => {
    const e = entries.get(address);
    if (e && now - e.first > options.windowMs) {
      entries.delete(address);
      return undefined;
    }
    return e;
  };
  return {
    /** Seconds to wait if the address is blocked now, else 0. */
    blockedFor(address: string, now = Date.now()): number {
      const e = current(address, now);
      if (!e || e.count < options.blockAfter) return 0;
      return Math.max(1, Math.ceil((e.first + options.windowMs - now) / 1000));
    },
    /** Records a failure; returns how long to delay the answer (ms). */
    fail(address: string, now = Date.now()): number {
      let e = current(address, now);
      if (!e) {
        e = { count: 0, first: now };
        entries.set(address, e);
      }
      e.count++;
      if (entries.size > 100_000) {
        for (const [k, v] of entries) if (now - v.first > options.windowMs) entries.delete(k);
      }
      if (e.count <= options.threshold) return 0;
      return Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (e.count - options.threshold - 1));
    },
    succeed(address: string): void {
      entries.delete(address);
    },
  };
}

export type FailureLimiter = ReturnType<typeof createFailureLimiter>;
