/**
 * Signatures and encryption through the registry, against a real `deploy-tool serve` (the built
 * CLI, started with --trusted-key): publish --sign uploads detached signatures, the API and the
 * pages report their status, the registry release source brings them to the deploy, and
 * `--require-signature --trusted-key` deploys from the registry (or refuses, before anything is
 * written). Encrypted components go up as ciphertext only and deploy with the identity or the
 * passphrase. Plus the server's checks of uploaded signatures, and statuses "signed but not
 * checked" and "invalid" on a registry without (or with other) trusted keys.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.js';
import { isDeployToolError } from '../../src/core/errors.js';
import { createRegistryReleaseSource } from '../../src/deploy/sources/registry.js';
import { deploy } from '../../src/ops/deploy.js';
import { publishToRegistry } from '../../src/registry/publish.js';
import { createRegistryStore } from '../../src/store/drivers/registry.js';
import { generateKeys, loadSecretKey } from '../../src/trust/keys.js';
import { signMessage, verifySignature } from '../../src/trust/signature.js';
import { loadPublicKey } from '../../src/trust/keys.js';
import { CLI, cleanupTempDirs, makeProject, noise, runCli, tempDir } from '../helpers/cli.js';
import { BOOTSTRAP, createToken, request, startRegistry } from './helpers.js';

const NS = 'test-project';
let server: ChildProcess | undefined;
let serverErr = '';
let url = '';
let keysDir = '';
let key = '';
let pub = '';
let otherKey = '';
let otherPub = '';
let project = '';
let publisher = '';
let reader = '';

async function startServe(data: string, args: string[]): Promise<string> {
  await writeFile(join(data, 'boot'), `${BOOTSTRAP}\n`);
  server = spawn(
    process.execPath,
    [CLI, 'serve', '--data', data, '--port', '0', '--bootstrap-token-file', 'boot', ...args],
    { cwd: data, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stderr?.on('data', (c: Buffer) => (serverErr += c.toString()));
  return new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out} ${serverErr}`)), 20_000);
    server?.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
}

async function pack(dir: string, args: string[], env?: Record<string, string>): Promise<void> {
  const r = await runCli(['pack', ...args], { cwd: dir, env });
  if (r.code !== 0) throw new Error(`pack ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
}

/** Runs `fn`, expecting a DeployToolError; returns its code. */
async function codeOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (isDeployToolError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a refusal');
}

function deployFrom(release: string, target: string, trust: Parameters<typeof deploy>[0]['trust']) {
  const source = createRegistryReleaseSource({ url, token: reader, namespace: NS });
  return deploy({ cwd: project, release, target, source, trust }).finally(() => source.close());
}

beforeAll(async () => {
  keysDir = await tempDir('keys-');
  ({ privateKeyPath: key, publicKeyPath: pub } = await generateKeys({ outDir: keysDir, name: 'release' }));
  ({ privateKeyPath: otherKey, publicKeyPath: otherPub } = await generateKeys({
    outDir: keysDir,
    name: 'other',
  }));
  url = await startServe(await tempDir('serve-'), ['--trusted-key', pub]);
  publisher = (await createToken(url, BOOTSTRAP, 'publisher', [NS])).token;
  reader = (await createToken(url, BOOTSTRAP, 'reader', [NS])).token;
  project = await makeProject({ 'models/extra.bin': noise(150_000, 7) });
  await pack(project, ['./models', '--auto', '--type', 'model', '--version', '1.0.0']);
  await pack(project, ['./configs', '--auto', '--type', 'config', '--version', '1.0.0']);
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    const done = new Promise((r) => server?.once('exit', r));
    server.kill('SIGTERM');
    await done;
  }
  await cleanupTempDirs();
});

describe('signed releases through a real serve', () => {
  it('publish --sign uploads the signatures; the API reports them verified by the registry', async () => {
    const r = await publishToRegistry({
      cwd: project,
      registry: url,
      token: publisher,
      components: ['model:1.0.0', 'config:1.0.0'],
      releaseVersion: '2024.01.20',
      sign: key,
    });
    expect(r.status).toBe('published');
    expect(r.signedBy).toMatch(/^[0-9A-F]{16}$/);
    expect(r.signatures.map((s) => [s.subject, s.status, s.verified])).toEqual([
      ['component model:1.0.0', 'created', true],
      ['component config:1.0.0', 'created', true],
      ['release 2024.01.20', 'created', true],
    ]);
    const info = await request(url, 'GET', `/api/v1/namespaces/${NS}/components/model/1.0.0`, {
      token: reader,
    });
    expect(info.json.signature).toMatchObject({ status: 'signed', keyId: r.signedBy, verified: true });
    const rel = await request(url, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.20`, { token: reader });
    expect(rel.json.signature).toMatchObject({ status: 'signed', keyId: r.signedBy, verified: true });
    expect(rel.json.signature.trustedComment).toContain('release 2024.01.20');
    // The served signature is the detached .minisig of the exact release manifest bytes.
    const sig = await request(url, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.20/signature`, {
      token: reader,
    });
    expect(sig.status).toBe(200);
    expect(sig.headers['content-type']).toContain('text/plain');
    const text = (
      await request(url, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.20/manifest`, { token: reader })
    ).text;
    expect(verifySignature(text, sig.text, [await loadPublicKey(pub, keysDir)], 'release.json').keyId).toBe(
      r.signedBy,
    );
    // `deploy-tool info` says so too.
    const home = await tempDir('home-');
    const info2 = await runCli(['info', `${NS}/model:1.0.0`, '--registry', url], {
      cwd: home,
      env: { DEPLOY_TOOL_TOKEN: reader, DEPLOY_TOOL_CREDENTIALS: join(home, 'credentials.json') },
    });
    expect(info2.code).toBe(0);
    expect(info2.stdout).toContain(`signature  signed by key ${r.signedBy} (verified by the registry)`);
    expect(info2.stdout).toContain('encryption none');
    // Publishing again with the same key changes nothing (signatures are immutable, not duplicated).
    const again = await publishToRegistry({
      cwd: project,
      registry: url,
      token: publisher,
      components: ['model:1.0.0', 'config:1.0.0'],
      releaseVersion: '2024.01.20',
      sign: key,
    });
    expect(again.status).toBe('unchanged');
    expect(again.signatures.every((s) => s.status === 'unchanged')).toBe(true);
  });

  it('deploys from the registry with --require-signature --trusted-key', async () => {
    const target = join(await tempDir('target-'), 'app');
    const logs: string[] = [];
    const source = createRegistryReleaseSource({ url, token: reader, namespace: NS });
    const r = await deploy({
      cwd: project,
      release: '2024.01.20',
      target,
      source,
      trust: { requireSignature: true, trustedKeys: [pub] },
      onLog: (m) => logs.push(m),
    }).finally(() => source.close());
    expect(r.status).toBe('deployed');
    expect(logs.join('\n')).toMatch(/release 2024\.01\.20: signature verified \(key [0-9A-F]{16}\)/);
    const deployed = await readFile(join(target, 'model', 'extra.bin')).catch(() =>
      readFile(join(target, 'model', 'models', 'extra.bin')),
    );
    expect(deployed.equals(noise(150_000, 7))).toBe(true);
    // A bare component deploy checks the component's own signature.
    const bare = join(await tempDir('target-'), 'app');
    const s2 = createRegistryReleaseSource({ url, token: reader, namespace: NS });
    const b = await deploy({
      cwd: project,
      components: ['config:1.0.0'],
      target: bare,
      source: s2,
      trust: { requireSignature: true, trustedKeys: [pub] },
    }).finally(() => s2.close());
    expect(b.status).toBe('deployed');
  });

  it('refuses, before writing anything: another trusted key, and an unsigned release', async () => {
    const target = join(await tempDir('target-'), 'app');
    expect(
      await codeOf(() =>
        deployFrom('2024.01.20', target, { requireSignature: true, trustedKeys: [otherPub] }),
      ),
    ).toBe('ERR_UNTRUSTED_KEY');
    expect(existsSync(target)).toBe(false);
    await publishToRegistry({
      cwd: project,
      registry: url,
      token: publisher,
      components: ['model:1.0.0', 'config:1.0.0'],
      releaseVersion: '2024.01.21',
    });
    const rel = await request(url, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.21`, { token: reader });
    expect(rel.json.signature).toEqual({ status: 'unsigned' });
    expect(
      await codeOf(() => deployFrom('2024.01.21', target, { requireSignature: true, trustedKeys: [pub] })),
    ).toBe('ERR_UNSIGNED');
    expect(existsSync(target)).toBe(false);
    // Without a policy the unsigned release deploys as before.
    expect((await deployFrom('2024.01.21', target, undefined)).status).toBe('deployed');
  });

  it('accepts only well-formed signatures that verify with a key it trusts; they are immutable', async () => {
    const path = `/api/v1/namespaces/${NS}/releases/2024.01.21/signature`;
    const manifest = (
      await request(url, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.21/manifest`, {
        token: reader,
      })
    ).text;
    const put = (body: string, token = publisher, type = 'text/plain') =>
      request(url, 'PUT', path, { token, headers: { 'content-type': type }, body });
    const garbage = await put('untrusted comment: x\nnot base64 at all\n');
    expect([garbage.status, garbage.json.code]).toEqual([400, 'ERR_SIGNATURE_INVALID']);
    const other = signMessage(await loadSecretKey(otherKey), manifest, { file: 'release.json' });
    const untrusted = await put(other);
    expect([untrusted.status, untrusted.json.code]).toEqual([400, 'ERR_UNTRUSTED_KEY']);
    const secret = await loadSecretKey(key);
    const wrongBytes = await put(signMessage(secret, `${manifest} `, { file: 'release.json' }));
    expect([wrongBytes.status, wrongBytes.json.code]).toEqual([400, 'ERR_SIGNATURE_INVALID']);
    expect((await put('x'.repeat(5000))).status).toBe(413);
    expect((await put(other, publisher, 'application/json')).status).toBe(415);
    expect((await put(other, reader)).status).toBe(403);
    // Nothing of that was stored.
    expect((await request(url, 'GET', path, { token: reader })).status).toBe(404);
    const good = signMessage(secret, manifest, { file: 'release.json', subject: 'release 2024.01.21' });
    const created = await put(good);
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ status: 'created', verified: true });
    expect((await put(good)).json.status).toBe('unchanged');
    const second = await put(signMessage(secret, manifest, { file: 'release.json', timestamp: 1 }));
    expect([second.status, second.json.code]).toEqual([409, 'ERR_SIGNATURE_EXISTS']);
    expect((await request(url, 'GET', path, { token: reader })).text).toBe(good);
    // The registry Store driver reads and writes the same signatures under .minisig keys.
    const store = createRegistryStore({ url, token: publisher });
    const viaStore = await store.get(`namespaces/${NS}/releases/2024.01.21/release.json.minisig`);
    expect(viaStore?.toString()).toBe(good);
    expect(
      (
        await store.put(`namespaces/${NS}/releases/2024.01.21/release.json.minisig`, other, {
          ifNoneMatch: true,
        })
      ).status,
    ).toBe('exists');
    expect(await store.get(`namespaces/${NS}/components/model/1.0.0/manifest.json.minisig`)).toBeDefined();
    // Now the release deploys with signatures required.
    const target = join(await tempDir('target-'), 'app');
    const r = await deployFrom('2024.01.21', target, { requireSignature: true, trustedKeys: [pub] });
    expect(r.status).toBe('deployed');
  });

  it('an admin deletes a signature (audited); the release is unsigned again', async () => {
    const path = `/api/v1/namespaces/${NS}/releases/2024.01.21/signature`;
    expect((await request(url, 'DELETE', path, { token: publisher })).status).toBe(403);
    const del = await request(url, 'DELETE', path, { token: BOOTSTRAP });
    expect(del.status).toBe(200);
    expect((await request(url, 'DELETE', path, { token: BOOTSTRAP })).status).toBe(404);
    const rel = await request(url, 'GET', `/api/v1/namespaces/${NS}/releases/2024.01.21`, { token: reader });
    expect(rel.json.signature).toEqual({ status: 'unsigned' });
    const audit = await request(url, 'GET', '/api/v1/audit?limit=1000', { token: BOOTSTRAP });
    const events = audit.json.events as { action: string; target: string; details: { keyId?: string } }[];
    expect(events.filter((e) => e.action === 'signature.publish').map((e) => e.target)).toEqual(
      expect.arrayContaining(['model:1.0.0', 'config:1.0.0', '2024.01.20', '2024.01.21']),
    );
    const d = events.find((e) => e.action === 'signature.delete');
    expect(d).toMatchObject({
      target: '2024.01.21',
      details: { keyId: expect.stringMatching(/^[0-9A-F]{16}$/) },
    });
  });
});

describe('encrypted components through the registry', () => {
  let identityFile = '';
  let recipient = '';
  let encProject = '';
  const PASS = 'correct horse battery staple registry';

  beforeAll(async () => {
    encProject = await makeProject({ 'models/secret.bin': noise(120_000, 11) });
    const identity = await generateX25519Identity();
    recipient = await identityToRecipient(identity);
    identityFile = join(encProject, 'id.txt');
    await writeFile(identityFile, `${identity}\n`, { mode: 0o600 });
    await pack(encProject, [
      './models',
      '--auto',
      '--type',
      'model',
      '--version',
      '2.0.0-enc',
      '--encrypt',
      '--recipient',
      recipient,
    ]);
    await pack(
      encProject,
      [
        './configs',
        '--auto',
        '--type',
        'config',
        '--version',
        '2.0.0-pass',
        '--encrypt',
        '--passphrase-env',
        'REG_PASS',
      ],
      { REG_PASS: PASS },
    );
  });

  it('publishes only the ciphertext (signed), and reports the encryption', async () => {
    const r = await publishToRegistry({
      cwd: encProject,
      registry: url,
      token: publisher,
      components: ['model:2.0.0-enc', 'config:2.0.0-pass'],
      releaseVersion: '2024.02.01',
      sign: key,
    });
    expect(r.status).toBe('published');
    const m = JSON.parse(
      await readFile(join(encProject, 'deployment', 'manifests', 'model-2.0.0-enc.manifest.json'), 'utf8'),
    ) as { archive: { sha256: string }; encryption: { sha256: string; size: number; name: string } };
    const model = r.components.find((c) => c.type === 'model');
    expect(model).toMatchObject({ archiveSha256: m.encryption.sha256, archiveSize: m.encryption.size });
    // The registry holds the ciphertext, never the plaintext archive.
    const cipher = await request(url, 'GET', `/api/v1/namespaces/${NS}/components/model/2.0.0-enc/archive`, {
      token: reader,
    });
    expect(cipher.status).toBe(200);
    expect(cipher.body.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(sha256Hex(cipher.body)).toBe(m.encryption.sha256);
    expect(cipher.body.includes(noise(120_000, 11).subarray(0, 64))).toBe(false);
    expect(
      (await request(url, 'HEAD', `/api/v1/blobs/${m.archive.sha256}`, { token: publisher })).status,
    ).toBe(404);
    const info = await request(url, 'GET', `/api/v1/namespaces/${NS}/components/model/2.0.0-enc`, {
      token: reader,
    });
    expect(info.json.archive).toMatchObject({ name: m.encryption.name, sha256: m.encryption.sha256 });
    expect(info.json.encryption).toEqual({ format: 'age', recipients: [recipient], passphrase: false });
    expect(info.json.signature).toMatchObject({ status: 'signed', verified: true });
    const page = await request(url, 'GET', `/ns/${NS}/components/model/2.0.0-enc`, {
      headers: { cookie: `dt_token=${reader}` },
    });
    expect(page.text).toMatch(/<dt>Encryption<\/dt><dd>age, to <span class="sha mono">age1/);
  });

  it('deploys with the identity and the passphrase; without them nothing is written', async () => {
    const target = join(await tempDir('target-'), 'app');
    const run = (trust: Parameters<typeof deploy>[0]['trust'], env?: NodeJS.ProcessEnv) => {
      const source = createRegistryReleaseSource({ url, token: reader, namespace: NS });
      const saved = process.env.REG_PASS;
      if (env?.REG_PASS) process.env.REG_PASS = env.REG_PASS;
      return deploy({ cwd: encProject, release: '2024.02.01', target, source, trust }).finally(() => {
        source.close();
        if (saved === undefined) delete process.env.REG_PASS;
        else process.env.REG_PASS = saved;
      });
    };
    expect(await codeOf(() => run({ requireSignature: true, trustedKeys: [pub] }))).toBe(
      'ERR_DECRYPT_NO_KEY',
    );
    expect(existsSync(target)).toBe(false);
    expect(
      await codeOf(() =>
        run(
          {
            requireSignature: true,
            trustedKeys: [pub],
            identities: [identityFile],
            passphraseEnv: 'REG_PASS',
          },
          { REG_PASS: 'not the passphrase' },
        ),
      ),
    ).toBe('ERR_DECRYPT_FAILED');
    expect(existsSync(join(target, 'current'))).toBe(false);
    const ok = await run(
      { requireSignature: true, trustedKeys: [pub], identities: [identityFile], passphraseEnv: 'REG_PASS' },
      { REG_PASS: PASS },
    );
    expect(ok.status).toBe('deployed');
    const secret = await readFile(join(target, 'model', 'secret.bin')).catch(() =>
      readFile(join(target, 'model', 'models', 'secret.bin')),
    );
    expect(secret.equals(noise(120_000, 11))).toBe(true);
    const settings = await readFile(join(target, 'config', 'settings.yaml'), 'utf8').catch(() =>
      readFile(join(target, 'config', 'configs', 'settings.yaml'), 'utf8'),
    );
    expect(settings).toBe('threshold: 0.5\n');
  });
});

describe('signature status on registries with other trust', () => {
  it('is "signed, not checked" without trusted keys, and "invalid" once a trusted key disproves it', async () => {
    const data = await tempDir('reg-trust-');
    const plain = await startRegistry({ data });
    const secret = await loadSecretKey(key);
    try {
      const r = await publishToRegistry({
        cwd: project,
        registry: plain.url,
        token: BOOTSTRAP,
        components: ['model:1.0.0'],
        releaseVersion: '2024.03.01',
      });
      expect(r.signatures).toEqual([]);
      const relPath = `/api/v1/namespaces/${NS}/releases/2024.03.01`;
      const manifest = (await request(plain.url, 'GET', `${relPath}/manifest`, { token: BOOTSTRAP })).text;
      // Well-formed, by the release key, but over other bytes: a registry without keys cannot tell.
      const forged = signMessage(secret, manifest.replace('2024.03.01', '2024.03.02'), {
        file: 'release.json',
      });
      const put = await request(plain.url, 'PUT', `${relPath}/signature`, {
        token: BOOTSTRAP,
        headers: { 'content-type': 'text/plain' },
        body: forged,
      });
      expect(put.status).toBe(201);
      expect(put.json.verified).toBe(false);
      const rel = await request(plain.url, 'GET', relPath, { token: BOOTSTRAP });
      expect(rel.json.signature).toMatchObject({ status: 'signed', verified: false });
      const page = await request(plain.url, 'GET', `/ns/${NS}/releases/2024.03.01`, {
        headers: { cookie: `dt_token=${BOOTSTRAP}` },
      });
      expect(page.text).toContain('this registry does not trust the key');
    } finally {
      await plain.close();
    }
    // The same data, served with the release key trusted: the signature is shown invalid...
    const strict = await startRegistry({ data, trustedKeys: [pub] });
    try {
      const rel = await request(strict.url, 'GET', `/api/v1/namespaces/${NS}/releases/2024.03.01`, {
        token: BOOTSTRAP,
      });
      expect(rel.json.signature).toMatchObject({ status: 'invalid' });
      expect(rel.json.signature.reason).toContain('does not match its signature');
      const page = await request(strict.url, 'GET', `/ns/${NS}/releases/2024.03.01`, {
        headers: { cookie: `dt_token=${BOOTSTRAP}` },
      });
      expect(page.text).toContain('invalid signature');
      // ...and a deploy that requires signatures refuses it.
      const target = join(await tempDir('target-'), 'app');
      const source = createRegistryReleaseSource({ url: strict.url, token: BOOTSTRAP, namespace: NS });
      const code = await codeOf(() =>
        deploy({
          cwd: project,
          release: '2024.03.01',
          target,
          source,
          trust: { requireSignature: true, trustedKeys: [pub] },
        }).finally(() => source.close()),
      );
      expect(code).toBe('ERR_SIGNATURE_INVALID');
      expect(existsSync(target)).toBe(false);
    } finally {
      await strict.close();
    }
  });

  it('never prints a token in the serve log', () => {
    expect(serverErr).toContain('PUT /api/v1/namespaces/test-project/releases/2024.01.20/signature');
    for (const t of [BOOTSTRAP, publisher, reader]) expect(serverErr).not.toContain(t);
  });
});
