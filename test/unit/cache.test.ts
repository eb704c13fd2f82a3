/** The download cache (src/store/cache.ts): what counts toward the cap, LRU order, which folder. */
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCache, openConfiguredCache, PARTIAL_GRACE_MS } from '../../src/store/cache.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const temp = async (): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), 'dt-cache-'));
  dirs.push(d);
  return d;
};
const hex = (c: string): string => c.repeat(64);
const ago = async (path: string, ms: number): Promise<void> => {
  const t = new Date(Date.now() - ms);
  await utimes(path, t, t);
};

describe('download cache', () => {
  it('counts chunks, recipes and partial downloads toward the cap; evicts least recently used first', async () => {
    const dir = await temp();
    const cache = openCache({ dir, maxBytes: 10_000 });
    await mkdir(join(dir, 'chunks'), { recursive: true });
    await mkdir(join(dir, 'partial'), { recursive: true });
    const hour = 3600_000;
    await writeFile(join(dir, 'chunks', hex('a')), Buffer.alloc(4000));
    await ago(join(dir, 'chunks', hex('a')), 5 * hour);
    await writeFile(join(dir, 'chunks', hex('b')), Buffer.alloc(4000));
    await ago(join(dir, 'chunks', hex('b')), 1 * hour);
    await cache.putRecipe(hex('c'), 'x'.repeat(1000));
    await ago(join(dir, 'recipes', `${hex('c')}.json`), 4 * hour);
    // A leftover of an interrupted download, 3 hours old, and one being written right now.
    await writeFile(join(dir, 'partial', `${hex('d')}.part`), Buffer.alloc(3000));
    await writeFile(join(dir, 'partial', `${hex('d')}.part.json`), '[0]');
    await ago(join(dir, 'partial', `${hex('d')}.part`), 3 * hour);
    await ago(join(dir, 'partial', `${hex('d')}.part.json`), 3 * hour);
    await writeFile(join(dir, 'partial', `${hex('e')}.part`), Buffer.alloc(2000));

    const l = await cache.list();
    expect(l).toMatchObject({
      totalBytes: 4000 + 4000 + 1000 + 3003 + 2000,
      chunkBytes: 8000,
      recipes: 1,
      recipeBytes: 1000,
      partials: 2,
      partialBytes: 5003,
    });
    expect(l.entries.map((e) => e.sha256)).toEqual([hex('b'), hex('a')]);

    // 14003 bytes, cap 10000: a (oldest) goes; then the recipe would be next, but 10003 > 10000 ...
    const r = await cache.prune();
    // ... so: a (5 h), then the recipe (4 h): 9003 <= 10000. The partials and b stay.
    expect(r).toEqual({ removed: 2, freedBytes: 5000 });
    expect(await readdir(join(dir, 'chunks'))).toEqual([hex('b')]);
    expect(await readdir(join(dir, 'recipes'))).toEqual([]);

    // Down to 0: the stale partial download goes (both files), the fresh one is kept (in progress).
    const r0 = await cache.prune({ maxBytes: 0, keep: new Set([hex('b')]) });
    expect(r0).toEqual({ removed: 1, freedBytes: 3003 });
    expect((await readdir(join(dir, 'partial'))).sort()).toEqual([`${hex('e')}.part`]);
    expect(await readdir(join(dir, 'chunks'))).toEqual([hex('b')]);
    expect(PARTIAL_GRACE_MS).toBeGreaterThan(60_000);
  });

  it('peek does not mark a chunk used; has does', async () => {
    const dir = await temp();
    const cache = openCache({ dir });
    await mkdir(join(dir, 'chunks'));
    const p = join(dir, 'chunks', hex('f'));
    await writeFile(p, 'abc');
    await ago(p, 48 * 3600_000);
    const before = (await stat(p)).mtimeMs;
    expect(await cache.peek(hex('f'), 3)).toBe(true);
    expect(await cache.peek(hex('f'), 4)).toBe(false);
    expect((await stat(p)).mtimeMs).toBe(before);
    expect(await cache.has(hex('f'), 3)).toBe(true);
    expect((await stat(p)).mtimeMs).toBeGreaterThan(before + 3600_000);
  });

  it('folder: --cache-dir (relative to cwd), else DEPLOY_TOOL_CACHE_DIR, else cache.dir (relative to the project root)', () => {
    const config = {
      schema_version: 1 as const,
      project: { name: 'p', type: 't' },
      cache: { dir: '.cache/dt', max_size: '2GB' },
    };
    const base = { cwd: '/work/sub', config, projectRoot: '/work' };
    expect(openConfiguredCache({ ...base, cacheDir: 'c' }, {}).dir).toBe('/work/sub/c');
    expect(openConfiguredCache(base, { DEPLOY_TOOL_CACHE_DIR: '/var/cache/x' }).dir).toBe('/var/cache/x');
    const c = openConfiguredCache(base, {});
    expect(c.dir).toBe('/work/.cache/dt');
    expect(c.maxBytes).toBe(2_000_000_000);
    expect(openConfiguredCache({ cwd: '/w' }, { XDG_CACHE_HOME: '/xdg' }).dir).toBe('/xdg/deploy-tool');
  });

  it('clear empties the folder, parsed configs (src/core/config.ts) included, and keeps what is not ours', async () => {
    const dir = await temp();
    for (const f of [
      `chunks/${hex('a')}`,
      `recipes/${hex('b')}.json`,
      `parsed/config-${hex('c')}.json`,
      'notes.txt',
    ]) {
      await mkdir(join(dir, f, '..'), { recursive: true });
      await writeFile(join(dir, f), 'x');
    }
    const r = await openCache({ dir }).clear();
    expect(r.removed).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(['notes.txt']);
  });
});
