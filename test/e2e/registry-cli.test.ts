/**
 * The registry end to end, as a user runs it: `deploy-tool serve` (the built CLI) with a
 * bootstrap token file, `login` (token in a user-only file), `token create|list|revoke`,
 * publishing through the registry client, `search`, `info`, a deploy through the registry
 * ReleaseSource (verified, range reads), `stats`, `audit`, and the registry Store driver.
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryReleaseSource } from '../../src/deploy/sources/registry.js';
import { deploy } from '../../src/ops/deploy.js';
import { publishToRegistry } from '../../src/registry/publish.js';
import { createRegistryStore } from '../../src/store/drivers/registry.js';
import {
  cleanupTempDirs,
  makeProject,
  noise,
  runCli,
  runJson,
  startServe,
  tempDir,
  type Served,
} from '../helpers/cli.js';

const BOOT = 'dtr_e2e-bootstrap-0123456789abcdef0123';
let server: Served | undefined;
let url = '';
let home = '';
let env: Record<string, string>;

beforeAll(async () => {
  const data = await tempDir('serve-');
  home = await tempDir('home-');
  await writeFile(join(data, 'boot'), `${BOOT}\n`);
  env = { DEPLOY_TOOL_CREDENTIALS: join(home, 'credentials.json'), DEPLOY_TOOL_TOKEN: '' };
  server = await startServe(data, ['--bootstrap-token-file', 'boot']);
  url = server.url;
});
afterAll(async () => {
  await server?.stop();
  await cleanupTempDirs();
});

describe('registry CLI', () => {
  let publisher = '';
  let project = '';

  it('logs in with the bootstrap token; the token file is user-only', async () => {
    const r = await runCli(['login', url, '--token-stdin'], { cwd: home, env, input: `${BOOT}\n` });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Logged in');
    expect(r.stdout).not.toContain(BOOT);
    const st = await stat(join(home, 'credentials.json'));
    expect(st.mode & 0o777).toBe(0o600);
    const bad = await runCli(['login', url, '--token-stdin'], {
      cwd: home,
      env,
      input: 'dtr_wrong-token-000000000000000\n',
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('ERR_REGISTRY_AUTH');
  });

  it('creates, lists and revokes tokens', async () => {
    const c = await runJson<{ ok: boolean; token: string; id: string }>(
      ['token', 'create', '--name', 'ci', '--role', 'publisher', '--namespace', 'test-project'],
      { cwd: home, env },
    );
    expect(c.code).toBe(0);
    expect(c.json.token).toMatch(/^dtr_/);
    publisher = c.json.token;
    const human = await runCli(
      ['token', 'create', '--name', 'temp', '--role', 'reader', '--expires-in-days', '1'],
      {
        cwd: home,
        env,
      },
    );
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/dtr_\S{20,}/);
    const list = await runCli(['token', 'list'], { cwd: home, env });
    expect(list.stdout).toMatch(/ci\s+publisher\s+test-project/);
    expect(list.stdout).not.toContain(publisher);
    const rv = await runCli(['token', 'revoke', 'temp'], { cwd: home, env });
    expect(rv.code).toBe(0);
    expect((await runCli(['token', 'list'], { cwd: home, env })).stdout).toMatch(/temp\s+reader.*revoked/);
  });

  it('publishes through the registry, then finds it with search and info', async () => {
    project = await makeProject({ 'models/extra.bin': noise(200_000, 3) });
    for (const [p, t, v] of [
      ['./models', 'model', '1.0.0'],
      ['./configs', 'config', '1.0.0'],
    ] as const) {
      expect((await runCli(['pack', p, '--auto', '--type', t, '--version', v], { cwd: project })).code).toBe(
        0,
      );
    }
    const r = await publishToRegistry({
      cwd: project,
      registry: url,
      token: publisher,
      components: ['model:1.0.0', 'config:1.0.0'],
      releaseVersion: '2024.01.20',
      notes: 'first',
      metadata: { description: 'ResNet-50 for image classification', framework: 'pytorch', tags: ['vision'] },
    });
    expect(r.status).toBe('published');
    expect(r.components.every((c) => c.uploaded)).toBe(true);
    // Publishing again uploads nothing.
    const again = await publishToRegistry({
      cwd: project,
      registry: url,
      token: publisher,
      components: ['model:1.0.0', 'config:1.0.0'],
      releaseVersion: '2024.01.20',
    });
    expect(again.status).toBe('unchanged');
    expect(again.bytesUploaded).toBe(0);

    const s = await runCli(['search', 'resnet'], { cwd: home, env });
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/test-project\s+model:1\.0\.0/);
    const sj = await runJson<{ components: unknown[]; releases: unknown[] }>(['search', '2024'], {
      cwd: home,
      env,
    });
    expect(sj.json.releases).toHaveLength(1);
    const info = await runCli(['info', 'model:1.0.0'], { cwd: home, env });
    expect(info.code).toBe(0);
    expect(info.stdout).toContain('namespace test-project');
    expect(info.stdout).toContain('framework  pytorch');
    expect(info.stdout).toContain('releases   2024.01.20');
    const missing = await runCli(['info', 'model:9.9.9'], { cwd: home, env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ERR_COMPONENT_NOT_FOUND');
  });

  it('deploys a release from the registry (verified, range reads) and counts the download', async () => {
    const target = join(await tempDir('target-'), 'app');
    const source = createRegistryReleaseSource({ url, token: publisher, namespace: 'test-project' });
    try {
      const r = await deploy({ cwd: project, release: '2024.01.20', target, source });
      expect(r.status).toBe('deployed');
      expect(r.source).toContain('registry');
    } finally {
      source.close();
    }
    const weights = await readFile(join(project, 'models', 'weights.bin'));
    const deployed = await readFile(join(target, 'model', 'weights.bin')).catch(async () =>
      readFile(join(target, 'model', 'models', 'weights.bin')),
    );
    expect(deployed.equals(weights)).toBe(true);
    const stats = await runJson<{ components: { type: string; downloads: number; bytes: number }[] }>(
      ['stats'],
      {
        cwd: home,
        env,
      },
    );
    const model = stats.json.components.find((c) => c.type === 'model');
    expect(model?.downloads).toBe(1);
    expect(model?.bytes).toBeGreaterThan(0);
    const human = await runCli(['stats', '--since', '7d'], { cwd: home, env });
    expect(human.stdout).toMatch(/test-project\s+model:1\.0\.0\s+1\s+/);
  });

  it('shows the audit log, and DEPLOY_TOOL_TOKEN overrides the saved token', async () => {
    const a = await runJson<{ events: { action: string; actor: string }[] }>(['audit'], { cwd: home, env });
    const actions = a.json.events.map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining(['token.create', 'token.revoke', 'component.publish', 'release.publish']),
    );
    expect(a.json.events.find((e) => e.action === 'release.publish')?.actor).toContain('ci');
    const denied = await runCli(['audit'], { cwd: home, env: { ...env, DEPLOY_TOOL_TOKEN: publisher } });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('ERR_REGISTRY_AUTH');
    expect(denied.stderr).not.toContain(publisher);
  });

  it('the registry Store driver maps keys onto the API', async () => {
    const store = createRegistryStore({ url, token: publisher });
    const m = await store.get('namespaces/test-project/components/model/1.0.0/manifest.json');
    expect(m?.toString()).toContain('"kind": "deploy-tool/component"');
    const listed = await store.list('namespaces/test-project/releases/');
    expect(listed.map((o) => o.key)).toEqual(['namespaces/test-project/releases/2024.01.20/release.json']);
    const sha = (JSON.parse(m!.toString()) as { archive: { sha256: string; size: number } }).archive;
    expect((await store.head(`blobs/sha256/${sha.sha256}`))?.size).toBe(sha.size);
    expect((await store.getRange(`blobs/sha256/${sha.sha256.slice(0, 2)}/${sha.sha256}`, 0, 4)).length).toBe(
      4,
    );
    expect(await store.head(`blobs/sha256/${'0'.repeat(64)}`)).toBeUndefined();
    // Immutable: a different release under a published version is 'exists', never a replacement.
    const rel = (await store.get('namespaces/test-project/releases/2024.01.20/release.json'))!.toString();
    const changed = rel.replace('"notes": "first"', '"notes": "changed"');
    expect(
      (
        await store.put('namespaces/test-project/releases/2024.01.20/release.json', changed, {
          ifNoneMatch: true,
        })
      ).status,
    ).toBe('exists');
  });

  it('publish --method registry --registry URL and deploy with the exact command of the web UI', async () => {
    const cache = await tempDir('cache-');
    const penv = { ...env, DEPLOY_TOOL_TOKEN: publisher, XDG_CACHE_HOME: cache };
    await writeFile(join(project, 'models', 'extra.bin'), noise(150_000, 11));
    expect(
      (
        await runCli(['pack', './models', '--auto', '--type', 'model', '--version', '1.1.0'], {
          cwd: project,
        })
      ).code,
    ).toBe(0);
    const pub = await runJson<{
      ok: boolean;
      method: string;
      status: string;
      store: {
        bytesUploaded: number;
        bytesReused: number;
        components: { type: string; chunksUploaded: number }[];
      };
    }>(
      [
        'publish',
        '--component',
        'model:1.1.0',
        '--component',
        'config:1.0.0',
        '--release-version',
        '2024.02.01',
        '--method',
        'registry',
        '--registry',
        url,
      ],
      { cwd: project, env: penv },
    );
    expect(pub.code).toBe(0);
    expect(pub.json.method).toBe('registry');
    expect(pub.json.status).toBe('published');
    // config:1.0.0 is already there: only the new model archive is sent.
    expect(pub.json.store.components.find((c) => c.type === 'config')?.chunksUploaded).toBe(0);
    expect(pub.json.store.bytesUploaded).toBeGreaterThan(0);
    expect(pub.json.store.bytesReused).toBeGreaterThan(0);
    const human = await runCli(
      [
        'publish',
        '--component',
        'model:1.1.0',
        '--component',
        'config:1.0.0',
        '--release-version',
        '2024.02.01',
        '--registry',
        url,
      ],
      { cwd: project, env: penv },
    );
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('Release 2024.02.01 is already published');
    expect(human.stdout).toContain(`--method registry --registry ${url} --namespace test-project`);
    expect(human.stdout + human.stderr).not.toContain(publisher);

    // The command the component version page shows, run from outside any project.
    const elsewhere = await tempDir('elsewhere-');
    const target = join(await tempDir('target-'), 'app');
    const before = await runJson<{ component: { downloads: number } }>(['info', 'model:1.1.0'], {
      cwd: home,
      env,
    });
    const d = await runCli(
      [
        'deploy',
        '--method',
        'registry',
        '--registry',
        url,
        '--namespace',
        'test-project',
        '--release',
        '2024.02.01',
        '--target',
        target,
      ],
      { cwd: elsewhere, env: { ...env, XDG_CACHE_HOME: cache } },
    );
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('Deployed 2024.02.01');
    const extra = await readFile(join(target, 'model', 'extra.bin'));
    expect(extra.equals(noise(150_000, 11))).toBe(true);
    expect((await readFile(join(target, 'config', 'settings.yaml'), 'utf8')).trim()).toBe('threshold: 0.5');
    const v = await runCli(['verify', '--target', target], { cwd: elsewhere, env });
    expect(v.code).toBe(0);
    // The download of the whole archive (several range requests) counts once.
    const after = await runJson<{ component: { downloads: number } }>(['info', 'model:1.1.0'], {
      cwd: home,
      env,
    });
    expect(before.json.component.downloads).toBe(0);
    expect(after.json.component.downloads).toBe(1);

    // The page's command for a component that is in no release: a selective deploy of it alone.
    const alone = join(await tempDir('target-'), 'app');
    const sel = await runCli(
      [
        'deploy',
        '--method',
        'registry',
        '--registry',
        url,
        '--namespace',
        'test-project',
        '--component',
        'model:1.1.0',
        '--target',
        alone,
      ],
      { cwd: elsewhere, env: { ...env, XDG_CACHE_HOME: cache } },
    );
    expect(sel.stderr).toBe('');
    expect(sel.code).toBe(0);
    expect((await readFile(join(alone, 'model', 'extra.bin'))).equals(noise(150_000, 11))).toBe(true);

    const missing = await runCli(
      ['deploy', '--method', 'registry', '--registry', url, '--release', '2024.02.01', '--target', target],
      { cwd: elsewhere, env },
    );
    expect(missing.code).toBe(2); // a usage error
    expect(missing.stderr).toContain('ERR_USAGE');
    expect(missing.stderr).toContain('--namespace');
  });

  it('an encrypted component through --method registry: stored as ciphertext, deployed with --identity', async () => {
    execFileSync('age-keygen', ['-o', join(project, 'id.txt')], { stdio: 'pipe' });
    const recipient = execFileSync('age-keygen', ['-y', join(project, 'id.txt')], {
      encoding: 'utf8',
    }).trim();
    const packed = await runCli(
      [
        'pack',
        './runtime',
        '--auto',
        '--type',
        'runtime',
        '--version',
        '1.0.0',
        '--encrypt',
        '--recipient',
        recipient,
      ],
      { cwd: project },
    );
    expect(packed.code).toBe(0);
    const penv = { ...env, DEPLOY_TOOL_TOKEN: publisher };
    const pub = await runCli(
      [
        'publish',
        '--component',
        'runtime:1.0.0',
        '--release-version',
        '2024.03.01',
        '--method',
        'registry',
        '--registry',
        url,
      ],
      { cwd: project, env: penv },
    );
    expect(pub.stderr).toBe('');
    expect(pub.code).toBe(0);
    const cipher = await readFile(join(project, 'dist', 'runtime-1.0.0.tar.zst.age'));
    expect(cipher.includes(Buffer.from('numpy'))).toBe(false);
    const target = join(await tempDir('target-'), 'app');
    const flags = [
      '--method',
      'registry',
      '--registry',
      url,
      '--namespace',
      'test-project',
      '--release',
      '2024.03.01',
    ];
    const cache = await tempDir('cache-');
    const none = await runCli(['deploy', ...flags, '--target', target, '--cache-dir', cache], {
      cwd: await tempDir('elsewhere-'),
      env,
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('ERR_DECRYPT_NO_KEY');
    const d = await runCli(
      ['deploy', ...flags, '--target', target, '--cache-dir', cache, '--identity', join(project, 'id.txt')],
      { cwd: await tempDir('elsewhere-'), env },
    );
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(await readFile(join(target, 'runtime', 'requirements.txt'), 'utf8')).toBe('numpy==1.26.0\n');
    // The ranges of the ciphertext count as one download of the component (the refusal fetched nothing).
    const info = await runJson<{ component: { downloads: number } }>(['info', 'runtime:1.0.0'], {
      cwd: home,
      env,
    });
    expect(info.json.component.downloads).toBe(1);
  });

  it('publish --method registry --sign, then deploy --require-signature --trusted-key verifies; unsigned is refused', async () => {
    const keysDir = await tempDir('keys-');
    expect((await runCli(['keys', 'generate', '--out', keysDir], { cwd: project })).code).toBe(0);
    const key = join(keysDir, 'deploy-tool.key');
    const pub = join(keysDir, 'deploy-tool.pub');
    const penv = { ...env, DEPLOY_TOOL_TOKEN: publisher };
    const args = [
      'publish',
      '--component',
      'model:1.1.0',
      '--component',
      'config:1.0.0',
      '--release-version',
      '2024.04.01',
      '--method',
      'registry',
      '--registry',
      url,
      '--sign',
      key,
    ];
    const p = await runJson<{
      status: string;
      gitReleaseFile: string;
      signed: { keyId: string; files: string[] } | null;
    }>(args, { cwd: project, env: penv });
    expect(p.code, p.stderr).toBe(0);
    expect(p.json.status).toBe('published');
    const keyId = (await readFile(pub, 'utf8')).match(/minisign public key ([0-9A-F]{16})/i)?.[1];
    expect(p.json.signed?.keyId.toUpperCase()).toBe(keyId?.toUpperCase());
    // Two component manifests and the release on the registry, and the git copy of the release.
    expect(p.json.signed?.files).toHaveLength(4);

    // The release manifest for git, byte for byte the registry's, with its signature.
    const gitFile = join(project, 'deployment', 'releases', '2024.04.01.release.json');
    expect(p.json.gitReleaseFile).toBe(gitFile);
    const store = createRegistryStore({ url, token: publisher });
    const onRegistry = (await store.get('namespaces/test-project/releases/2024.04.01/release.json'))!;
    expect(await readFile(gitFile, 'utf8')).toBe(onRegistry.toString('utf8'));
    expect(await readFile(`${gitFile}.minisig`, 'utf8')).toContain('untrusted comment');
    // So does an unsigned registry publish (2024.02.01, by the CLI above).
    expect(
      JSON.parse(await readFile(join(project, 'deployment', 'releases', '2024.02.01.release.json'), 'utf8')),
    ).toMatchObject({ kind: 'deploy-tool/release', release: '2024.02.01' });

    // Publishing again signs nothing new, and prints the git next steps.
    const again = await runCli(args, { cwd: project, env: penv });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('Release 2024.04.01 is already published');
    expect(again.stdout).toContain('Signed with key');
    expect(again.stdout).toContain('git add deployment/releases/2024.04.01.release.json');

    const flags = ['--method', 'registry', '--registry', url, '--namespace', 'test-project'];
    const trust = ['--require-signature', '--trusted-key', pub];
    const elsewhere = await tempDir('elsewhere-');
    const target = join(await tempDir('target-'), 'app');
    const d = await runCli(
      ['deploy', ...flags, '--release', '2024.04.01', '--target', target, ...trust, '--verbose'],
      { cwd: elsewhere, env: { ...env, XDG_CACHE_HOME: await tempDir('cache-') } },
    );
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('Deployed 2024.04.01');
    expect(d.stderr).toMatch(/release 2024\.04\.01: signature verified \(key [0-9A-Fa-f]{16}\)/);
    expect((await readFile(join(target, 'model', 'extra.bin'))).equals(noise(150_000, 11))).toBe(true);

    // A component alone is checked against its own signature on the registry.
    const alone = join(await tempDir('target-'), 'app');
    const c = await runCli(
      ['deploy', ...flags, '--component', 'model:1.1.0', '--target', alone, ...trust, '--verbose'],
      { cwd: elsewhere, env: { ...env, XDG_CACHE_HOME: await tempDir('cache-') } },
    );
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toContain('component model:1.1.0: signature verified');

    // An unsigned release (2024.02.01) and an unsigned component (runtime:1.0.0): refused, nothing deployed.
    const none = join(await tempDir('target-'), 'app');
    const u = await runCli(['deploy', ...flags, '--release', '2024.02.01', '--target', none, ...trust], {
      cwd: elsewhere,
      env: { ...env, XDG_CACHE_HOME: await tempDir('cache-') },
    });
    expect(u.code).toBe(1);
    expect(u.stderr).toContain('ERR_UNSIGNED');
    expect(u.stderr).toContain('Release 2024.02.01 is not signed');
    const uc = await runCli(
      ['deploy', ...flags, '--component', 'runtime:1.0.0', '--target', none, ...trust],
      { cwd: elsewhere, env: { ...env, XDG_CACHE_HOME: await tempDir('cache-') } },
    );
    expect(uc.code).toBe(1);
    expect(uc.stderr).toContain('The manifest of runtime:1.0.0 is not signed');
    // Refused while planning: no current link, no release folder, no component file.
    await expect(stat(join(none, 'current'))).rejects.toMatchObject({ code: 'ENOENT' });
    const left = (await readdir(none, { recursive: true })).filter((f) => !f.startsWith('.deploy-tool'));
    expect(left.filter((f) => f !== 'releases')).toEqual([]);
    expect((await runCli(['verify', '--target', none], { cwd: elsewhere, env })).code).not.toBe(0);
  });

  it('stores: of type registry with --store, a registry mirror of a store, and a mirror of a registry', async () => {
    const cache = await tempDir('cache-');
    const cenv = { ...env, XDG_CACHE_HOME: cache };
    const cfgPath = join(project, '.deploy-tool.yaml');
    const original = await readFile(cfgPath, 'utf8');
    await writeFile(
      cfgPath,
      `${original}
stores:
  reg:
    type: registry
    url: ${url}
  empty:
    type: filesystem
    path: ./empty-store
    mirrors: [reg]
  dead:
    type: registry
    url: http://127.0.0.1:9
    namespace: test-project
    mirrors: [folder]
  folder:
    type: filesystem
    path: ./folder-store
`,
    );
    try {
      // Token from the login file (admin), namespace from the project's name.
      const t1 = join(await tempDir('target-'), 'app');
      const a = await runJson<{ status: string; source: string }>(
        ['deploy', '--release', '2024.01.20', '--target', t1, '--store', 'reg'],
        { cwd: project, env: cenv },
      );
      expect(a.code).toBe(0);
      expect(a.json.status).toBe('deployed');
      expect(a.json.source).toContain(`${url} namespace test-project`);
      const weights = await readFile(join(project, 'models', 'weights.bin'));
      expect((await readFile(join(t1, 'model', 'weights.bin'))).equals(weights)).toBe(true);

      // Publishing to the named registry store: the release is already there, nothing is sent.
      const same = await runJson<{ status: string; method: string; store: { bytesUploaded: number } }>(
        [
          'publish',
          '--component',
          'model:1.1.0',
          '--component',
          'config:1.0.0',
          '--release-version',
          '2024.02.01',
          '--store',
          'reg',
        ],
        { cwd: project, env: { ...cenv, DEPLOY_TOOL_TOKEN: publisher } },
      );
      expect(same.code).toBe(0);
      expect(same.json.method).toBe('registry');
      expect(same.json.status).toBe('unchanged');
      expect(same.json.store.bytesUploaded).toBe(0);
      const conflict = await runCli(
        ['publish', '--component', 'model:1.1.0', '--method', 's3', '--registry', url],
        { cwd: project, env: cenv },
      );
      expect(conflict.code).toBe(2);
      expect(conflict.stderr).toContain('--registry does not go with --method s3');

      // The registry as a mirror: the filesystem store has nothing, the registry serves it all.
      const t2 = join(await tempDir('target-'), 'app');
      const b = await runCli(
        [
          'deploy',
          '--release',
          '2024.02.01',
          '--target',
          t2,
          '--store',
          'empty',
          '--cache-dir',
          await tempDir('c-'),
        ],
        { cwd: project, env: cenv },
      );
      expect(b.code).toBe(0);
      expect(b.stderr).toMatch(/empty-store\/blobs\/sha256\/[0-9a-f]{64}.*trying mirror reg/);
      expect((await readFile(join(t2, 'model', 'extra.bin'))).equals(noise(150_000, 11))).toBe(true);

      // A mirror of a registry: the registry is down, the filesystem store serves.
      const p = await runCli(
        [
          'publish',
          '--component',
          'model:1.1.0',
          '--component',
          'config:1.0.0',
          '--release-version',
          '2024.02.01',
          '--store',
          'folder',
        ],
        {
          cwd: project,
          env: cenv,
        },
      );
      expect(p.code).toBe(0);
      const t3 = join(await tempDir('target-'), 'app');
      const c = await runCli(
        [
          'deploy',
          '--release',
          '2024.02.01',
          '--target',
          t3,
          '--store',
          'dead',
          '--cache-dir',
          await tempDir('c-'),
        ],
        { cwd: project, env: { ...cenv, DEPLOY_TOOL_TOKEN: publisher } },
      );
      expect(c.code).toBe(0);
      expect(c.stderr).toContain('trying mirror folder');
      expect(c.stderr).toContain('http://127.0.0.1:9');
      expect(c.stderr + c.stdout).not.toContain(publisher);
      expect((await readFile(join(t3, 'model', 'extra.bin'))).equals(noise(150_000, 11))).toBe(true);

      // mirrors check reports the registry's health.
      const m = await runJson<{ stores: { name: string; ok: boolean }[] }>(['mirrors', 'check'], {
        cwd: project,
        env: cenv,
      });
      const byName = Object.fromEntries(m.json.stores.map((x) => [x.name, x.ok]));
      expect(byName.reg).toBe(true);
      expect(byName.dead).toBe(false);
    } finally {
      await writeFile(cfgPath, original);
    }
  });

  it('never prints a token in the server log', () => {
    const serverErr = server?.stderr() ?? '';
    expect(serverErr).toContain('GET /api/v1/whoami');
    expect(serverErr).not.toContain(BOOT);
    expect(serverErr).not.toContain(publisher);
  });
});
