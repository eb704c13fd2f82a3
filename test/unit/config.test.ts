import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONFIG_SCHEMA_VERSION,
  PARSED_CONFIG_MAX_ENTRIES,
  loadConfig,
  parseConfig,
  parsedConfigCacheDir,
  renderInitialConfig,
} from '../../src/core/config.js';
import { DeployToolError } from '../../src/core/errors.js';
import { sha256Hex } from '../../src/core/hash.js';
import {
  DEFAULT_EXCLUDES,
  analyseSource,
  readPackageConfig,
  writePackageConfig,
} from '../../src/ops/package-config.js';

function refused(f: () => unknown, code: string): DeployToolError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(DeployToolError);
    expect((err as DeployToolError).code).toBe(code);
    expect((err as DeployToolError).hint).toBeTruthy();
    return err as DeployToolError;
  }
  throw new Error(`expected ${code}`);
}

async function refusedAsync(p: Promise<unknown>, code: string): Promise<DeployToolError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DeployToolError);
    expect((err as DeployToolError).code).toBe(code);
    expect((err as DeployToolError).hint).toBeTruthy();
    return err as DeployToolError;
  }
  throw new Error(`expected ${code}`);
}

const BASE = `schema_version: 1
project:
  name: my-ml-project
  type: algorithm
`;

const BOMB = `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
`;

describe('.deploy-tool.yaml (parseConfig)', () => {
  it('reads what init writes', () => {
    const { config, warnings } = parseConfig(renderInitialConfig('my-ml-project', 'algorithm'), 'cfg');
    expect(config.schema_version).toBe(CONFIG_SCHEMA_VERSION);
    expect(config.project).toEqual({ name: 'my-ml-project', type: 'algorithm' });
    expect(config.defaults).toEqual({ compression: 'zstd', level: 3, keep: 5 });
    expect(warnings).toEqual([]);
  });

  it('quotes names so YAML cannot reinterpret them', () => {
    const { config } = parseConfig(renderInitialConfig('1.0', 'yes'), 'cfg');
    expect(config.project).toEqual({ name: '1.0', type: 'yes' });
  });

  it.each([
    ['a top-level secret', `${BASE}secret_access_key: AKIAxxxxxxxx\n`, 'secret_access_key'],
    ['a nested password', `${BASE}store:\n  s3:\n    password: hunter22\n`, 'store.s3.password'],
    ['a token', `${BASE}hooks:\n  token: abcdef\n`, 'hooks.token'],
    ['an API key in any case', `${BASE}API_KEY: abcdef\n`, 'API_KEY'],
  ])('refuses %s and names the key', (_what, text, key) => {
    const err = refused(() => parseConfig(text, 'cfg'), 'ERR_CONFIG_SECRET');
    expect(err.message).toContain(key);
    expect(err.hint).toMatch(/environment/);
  });

  it.each([
    'secret_key',
    'access_key',
    'access_key_id',
    'secret_access_key',
    'aws_secret_access_key',
    'AWS_SECRET_ACCESS_KEY',
    'bos_secret_access_key',
    'session_token',
    'aws_session_token',
    'password',
    'db-password',
    'token',
    'registry_token',
    'credentials',
    'secretKey',
    'apiKey',
    'passphrase',
  ])('refuses %s under stores.NAME, with a hint to use the environment or credential files', (key) => {
    const text = `${BASE}stores:\n  models:\n    type: s3\n    bucket: my-bucket\n    ${key}: AKIAxxxxxxxx1234\n`;
    const err = refused(() => parseConfig(text, 'cfg'), 'ERR_CONFIG_SECRET');
    expect(err.message).toContain(`stores.models.${key}`);
    expect(err.message).not.toContain('AKIAxxxxxxxx1234');
    expect(err.hint).toMatch(/environment/);
    expect(err.hint).toMatch(/credentials file/);
  });

  it('refuses a credentials mapping and a URL with a password in it', () => {
    const creds = refused(
      () => parseConfig(`${BASE}credentials:\n  id: a\n  key: b\n`, 'cfg'),
      'ERR_CONFIG_SECRET',
    );
    expect(creds.message).toContain('credentials');
    const url = refused(
      () =>
        parseConfig(
          `${BASE}stores:\n  m:\n    type: s3\n    bucket: my-bucket\n    endpoint: https://AKIA1:s3cr3tvalue@s3.example.com\n`,
          'cfg',
        ),
      'ERR_CONFIG_SECRET',
    );
    expect(url.message).toContain('stores.m.endpoint');
    expect(url.message).not.toContain('s3cr3tvalue');
  });

  it('accepts keys that name where a secret lives, and store or target names that look like secrets', () => {
    const text = `${BASE}passphrase_env: DEPLOY_PASSPHRASE\ntoken_env: DEPLOY_TOOL_TOKEN\ncredentials_file: ~/.aws/credentials\nstores:\n  tokens:\n    type: s3\n    bucket: my-bucket\n    endpoint: https://s3.example.com\ndeploy:\n  targets:\n    secret: /opt/secret-model\ntrust:\n  keys: [keys/a.pub]\n`;
    const { config, warnings } = parseConfig(text, 'cfg');
    expect(config.stores?.tokens?.bucket).toBe('my-bucket');
    expect(config.trust?.keys).toEqual(['keys/a.pub']);
    // Unknown keys are warned about, not refused.
    expect(warnings).toEqual([
      'cfg: unknown key "passphrase_env" ignored',
      'cfg: unknown key "token_env" ignored',
      'cfg: unknown key "credentials_file" ignored',
    ]);
  });

  it('does not echo the secret value in the error', () => {
    const err = refused(() => parseConfig(`${BASE}password: hunter22-value\n`, 'cfg'), 'ERR_CONFIG_SECRET');
    expect(`${err.message} ${err.hint ?? ''}`).not.toContain('hunter22-value');
  });

  it('allows an empty secret key (a placeholder)', () => {
    expect(() => parseConfig(`${BASE}password: ""\n`, 'cfg')).not.toThrow();
  });

  it('warns about unknown keys, at any depth, and keeps going', () => {
    const { warnings } = parseConfig(`${BASE}colour: blue\ndefaults:\n  compresion: gzip\n`, 'cfg');
    expect(warnings).toEqual([
      'cfg: unknown key "colour" ignored',
      'cfg: unknown key "defaults.compresion" ignored',
    ]);
  });

  it('refuses malformed YAML with the file name', () => {
    const err = refused(
      () => parseConfig('schema_version: 1\nproject: [unclosed\n', '/p/.deploy-tool.yaml'),
      'ERR_CONFIG_INVALID',
    );
    expect(err.message).toMatch(/^\/p\/.deploy-tool.yaml is not valid YAML/);
  });

  it('refuses duplicate keys', () => {
    refused(() => parseConfig(`${BASE}project:\n  name: x\n  type: y\n`, 'cfg'), 'ERR_CONFIG_INVALID');
  });

  it('refuses an alias bomb without expanding it', () => {
    const t0 = performance.now();
    const err = refused(() => parseConfig(`${BASE}${BOMB}`, 'cfg'), 'ERR_CONFIG_INVALID');
    expect(err.message).toMatch(/alias|resource/i);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('refuses an unknown schema_version, a missing project and wrong types', () => {
    expect(
      refused(
        () => parseConfig(BASE.replace('schema_version: 1', 'schema_version: 2'), 'cfg'),
        'ERR_CONFIG_INVALID',
      ).message,
    ).toMatch(/schema_version/);
    expect(refused(() => parseConfig('schema_version: 1\n', 'cfg'), 'ERR_CONFIG_INVALID').message).toMatch(
      /project/,
    );
    expect(
      refused(() => parseConfig(`${BASE}defaults:\n  compression: rar\n`, 'cfg'), 'ERR_CONFIG_INVALID')
        .message,
    ).toMatch(/defaults\.compression/);
    expect(
      refused(() => parseConfig(`${BASE}defaults:\n  level: high\n`, 'cfg'), 'ERR_CONFIG_INVALID').message,
    ).toMatch(/defaults\.level/);
  });

  it('says which schema_version it reads, and whether to upgrade or fix the file', () => {
    const newer = refused(
      () => parseConfig(BASE.replace('schema_version: 1', 'schema_version: 3'), 'cfg'),
      'ERR_CONFIG_INVALID',
    );
    expect(newer.message).toBe(
      `cfg: schema_version 3 is not one this deploy-tool reads (it reads ${CONFIG_SCHEMA_VERSION})`,
    );
    expect(newer.hint).toMatch(/newer deploy-tool: upgrade/);
    const odd = refused(
      () => parseConfig(BASE.replace('schema_version: 1', 'schema_version: "one"'), 'cfg'),
      'ERR_CONFIG_INVALID',
    );
    expect(odd.message).toContain('schema_version "one"');
    expect(odd.hint).toContain(`schema_version: ${CONFIG_SCHEMA_VERSION}`);
    const missing = refused(
      () => parseConfig(BASE.replace('schema_version: 1\n', ''), 'cfg'),
      'ERR_CONFIG_INVALID',
    );
    expect(missing.message).toContain('schema_version is missing');
  });

  it('refuses a document that is not a mapping', () => {
    refused(() => parseConfig('- a\n- b\n', 'cfg'), 'ERR_CONFIG_INVALID');
    refused(() => parseConfig('', 'cfg'), 'ERR_CONFIG_INVALID');
  });
});

describe('package configurations (deployment/package-configs/TYPE.yaml)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dt-pkgcfg-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('round-trips what pack --auto writes', async () => {
    const cfg = {
      schema_version: 1 as const,
      type: 'model',
      source: 'models',
      compression: 'gzip' as const,
      level: 6,
      include: ['**/*.bin'],
      exclude: [...DEFAULT_EXCLUDES, '*.tmp'],
    };
    const path = await writePackageConfig(dir, cfg);
    expect(path).toBe(join(dir, 'model.yaml'));
    expect(await readPackageConfig(dir, 'model')).toEqual(cfg);
  });

  it('returns nothing when the type has no configuration', async () => {
    expect(await readPackageConfig(dir, 'absent')).toBeUndefined();
  });

  it('fills include and exclude with empty lists when left out', async () => {
    await writeFile(join(dir, 'min.yaml'), 'schema_version: 1\ntype: min\ncompression: zstd\nlevel: 3\n');
    expect(await readPackageConfig(dir, 'min')).toMatchObject({ include: [], exclude: [] });
  });

  it('refuses malformed YAML, unknown compressions and versions', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'schema_version: 1\ntype: [\n');
    expect((await refusedAsync(readPackageConfig(dir, 'bad'), 'ERR_CONFIG_INVALID')).message).toMatch(
      /bad.yaml is not valid YAML/,
    );
    await writeFile(join(dir, 'rar.yaml'), 'schema_version: 1\ntype: rar\ncompression: rar\nlevel: 3\n');
    expect((await refusedAsync(readPackageConfig(dir, 'rar'), 'ERR_CONFIG_INVALID')).message).toMatch(
      /compression/,
    );
    await writeFile(join(dir, 'v2.yaml'), 'schema_version: 2\ntype: v2\ncompression: zstd\nlevel: 3\n');
    expect((await refusedAsync(readPackageConfig(dir, 'v2'), 'ERR_CONFIG_INVALID')).message).toMatch(
      /schema_version/,
    );
  });

  it('refuses an alias bomb with a coded error', async () => {
    await writeFile(
      join(dir, 'bomb.yaml'),
      `schema_version: 1\ntype: bomb\ncompression: zstd\nlevel: 3\n${BOMB}`,
    );
    await refusedAsync(readPackageConfig(dir, 'bomb'), 'ERR_CONFIG_INVALID');
  });

  it('auto analysis picks zstd, and a lower level when most bytes are already compressed', async () => {
    const src = await mkdtemp(join(dir, 'src-'));
    await writeFile(join(src, 'weights.bin'), Buffer.alloc(10000));
    expect(await analyseSource(src)).toMatchObject({
      compression: 'zstd',
      level: 3,
      files: 1,
      totalSize: 10000,
    });
    await writeFile(join(src, 'images.zip'), Buffer.alloc(100000));
    expect(await analyseSource(src)).toMatchObject({ compression: 'zstd', level: 1, files: 2 });
  });
});

describe('the parsed-config cache (loadConfig)', () => {
  let dir: string;
  let file: string;
  let cache: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dt-cfgcache-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  let n = 0;
  const fresh = async (text: string): Promise<void> => {
    n++;
    file = join(dir, `p${n}`, '.deploy-tool.yaml');
    cache = join(dir, `cache${n}`);
    await rm(join(dir, `p${n}`), { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, `p${n}`), { recursive: true }));
    await writeFile(file, text);
  };
  const entries = async (): Promise<string[]> => (await readdir(cache).catch(() => [])).sort();

  it('keeps what parsed, and answers the next load of the same text from it', async () => {
    await fresh(`${BASE}colour: blue\n`);
    const first = await loadConfig(file, { cacheDir: cache });
    expect(first.config.project.name).toBe('my-ml-project');
    const [entry, ...more] = await entries();
    expect(more).toEqual([]);
    expect(entry).toMatch(/^config-[0-9a-f]{64}\.json$/);
    const stored = JSON.parse(await readFile(join(cache, entry!), 'utf8'));
    expect(stored).toMatchObject({
      schemaVersion: 1,
      kind: 'deploy-tool/parsed-config',
      unknownKeys: ['colour'],
    });
    // The second load reads the entry, not the YAML: an entry edited in place shows through.
    stored.config.project.name = 'from-the-cache';
    await writeFile(join(cache, entry!), JSON.stringify(stored));
    const second = await loadConfig(file, { cacheDir: cache });
    expect(second.config.project.name).toBe('from-the-cache');
    // Warnings name the file being loaded, on hits too.
    expect(second.warnings).toEqual([`${file}: unknown key "colour" ignored`]);
  });

  it('parses again when the text changes, and never keeps a file that fails', async () => {
    await fresh(BASE);
    await loadConfig(file, { cacheDir: cache });
    await writeFile(file, BASE.replace('my-ml-project', 'renamed'));
    expect((await loadConfig(file, { cacheDir: cache })).config.project.name).toBe('renamed');
    expect(await entries()).toHaveLength(2);
    await writeFile(file, `${BASE}defaults:\n  compression: rar\n`);
    for (let i = 0; i < 2; i++)
      await refusedAsync(loadConfig(file, { cacheDir: cache }), 'ERR_CONFIG_INVALID');
    await writeFile(file, `${BASE}aws_secret_access_key: abc\n`);
    await refusedAsync(loadConfig(file, { cacheDir: cache }), 'ERR_CONFIG_SECRET');
    expect(await entries()).toHaveLength(2);
  });

  it('ignores an entry that is damaged or from another build, and replaces it', async () => {
    await fresh(BASE);
    await loadConfig(file, { cacheDir: cache });
    const [entry] = await entries();
    const path = join(cache, entry!);
    const good = await readFile(path, 'utf8');
    for (const bad of [
      '{"schemaVersion": 1, "kind": "deploy-tool/pars',
      '',
      good.replace(/"tool":"[^"]*"/, '"tool":"0.0.1+older"'),
      good.replace(/"sha256":"[0-9a-f]*"/, `"sha256":"${'0'.repeat(64)}"`),
      good.replace('"my-ml-project"', '"stale"').replace('"schemaVersion":1', '"schemaVersion":2'),
    ]) {
      await writeFile(path, bad);
      const { config } = await loadConfig(file, { cacheDir: cache });
      expect(config.project.name).toBe('my-ml-project');
      expect(await readFile(path, 'utf8')).toBe(good);
    }
  });

  it('is only an optimization: an unusable folder, or none, still loads', async () => {
    await fresh(BASE);
    await writeFile(cache, 'a file where the folder should be');
    expect((await loadConfig(file, { cacheDir: cache })).config.project.name).toBe('my-ml-project');
    cache = join(dir, 'never-made');
    await loadConfig(file, { cacheDir: false });
    await loadConfig(file, { env: { DEPLOY_TOOL_CONFIG_CACHE: '0' } });
    expect(await entries()).toEqual([]);
    expect(parsedConfigCacheDir({ env: { DEPLOY_TOOL_CACHE_DIR: '/var/cache/dt' } })).toBe(
      '/var/cache/dt/parsed',
    );
    expect(parsedConfigCacheDir({ env: { XDG_CACHE_HOME: '/x' } })).toBe('/x/deploy-tool/parsed');
    expect(parsedConfigCacheDir({ env: { DEPLOY_TOOL_CONFIG_CACHE: '0' } })).toBeUndefined();
  });

  it(`keeps at most ${PARSED_CONFIG_MAX_ENTRIES} entries, dropping the oldest`, async () => {
    await fresh(BASE);
    for (let i = 0; i < PARSED_CONFIG_MAX_ENTRIES + 6; i++) {
      await writeFile(file, `${BASE}defaults:\n  keep: ${i + 1}\n`);
      await loadConfig(file, { cacheDir: cache });
    }
    const names = await entries();
    expect(names).toHaveLength(PARSED_CONFIG_MAX_ENTRIES);
    const entryOf = (i: number): string => `config-${sha256Hex(`${BASE}defaults:\n  keep: ${i + 1}\n`)}.json`;
    expect(names).not.toContain(entryOf(0));
    expect(names).not.toContain(entryOf(5));
    expect(names).toContain(entryOf(6));
    expect(names).toContain(entryOf(PARSED_CONFIG_MAX_ENTRIES + 5));
  });
});
