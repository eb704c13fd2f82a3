/* eslint-disable @typescript-eslint/no-explicit-any -- JSON output of the CLI */
/**
 * Signing end to end with the built CLI: keys generate, publish --sign, sign --release, deploy
 * --require-signature, verify --signature, and minisign (an independent implementation) accepting
 * what we sign.
 */
import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, runCli, runJson } from '../helpers/cli.js';

afterAll(cleanupTempDirs);

const hasMinisign = spawnSync('minisign', ['-v']).status === 0;
let project: string;
const rel = (p: string): string => join(project, 'deployment', 'releases', p);

async function ok(args: string[]): Promise<string> {
  const r = await runCli(args, { cwd: project });
  if (r.code !== 0) throw new Error(`${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  project = await makeProject();
  await ok(['keys', 'generate', '--out', 'keys']);
  await ok(['keys', 'generate', '--out', 'keys', '--name', 'other']);
  await ok(['pack', './models', '--type', 'model', '--version', '1.0.0']);
  await ok(['pack', './configs', '--type', 'config', '--version', '1.0.0']);
  await ok([
    'publish',
    '--component',
    'model:1.0.0',
    '--component',
    'config:1.0.0',
    '--release-version',
    'r1',
    '--sign',
    'keys/deploy-tool.key',
  ]);
  await ok([
    'publish',
    '--component',
    'model:1.0.0',
    '--component',
    'config:1.0.0',
    '--release-version',
    'r2',
  ]);
});

describe('signing with the CLI', () => {
  it('keys generate: a 0600 private key, a minisign public key, no overwrite', async () => {
    expect((await stat(join(project, 'keys', 'deploy-tool.key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(project, 'keys', 'deploy-tool.pub'), 'utf8')).toMatch(
      /^untrusted comment: minisign public key [0-9A-F]{16}\n/,
    );
    const again = await runJson<any>(['keys', 'generate', '--out', 'keys'], { cwd: project });
    expect(again.code).toBe(1);
    expect(again.json.error.code).toBe('ERR_KEY_EXISTS');
  });

  it('publish --sign writes detached signatures beside the manifests', async () => {
    for (const f of [
      'r1/release.json.minisig',
      'r1.release.json.minisig',
      'r1/model/1.0.0/model-1.0.0.manifest.json.minisig',
    ]) {
      expect(await readFile(rel(f), 'utf8')).toMatch(
        /^untrusted comment: .*\n[A-Za-z0-9+/=]+\ntrusted comment: .*\n[A-Za-z0-9+/=]+\n$/,
      );
    }
  });

  it.runIf(hasMinisign)(
    'minisign -V (prehashed required) accepts the release and component signatures',
    () => {
      for (const f of ['r1/release.json', 'r1.release.json', 'r1/config/1.0.0/config-1.0.0.manifest.json']) {
        const r = spawnSync(
          'minisign',
          ['-V', '-H', '-p', join(project, 'keys', 'deploy-tool.pub'), '-m', rel(f)],
          { encoding: 'utf8' },
        );
        expect(r.status, r.stderr).toBe(0);
      }
      const wrong = spawnSync(
        'minisign',
        ['-V', '-p', join(project, 'keys', 'other.pub'), '-m', rel('r1/release.json')],
        { encoding: 'utf8' },
      );
      expect(wrong.status).not.toBe(0);
    },
  );

  it('sign --release signs an existing release; minisign agrees', async () => {
    await ok(['sign', '--release', 'r2', '--key', 'keys/deploy-tool.key']);
    if (hasMinisign) {
      const r = spawnSync(
        'minisign',
        ['-V', '-p', join(project, 'keys', 'deploy-tool.pub'), '-m', rel('r2/release.json')],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
    }
    const other = await runJson<any>(['sign', '--release', 'r2', '--key', 'keys/other.key'], {
      cwd: project,
    });
    expect(other.json.error?.code).toBe('ERR_SIGNATURE_INVALID');
  });

  it('verify --signature checks a published release and names what is wrong', async () => {
    const v = await runJson<any>(
      ['verify', '--signature', '--release', 'r1', '--trusted-key', 'keys/deploy-tool.pub'],
      { cwd: project },
    );
    expect(v.code, JSON.stringify(v.json)).toBe(0);
    expect(v.json.status).toBe('verified');
    const unknown = await runJson<any>(
      ['verify', '--signature', '--release', 'r1', '--trusted-key', 'keys/other.pub'],
      { cwd: project },
    );
    expect(unknown.json.error.code).toBe('ERR_UNTRUSTED_KEY');
  });

  it('deploy --require-signature deploys a signed release and refuses a changed one', async () => {
    const target = join(project, 'target');
    const d = await runJson<any>(
      [
        'deploy',
        '--release',
        'r1',
        '--target',
        target,
        '--require-signature',
        '--trusted-key',
        'keys/deploy-tool.pub',
      ],
      { cwd: project },
    );
    expect(d.code, JSON.stringify(d.json)).toBe(0);
    const text = await readFile(rel('r2/release.json'), 'utf8');
    await writeFile(rel('r2/release.json'), text.replace('"notes": null', '"notes": "changed"'));
    const bad = await runCli(
      [
        'deploy',
        '--release',
        'r2',
        '--target',
        target,
        '--require-signature',
        '--trusted-key',
        'keys/deploy-tool.pub',
      ],
      { cwd: project },
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/error \[ERR_SIGNATURE_INVALID\]: release r2 .* does not match its signature/);
    const v = await runJson<any>(
      ['verify', '--signature', '--release', 'r2', '--trusted-key', 'keys/deploy-tool.pub'],
      { cwd: project },
    );
    expect(v.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    await writeFile(rel('r2/release.json'), text);
    const still = await runJson<any>(['verify', '--target', target], { cwd: project });
    expect(still.json.release).toBe('r1');
  });
});
