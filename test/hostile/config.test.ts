/**
 * Hostile `.deploy-tool.yaml` files: each is refused with a specific code (or, for unknown keys,
 * accepted with a warning), and a deploy run in such a project changes nothing on the target.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/core/config.js';
import { deploy } from '../../src/ops/deploy.js';
import { cleanupTempDirs, tempDir } from '../helpers/cli.js';
import { expectRefused, makeArena, type Arena } from './lib.js';

afterAll(cleanupTempDirs);

const head = 'schema_version: 1\nproject:\n  name: p\n  type: algorithm\n';
const bomb = [
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  ...Array.from({ length: 9 }, (_, i) => {
    const n = String.fromCharCode(98 + i);
    const p = String.fromCharCode(97 + i);
    return `${n}: &${n} [*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p}]`;
  }),
].join('\n');

const cases: [string, string, string, RegExp][] = [
  [
    'malformed YAML',
    `${head}defaults: [unclosed\n`,
    'ERR_CONFIG_INVALID',
    /x\.yaml is not valid YAML: Flow sequence .* at line 6/,
  ],
  [
    'tab indentation',
    `${head}defaults:\n\tkeep: 3\n`,
    'ERR_CONFIG_INVALID',
    /not valid YAML: Tabs are not allowed as indentation at line 6/,
  ],
  ['YAML alias bomb (billion laughs)', `${head}${bomb}\n`, 'ERR_CONFIG_INVALID', /alias/i],
  [
    'duplicate keys',
    `${head}project:\n  name: q\n  type: t\n`,
    'ERR_CONFIG_INVALID',
    /not valid YAML: Map keys must be unique at line 5/,
  ],
  [
    'secret in the file',
    `${head}s3:\n  secret_access_key: AKIAEXAMPLESECRET\n`,
    'ERR_CONFIG_SECRET',
    /contains a credential \(s3\.secret_access_key\)/,
  ],
  [
    'token in the file',
    `${head}registry:\n  token: abcdef123456\n`,
    'ERR_CONFIG_SECRET',
    /contains a credential \(registry\.token\)/,
  ],
  [
    'private key in trust',
    `${head}trust:\n  private_key: xyz\n`,
    'ERR_CONFIG_SECRET',
    /contains a credential \(trust\.private_key\)/,
  ],
  [
    'AWS secret key under stores.NAME',
    `${head}stores:\n  m:\n    type: s3\n    bucket: my-bucket\n    aws_secret_access_key: wJalrXUtnFEMI\n`,
    'ERR_CONFIG_SECRET',
    /stores\.m\.aws_secret_access_key/,
  ],
  [
    'BOS secret key under stores.NAME',
    `${head}stores:\n  b:\n    type: bos\n    bucket: my-bucket\n    bos_secret_access_key: abcdef\n`,
    'ERR_CONFIG_SECRET',
    /stores\.b\.bos_secret_access_key/,
  ],
  [
    'session token under stores.NAME',
    `${head}stores:\n  m:\n    type: s3\n    bucket: my-bucket\n    session_token: FQoGZXIvYXdzE\n`,
    'ERR_CONFIG_SECRET',
    /stores\.m\.session_token/,
  ],
  [
    'credentials block',
    `${head}credentials:\n  access_key: AKIAEXAMPLE\n  secret_key: abcdef\n`,
    'ERR_CONFIG_SECRET',
    /contains a credential \(credentials, credentials\.access_key, credentials\.secret_key\)/,
  ],
  [
    'password in an endpoint URL',
    `${head}stores:\n  m:\n    type: s3\n    bucket: my-bucket\n    endpoint: http://u:hunter2@127.0.0.1:9000\n`,
    'ERR_CONFIG_SECRET',
    /stores\.m\.endpoint/,
  ],
  [
    'unknown schema version',
    head.replace('schema_version: 1', 'schema_version: 7'),
    'ERR_CONFIG_INVALID',
    /x\.yaml: schema_version 7 is not one this deploy-tool reads \(it reads 1\)/,
  ],
  [
    'wrong type',
    `${head}defaults:\n  keep: lots\n`,
    'ERR_CONFIG_INVALID',
    /defaults\.keep: .*expected number, received string/,
  ],
  [
    'trust.keys not a list',
    `${head}trust:\n  keys: RWQ\n`,
    'ERR_CONFIG_INVALID',
    /trust\.keys: .*expected array, received string/,
  ],
  [
    'huge number',
    `${head}defaults:\n  keep: 1e400\n`,
    'ERR_CONFIG_INVALID',
    /defaults\.keep: .*received Infinity/,
  ],
  [
    'not a mapping',
    '- just\n- a list\n',
    'ERR_CONFIG_INVALID',
    /\(top level\): .*expected object, received array/,
  ],
];

describe('hostile project configurations', () => {
  let a: Arena;
  beforeAll(async () => {
    a = await makeArena(await tempDir('hostile-config-'));
  });

  for (const [name, text, code, message] of cases) {
    it(`${name}: refused by the parser and by deploy`, async () => {
      expect(() => parseConfig(text, 'x.yaml')).toThrow(message);
      try {
        parseConfig(text, 'x.yaml');
      } catch (err) {
        expect((err as { code: string }).code).toBe(code);
      }
      const project = await tempDir('hostile-config-project-');
      await writeFile(join(project, '.deploy-tool.yaml'), text);
      // the same message, naming the project's file instead of x.yaml
      const inProject = new RegExp(
        message.source.replace('x\\.yaml', '\\.deploy-tool\\.yaml'),
        message.flags,
      );
      await expectRefused(
        a,
        code,
        () => deploy({ cwd: project, release: 'good', target: a.target, releasesDir: a.releases }),
        inProject,
      );
    });
  }

  it('unknown keys are accepted with a warning', () => {
    const r = parseConfig(`${head}colour: blue\ntrust:\n  keyz: []\n`, 'x.yaml');
    expect(r.warnings).toEqual([
      'x.yaml: unknown key "colour" ignored',
      'x.yaml: unknown key "trust.keyz" ignored',
    ]);
  });

  it('a trust policy that requires signatures refuses an unsigned release', async () => {
    const project = await tempDir('hostile-config-project-');
    const keys = await import('../../src/trust/keys.js');
    const k = await keys.generateKeys({ outDir: join(project, 'keys') });
    await writeFile(
      join(project, '.deploy-tool.yaml'),
      `${head}trust:\n  keys: ["keys/deploy-tool.pub", "${k.publicKey}"]\n  require_signatures: true\n`,
    );
    await expectRefused(
      a,
      'ERR_UNSIGNED',
      () => deploy({ cwd: project, release: 'good', target: a.target, releasesDir: a.releases }),
      /Release good is not signed/,
    );
  });
});
