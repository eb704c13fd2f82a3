/** docs/openapi.yaml parses and describes every API route of the server (and nothing else). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { apiRoutes } from '../../src/registry/server/routes-api.js';
import { REPO } from '../helpers/cli.js';

describe('docs/openapi.yaml', () => {
  it('lists every route with its method', async () => {
    const doc = parse(await readFile(join(REPO, 'docs', 'openapi.yaml'), 'utf8')) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    expect(doc.openapi).toMatch(/^3\./);
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths))
      for (const m of Object.keys(ops)) if (m !== 'parameters') documented.add(`${m.toUpperCase()} ${path}`);
    const names: Record<string, string> = { sha: 'sha256' };
    const served = apiRoutes.map(
      (r) => `${r.method} ${r.path.replace(/:([a-z]+)/g, (_m, k: string) => `{${names[k] ?? k}}`)}`,
    );
    for (const s of served) expect(documented, s).toContain(s);
    const get = [...documented].filter((d) => !d.startsWith('HEAD '));
    for (const d of get) expect(served, d).toContain(d);
  });
});
