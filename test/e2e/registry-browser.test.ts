/**
 * The registry web UI in a real Chromium (Debian's, driven by playwright-core), with JavaScript
 * disabled: log in, search, open a version page and a release page, create a token on the admin
 * page; check what a person sees (signature status included) and save screenshots under
 * test-artifacts/.
 */
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeys, loadSecretKey } from '../../src/trust/keys.js';
import { signMessage } from '../../src/trust/signature.js';
import { cleanupTempDirs, REPO, tempDir } from '../helpers/cli.js';
import {
  apiPublishComponent,
  BOOTSTRAP,
  jsonHeaders,
  packedProject,
  releaseManifest,
  request,
  startRegistry,
} from '../registry/helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'test-artifacts');
let srv: Awaited<ReturnType<typeof startRegistry>>;
let browser: BrowserContext;
let page: Page;
let keyId = '';

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    execSync('apt-get update -qq && apt-get install -y -qq chromium >/dev/null', {
      stdio: 'inherit',
      timeout: 300_000,
    });
  }
  await mkdir(ARTIFACTS, { recursive: true });
  const { components } = await packedProject([
    ['./models', 'model', '1.0.0'],
    ['./configs', 'config', '1.0.0'],
  ]);
  // A signing key the registry trusts: model:1.0.0 and the release are signed, config:1.0.0 not.
  const keys = await generateKeys({ outDir: await tempDir('keys-'), name: 'release' });
  keyId = keys.keyId;
  srv = await startRegistry({ trustedKeys: [keys.publicKeyPath] });
  const meta = {
    description: 'ResNet-50 for image classification',
    author: 'ML Team',
    license: 'MIT',
    framework: 'pytorch',
    tags: ['computer-vision', 'classification'],
  };
  expect((await apiPublishComponent(srv.url, BOOTSTRAP, 'test-project', components[0]!, meta)).status).toBe(
    201,
  );
  expect((await apiPublishComponent(srv.url, BOOTSTRAP, 'test-project', components[1]!)).status).toBe(201);
  const rel = await request(srv.url, 'PUT', '/api/v1/namespaces/test-project/releases/2024.01.20', {
    token: BOOTSTRAP,
    headers: jsonHeaders,
    body: releaseManifest('2024.01.20', components, 'First production release'),
  });
  expect(rel.status).toBe(201);
  const secret = await loadSecretKey(keys.privateKeyPath);
  for (const [path, kind] of [
    ['/api/v1/namespaces/test-project/components/model/1.0.0', 'component'],
    ['/api/v1/namespaces/test-project/releases/2024.01.20', 'release'],
  ] as const) {
    const text = (await request(srv.url, 'GET', `${path}/manifest`, { token: BOOTSTRAP })).text;
    const signed = await request(srv.url, 'PUT', `${path}/signature`, {
      token: BOOTSTRAP,
      headers: { 'content-type': 'text/plain' },
      body: signMessage(secret, text, { file: kind === 'release' ? 'release.json' : 'manifest.json' }),
    });
    expect(signed.status).toBe(201);
  }
  // A fresh profile each run (launchPersistentContext is how playwright passes --user-data-dir).
  browser = await chromium.launchPersistentContext(await tempDir('chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    javaScriptEnabled: false,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  await cleanupTempDirs();
});

describe('registry web UI (no JavaScript)', () => {
  it('sends a visitor to the login page, refuses a wrong token, accepts a right one', async () => {
    await page.goto(`${srv.url}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    await expect(page.locator('h1').innerText()).resolves.toBe('Log in');
    await page.fill('#token', 'dtr_wrong-token-for-the-browser-test');
    await page.click('button[type=submit]');
    await expect(page.locator('[role=alert]').innerText()).resolves.toContain('not valid');
    await page.screenshot({ path: join(ARTIFACTS, 'registry-login-failed.png'), fullPage: true });
    await page.fill('#token', BOOTSTRAP);
    await page.click('button[type=submit]');
    expect(new URL(page.url()).pathname).toBe('/');
    const text = await page.locator('main').innerText();
    expect(text).toContain('Components and releases');
    expect(text).toContain('model:1.0.0');
    expect(text).toContain('2024.01.20');
    await page.screenshot({ path: join(ARTIFACTS, 'registry-home.png'), fullPage: true });
  });

  it('searches', async () => {
    await page.fill('input[name=q]', 'image classification');
    await page.click('form.search button');
    const main = await page.locator('main').innerText();
    expect(main).toContain('Results for “image classification”');
    expect(main).toContain('model:1.0.0');
    expect(main).toContain('ResNet-50 for image classification');
    expect(main).not.toContain('config:1.0.0');
    await page.screenshot({ path: join(ARTIFACTS, 'registry-search.png'), fullPage: true });
    await page.fill('input[name=q]', 'no-such-model');
    await page.click('form.search button');
    await expect(page.locator('main').innerText()).resolves.toContain('No components match.');
  });

  it('shows a component version page: files, sizes, sha256, compression, signature, downloads, deploy command', async () => {
    await page.goto(`${srv.url}/?q=resnet`);
    await page.click('text=model:1.0.0');
    expect(new URL(page.url()).pathname).toBe('/ns/test-project/components/model/1.0.0');
    const main = await page.locator('main').innerText();
    expect(main).toContain('model:1.0.0');
    expect(main).toContain('ResNet-50 for image classification');
    expect(main).toMatch(/Compression\s+zstd/);
    expect(main).toMatch(new RegExp(`Signature\\s+signed by key ${keyId} \\(verified by this registry\\)`));
    expect(main).not.toContain('not signed');
    expect(main).toMatch(/Encryption\s+none/);
    expect(main).toMatch(/Downloads\s+0/);
    expect(main).toContain('weights.bin');
    expect(main).toMatch(/3\.0 MiB/);
    expect(main).toMatch(/[0-9a-f]{64}/);
    expect(main).toContain(
      `deploy-tool deploy --method registry --registry ${srv.url} --namespace test-project --release 2024.01.20`,
    );
    await page.screenshot({ path: join(ARTIFACTS, 'registry-version.png'), fullPage: true });
    // Download through the page's link counts a download.
    const dl = await request(srv.url, 'GET', '/ns/test-project/components/model/1.0.0/download', {
      headers: { cookie: `dt_token=${BOOTSTRAP}` },
    });
    expect(dl.status).toBe(200);
    expect(dl.headers['content-disposition']).toContain('attachment');
    await page.reload();
    expect(await page.locator('main').innerText()).toMatch(/Downloads\s+1/);
  });

  it('shows a release page', async () => {
    await page.click('text=2024.01.20');
    expect(new URL(page.url()).pathname).toBe('/ns/test-project/releases/2024.01.20');
    const main = await page.locator('main').innerText();
    expect(main).toContain('Release 2024.01.20');
    expect(main).toContain('First production release');
    expect(main).toContain('config:1.0.0');
    expect(main).toContain('model:1.0.0');
    expect(main).toMatch(new RegExp(`Signature\\s+signed by key ${keyId}`));
    await page.screenshot({ path: join(ARTIFACTS, 'registry-release.png'), fullPage: true });
    // An unsigned component says so.
    await page.click('text=config:1.0.0');
    expect(new URL(page.url()).pathname).toBe('/ns/test-project/components/config/1.0.0');
    expect(await page.locator('main').innerText()).toMatch(/Signature\s+not signed/);
    await page.screenshot({ path: join(ARTIFACTS, 'registry-version-unsigned.png'), fullPage: true });
  });

  it('creates and revokes a token on the admin page; the token is shown once', async () => {
    await page.click('header >> text=Tokens');
    expect(new URL(page.url()).pathname).toBe('/admin/tokens');
    await page.fill('input[name=name]', 'browser-made');
    await page.selectOption('select[name=role]', 'publisher');
    await page.fill('input[name=namespaces]', 'test-project');
    await page.click('form.search button');
    const shown = (await page.locator('#new-token').innerText()).trim();
    expect(shown).toMatch(/^dtr_/);
    expect(await page.locator('main').innerText()).toContain('shown only once');
    await page.screenshot({ path: join(ARTIFACTS, 'registry-tokens.png'), fullPage: true });
    const who = await request(srv.url, 'GET', '/api/v1/whoami', { token: shown });
    expect(who.json).toMatchObject({ name: 'browser-made', role: 'publisher', namespaces: ['test-project'] });
    await page.goto(`${srv.url}/admin/tokens`);
    expect(await page.locator('main').innerText()).not.toContain(shown);
    await page.locator('tr', { hasText: 'browser-made' }).locator('button', { hasText: 'Revoke' }).click();
    await expect(page.locator('tr', { hasText: 'browser-made' }).innerText()).resolves.toContain('revoked');
    expect((await request(srv.url, 'GET', '/api/v1/whoami', { token: shown })).status).toBe(401);
  });

  it('logs out', async () => {
    await page.click('text=Log out');
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.goto(`${srv.url}/admin/tokens`);
    expect(new URL(page.url()).pathname).toBe('/login');
  });
});
