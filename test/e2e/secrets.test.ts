/**
 * Secrets never leak: commands run with known fake credentials and passphrases in the environment
 * (success and failure paths, --verbose and --json), then everything they printed and every file
 * they wrote (project, published releases, target, state, temporary folders) is searched for them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeProject, runCli, tempDir } from '../helpers/cli.js';

afterAll(cleanupTempDirs);

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

describe('secrets', () => {
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
    if (hasAge) {
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
