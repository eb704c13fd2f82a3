import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';
import {
  formatPublicKey,
  generateKeys,
  keyIdHex,
  loadPublicKey,
  loadSecretKey,
  parsePublicKey,
  publicKeyLine,
} from '../../src/trust/keys.js';
import { parseSignature, signMessage, verifySignature } from '../../src/trust/signature.js';
import { isDeployToolError } from '../../src/core/errors.js';

afterAll(cleanupTempDirs);

const hasMinisign = spawnSync('minisign', ['-v']).status === 0;
/** Interop is required, not optional: scripts/test.sh installs minisign. */
const needMinisign = (): void => {
  expect(hasMinisign, 'minisign is not installed: run scripts/test.sh (it installs minisign and age)').toBe(
    true,
  );
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isDeployToolError(err) ? err.code : `not a DeployToolError: ${String(err)}`;
  }
  return undefined;
}

describe('keys and signatures', () => {
  it('generates a 0600 PKCS#8 private key and a minisign public key', async () => {
    const dir = await tempDir('keys-');
    const g = await generateKeys({ outDir: dir });
    expect((await stat(g.privateKeyPath)).mode & 0o777).toBe(0o600);
    const pem = await readFile(g.privateKeyPath, 'utf8');
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(createPrivateKey(pem).asymmetricKeyType).toBe('ed25519');
    const pubText = await readFile(g.publicKeyPath, 'utf8');
    expect(pubText).toMatch(/^untrusted comment: minisign public key [0-9A-F]{16}\nRW[A-Za-z0-9+/=]{54}\n$/);
    const pk = parsePublicKey(pubText, 'pub');
    expect(keyIdHex(pk.keyId)).toBe(g.keyId);
    expect(publicKeyLine(pk)).toBe(g.publicKey);
    // PEM SPKI form of the same key: same id
    const spki = createPublicKey(pem).export({ format: 'pem', type: 'spki' }).toString();
    expect(keyIdHex(parsePublicKey(spki, 'spki').keyId)).toBe(g.keyId);
    expect(keyIdHex((await loadPublicKey(g.publicKey, dir)).keyId)).toBe(g.keyId);
    // refuses to overwrite
    await expect(generateKeys({ outDir: dir })).rejects.toMatchObject({ code: 'ERR_KEY_EXISTS' });
  });

  it('refuses a private key readable by others', async () => {
    const dir = await tempDir('keys-');
    const g = await generateKeys({ outDir: dir });
    const { chmod } = await import('node:fs/promises');
    await chmod(g.privateKeyPath, 0o644);
    await expect(loadSecretKey(g.privateKeyPath)).rejects.toMatchObject({ code: 'ERR_KEY_INVALID' });
  });

  it('signs, verifies, and tells bad signature from unknown key', async () => {
    const dir = await tempDir('keys-');
    const a = await generateKeys({ outDir: dir, name: 'a' });
    const b = await generateKeys({ outDir: dir, name: 'b' });
    const sk = await loadSecretKey(a.privateKeyPath);
    const pkA = await loadPublicKey(a.publicKeyPath, dir);
    const pkB = await loadPublicKey(b.publicKeyPath, dir);
    const msg = '{"hello": "world"}\n';
    const sig = signMessage(sk, msg, { file: 'release.json', subject: 'release 1.0' });
    expect(verifySignature(msg, sig, [pkB, pkA], 'release.json').keyId).toBe(a.keyId);
    expect(codeOf(() => verifySignature(msg, sig, [pkB], 'release.json'))).toBe('ERR_UNTRUSTED_KEY');
    expect(codeOf(() => verifySignature(`${msg} `, sig, [pkA], 'release.json'))).toBe(
      'ERR_SIGNATURE_INVALID',
    );
    // altered trusted comment
    const altered = sig.replace('release 1.0', 'release 2.0');
    expect(codeOf(() => verifySignature(msg, altered, [pkA], 'release.json'))).toBe('ERR_SIGNATURE_INVALID');
    // malformed files
    for (const bad of [
      '',
      'x',
      sig.split('\n').slice(0, 3).join('\n'),
      sig.replace(/^untrusted/, 'trusted'),
    ]) {
      expect(codeOf(() => verifySignature(msg, bad, [pkA], 'release.json'))).toBe('ERR_SIGNATURE_INVALID');
    }
    // every single-bit flip of the signature lines is refused
    const p = parseSignature(sig, 'x');
    expect(p.algorithm).toBe('ED');
    const lines = sig.split('\n');
    for (const i of [1, 3]) {
      const raw = Buffer.from(lines[i]!, 'base64');
      for (let byte = 0; byte < raw.length; byte += 7) {
        const flipped = Buffer.from(raw);
        flipped[byte]! ^= 1;
        const l2 = [...lines];
        l2[i] = flipped.toString('base64');
        expect(codeOf(() => verifySignature(msg, l2.join('\n'), [pkA], 'release.json'))).toMatch(
          /ERR_SIGNATURE_INVALID|ERR_UNTRUSTED_KEY/,
        );
      }
    }
  });

  it('minisign -V accepts our signatures and rejects changed bytes', async () => {
    needMinisign();
    const dir = await tempDir('keys-');
    const g = await generateKeys({ outDir: dir });
    const sk = await loadSecretKey(g.privateKeyPath);
    const file = join(dir, 'release.json');
    const body = `${JSON.stringify({ release: '1.0.0', n: [1, 2, 3] }, null, 2)}\n`;
    await writeFile(file, body);
    await writeFile(`${file}.minisig`, signMessage(sk, body, { file }));
    const ok = spawnSync('minisign', ['-V', '-H', '-p', g.publicKeyPath, '-m', file], { encoding: 'utf8' });
    expect(ok.status, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/Signature and comment signature verified/);
    const inline = spawnSync('minisign', ['-V', '-P', g.publicKey, '-m', file], { encoding: 'utf8' });
    expect(inline.status, inline.stderr).toBe(0);
    await writeFile(file, body.replace('1.0.0', '1.0.1'));
    const bad = spawnSync('minisign', ['-V', '-p', g.publicKeyPath, '-m', file], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
  });

  it('we verify signatures and keys made by minisign (hashed and legacy)', async () => {
    needMinisign();
    const dir = await tempDir('keys-');
    const pub = join(dir, 'm.pub');
    const sec = join(dir, 'm.key');
    execFileSync('minisign', ['-G', '-W', '-p', pub, '-s', sec], { stdio: 'pipe' });
    const pk = await loadPublicKey(pub, dir);
    const file = join(dir, 'release.json');
    await writeFile(file, 'some bytes\n');
    execFileSync('minisign', ['-S', '-s', sec, '-m', file, '-t', 'by minisign'], { stdio: 'pipe' });
    const sig = await readFile(`${file}.minisig`, 'utf8');
    const v = verifySignature('some bytes\n', sig, [pk], 'release.json');
    expect(v.algorithm).toBe('ED');
    expect(v.trustedComment).toBe('by minisign');
    execFileSync('minisign', ['-S', '-l', '-s', sec, '-m', file], { stdio: 'pipe' });
    const legacy = await readFile(`${file}.minisig`, 'utf8');
    expect(verifySignature('some bytes\n', legacy, [pk], 'release.json').algorithm).toBe('Ed');
    expect(codeOf(() => verifySignature('some bytes!\n', legacy, [pk], 'release.json'))).toBe(
      'ERR_SIGNATURE_INVALID',
    );
    expect(formatPublicKey(pk).split('\n')[1]).toBe((await readFile(pub, 'utf8')).split('\n')[1]);
  });
});
