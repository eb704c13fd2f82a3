/**
 * The registry's metadata repository: tokens, components, releases, pointers, audit log and
 * download statistics. Content bytes live in a Store; everything here is small rows. Two
 * implementations share one SQL body (`sql.ts`): SQLite (embedded, one instance) and PostgreSQL
 * (any number of stateless server instances). All writes that must not race (immutable versions,
 * pointer compare-and-swap) are single conditional statements, so they are safe across instances.
 */

export type Role = 'reader' | 'publisher' | 'admin';
export const ROLES: readonly Role[] = ['reader', 'publisher', 'admin'];

export interface TokenRow {
  /** Public id (first 16 hex digits of the token's sha256). */
  id: string;
  name: string;
  /** sha256 of the whole token, hex. The token itself is never stored. */
  hash: string;
  role: Role;
  /** Namespaces the token may act on; ['*'] means all. */
  namespaces: string[];
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface ComponentMetadata {
  description: string | null;
  author: string | null;
  license: string | null;
  framework: string | null;
  tags: string[];
}

export interface ComponentRow {
  namespace: string;
  type: string;
  version: string;
  manifestSha256: string;
  manifestSize: number;
  archiveSha256: string;
  archiveSize: number;
  archiveName: string;
  compression: string;
  files: number;
  totalSize: number;
  metadata: ComponentMetadata;
  createdAt: string;
  publishedBy: string;
}

export interface ReleaseRow {
  namespace: string;
  release: string;
  manifestSha256: string;
  notes: string | null;
  /** "type:version" of each component. */
  components: string[];
  createdAt: string;
  publishedBy: string;
}

export interface PointerRow {
  namespace: string;
  name: string;
  target: string;
  revision: number;
  updatedAt: string;
  updatedBy: string;
}

export interface AuditEvent {
  id?: number;
  at: string;
  actor: string;
  address: string;
  action: string;
  namespace: string | null;
  target: string | null;
  details: Record<string, unknown> | null;
}

export interface StatsRow {
  namespace: string;
  type: string;
  version: string;
  downloads: number;
  bytes: number;
}

export interface SearchQuery {
  /** Terms; every one must match (case-insensitive substring of names and metadata). */
  terms: string[];
  /** Namespaces the caller may read; null = all. */
  namespaces: string[] | null;
  namespace?: string | undefined;
  type?: string | undefined;
  tag?: string | undefined;
  framework?: string | undefined;
  limit: number;
}

export interface SearchResult {
  components: (ComponentRow & { downloads: number })[];
  releases: ReleaseRow[];
}

export type InsertResult = 'created' | 'exists';

export interface MetadataRepo {
  readonly kind: 'sqlite' | 'postgres';
  /** Where it is, for messages (no credentials). */
  readonly location: string;
  migrate(): Promise<void>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;

  countTokens(): Promise<number>;
  insertToken(row: TokenRow): Promise<InsertResult>;
  getToken(id: string): Promise<TokenRow | undefined>;
  listTokens(): Promise<TokenRow[]>;
  revokeToken(id: string, at: string): Promise<boolean>;
  touchToken(id: string, at: string): Promise<void>;

  insertComponent(row: ComponentRow): Promise<InsertResult>;
  getComponent(namespace: string, type: string, version: string): Promise<ComponentRow | undefined>;
  listComponents(filter: {
    namespaces: string[] | null;
    namespace?: string;
    type?: string;
    version?: string;
    limit: number;
  }): Promise<ComponentRow[]>;
  deleteComponent(namespace: string, type: string, version: string): Promise<boolean>;
  /** Namespaces whose components reference this blob (archive or manifest). */
  blobNamespaces(
    sha256: string,
  ): Promise<{ namespace: string; type: string; version: string; isArchive: boolean }[]>;

  /** Inserts the release and its component links in one transaction. */
  insertRelease(row: ReleaseRow): Promise<InsertResult>;
  getRelease(namespace: string, release: string): Promise<ReleaseRow | undefined>;
  listReleases(filter: {
    namespaces: string[] | null;
    namespace?: string;
    limit: number;
  }): Promise<ReleaseRow[]>;
  deleteRelease(namespace: string, release: string): Promise<boolean>;
  releasesUsing(namespace: string, type: string, version: string): Promise<string[]>;

  getPointer(namespace: string, name: string): Promise<PointerRow | undefined>;
  listPointers(namespace: string): Promise<PointerRow[]>;
  /**
   * Compare-and-swap: expectedRevision null creates (fails if it exists), a number replaces only
   * that revision. Returns the new row, or 'conflict' with the current one.
   */
  setPointer(
    namespace: string,
    name: string,
    target: string,
    expectedRevision: number | null,
    by: string,
    at: string,
  ): Promise<{ status: 'ok'; pointer: PointerRow } | { status: 'conflict'; current: PointerRow | undefined }>;
  deletePointer(namespace: string, name: string, expectedRevision: number): Promise<boolean>;

  search(query: SearchQuery): Promise<SearchResult>;

  addAudit(event: AuditEvent): Promise<void>;
  listAudit(filter: {
    since?: string;
    until?: string;
    limit: number;
    namespaces: string[] | null;
  }): Promise<AuditEvent[]>;

  recordDownload(
    namespace: string,
    type: string,
    version: string,
    day: string,
    downloads: number,
    bytes: number,
  ): Promise<void>;
  downloadsOf(namespace: string, type: string, version: string): Promise<number>;
  stats(filter: { since: string; until: string; namespaces: string[] | null }): Promise<StatsRow[]>;
}
