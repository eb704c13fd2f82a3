import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, runCli, runJson } from '../helpers/cli.js';

afterAll(cleanupTempDirs);

interface ComponentRow {
  type: string;
  version: string;
  archive: string;
  compression: string;
  files: number;
  totalSize: number;
  archivePresent: boolean;
}
interface ReleaseRow {
  release: string;
  components: string[];
  notes: string | null;
  payloadPresent: boolean;
}

describe('component list and release list', () => {
  it('show what the project has, in text and --json', async () => {
    const dir = await makeProject();
    const emptyC = await runCli(['component', 'list'], { cwd: dir });
    expect(emptyC.code).toBe(0);
    expect(emptyC.stdout).toContain('No components yet');
    const emptyR = await runJson<{ ok: boolean; releases: unknown[] }>(['release', 'list'], { cwd: dir });
    expect(emptyR.json).toEqual({ ok: true, releases: [] });

    for (const [path, type, version, alg] of [
      ['models', 'model', '1.0.0', 'zstd'],
      ['configs', 'config', '1.0.0', 'gzip'],
      ['configs', 'config', '1.1.0', 'gzip'],
    ] as const) {
      const r = await runCli(['pack', path, '--type', type, '--version', version, '--compression', alg], {
        cwd: dir,
      });
      expect(r.code, r.stderr).toBe(0);
    }
    const pub = await runCli(
      [
        'publish',
        '--component',
        'model:1.0.0',
        '--component',
        'config:1.1.0',
        '--release-version',
        '2024.01.20',
        '--notes',
        'n',
      ],
      { cwd: dir },
    );
    expect(pub.code, pub.stderr).toBe(0);

    const comps = await runJson<{ ok: boolean; components: ComponentRow[] }>(['component', 'list'], {
      cwd: dir,
    });
    expect(comps.code).toBe(0);
    expect(
      comps.json.components.map((c) => [
        c.type,
        c.version,
        c.archive,
        c.compression,
        c.files,
        c.archivePresent,
      ]),
    ).toEqual([
      ['config', '1.0.0', 'config-1.0.0.tar.gz', 'gzip', 1, true],
      ['config', '1.1.0', 'config-1.1.0.tar.gz', 'gzip', 1, true],
      ['model', '1.0.0', 'model-1.0.0.tar.zst', 'zstd', 2, true],
    ]);
    const text = await runCli(['component', 'list'], { cwd: dir });
    const rows = text.stdout.trim().split('\n');
    expect(rows[0]?.split('\t')).toEqual(['TYPE', 'VERSION', 'FILES', 'SIZE', 'ARCHIVE', 'CREATED']);
    expect(rows[3]).toMatch(/^model\t1\.0\.0\t2\t3\.0 MB\tmodel-1\.0\.0\.tar\.zst \(3\.0 MB\)\t\d{4}-/);

    const rels = await runJson<{ releases: ReleaseRow[] }>(['release', 'list'], { cwd: dir });
    expect(rels.json.releases).toEqual([
      expect.objectContaining({
        release: '2024.01.20',
        components: ['model:1.0.0', 'config:1.1.0'],
        notes: 'n',
        payloadPresent: true,
      }),
    ]);
    const relText = await runCli(['release', 'list'], { cwd: dir });
    expect(relText.stdout).toMatch(/^2024\.01\.20\tmodel:1\.0\.0,config:1\.1\.0\t\S+\tpresent$/m);

    // dist/ and the payload folder are not in git: a fresh clone lists them as absent.
    await rm(join(dir, 'dist/config-1.0.0.tar.gz'));
    await rm(join(dir, 'deployment/releases/2024.01.20'), { recursive: true });
    const after = await runJson<{ components: ComponentRow[] }>(['component', 'list'], { cwd: dir });
    expect(
      after.json.components.find((c) => c.version === '1.0.0' && c.type === 'config')?.archivePresent,
    ).toBe(false);
    expect((await runCli(['component', 'list'], { cwd: dir })).stdout).toContain(
      'config-1.0.0.tar.gz (missing in dist/)',
    );
    const relAfter = await runCli(['release', 'list'], { cwd: dir });
    expect(relAfter.stdout).toMatch(/^2024\.01\.20\t.*\tnot here$/m);
  });
});
