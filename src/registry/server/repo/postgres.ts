/**
 * PostgreSQL metadata: the shared database of several stateless server instances. The pool
 * reconnects by itself when the database comes back.
 */
import pg from 'pg';
import { redact } from '../../../core/redact.js';
import { createSqlRepo, type Param, type SqlDriver } from './sql.js';
import type { MetadataRepo } from './types.js';

/** `?` placeholders to `$1, $2, ...` (our statements never contain a literal `?`). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

export function createPostgresRepo(url: string, options: { max?: number } = {}): MetadataRepo {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 10_000,
    // Queries never wait forever on a dead server.
    query_timeout: 15_000,
  });
  // An idle client losing its connection must not crash the server; the pool replaces it.
  pool.on('error', () => undefined);
  const location = redact(
    url.replace(/\/\/([^@/]*)@/, (_m, user: string) => `//${user.split(':')[0] ?? ''}@`),
  );
  const driver: SqlDriver = {
    kind: 'postgres',
    location,
    autoId: 'BIGSERIAL PRIMARY KEY',
    async query(sql, params: Param[] = []) {
      const r = await pool.query(numbered(sql), params);
      return r.rows as Record<string, unknown>[];
    },
    async run(sql, params: Param[] = []) {
      const r = await pool.query(numbered(sql), params);
      return r.rowCount ?? 0;
    },
    async batch(statements) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        let first = -1;
        for (const [sql, params] of statements) {
          const n = (await client.query(numbered(sql), params)).rowCount ?? 0;
          if (first === -1) {
            first = n;
            if (n === 0) {
              await client.query('ROLLBACK');
              return 0;
            }
          }
        }
        await client.query('COMMIT');
        return first;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async migrate(statements) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        // Serializes schema creation when several instances start at once.
        await client.query('SELECT pg_advisory_xact_lock(7461932)');
        for (const s of statements) await client.query(s);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
  return createSqlRepo(driver);
}
