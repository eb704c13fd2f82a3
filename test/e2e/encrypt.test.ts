/* eslint-disable @typescript-eslint/no-explicit-any -- JSON output of the CLI */
/**
 * age encryption end to end: pack --encrypt, publish, deploy --identity / --passphrase-env, and
 * interoperability with Debian's age CLI in both directions.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalArchive } from '../../src/archive/reader.js';
import { sha256Hex } from '../../src/core/hash.js';
import { decryptArchive, loadDecryptionKeys } from '../../src/trust/encrypt.js';
import { cleanupTempDirs, makeProject, noise, runCli, runJson } from '../helpers/cli.js';

afterAll(cleanupTempDirs);

const hasAge =
  spawnSync('age', ['--version']).status === 0 &&
  spawnSync('age-keygen', ['-y', '/dev/null']).error === undefined;
let project: string;
let recipient: string;

async function ok(args: string[], env?: Record<string, string>): Promise<string> {
  const r = await runCli(args, { cwd: project, env });
  if (r.code !== 0) throw new Error(`${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const manifest = async (id: string): Promise<any> =>
  JSON.parse(await readFile(join(project, 'deployment', 'manifests', `${id}.manifest.json`), 'utf8'));

/**
 * Runs the age CLI on a pseudo-terminal (util-linux `script`), typing `passphrase` at each
 * passphrase prompt: age reads passphrases only from a terminal, never from stdin or the environment.
 */
function ageWithPassphrase(args: string[], passphrase: string): Promise<{ code: number; output: string }> {
  const quoted = ['age', ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('script', ['-qec', quoted, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let answered = 0;
    const onData = (c: Buffer): void => {
      output += c.toString();
      const prompts = output.match(/passphrase[^:\n]*: /gi)?.length ?? 0;
      for (; answered < prompts; answered++) child.stdin.write(`${passphrase}\r`);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolvePromise({ code: code ?? -1, output });
    });
  });
}

describe('age encryption', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    // Interop is required, not optional: scripts/test.sh installs age (and minisign).
    if (!hasAge)
      throw new Error('age / age-keygen are not installed: run scripts/test.sh (it installs them)');
    project = await makeProject();
    execFileSync('age-keygen', ['-o', join(project, 'id.txt')], { stdio: 'pipe' });
    recipient = execFileSync('age-keygen', ['-y', join(project, 'id.txt')], { encoding: 'utf8' }).trim();
    execFileSync('age-keygen', ['-o', join(project, 'wrong.txt')], { stdio: 'pipe' });
  });

  it('pack --encrypt: dist holds only the ciphertext, which the age CLI decrypts to the verified plaintext', async () => {
    await ok([
      'pack',
      './models',
      '--type',
      'model',
      '--version',
      '1.0.0',
      '--encrypt',
      '--recipient',
      recipient,
    ]);
    expect((await readdir(join(project, 'dist'))).sort()).toEqual(['model-1.0.0.tar.zst.age']);
    const m = await manifest('model-1.0.0');
    expect(m.schemaVersion).toBe(2);
    expect(m.encryption).toMatchObject({
      format: 'age',
      name: 'model-1.0.0.tar.zst.age',
      recipients: [recipient],
      passphrase: false,
    });
    const cipher = await readFile(join(project, 'dist', 'model-1.0.0.tar.zst.age'));
    expect(sha256Hex(cipher)).toBe(m.encryption.sha256);
    const plain = execFileSync(
      'age',
      ['-d', '-i', join(project, 'id.txt'), join(project, 'dist', 'model-1.0.0.tar.zst.age')],
      { maxBuffer: 64 << 20 },
    );
    expect(plain.length).toBe(m.archive.size);
    expect(sha256Hex(plain)).toBe(m.archive.sha256);
  });

  it('publish and deploy with --identity; a wrong identity and a missing one are refused', async () => {
    await ok(['publish', '--component', 'model:1.0.0', '--release-version', 'e1']);
    const target = join(project, 'target');
    const none = await runJson<any>(['deploy', '--release', 'e1', '--target', target], { cwd: project });
    expect(none.json.error.code).toBe('ERR_DECRYPT_NO_KEY');
    const wrong = await runJson<any>(
      ['deploy', '--release', 'e1', '--target', target, '--identity', 'wrong.txt'],
      { cwd: project },
    );
    expect(wrong.json.error.code).toBe('ERR_DECRYPT_FAILED');
    const { lstat } = await import('node:fs/promises');
    expect(await lstat(join(target, 'current')).catch(() => 'absent')).toBe('absent');
    const d = await runJson<any>(['deploy', '--release', 'e1', '--target', target, '--identity', 'id.txt'], {
      cwd: project,
    });
    expect(d.code, JSON.stringify(d.json)).toBe(0);
    expect(
      (await readFile(join(target, 'model', 'weights.bin'))).equals(
        await readFile(join(project, 'models', 'weights.bin')),
      ),
    ).toBe(true);
    const v = await runJson<any>(['verify', '--target', target], { cwd: project });
    expect(v.json.ok).toBe(true);
  });

  it('--passphrase-env: pack and deploy; a wrong passphrase is refused; the passphrase is never printed', async () => {
    await writeFile(join(project, 'configs', 'big.bin'), noise(200_000, 3));
    const env = { DT_PASS: 'tr0ub4dor-and-3-correct-horses' };
    const out = await ok(
      [
        'pack',
        './configs',
        '--type',
        'config',
        '--version',
        '9.0.0',
        '--encrypt',
        '--passphrase-env',
        'DT_PASS',
        '--verbose',
      ],
      env,
    );
    expect(out).not.toContain(env.DT_PASS);
    expect((await manifest('config-9.0.0')).encryption.passphrase).toBe(true);
    expect(JSON.stringify(await manifest('config-9.0.0'))).not.toContain(env.DT_PASS);
    await ok(['publish', '--component', 'config:9.0.0', '--release-version', 'p1']);
    const target = join(project, 'target-p');
    const bad = await runCli(
      ['deploy', '--release', 'p1', '--target', target, '--passphrase-env', 'DT_PASS'],
      { cwd: project, env: { DT_PASS: 'not-the-passphrase' } },
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ERR_DECRYPT_FAILED.*wrong passphrase/);
    const good = await runCli(
      ['deploy', '--release', 'p1', '--target', target, '--passphrase-env', 'DT_PASS', '--verbose'],
      { cwd: project, env },
    );
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout + good.stderr).not.toContain(env.DT_PASS);
    expect((await readFile(join(target, 'config', 'big.bin'))).equals(noise(200_000, 3))).toBe(true);
  });

  it('a file encrypted by the age CLI is decrypted by deploy-tool', async () => {
    const m = await manifest('model-1.0.0');
    const plainPath = join(project, 'plain.tar.zst');
    const cliCipher = join(project, 'by-age-cli.age');
    execFileSync('age', [
      '-d',
      '-i',
      join(project, 'id.txt'),
      '-o',
      plainPath,
      join(project, 'dist', 'model-1.0.0.tar.zst.age'),
    ]);
    execFileSync('age', ['-r', recipient, '-o', cliCipher, plainPath]);
    const cipher = await readFile(cliCipher);
    const m2 = { ...m, encryption: { ...m.encryption, size: cipher.length, sha256: sha256Hex(cipher) } };
    const keys = await loadDecryptionKeys({ identityFiles: ['id.txt'], cwd: project });
    const src = await openLocalArchive(cliCipher);
    const out = join(project, 'decrypted');
    try {
      await decryptArchive(src, m2, keys, out);
    } finally {
      await src.close();
    }
    expect(sha256Hex(await readFile(out))).toBe(m.archive.sha256);
  });
  it('passphrase both ways: the age CLI decrypts what pack --passphrase-env wrote, and deploy-tool decrypts age -p', async () => {
    // config-9.0.0 was packed with --passphrase-env DT_PASS above
    const pass = 'tr0ub4dor-and-3-correct-horses';
    const m = await manifest('config-9.0.0');
    expect(m.encryption.passphrase).toBe(true);
    const plainPath = join(project, 'config-plain.tar.zst');
    const byUs = join(project, 'dist', 'config-9.0.0.tar.zst.age');
    const wrong = await ageWithPassphrase(['-d', '-o', join(project, 'nothing'), byUs], 'not-it');
    expect(wrong.code).not.toBe(0);
    expect(wrong.output).toMatch(/incorrect passphrase|no identity matched/i);
    const d = await ageWithPassphrase(['-d', '-o', plainPath, byUs], pass);
    expect(d.code, d.output).toBe(0);
    const plain = await readFile(plainPath);
    expect(plain.length).toBe(m.archive.size);
    expect(sha256Hex(plain)).toBe(m.archive.sha256);

    const byCli = join(project, 'by-age-cli-p.age');
    const e = await ageWithPassphrase(['-p', '-o', byCli, plainPath], pass);
    expect(e.code, e.output).toBe(0);
    const cipher = await readFile(byCli);
    expect(cipher.subarray(0, 40).toString('latin1')).toMatch(/^age-encryption\.org\/v1\n-> scrypt /);
    const m2 = { ...m, encryption: { ...m.encryption, size: cipher.length, sha256: sha256Hex(cipher) } };
    const out = join(project, 'decrypted-p');
    const bad = await loadDecryptionKeys({ passphraseEnv: 'P', cwd: project, env: { P: 'not-it' } });
    const src0 = await openLocalArchive(byCli);
    try {
      await expect(decryptArchive(src0, m2, bad, out)).rejects.toMatchObject({ code: 'ERR_DECRYPT_FAILED' });
    } finally {
      await src0.close();
    }
    const keys = await loadDecryptionKeys({ passphraseEnv: 'P', cwd: project, env: { P: pass } });
    const src = await openLocalArchive(byCli);
    try {
      await decryptArchive(src, m2, keys, out);
    } finally {
      await src.close();
    }
    expect(sha256Hex(await readFile(out))).toBe(m.archive.sha256);
  }, 120_000);
});
