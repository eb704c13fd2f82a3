/** The filesystem store: objects are files under a root folder. Immutable writes use link(2). */
import { createReadStream } from 'node:fs';
import { open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { DeployToolError, errnoCode } from '../../core/errors.js';
import { linkOrCopy, tempPathFor, writeFileAtomic, writeFileExclusive } from '../../core/fs-atomic.js';
import { checkKey, type ObjectInfo, type PutResult, type Store } from '../types.js';

export interface FilesystemStoreOptions {
  root: string;
}

export function createFilesystemStore(options: FilesystemStoreOptions): Store {
  const root = options.root;
  const pathOf = (key: string): string => join(root, ...checkKey('filesystem', key).split('/'));

  const head = async (key: string): Promise<ObjectInfo | undefined> => {
    try {
      const st = await stat(pathOf(key));
      if (!st.isFile()) return undefined;
      return { key, size: st.size, etag: `${st.ino}-${st.size}-${st.mtimeMs}` };
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  };

  const putCommon = async (
    key: string,
    write: (path: string) => Promise<boolean>,
    ifNoneMatch?: boolean,
  ): Promise<PutResult> => {
    const path = pathOf(key);
    if (ifNoneMatch) {
      const created = await write(path);
      return created ? { status: 'created' } : { status: 'exists' };
    }
    const existed = (await head(key)) !== undefined;
    await write(path);
    return { status: existed ? 'replaced' : 'created' };
  };

  return {
    driver: 'filesystem',
    location: root,
    head,
    async get(key) {
      try {
        return await readFile(pathOf(key));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
        throw err;
      }
    },
    async getRange(key, offset, length) {
      const fh = await open(pathOf(key), 'r');
      try {
        const buf = Buffer.allocUnsafe(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    },
    async getStream(key, range) {
      const path = pathOf(key);
      await stat(path);
      return range
        ? createReadStream(path, { start: range.offset, end: range.offset + range.length - 1 })
        : createReadStream(path);
    },
    async put(key, data, opts = {}) {
      if (opts.ifMatch !== undefined) {
        const cur = await head(key);
        if (!cur || cur.etag !== opts.ifMatch) return { status: 'conflict' };
      }
      return putCommon(
        key,
        async (path) => {
          if (opts.ifNoneMatch) return writeFileExclusive(path, data);
          await writeFileAtomic(path, data);
          return true;
        },
        opts.ifNoneMatch,
      );
    },
    async putFile(key, path, opts = {}) {
      const dest = pathOf(key);
      if (opts.ifNoneMatch) {
        if (await head(key)) return { status: 'exists' };
        const tmp = tempPathFor(dest);
        await linkOrCopy(path, tmp);
        try {
          const { link } = await import('node:fs/promises');
          await link(tmp, dest);
          return { status: 'created' };
        } catch (err) {
          if (errnoCode(err) === 'EEXIST') return { status: 'exists' };
          throw err;
        } finally {
          await rm(tmp, { force: true });
        }
      }
      const existed = (await head(key)) !== undefined;
      await linkOrCopy(path, dest);
      return { status: existed ? 'replaced' : 'created' };
    },
    async list(prefix) {
      const out: ObjectInfo[] = [];
      const walk = async (dir: string): Promise<void> => {
        let names: string[];
        try {
          names = await readdir(dir);
        } catch (err) {
          if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return;
          throw err;
        }
        for (const name of names.sort()) {
          if (name.startsWith('.') && name.includes('.tmp-')) continue;
          const abs = join(dir, name);
          const st = await stat(abs).catch(() => undefined);
          if (!st) continue;
          if (st.isDirectory()) await walk(abs);
          else if (st.isFile()) {
            const key = relative(root, abs).split(sep).join('/');
            if (key.startsWith(prefix)) out.push({ key, size: st.size });
          }
        }
      };
      await walk(root);
      return out;
    },
    async delete(key) {
      await rm(pathOf(key), { force: true });
    },
    localPath: pathOf,
  };
}

export function storeError(store: Store, message: string, hint: string, cause?: unknown): DeployToolError {
  return new DeployToolError('ERR_STORE', `[${store.driver}] ${store.location}: ${message}`, { hint, cause });
}
