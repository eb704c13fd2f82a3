/**
 * One SQL body for both databases. Statements use `?` placeholders and portable SQL
 * (ON CONFLICT upserts, LIKE ... ESCAPE); the drivers translate placeholders and types.
 */
import type {
  AuditEvent,
  ComponentRow,
  InsertResult,
  MetadataRepo,
  PointerRow,
  ReleaseRow,
  Role,
  SearchQuery,
  StatsRow,
  TokenRow,
} from './types.js';

export type Param = string | number | null;
export type Row = Record<string, unknown>;

export interface SqlDriver {
  readonly kind: 'sqlite' | 'postgres';
  readonly location: string;
  /** Column definition of an auto-increment primary key. */
  readonly autoId: string;
  query(sql: string, params?: Param[]): Promise<Row[]>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: Param[]): Promise<number>;
  /**
   * Runs statements in one transaction. If the first statement changes no row, the transaction
   * is rolled back and 0 returned; otherwise it commits and returns the first statement's count.
   */
  batch(statements: [string, Param[]][]): Promise<number>;
  /** Runs the schema statements once, serialized across instances. */
  migrate(statements: string[]): Promise<void>;
  close(): Promise<void>;
}

const SCHEMA = (autoId: string): string[] => [
  `CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, role TEXT NOT NULL,
    namespaces TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    expires_at TEXT, revoked_at TEXT, last_used_at TEXT)`,
  `CREATE TABLE IF NOT EXISTS components (
    namespace TEXT NOT NULL, type TEXT NOT NULL, version TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL, manifest_size BIGINT NOT NULL,
    archive_sha256 TEXT NOT NULL, archive_size BIGINT NOT NULL, archive_name TEXT NOT NULL,
    compression TEXT NOT NULL, files BIGINT NOT NULL, total_size BIGINT NOT NULL,
    description TEXT, author TEXT, license TEXT, framework TEXT, tags TEXT NOT NULL,
    search_text TEXT NOT NULL, created_at TEXT NOT NULL, published_by TEXT NOT NULL,
    PRIMARY KEY (namespace, type, version))`,
  `CREATE INDEX IF NOT EXISTS components_archive ON components (archive_sha256)`,
  `CREATE INDEX IF NOT EXISTS components_manifest ON components (manifest_sha256)`,
  `CREATE INDEX IF NOT EXISTS components_created ON components (created_at)`,
  `CREATE TABLE IF NOT EXISTS releases (
    namespace TEXT NOT NULL, release TEXT NOT NULL, manifest_sha256 TEXT NOT NULL, notes TEXT,
    components TEXT NOT NULL, search_text TEXT NOT NULL, created_at TEXT NOT NULL,
    published_by TEXT NOT NULL, PRIMARY KEY (namespace, release))`,
  `CREATE TABLE IF NOT EXISTS release_components (
    namespace TEXT NOT NULL, release TEXT NOT NULL, type TEXT NOT NULL, version TEXT NOT NULL,
    PRIMARY KEY (namespace, release, type))`,
  `CREATE INDEX IF NOT EXISTS release_components_cv ON release_components (namespace, type, version)`,
  `CREATE TABLE IF NOT EXISTS pointers (
    namespace TEXT NOT NULL, name TEXT NOT NULL, target TEXT NOT NULL, revision BIGINT NOT NULL,
    updated_at TEXT NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (namespace, name))`,
  `CREATE TABLE IF NOT EXISTS audit (
    id ${autoId}, at TEXT NOT NULL, actor TEXT NOT NULL, address TEXT NOT NULL, action TEXT NOT NULL,
    namespace TEXT, target TEXT, details TEXT)`,
  `CREATE INDEX IF NOT EXISTS audit_at ON audit (at)`,
  `CREATE TABLE IF NOT EXISTS downloads (
    namespace TEXT NOT NULL, type TEXT NOT NULL, version TEXT NOT NULL, day TEXT NOT NULL,
    downloads BIGINT NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (namespace, type, version, day))`,
  `CREATE INDEX IF NOT EXISTS downloads_day ON downloads (day)`,
];

const str = (v: unknown): string =>
  v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : str(v));
const num = (v: unknown): number => Number(v ?? 0);

function parseJsonArray(v: unknown): string[] {
  try {
    const a: unknown = JSON.parse(str(v));
    return Array.isArray(a) ? a.map((x) => String(x)) : [];
  } catch {
    return [];
  }
}

function toToken(r: Row): TokenRow {
  return {
    id: str(r.id),
    name: str(r.name),
    hash: str(r.hash),
    role: str(r.role) as Role,
    namespaces: parseJsonArray(r.namespaces),
    createdAt: str(r.created_at),
    createdBy: str(r.created_by),
    expiresAt: strOrNull(r.expires_at),
    revokedAt: strOrNull(r.revoked_at),
    lastUsedAt: strOrNull(r.last_used_at),
  };
}

function toComponent(r: Row): ComponentRow {
  return {
    namespace: str(r.namespace),
    type: str(r.type),
    version: str(r.version),
    manifestSha256: str(r.manifest_sha256),
    manifestSize: num(r.manifest_size),
    archiveSha256: str(r.archive_sha256),
    archiveSize: num(r.archive_size),
    archiveName: str(r.archive_name),
    compression: str(r.compression),
    files: num(r.files),
    totalSize: num(r.total_size),
    metadata: {
      description: strOrNull(r.description),
      author: strOrNull(r.author),
      license: strOrNull(r.license),
      framework: strOrNull(r.framework),
      tags: parseJsonArray(r.tags),
    },
    createdAt: str(r.created_at),
    publishedBy: str(r.published_by),
  };
}

function toRelease(r: Row): ReleaseRow {
  return {
    namespace: str(r.namespace),
    release: str(r.release),
    manifestSha256: str(r.manifest_sha256),
    notes: strOrNull(r.notes),
    components: parseJsonArray(r.components),
    createdAt: str(r.created_at),
    publishedBy: str(r.published_by),
  };
}

function toPointer(r: Row): PointerRow {
  return {
    namespace: str(r.namespace),
    name: str(r.name),
    target: str(r.target),
    revision: num(r.revision),
    updatedAt: str(r.updated_at),
    updatedBy: str(r.updated_by),
  };
}

function toAudit(r: Row): AuditEvent {
  let details: Record<string, unknown> | null = null;
  if (r.details) {
    try {
      details = JSON.parse(str(r.details)) as Record<string, unknown>;
    } catch {
      details = null;
    }
  }
  return {
    id: num(r.id),
    at: str(r.at),
    actor: str(r.actor),
    address: str(r.address),
    action: str(r.action),
    namespace: strOrNull(r.namespace),
    target: strOrNull(r.target),
    details,
  };
}

/** `namespace IN (?, ?, ...)` for a caller's namespaces, or nothing when all are allowed. */
function nsFilter(column: string, namespaces: string[] | null, params: Param[]): string {
  if (namespaces === null) return '';
  if (namespaces.length === 0) return ' AND 1 = 0';
  params.push(...namespaces);
  return ` AND ${column} IN (${namespaces.map(() => '?').join(', ')})`;
}

const likeEscape = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);

export function searchText(parts: (string | null | undefined)[]): string {
  return parts
    .filter((p): p is string => !!p)
    .join(' ')
    .toLowerCase();
}

export function createSqlRepo(db: SqlDriver): MetadataRepo {
  return {
    kind: db.kind,
    location: db.location,
    migrate: () => db.migrate(SCHEMA(db.autoId)),
    async ping() {
      await db.query('SELECT 1 AS ok');
    },
    close: () => db.close(),

    async countTokens() {
      const rows = await db.query('SELECT COUNT(*) AS n FROM tokens');
      return num(rows[0]?.n);
    },
    async insertToken(t) {
      const n = await db.run(
        `INSERT INTO tokens (id, name, hash, role, namespaces, created_at, created_by, expires_at, revoked_at, last_used_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
        [
          t.id,
          t.name,
          t.hash,
          t.role,
          JSON.stringify(t.namespaces),
          t.createdAt,
          t.createdBy,
          t.expiresAt,
          t.revokedAt,
          t.lastUsedAt,
        ],
      );
      return n === 1 ? 'created' : 'exists';
    },
    async getToken(id) {
      const rows = await db.query('SELECT * FROM tokens WHERE id = ?', [id]);
      return rows[0] ? toToken(rows[0]) : undefined;
    },
    async listTokens() {
      return (await db.query('SELECT * FROM tokens ORDER BY created_at, id')).map(toToken);
    },
    async revokeToken(id, at) {
      return (
        (await db.run('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [at, id])) === 1
      );
    },
    async touchToken(id, at) {
      await db.run('UPDATE tokens SET last_used_at = ? WHERE id = ?', [at, id]);
    },

    async insertComponent(c) {
      const m = c.metadata;
      const n = await db.run(
        `INSERT INTO components (namespace, type, version, manifest_sha256, manifest_size, archive_sha256,
           archive_size, archive_name, compression, files, total_size, description, author, license, framework,
           tags, search_text, created_at, published_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (namespace, type, version) DO NOTHING`,
        [
          c.namespace,
          c.type,
          c.version,
          c.manifestSha256,
          c.manifestSize,
          c.archiveSha256,
          c.archiveSize,
          c.archiveName,
          c.compression,
          c.files,
          c.totalSize,
          m.description,
          m.author,
          m.license,
          m.framework,
          JSON.stringify(m.tags),
          searchText([
            c.namespace,
            c.type,
            c.version,
            `${c.type}:${c.version}`,
            m.description,
            m.author,
            m.license,
            m.framework,
            ...m.tags,
          ]),
          c.createdAt,
          c.publishedBy,
        ],
      );
      return n === 1 ? 'created' : 'exists';
    },
    async getComponent(namespace, type, version) {
      const rows = await db.query(
        'SELECT * FROM components WHERE namespace = ? AND type = ? AND version = ?',
        [namespace, type, version],
      );
      return rows[0] ? toComponent(rows[0]) : undefined;
    },
    async listComponents(f) {
      const params: Param[] = [];
      let where = 'WHERE 1 = 1';
      where += nsFilter('namespace', f.namespaces, params);
      if (f.namespace !== undefined) {
        where += ' AND namespace = ?';
        params.push(f.namespace);
      }
      if (f.type !== undefined) {
        where += ' AND type = ?';
        params.push(f.type);
      }
      if (f.version !== undefined) {
        where += ' AND version = ?';
        params.push(f.version);
      }
      params.push(f.limit);
      const rows = await db.query(
        `SELECT * FROM components ${where} ORDER BY created_at DESC, namespace, type, version LIMIT ?`,
        params,
      );
      return rows.map(toComponent);
    },
    async deleteComponent(namespace, type, version) {
      return (
        (await db.run('DELETE FROM components WHERE namespace = ? AND type = ? AND version = ?', [
          namespace,
          type,
          version,
        ])) === 1
      );
    },
    async blobNamespaces(sha256) {
      const rows = await db.query(
        'SELECT namespace, type, version, archive_sha256 FROM components WHERE archive_sha256 = ? OR manifest_sha256 = ?',
        [sha256, sha256],
      );
      return rows.map((r) => ({
        namespace: str(r.namespace),
        type: str(r.type),
        version: str(r.version),
        isArchive: str(r.archive_sha256) === sha256,
      }));
    },

    async insertRelease(r) {
      const statements: [string, Param[]][] = [
        [
          `INSERT INTO releases (namespace, release, manifest_sha256, notes, components, search_text, created_at, published_by)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, release) DO NOTHING`,
          [
            r.namespace,
            r.release,
            r.manifestSha256,
            r.notes,
            JSON.stringify(r.components),
            searchText([r.namespace, r.release, r.notes, ...r.components]),
            r.createdAt,
            r.publishedBy,
          ],
        ],
      ];
      for (const c of r.components) {
        const i = c.indexOf(':');
        statements.push([
          'INSERT INTO release_components (namespace, release, type, version) VALUES (?, ?, ?, ?)',
          [r.namespace, r.release, c.slice(0, i), c.slice(i + 1)],
        ]);
      }
      return (await db.batch(statements)) === 1 ? 'created' : 'exists';
    },
    async getRelease(namespace, release) {
      const rows = await db.query('SELECT * FROM releases WHERE namespace = ? AND release = ?', [
        namespace,
        release,
      ]);
      return rows[0] ? toRelease(rows[0]) : undefined;
    },
    async listReleases(f) {
      const params: Param[] = [];
      let where = 'WHERE 1 = 1';
      where += nsFilter('namespace', f.namespaces, params);
      if (f.namespace !== undefined) {
        where += ' AND namespace = ?';
        params.push(f.namespace);
      }
      params.push(f.limit);
      const rows = await db.query(
        `SELECT * FROM releases ${where} ORDER BY created_at DESC, namespace, release LIMIT ?`,
        params,
      );
      return rows.map(toRelease);
    },
    async deleteRelease(namespace, release) {
      const n = await db.batch([
        ['DELETE FROM releases WHERE namespace = ? AND release = ?', [namespace, release]],
        ['DELETE FROM release_components WHERE namespace = ? AND release = ?', [namespace, release]],
      ]);
      return n === 1;
    },
    async releasesUsing(namespace, type, version) {
      const rows = await db.query(
        'SELECT release FROM release_components WHERE namespace = ? AND type = ? AND version = ? ORDER BY release',
        [namespace, type, version],
      );
      return rows.map((r) => str(r.release));
    },

    async getPointer(namespace, name) {
      const rows = await db.query('SELECT * FROM pointers WHERE namespace = ? AND name = ?', [
        namespace,
        name,
      ]);
      return rows[0] ? toPointer(rows[0]) : undefined;
    },
    async listPointers(namespace) {
      return (await db.query('SELECT * FROM pointers WHERE namespace = ? ORDER BY name', [namespace])).map(
        toPointer,
      );
    },
    async setPointer(namespace, name, target, expected, by, at) {
      const n =
        expected === null
          ? await db.run(
              `INSERT INTO pointers (namespace, name, target, revision, updated_at, updated_by)
               VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (namespace, name) DO NOTHING`,
              [namespace, name, target, at, by],
            )
          : await db.run(
              `UPDATE pointers SET target = ?, revision = revision + 1, updated_at = ?, updated_by = ?
               WHERE namespace = ? AND name = ? AND revision = ?`,
              [target, at, by, namespace, name, expected],
            );
      const rows = await db.query('SELECT * FROM pointers WHERE namespace = ? AND name = ?', [
        namespace,
        name,
      ]);
      const current = rows[0] ? toPointer(rows[0]) : undefined;
      if (n === 1 && current) return { status: 'ok', pointer: current };
      return { status: 'conflict', current };
    },
    async deletePointer(namespace, name, expected) {
      return (
        (await db.run('DELETE FROM pointers WHERE namespace = ? AND name = ? AND revision = ?', [
          namespace,
          name,
          expected,
        ])) === 1
      );
    },

    async search(q: SearchQuery) {
      const cParams: Param[] = [];
      let cWhere = 'WHERE 1 = 1';
      cWhere += nsFilter('c.namespace', q.namespaces, cParams);
      for (const t of q.terms) {
        cWhere += " AND c.search_text LIKE ? ESCAPE '\\'";
        cParams.push(`%${likeEscape(t.toLowerCase())}%`);
      }
      if (q.namespace !== undefined) {
        cWhere += ' AND c.namespace = ?';
        cParams.push(q.namespace);
      }
      if (q.type !== undefined) {
        cWhere += ' AND c.type = ?';
        cParams.push(q.type);
      }
      if (q.framework !== undefined) {
        cWhere += ' AND LOWER(c.framework) = ?';
        cParams.push(q.framework.toLowerCase());
      }
      if (q.tag !== undefined) {
        cWhere += " AND c.tags LIKE ? ESCAPE '\\'";
        cParams.push(`%${likeEscape(JSON.stringify(q.tag))}%`);
      }
      cParams.push(q.limit);
      const cRows = await db.query(
        `SELECT c.*, (SELECT COALESCE(SUM(d.downloads), 0) FROM downloads d
            WHERE d.namespace = c.namespace AND d.type = c.type AND d.version = c.version) AS downloads
         FROM components c ${cWhere} ORDER BY c.created_at DESC, c.namespace, c.type, c.version LIMIT ?`,
        cParams,
      );
      let releases: ReleaseRow[] = [];
      if (q.tag === undefined && q.framework === undefined && q.type === undefined) {
        const rParams: Param[] = [];
        let rWhere = 'WHERE 1 = 1';
        rWhere += nsFilter('namespace', q.namespaces, rParams);
        for (const t of q.terms) {
          rWhere += " AND search_text LIKE ? ESCAPE '\\'";
          rParams.push(`%${likeEscape(t.toLowerCase())}%`);
        }
        if (q.namespace !== undefined) {
          rWhere += ' AND namespace = ?';
          rParams.push(q.namespace);
        }
        rParams.push(q.limit);
        releases = (
          await db.query(
            `SELECT * FROM releases ${rWhere} ORDER BY created_at DESC, namespace, release LIMIT ?`,
            rParams,
          )
        ).map(toRelease);
      }
      return {
        components: cRows.map((r) => ({ ...toComponent(r), downloads: num(r.downloads) })),
        releases,
      };
    },

    async addAudit(e) {
      await db.run(
        'INSERT INTO audit (at, actor, address, action, namespace, target, details) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [
          e.at,
          e.actor,
          e.address,
          e.action,
          e.namespace,
          e.target,
          e.details ? JSON.stringify(e.details) : null,
        ],
      );
    },
    async listAudit(f) {
      const params: Param[] = [];
      let where = 'WHERE 1 = 1';
      if (f.since !== undefined) {
        where += ' AND at >= ?';
        params.push(f.since);
      }
      if (f.until !== undefined) {
        where += ' AND at < ?';
        params.push(f.until);
      }
      if (f.namespaces !== null) {
        params.push(...f.namespaces);
        where += ` AND namespace IN (${f.namespaces.map(() => '?').join(', ') || "''"})`;
      }
      params.push(f.limit);
      return (await db.query(`SELECT * FROM audit ${where} ORDER BY at DESC, id DESC LIMIT ?`, params)).map(
        toAudit,
      );
    },

    async recordDownload(namespace, type, version, day, downloads, bytes) {
      await db.run(
        `INSERT INTO downloads (namespace, type, version, day, downloads, bytes) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (namespace, type, version, day)
         DO UPDATE SET downloads = downloads.downloads + excluded.downloads, bytes = downloads.bytes + excluded.bytes`,
        [namespace, type, version, day, downloads, bytes],
      );
    },
    async downloadsOf(namespace, type, version) {
      const rows = await db.query(
        'SELECT COALESCE(SUM(downloads), 0) AS n FROM downloads WHERE namespace = ? AND type = ? AND version = ?',
        [namespace, type, version],
      );
      return num(rows[0]?.n);
    },
    async stats(f) {
      const params: Param[] = [f.since, f.until];
      const where = `WHERE day >= ? AND day <= ?${nsFilter('namespace', f.namespaces, params)}`;
      const rows = await db.query(
        `SELECT namespace, type, version, SUM(downloads) AS downloads, SUM(bytes) AS bytes FROM downloads ${where}
         GROUP BY namespace, type, version ORDER BY SUM(bytes) DESC, namespace, type, version`,
        params,
      );
      return rows.map((r): StatsRow => ({
        namespace: str(r.namespace),
        type: str(r.type),
        version: str(r.version),
        downloads: num(r.downloads),
        bytes: num(r.bytes),
      }));
    },
  } satisfies MetadataRepo & { insertRelease(r: ReleaseRow): Promise<InsertResult> };
}
