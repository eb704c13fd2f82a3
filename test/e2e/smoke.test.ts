import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, runCli, runJson } from '../helpers/cli.js';

afterAll(cleanupTempDirs);

describe('seed README sections 1-3, as written', () => {
  it('init, pack three components, publish a release', async () => {
    const dir = await makeProject();
    for (const [path, type, version] of [
      ['./models', 'model', '1.0.0'],
      ['./configs', 'config', '1.0.0'],
      ['./runtime', 'runtime', '3.10.0'],
    ] as const) {
      const r = await runCli(['pack', path, '--auto', '--type', type, '--version', version], { cwd: dir });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`git add deployment/manifests/${type}-${version}.manifest.json`);
    }
    const pub = await runJson<{ ok: boolean; release: string; components: unknown[] }>(
      [
        'publish',
        '--component',
        'model:1.0.0',
        '--component',
        'config:1.0.0',
        '--component',
        'runtime:3.10.0',
        '--release-version',
        '2024.01.20',
        '--method',
        'filesystem',
      ],
      { cwd: dir },
    );
    expect(pub.code).toBe(0);
    expect(pub.json.release).toBe('2024.01.20');
    expect(pub.json.components).toHaveLength(3);
  });
});
