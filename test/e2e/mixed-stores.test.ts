/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents from the CLI */
/**
 * Mixed stores (the seed README's "Can I mix publishing methods?"): the model in an S3 bucket (a
 * real Ceph radosgw on loopback, scripts/ceph.sh), the config through the filesystem method, then
 * one release that uses both and a deploy that reads each component from where it lives
 * (`deploy.components` of .deploy-tool.yaml), verified file by file.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/store/bucket.js';
import { createS3Store, type S3Store } from '../../src/store/drivers/s3.js';
import { cleanupTempDirs, makeProject, runCli, runJson, tempDir } from '../helpers/cli.js';
import { startCeph, type Ceph } from '../store/ceph.js';

let ceph: Ceph;
let project: string;
let env: Record<string, string>;
let bucket: S3Store;

async function ok(args: string[], cwd = project): Promise<any> {
  const r = await runJson<any>(args, { cwd, env });
  if (r.code !== 0)
    throw new Error(`${args.join(' ')} failed (${r.code}):\n${JSON.stringify(r.json)}\n${r.stderr}`);
  return r.json;
}

async function appendConfig(text: string): Promise<void> {
  const p = join(project, '.deploy-tool.yaml');
  await writeFile(p, `${await readFile(p, 'utf8')}\n${text}`);
}

beforeAll(async () => {
  ceph = await startCeph();
  env = {
    ...ceph.env,
    // The standard AWS variable: the README's command has no --endpoint.
    AWS_ENDPOINT_URL_S3: ceph.endpoint,
    DEPLOY_TOOL_S3_RETRY_BASE_MS: '50',
    XDG_CACHE_HOME: await tempDir('cache-'),
  };
  // The README's bucket name, emptied so that the test can run again on the same cluster.
  bucket = createS3Store({
    bucket: 'ml-models',
    endpoint: ceph.endpoint,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
  });
  await bucket.createBucket();
  for (const o of await bucket.list('')) await bucket.delete(o.key);
  project = await makeProject();
  for (const [dir, type] of [
    ['./models', 'model'],
    ['./configs', 'config'],
  ] as const) {
    const r = await runCli(['pack', dir, '--auto', '--type', type, '--version', '1.0.0'], { cwd: project });
    expect(r.code).toBe(0);
  }
}, 300_000);
afterAll(cleanupTempDirs);

describe('mixed stores', () => {
  it("runs the README's two commands as written", async () => {
    const model = await runCli(
      ['publish', '--component', 'model:1.0.0', '--method', 's3', '--bucket', 'ml-models'],
      {
        cwd: project,
        env,
      },
    );
    expect(model.stderr).toBe('');
    expect(model.code).toBe(0);
    expect(model.stdout).toContain('Published model:1.0.0 (no release)');
    expect(model.stdout).toContain(`${ceph.endpoint} bucket ml-models`);
    expect(await bucket.head(keys.component('model', '1.0.0'))).toBeDefined();

    const config = await runCli(['publish', '--component', 'config:1.0.0', '--method', 'filesystem'], {
      cwd: project,
      env,
    });
    expect(config.code).toBe(0);
    expect(config.stdout).toContain('Published config:1.0.0 (no release)');
    const published = await readdir(join(project, 'deployment', 'components', 'config', '1.0.0'));
    expect(published).toContain('config-1.0.0.manifest.json');
    // Each stayed where it was published.
    expect(await bucket.head(keys.component('config', '1.0.0'))).toBeUndefined();
    await expect(readdir(join(project, 'deployment', 'components', 'model'))).rejects.toThrow();
  });

  it('publishes a release that uses both, and deploys each component from its store', async () => {
    await appendConfig(`stores:
  ml-models:
    type: s3
    bucket: ml-models
  configs:
    type: filesystem
    path: ./config-store
deploy:
  components:
    model: ml-models
`);
    const rel = await ok([
      'publish',
      '--component',
      'model:1.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      '2024.01.20',
    ]);
    expect(rel.status).toBe('published');
    expect(rel.method).toBe('filesystem');
    // The model is already in the bucket: nothing sent again, and it is not copied into the release folder.
    expect(rel.routed).toEqual([
      expect.objectContaining({ type: 'model', version: '1.0.0', store: 'ml-models', bytesUploaded: 0 }),
    ]);
    expect(rel.routed[0].bytesReused).toBeGreaterThan(0);
    expect(rel.components.map((c: { type: string }) => c.type)).toEqual(['config']);
    const folder = join(project, 'deployment', 'releases', '2024.01.20');
    expect((await readdir(folder)).sort()).toEqual(['config', 'release.json']);
    const manifest = JSON.parse(await readFile(join(folder, 'release.json'), 'utf8'));
    expect(manifest.components.map((c: any) => `${c.type}:${c.version}`).sort()).toEqual([
      'config:1.0.0',
      'model:1.0.0',
    ]);

    const target = join(await tempDir('target-'), 'app');
    const d = await runCli(['deploy', '--release', '2024.01.20', '--target', target], { cwd: project, env });
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('Deployed 2024.01.20');
    const weights = await readFile(join(project, 'models', 'weights.bin'));
    expect((await readFile(join(target, 'model', 'weights.bin'))).equals(weights)).toBe(true);
    expect(await readFile(join(target, 'config', 'settings.yaml'), 'utf8')).toBe('threshold: 0.5\n');
    const v = await runCli(['verify', '--target', target], { cwd: project, env });
    expect(v.code).toBe(0);
    const st = await ok(['status', '--target', target]);
    expect(JSON.stringify(st)).toContain('2024.01.20');

    // The JSON result says where each came from.
    const again = await ok([
      'deploy',
      '--release',
      '2024.01.20',
      '--target',
      join(await tempDir('t-'), 'app'),
    ]);
    expect(again.source).toContain('model from store ml-models');
    expect(again.source).toContain('bucket ml-models');
  });

  it('the other way round: the release in the bucket, the config in a filesystem store', async () => {
    await writeFile(
      join(project, '.deploy-tool.yaml'),
      (await readFile(join(project, '.deploy-tool.yaml'), 'utf8')).replace(
        '    model: ml-models\n',
        '    model: ml-models\n    config: configs\n',
      ),
    );
    const rel = await ok([
      'publish',
      '--component',
      'model:1.0.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      '2024.01.21',
      '--store',
      'ml-models',
    ]);
    expect(rel.status).toBe('published');
    expect(rel.routed.map((c: any) => `${c.type}@${c.store}`)).toEqual(['config@configs']);
    expect(rel.routed[0].bytesUploaded).toBeGreaterThan(0);
    expect(await bucket.head(keys.release('2024.01.21'))).toBeDefined();
    expect(await bucket.head(keys.component('config', '1.0.0'))).toBeUndefined();
    const cfgStore = await readdir(join(project, 'config-store', 'components', 'config', '1.0.0'));
    expect(cfgStore).toContain('manifest.json');

    // Deployed from another folder on the deploy host, with the project's config (--project-root).
    const target = join(await tempDir('target-'), 'app');
    const d = await runJson<any>(
      [
        'deploy',
        '--release',
        '2024.01.21',
        '--store',
        'ml-models',
        '--target',
        target,
        '--project-root',
        project,
      ],
      { cwd: await tempDir('elsewhere-'), env },
    );
    expect(d.code).toBe(0);
    expect(d.json.status).toBe('deployed');
    expect(await readFile(join(target, 'config', 'settings.yaml'), 'utf8')).toBe('threshold: 0.5\n');
    const weights = await readFile(join(project, 'models', 'weights.bin'));
    expect((await readFile(join(target, 'model', 'weights.bin'))).equals(weights)).toBe(true);
  });

  it('a component missing from its store, or a route to an unknown store: clear errors', async () => {
    const cfg = join(project, '.deploy-tool.yaml');
    const good = await readFile(cfg, 'utf8');
    try {
      await writeFile(cfg, good.replace('    config: configs\n', '    config: nowhere\n'));
      const unknown = await runCli(
        ['deploy', '--release', '2024.01.20', '--target', join(await tempDir('t-'), 'a')],
        {
          cwd: project,
          env,
        },
      );
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toContain('ERR_CONFIG_INVALID');
      expect(unknown.stderr).toContain('deploy.components.config names store "nowhere"');

      await writeFile(
        cfg,
        good
          .replace('    config: configs\n', '    config: empty\n')
          .replace('\ndeploy:', '\n  empty:\n    type: filesystem\n    path: ./empty-store\ndeploy:'),
      );
      const missing = await runCli(
        ['deploy', '--release', '2024.01.20', '--target', join(await tempDir('t-'), 'a')],
        {
          cwd: project,
          env,
        },
      );
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('ERR_COMPONENT_NOT_FOUND');
      expect(missing.stderr).toContain('config:1.0.0');
      expect(missing.stderr).toContain('empty-store');
    } finally {
      await writeFile(cfg, good);
    }
  });
});
