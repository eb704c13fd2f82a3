/** SQLite metadata (embedded default): one file, WAL mode, one server instance. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { createSqlRepo, type Param, type SqlDriver } from './sql.js';
import type { MetadataRepo } from './types.js';

export function createSqliteRepo(path: string): MetadataRepo {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('synchronous = NORMAL');
  const cache = new Map<string, Database.Statement>();
  const prep = (sql: string): Database.Statement => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  const driver: SqlDriver = {
    kind: 'sqlite',
    location: `sqlite:${path}`,
    autoId: 'INTEGER PRIMARY KEY AUTOINCREMENT',
    query(sql, params: Param[] = []) {
      return Promise.resolve(prep(sql).all(...params) as Record<string, unknown>[]);
    },
    run(sql, params: Param[] = []) {
      return Promise.resolve(prep(sql).run(...params).changes);
    },
    batch(statements) {
      const tx = db.transaction(() => {
        let first = -1;
        for (const [sql, params] of statements) {
          const n = prep(sql).run(...params).changes;
          if (first === -1) {
            first = n;
            if (n === 0) throw new RollbackSignal();
          }
        }
        return first;
      });
      try {
        return Promise.resolve(tx());
      } catch (err) {
        if (err instanceof RollbackSignal) return Promise.resolve(0);
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    migrate(statements) {
      db.transaction(() => {
        for (const s of statements) db.exec(s);
      })();
      return Promise.resolve();
    },
    close() {
      db.close();
      return Promise.resolve();
    },
  };
  return createSqlRepo(driver);
}

class RollbackSignal extends Error {}
