/**
 * Secrets never leak: commands run with known fake credentials and passphrases in the environment
 * (success and failure paths, --verbose and --json), then everything they printed and every file
 * they wrote (project, published releases, target, state, temporary folders) is searched for them.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { lstat, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTempDirs, makeProject, runCli, tempDir } from '../helpers/cli.js';
import { makeS3Store, startCeph } from '../store/ceph.js';

let server: ChildProcess | undefined;
afterAll(async () => {
  if (server && server.exitCode === null) {
    const done = new Promise((r) => server?.once('exit', r));
    server.kill('SIGTERM');
    await done;
  }
  await cleanupTempDirs();
});

const SECRETS = {
  AWS_SECRET_ACCESS_KEY: 'FAKEawsSECRETkey1234567890abcdefXYZ',
  AWS_SESSION_TOKEN: 'FAKEsessionTOKEN0987654321zyxw',
  DEPLOY_TOOL_TOKEN: 'dt_FAKEtoken_5f4dcc3b5aa765d61d8327deb882cf99',
  DT_MODEL_PASSPHRASE: 'FAKEpassphrase-correct-horse-battery-staple',
};
const baseEnv = { ...SECRETS, AWS_ACCESS_KEY_ID: 'AKIAFAKEACCESSKEY' };

/** Files under `dir` (symlinks not followed), with their bytes. */
async function* files(dir: string, since: number, depth = 0): AsyncGenerator<[string, Buffer]> {
  if (depth > 12) return;
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const p = join(dir, n);
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) yield* files(p, since, depth + 1);
    else if (st.isFile() && st.mtimeMs >= since && st.size < 64 << 20) {
      const b = await readFile(p).catch(() => undefined);
      if (b) yield [p, b];
    }
  }
}

const hasAge = spawnSync('age-keygen', ['-y', '/dev/null']).error === undefined;

/** Every file written since `since` under `roots` must hold none of `secrets` (except where `allowed`). */
async function expectNoSecretInFiles(
  roots: string[],
  since: number,
  secrets: Record<string, string>,
  allowed: (path: string, name: string) => boolean = () => false,
): Promise<number> {
  let scanned = 0;
  for (const root of roots) {
    for await (const [path, bytes] of files(root, since)) {
      scanned++;
      for (const [name, value] of Object.entries(secrets)) {
        if (allowed(path, name)) continue;
        expect(bytes.includes(value), `${name} found in ${path}`).toBe(false);
      }
    }
  }
  return scanned;
}

/** A user's own folders for one test: HOME, config, cache and temporary files, all searched afterwards. */
async function userDirs(): Promise<{ home: string; env: Record<string, string> }> {
  const home = await tempDir('secrets-home-');
  return {
    home,
    env: {
      HOME: home,
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_CACHE_HOME: join(home, '.cache'),
      XDG_STATE_HOME: join(home, '.local', 'state'),
      TMPDIR: home,
    },
  };
}

describe('secrets', { timeout: 180_000 }, () => {
  it('never appear in output, logs, manifests, state or temporary files', async () => {
    const since = Date.now() - 1000;
    const project = await makeProject();
    const target = join(project, 'target');
    // The tool's temporary files (os.tmpdir()) go to a folder of this test, searched below.
    const tmp = await tempDir('secrets-tmp-');
    const env = { ...baseEnv, TMPDIR: tmp };
    const outputs: string[] = [];
    const run = async (args: string[], expectCode?: number, json = false): Promise<void> => {
      for (const extra of json ? [['--verbose'], ['--json']] : [['--verbose']]) {
        const r = await runCli([...args, ...extra], { cwd: project, env });
        outputs.push(`$ ${args.join(' ')} ${extra.join(' ')}\n${r.stdout}\n${r.stderr}`);
        if (expectCode !== undefined)
          expect(r.code, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(expectCode);
      }
    };
    await run(['keys', 'generate', '--out', 'keys'], undefined);
    await run(
      [
        'pack',
        './models',
        '--type',
        'model',
        '--version',
        '1.0.0',
        '--encrypt',
        '--passphrase-env',
        'DT_MODEL_PASSPHRASE',
      ],
      0,
    );
    await run(['pack', './configs', '--type', 'config', '--version', '1.0.0'], 0, true);
    await run(
      [
        'publish',
        '--component',
        'model:1.0.0',
        '--component',
        'config:1.0.0',
        '--release-version',
        's1',
        '--sign',
        'keys/deploy-tool.key',
      ],
      0,
    );
    await run(
      [
        'deploy',
        '--release',
        's1',
        '--target',
        target,
        '--passphrase-env',
        'DT_MODEL_PASSPHRASE',
        '--require-signature',
        '--trusted-key',
        'keys/deploy-tool.pub',
      ],
      0,
    );
    await run(['status', '--target', target], undefined, true);
    await run(['verify', '--target', target], 0, true);
    // failure paths: wrong passphrase, passphrase given as a recipient, unknown flags, a secret in the config
    const wrong = await runCli(
      [
        'deploy',
        '--release',
        's1',
        '--target',
        join(project, 't2'),
        '--passphrase-env',
        'AWS_SECRET_ACCESS_KEY',
        '--verbose',
      ],
      { cwd: project, env },
    );
    outputs.push(wrong.stdout, wrong.stderr);
    expect(wrong.code).toBe(1);
    const asRecipient = await runCli(
      [
        'pack',
        './models',
        '--type',
        'model',
        '--version',
        '2.0.0',
        '--encrypt',
        '--recipient',
        SECRETS.DEPLOY_TOOL_TOKEN,
        '--verbose',
      ],
      { cwd: project, env },
    );
    outputs.push(asRecipient.stdout, asRecipient.stderr);
    expect(asRecipient.code).toBe(2);
    // age-keygen is installed by scripts/test.sh: a missing one is a failure, not a skip
    expect(hasAge, 'age-keygen is not installed: run scripts/test.sh').toBe(true);
    {
      const id = join(project, 'id.txt');
      execFileSync('age-keygen', ['-o', id], { stdio: 'pipe' });
      const idText = (await readFile(id, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
      const r = await runCli(
        ['deploy', '--release', 's1', '--target', join(project, 't3'), '--identity', 'id.txt', '--verbose'],
        { cwd: project, env },
      );
      outputs.push(r.stdout, r.stderr);
      expect(outputs.join('\n')).not.toContain(idText);
    }
    const all = outputs.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const [name, value] of Object.entries(SECRETS)) expect(all, `${name} printed`).not.toContain(value);
    // every file written: project (manifests, releases, signatures, dist), target (state, records), temp folders
    let scanned = 0;
    for (const root of [project, tmp]) {
      for await (const [path, bytes] of files(root, since)) {
        scanned++;
        for (const [name, value] of Object.entries(SECRETS)) {
          expect(bytes.includes(value), `${name} found in ${path}`).toBe(false);
        }
      }
    }
    expect(scanned).toBeGreaterThan(10);
  });
});

describe('secrets with the registry', { timeout: 180_000 }, () => {
  it('bootstrap token, login, token create, search with DEPLOY_TOOL_TOKEN: no token printed, logged or stored in clear', async () => {
    const since = Date.now() - 1000;
    const BOOT = 'dtr_FAKEbootstrapSECRET0123456789abcdef';
    const WRONG = 'dtr_FAKEwrongTOKEN9876543210fedcba9876';
    const data = await tempDir('secrets-serve-');
    const { home, env: dirs } = await userDirs();
    await writeFile(join(data, 'boot'), `${BOOT}\n`);
    let serverOut = '';
    server = spawn(
      process.execPath,
      [CLI, 'serve', '--data', data, '--port', '0', '--bootstrap-token-file', 'boot', '--verbose'],
      { cwd: data, env: { ...process.env, ...dirs, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    server.stderr?.on('data', (c: Buffer) => (serverOut += c.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start: ${serverOut}`)), 60_000);
      server?.stdout?.on('data', (c: Buffer) => {
        serverOut += c.toString();
        const m = /listening on (http:\/\/\S+)/.exec(serverOut);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
    });
    const outputs: string[] = [];
    const run = async (
      args: string[],
      extraEnv: Record<string, string>,
      input?: string,
    ): Promise<{ code: number; stdout: string; stderr: string }> => {
      const r = await runCli([...args, '--verbose'], { cwd: home, env: { ...dirs, ...extraEnv }, input });
      outputs.push(`$ ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      return r;
    };
    // login takes the token from DEPLOY_TOOL_TOKEN and saves it in the user's config dir
    const login = await run(['login', url], { DEPLOY_TOOL_TOKEN: BOOT });
    expect(login.code, login.stderr).toBe(0);
    const cred = join(home, '.config', 'deploy-tool', 'credentials.json');
    expect((await stat(cred)).mode & 0o777).toBe(0o600);
    const badLogin = await run(['login', url, '--token-stdin'], { DEPLOY_TOOL_TOKEN: '' }, `${WRONG}\n`);
    expect(badLogin.code).toBe(1);
    expect(badLogin.stderr).toContain('ERR_REGISTRY_AUTH');
    // token create prints the new token once, by design: that output is the only place it may appear
    const created = await runCli(
      ['token', 'create', '--name', 'ci', '--role', 'reader', '--json', '--verbose'],
      { cwd: home, env: { ...dirs, DEPLOY_TOOL_TOKEN: '' } },
    );
    expect(created.code, created.stderr).toBe(0);
    const token = (JSON.parse(created.stdout) as { token: string }).token;
    expect(token).toMatch(/^dtr_/);
    expect(created.stderr).not.toContain(token);
    const list = await run(['token', 'list'], { DEPLOY_TOOL_TOKEN: '' });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('ci');
    const search = await run(['search', 'anything', '--registry', url], { DEPLOY_TOOL_TOKEN: token });
    expect(search.code, search.stderr).toBe(0);
    const searchJson = await run(['search', '--registry', url, '--json'], { DEPLOY_TOOL_TOKEN: token });
    expect(searchJson.code, searchJson.stderr).toBe(0);
    const wrong = await run(['search', 'x', '--registry', url], { DEPLOY_TOOL_TOKEN: WRONG });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/ERR_REGISTRY_AUTH/);
    expect(wrong.stderr).toContain(url);

    const secrets = { BOOT, WRONG, token };
    const all = outputs.join('\n');
    expect(all.length).toBeGreaterThan(300);
    for (const [name, value] of Object.entries(secrets)) {
      expect(all, `${name} printed by a command`).not.toContain(value);
      expect(serverOut, `${name} in the server's output`).not.toContain(value);
    }
    expect(serverOut).toMatch(/GET|POST/); // the access log did run
    // the server's data (database, logs, store), the user's folders; the credentials file holds the
    // logged-in token by design (mode 0600, checked above), and nothing else
    const scanned = await expectNoSecretInFiles(
      [data, home],
      since,
      secrets,
      // the credentials file, and the bootstrap token file this test wrote for the server
      (p, name) => name === 'BOOT' && (p === cred || p === join(data, 'boot')),
    );
    expect(scanned).toBeGreaterThan(1);
    expect(await readFile(cred, 'utf8')).not.toContain(WRONG);
  });
});

describe('secrets with S3 (radosgw)', { timeout: 300_000 }, () => {
  it('publish and deploy with the real keys, failures with wrong ones: no key in output, files or cache', async () => {
    const since = Date.now() - 1000;
    const ceph = await startCeph();
    const store = await makeS3Store(ceph, 'secrets');
    const project = await makeProject();
    const target = join(project, 'target');
    const { home, env: dirs } = await userDirs();
    const env = { ...ceph.env, ...dirs };
    const flags = ['--method', 's3', '--bucket', store.bucket, '--endpoint', ceph.endpoint];
    const outputs: string[] = [];
    const run = async (args: string[], extraEnv: Record<string, string> = {}): Promise<number> => {
      const r = await runCli([...args, '--verbose'], { cwd: project, env: { ...env, ...extraEnv } });
      outputs.push(`$ ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      return r.code;
    };
    expect(await run(['pack', './configs', '--type', 'config', '--version', '1.0.0'])).toBe(0);
    expect(await run(['publish', '--component', 'config:1.0.0', '--release-version', 'x1', ...flags])).toBe(
      0,
    );
    expect(
      await run(['publish', '--component', 'config:1.0.0', '--release-version', 'x1', ...flags, '--json']),
    ).toBe(0);
    expect(await run(['deploy', '--release', 'x1', '--target', target, ...flags])).toBe(0);
    expect(
      await run(['deploy', '--release', 'x1', '--target', join(project, 't-json'), ...flags, '--json']),
    ).toBe(0);
    expect(await run(['verify', '--target', target])).toBe(0);
    expect(await run(['status', '--target', target, '--json'])).toBe(0);
    // wrong secret key: refused by the gateway; a session token the gateway does not know: refused too
    const WRONG_SECRET = 'FAKEwrongSECRETkeyForCeph0123456789abcd';
    const WRONG_KEY_ID = 'FAKEACCESSKEYID0NOTINCEPH';
    const SESSION = 'FAKEsessionTOKENnotKnownToCeph5678efgh';
    const t2 = join(project, 't2');
    // a session token beside the real keys: this radosgw (no STS) ignores it; whatever the outcome,
    // it must not be printed
    expect([0, 1]).toContain(
      await run(['publish', '--component', 'config:1.0.0', '--release-version', 'x2', ...flags], {
        AWS_SESSION_TOKEN: SESSION,
      }),
    );
    const before = outputs.length;
    // refused by the gateway: a wrong secret key; an unknown access key with a session token
    expect(
      await run(['deploy', '--release', 'x1', '--target', t2, ...flags], {
        AWS_SECRET_ACCESS_KEY: WRONG_SECRET,
      }),
    ).toBe(1);
    expect(
      await run(['publish', '--component', 'config:1.0.0', '--release-version', 'x3', ...flags, '--json'], {
        AWS_ACCESS_KEY_ID: WRONG_KEY_ID,
        AWS_SECRET_ACCESS_KEY: WRONG_SECRET,
        AWS_SESSION_TOKEN: SESSION,
      }),
    ).toBe(1);
    const failures = outputs.slice(before).join('\n');
    expect(failures.match(/ERR_STORE/g)?.length).toBeGreaterThanOrEqual(2);
    expect(failures).toMatch(/access denied/);
    expect(failures).toContain(store.bucket);

    const secrets = { AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey, WRONG_SECRET, SESSION };
    const all = outputs.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const [name, value] of Object.entries(secrets)) expect(all, `${name} printed`).not.toContain(value);
    // project (manifests, git copy of the release), target (state), the download cache, HOME
    const scanned = await expectNoSecretInFiles([project, home], since, secrets);
    expect(scanned).toBeGreaterThan(10);
    // and in the bucket: every object the tool wrote
    for (const o of await store.list('')) {
      const b = await store.get(o.key);
      for (const [name, value] of Object.entries(secrets))
        expect(b?.includes(value), `${name} in s3://${store.bucket}/${o.key}`).toBe(false);
    }
  });
});
