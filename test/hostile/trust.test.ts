/**
 * Trust refusals: with signatures required, an unsigned release, a bad signature, an unknown key or
 * any byte changed anywhere is refused before anything is extracted; encrypted components without
 * the right key, or with a changed ciphertext byte, are refused too. After each: nothing outside
 * staging, the good release still current and verified.
 */
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Encrypter, generateIdentity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../src/ops/deploy.js';
import { generateKeys, loadSecretKey, type SecretKey } from '../../src/trust/keys.js';
import { signMessage } from '../../src/trust/signature.js';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';
import { craft, expectRefused, makeArena, sha, writeRelease, type Arena, type Crafted } from './lib.js';

afterAll(cleanupTempDirs);

let a: Arena;
let trusted: SecretKey;
let stranger: SecretKey;
let pub: string;
let n = 0;

beforeAll(async () => {
  const base = await tempDir('hostile-trust-');
  const k1 = await generateKeys({ outDir: join(base, 'keys'), name: 'trusted' });
  const k2 = await generateKeys({ outDir: join(base, 'keys'), name: 'stranger' });
  trusted = await loadSecretKey(k1.privateKeyPath);
  stranger = await loadSecretKey(k2.privateKeyPath);
  pub = k1.publicKeyPath;
  a = await makeArena(base);
});

const signed = { requireSignature: true, trustedKeys: () => [pub] };

async function release(
  opts: { sign?: SecretKey | undefined; comps?: Crafted[] } = {},
): Promise<{ name: string; dir: string; text: string }> {
  const name = `t-${++n}`;
  const comps = opts.comps ?? [await craft('model', `7.0.${n}`, [{ path: 'w.bin', data: `weights ${n}\n` }])];
  const text = await writeRelease(a.releases, name, comps);
  const dir = join(a.releases, name);
  if (opts.sign)
    await writeFile(
      join(dir, 'release.json.minisig'),
      signMessage(opts.sign, text, { file: 'release.json' }),
    );
  return { name, dir, text };
}

const run =
  (name: string, trust: Record<string, unknown> = {}) =>
  () =>
    deploy({
      cwd: a.base,
      release: name,
      target: a.target,
      releasesDir: a.releases,
      trust: { requireSignature: signed.requireSignature, trustedKeys: signed.trustedKeys(), ...trust },
    });

describe('signatures', () => {
  it('an unsigned release is refused', async () => {
    const r = await release();
    await expectRefused(a, 'ERR_UNSIGNED', run(r.name), /Release t-\d+ is not signed/);
  });

  it('a release signed by an unknown key is refused', async () => {
    const r = await release({ sign: stranger });
    await expectRefused(
      a,
      'ERR_UNTRUSTED_KEY',
      run(r.name),
      /signed by key [0-9A-F]{16}, which is not a trusted key/,
    );
  });

  it('one byte changed in release.json after signing is refused', async () => {
    const r = await release({ sign: trusted });
    await writeFile(join(r.dir, 'release.json'), r.text.replace('"notes": null', '"notes": null '));
    await expectRefused(
      a,
      'ERR_SIGNATURE_INVALID',
      run(r.name),
      /release t-\d+ .* does not match its signature .*changed after signing/,
    );
  });

  it('a signature copied from another release is refused', async () => {
    const other = await release({ sign: trusted });
    const r = await release({ sign: trusted });
    await writeFile(
      join(r.dir, 'release.json.minisig'),
      await readFile(join(other.dir, 'release.json.minisig')),
    );
    await expectRefused(
      a,
      'ERR_SIGNATURE_INVALID',
      run(r.name),
      /release t-\d+ .* does not match its signature/,
    );
  });

  it('a malformed signature file is refused', async () => {
    const r = await release({ sign: trusted });
    await writeFile(join(r.dir, 'release.json.minisig'), 'untrusted comment: x\nnot base64!\n');
    await expectRefused(
      a,
      'ERR_SIGNATURE_INVALID',
      run(r.name),
      /signature of release t-\d+ .* is malformed: expected 4 lines/,
    );
  });

  it('an altered trusted comment is refused', async () => {
    const r = await release({ sign: trusted });
    const p = join(r.dir, 'release.json.minisig');
    await writeFile(p, (await readFile(p, 'utf8')).replace('file:release.json', 'file:other.json'));
    await expectRefused(
      a,
      'ERR_SIGNATURE_INVALID',
      run(r.name),
      /trusted comment of the signature of release t-\d+ .* was altered/,
    );
  });

  it('a component manifest changed after signing is refused', async () => {
    const r = await release({ sign: trusted });
    const m = join(r.dir, 'model', `7.0.${n}`, `model-7.0.${n}.manifest.json`);
    await writeFile(m, (await readFile(m, 'utf8')).replace('hostile-corpus', 'hostile-corpuz'));
    await expectRefused(
      a,
      'ERR_MANIFEST_INVALID',
      run(r.name),
      /model-7\.0\.\d+\.manifest\.json does not match release t-\d+ \(its sha256 differs from manifestSha256/,
    );
  });

  it('an archive byte changed after signing is refused before extraction', async () => {
    const r = await release({ sign: trusted });
    const f = join(r.dir, 'model', `7.0.${n}`, `model-7.0.${n}.tar`);
    const b = await readFile(f);
    b[520]! ^= 1;
    await writeFile(f, b);
    await expectRefused(
      a,
      'ERR_ARCHIVE_CORRUPT',
      run(r.name),
      /model-7\.0\.\d+\.tar: archive sha256 is [0-9a-f]{64}, the manifest says/,
    );
  });

  it('a signed release moved under another name is refused', async () => {
    const r = await release({ sign: trusted });
    const moved = `t-${++n}`;
    const { cp } = await import('node:fs/promises');
    await cp(r.dir, join(a.releases, moved), { recursive: true });
    await expectRefused(
      a,
      'ERR_MANIFEST_INVALID',
      run(moved),
      new RegExp(`release\\.json describes release ${r.name}, not ${moved}`),
    );
  });

  it('a present but bad signature is refused even when signatures are not required', async () => {
    const r = await release({ sign: trusted });
    await writeFile(join(r.dir, 'release.json'), r.text.replace('"git": null', '"git":  null'));
    await expectRefused(
      a,
      'ERR_SIGNATURE_INVALID',
      run(r.name, { requireSignature: false }),
      /release t-\d+ .* does not match its signature/,
    );
  });
});

async function encrypted(how: { recipient?: string; passphrase?: string }): Promise<Crafted> {
  const c = await craft('secret', `1.0.${++n}`, [{ path: 'w.bin', data: `secret weights ${n}\n` }]);
  const e = new Encrypter();
  if (how.passphrase) {
    e.setPassphrase(how.passphrase);
    e.setScryptWorkFactor(10);
  }
  if (how.recipient) e.addRecipient(how.recipient);
  const cipher = Buffer.from(await e.encrypt(c.archive));
  const m = c.manifest;
  m.schemaVersion = 2;
  m.encryption = {
    format: 'age',
    name: `${m.archive.name}.age`,
    size: cipher.length,
    sha256: sha(cipher),
    recipients: how.recipient ? [how.recipient] : [],
    passphrase: !!how.passphrase,
  };
  // As publish stores it: the release names the ciphertext.
  return {
    ...c,
    archive: cipher,
    manifest: {
      ...m,
      archive: { ...m.archive, name: m.encryption.name, sha256: m.encryption.sha256, size: cipher.length },
    },
    manifestText: `${JSON.stringify(m, null, 2)}\n`,
  };
}

describe('encryption', () => {
  let identityFile: string;
  let recipient: string;
  let wrongIdentity: string;
  beforeAll(async () => {
    const id = await generateIdentity();
    recipient = await identityToRecipient(id);
    identityFile = join(a.base, 'keys', 'age.txt');
    wrongIdentity = join(a.base, 'keys', 'wrong.txt');
    await writeFile(identityFile, `# test identity\n${id}\n`, { mode: 0o600 });
    await writeFile(wrongIdentity, `${await generateIdentity()}\n`, { mode: 0o600 });
  });
  const plain = { requireSignature: false, trustedKeys: [] };

  it('no identity given: refused', async () => {
    const r = await release({ comps: [await encrypted({ recipient })] });
    await expectRefused(
      a,
      'ERR_DECRYPT_NO_KEY',
      run(r.name, plain),
      /secret:1\.0\.\d+ is encrypted to age recipients, and no identity was given/,
    );
  });

  it('a wrong identity: refused, nothing extracted', async () => {
    const r = await release({ comps: [await encrypted({ recipient })] });
    await expectRefused(
      a,
      'ERR_DECRYPT_FAILED',
      run(r.name, { ...plain, identities: [wrongIdentity] }),
      /Cannot decrypt secret:1\.0\.\d+ .*none of the given identities \(identity file .*wrong\.txt\) matches its recipients/,
    );
  });

  it('a changed ciphertext byte: refused', async () => {
    const c = await encrypted({ recipient });
    const r = await release({ comps: [c] });
    const f = join(r.dir, 'secret', c.manifest.version, c.manifest.archive.name);
    const b = await readFile(f);
    b[b.length - 10]! ^= 1;
    await writeFile(f, b);
    await expectRefused(
      a,
      'ERR_ARCHIVE_CORRUPT',
      run(r.name, { ...plain, identities: [identityFile] }),
      /secret-1\.0\.\d+\.tar\.age.*encrypted archive sha256/,
    );
  });

  it('a wrong passphrase: refused', async () => {
    const r = await release({ comps: [await encrypted({ passphrase: 'correct horse battery' })] });
    process.env.DT_TEST_WRONG_PASS = 'wrong horse battery';
    await expectRefused(
      a,
      'ERR_DECRYPT_FAILED',
      run(r.name, { ...plain, passphraseEnv: 'DT_TEST_WRONG_PASS' }),
      /Cannot decrypt secret:1\.0\.\d+ \(.*secret-1\.0\.\d+\.tar\.age\): wrong passphrase/,
    );
  });

  it('a passphrase variable that is not set: refused', async () => {
    const r = await release({ comps: [await encrypted({ passphrase: 'correct horse battery' })] });
    delete process.env.DT_TEST_UNSET_PASS;
    await expectRefused(
      a,
      'ERR_DECRYPT_NO_KEY',
      run(r.name, { ...plain, passphraseEnv: 'DT_TEST_UNSET_PASS' }),
      /DT_TEST_UNSET_PASS.* not set/,
    );
  });

  it('an identity file readable by others: refused', async () => {
    const r = await release({ comps: [await encrypted({ recipient })] });
    const loose = join(a.base, 'keys', 'loose.txt');
    await writeFile(loose, await readFile(identityFile), { mode: 0o644 });
    await expectRefused(
      a,
      'ERR_KEY_INVALID',
      run(r.name, { ...plain, identities: [loose] }),
      /Identity file .*loose\.txt is readable by other users \(mode 0644\)/,
    );
  });

  it('the right identity deploys it (and then the good release is restored)', async () => {
    const c = await encrypted({ recipient });
    const r = await release({ comps: [c] });
    const res = await run(r.name, { ...plain, identities: [identityFile] })();
    expect(res.status).toBe('deployed');
    expect(await readFile(join(a.target, 'secret', 'w.bin'), 'utf8')).toMatch(/^secret weights/);
    // no decrypted plaintext left behind
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(join(a.target, '.deploy-tool', 'staging'))).toEqual([]);
    await deploy({ cwd: a.base, release: 'good', target: a.target, releasesDir: a.releases });
  });
});
